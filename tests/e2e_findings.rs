//! Product bugs found by the fault campaign (`make chaos`) and the failover benchmark, each
//! kept as a focused regression scenario on real hosts: a lost owner fenced in a burst of
//! requests, an agent stop deadlocking the units' stop (S8), an agent restart in place, a rebooted two-node survivor
//! starting alone (S6), a start failing at once retried in a busy loop, a relocation past
//! max_restarts bouncing back.

mod e2e;
mod harness;

use std::time::Duration;

use e2e::{Cluster, Kind, Opts, admin};
use harness::wait_until;

const T: Duration = Duration::from_secs(30);

/// The fence-daemon log lines for `off` of `node` (one per request the daemon answered).
fn off_requests(c: &Cluster, node: &str) -> usize {
    let log = std::fs::read_to_string(c.topo.dir().join("fence-daemon.log")).unwrap_or_default();
    let needle = format!("off `{node}`");
    log.lines().filter(|l| l.contains(&needle)).count()
}

#[test]
fn a_lost_owner_is_fenced_once() {
    fenced_once(
        "find_fence_once",
        Opts {
            quiet: true,
            ..Opts::default()
        },
    );
}

/// Found by the failover benchmark: with the fast profile the fence succeeded less than
/// 200 ms after the peer's last message, which a fixed 200 ms "still heard from" guard
/// took for a live peer: the survivor did not go on as the single voter and fenced again
/// 10 s later.
#[test]
fn a_lost_two_node_peer_is_fenced_once_with_the_fast_profile() {
    fenced_once(
        "find_fence_once_fast",
        Opts {
            kind: Kind::TwoNode,
            profile: "fast",
            quiet: true,
            ..Opts::default()
        },
    );
}

/// Powers the owner off; the other node takes over after exactly one fence request.
fn fenced_once(name: &str, opts: Opts) {
    let c = Cluster::start(name, opts);
    let owner = c.wait_started(T).expect("group started");
    let other = if owner == "node1" { "node2" } else { "node1" };
    c.node(&owner).power_off();
    assert!(c.client_reaches(other, T), "no takeover");
    std::thread::sleep(Duration::from_secs(2));
    let s = admin::status(c.node(other)).expect("status");
    let records = s
        .fencing
        .journal
        .iter()
        .filter(|r| r.target == owner)
        .count();
    assert_eq!(
        (records, off_requests(&c, &owner)),
        (1, 1),
        "fence journal records and fence requests for {owner}: {:#?}",
        s.fencing.journal
    );
}

/// The main PID of `unit` on `node` (changes if the unit is stopped or restarted).
fn main_pid(c: &Cluster, node: &str, unit: &str) -> String {
    c.node(node)
        .systemctl(&["show", "-p", "MainPID", "--value", unit])
        .expect_ok()
        .trim()
        .to_string()
}

/// Issue 16: `systemctl restart oneha` on the owner (an upgrade) leaves the group where it
/// runs: the units are never stopped, the peer fences nobody, the restarted agent adopts
/// the group. (Before: the agent handed the group over on every SIGTERM, so an upgrade
/// cost clients a stop and a start elsewhere.)
///
/// `peers_late`: the peers' agents hang (SIGSTOP) from before the restart until the
/// restarted agent has probed the group, so it hears nobody at first (as under load in CI,
/// where it probed 50 ms after starting). Longer timers (a 2 s lease) give the resumed peers
/// time to answer.
fn restart_in_place(prefix: &str, kind: Kind, peers_late: bool) {
    let c = Cluster::start(
        prefix,
        Opts {
            kind,
            quiet: true,
            timers: if peers_late {
                ", election_ticks: 20, lost_ticks: 60"
            } else {
                ""
            },
            ..Opts::default()
        },
    );
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    assert!(c.client_reaches(&owner, T));
    let pid = main_pid(&c, &owner, "opennebula.service");
    let other = if owner == "node1" { "node2" } else { "node1" };
    // An upgrade restarts a settled owner: wait until the peer too has applied the start.
    // (Restarted 66 ms after the start, under `make test`'s load, the restarted agent's own
    // view did not give it the group yet and it stopped the group after its lease: a window
    // noted on issue 16, not what this test is about.)
    assert!(
        wait_until(T, || admin::status(c.node(other)).is_some_and(|s| {
            s.group.owner.as_deref() == Some(owner.as_str()) && s.group.state == "started"
        })),
        "{other} never saw the group started"
    );
    let n = c.node(&owner);
    let peers: Vec<&str> = c
        .nodes
        .iter()
        .map(|p| p.name())
        .filter(|p| *p != owner)
        .collect();
    let probed = |log: &str| log.matches("probed the group's resources").count();
    let probes = probed(&c.agent_log(&owner));
    if peers_late {
        for p in &peers {
            c.node(p).hang_unit("oneha.service");
        }
    }
    n.systemctl(&["restart", "oneha.service"]).expect_ok();
    if peers_late {
        let seen = wait_until(T, || probed(&c.agent_log(&owner)) > probes);
        for p in &peers {
            c.node(p).resume_unit("oneha.service");
        }
        assert!(
            seen,
            "the restarted agent never probed:\n{}",
            c.agent_log(&owner)
        );
    }
    // The restarted agent answers, owns the group and runs it again.
    assert!(
        wait_until(T, || admin::status(n).is_some_and(|s| {
            s.group.owner.as_deref() == Some(owner.as_str())
                && s.group.state == "started"
                && s.members.iter().any(|m| m.local && m.up)
                && s.members.iter().all(|m| m.up)
        })),
        "the restarted agent did not adopt the group:\n{}",
        c.agent_log(&owner)
    );
    assert!(c.client_reaches(&owner, T), "the group moved");
    assert_eq!(
        main_pid(&c, &owner, "opennebula.service"),
        pid,
        "opennebula was stopped or restarted:\n{}",
        c.agent_log(&owner)
    );
    assert!(
        c.agent_log(&owner).contains("restarting in place"),
        "{}",
        c.agent_log(&owner)
    );
    assert!(n.is_on() && c.node(other).is_on(), "someone was fenced");
    for name in [&owner, other] {
        let s = admin::status(c.node(name)).expect("status");
        assert!(
            s.fencing.journal.is_empty(),
            "an agent restart needs no fencing ({name}): {:#?}",
            s.fencing.journal
        );
    }
    sampler.stop().assert_clean();
}

#[test]
fn restarting_the_owners_agent_keeps_the_group_in_place_two_node() {
    restart_in_place("find_restart2", Kind::TwoNode, false);
}

#[test]
fn restarting_the_owners_agent_keeps_the_group_in_place_with_a_witness() {
    restart_in_place("find_restartw", Kind::Witness, false);
}

/// Found by CI under load: the restarted owner probed its running group before it had
/// heard any peer, counted "1 of 3 voters in touch" and stopped the group (S4). A member
/// not heard since the start now counts as heard at the start for one lease
/// (`policy::liveness`). Failed before the fix: opennebula's main PID changed.
#[test]
fn a_restarted_owner_that_hears_no_peer_at_first_keeps_the_group_with_a_witness() {
    restart_in_place("find_restartl", Kind::Witness, true);
}

/// Found by the two-node campaign (seed 1796457439859747371): `systemctl restart oneha` on
/// the passive node left it silent for longer than the loss timeout, and the active side
/// fenced it at once (9 restarts of the passive, 9 power cycles). The passive now announces
/// its restart and the owner waits for it. Failed before the fix: the passive was powered
/// off and the owner's fence journal had an entry.
#[test]
fn restarting_the_passives_agent_fences_nobody_two_node() {
    let c = Cluster::start(
        "find_restartp",
        Opts {
            kind: Kind::TwoNode,
            quiet: true,
            ..Opts::default()
        },
    );
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    let passive = if owner == "node1" { "node2" } else { "node1" };
    let pid = main_pid(&c, &owner, "opennebula.service");
    let boots = c.node(passive).pid1();
    c.node(passive)
        .systemctl(&["restart", "oneha.service"])
        .expect_ok();
    // The restarted agent is back and both see each other.
    assert!(
        wait_until(T, || admin::status(c.node(passive)).is_some_and(|s| {
            s.members.iter().all(|m| m.up) && s.group.owner.as_deref() == Some(owner.as_str())
        })),
        "the passive's agent did not come back:\n{}",
        c.agent_log(passive)
    );
    // Give a fence that was decided a chance to show.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.node(passive).pid1(),
        boots,
        "{passive} was power-cycled:\n{}",
        c.agent_log(&owner)
    );
    assert!(c.node(passive).is_on(), "{passive} was fenced");
    for name in [&owner, passive] {
        let s = admin::status(c.node(name)).expect("status");
        assert!(
            s.fencing.journal.is_empty(),
            "a restart of the passive's agent needs no fencing ({name}): {:#?}",
            s.fencing.journal
        );
    }
    assert!(
        c.agent_log(passive)
            .contains("the peers wait for the restarted agent"),
        "{}",
        c.agent_log(passive)
    );
    assert_eq!(
        main_pid(&c, &owner, "opennebula.service"),
        pid,
        "opennebula was restarted on the owner"
    );
    sampler.stop().assert_clean();
}

/// `systemctl stop oneha` on the owner (maintenance) still hands the group over, cleanly:
/// no fence, no failed stop.
#[test]
fn stopping_the_owners_agent_hands_the_group_over_without_fencing() {
    let c = Cluster::start(
        "find_stop",
        Opts {
            quiet: true,
            ..Opts::default()
        },
    );
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    let n = c.node(&owner);
    n.systemctl(&["stop", "oneha.service"]).expect_ok();
    let other = if owner == "node1" { "node2" } else { "node1" };
    assert!(c.client_reaches(other, T), "the group did not move");
    assert!(
        !n.unit_has_processes("opennebula.service"),
        "opennebula still runs on the stopped agent's node"
    );
    assert!(n.is_on(), "{owner} was fenced after a clean stop");
    let s = admin::status(c.node(other)).expect("status");
    assert!(
        s.fencing.journal.is_empty(),
        "a clean stop needs no fencing: {:#?}",
        s.fencing.journal
    );
    assert!(
        !c.agent_log(&owner).contains("stop FAILED"),
        "the stop failed:\n{}",
        c.agent_log(&owner)
    );
    sampler.stop().assert_clean();
}

#[test]
fn a_rebooted_two_node_survivor_waits_for_its_peer() {
    let c = Cluster::start(
        "find_wfa",
        Opts {
            kind: Kind::TwoNode,
            quiet: true,
            ..Opts::default()
        },
    );
    let owner = c.wait_started(T).expect("group started");
    let other = if owner == "node1" { "node2" } else { "node1" };
    // The passive node dies: the owner fences it and continues alone.
    c.node(other).power_off();
    assert!(
        wait_until(T, || admin::status(c.node(&owner))
            .is_some_and(|s| s.raft.voters == [owner.clone()])),
        "{owner} did not continue as the single voter"
    );
    // Then the survivor loses power too, and boots while its peer is still off.
    let n = c.node(&owner);
    n.power_off();
    n.boot();
    // It has not seen its peer since it started: it must neither fence nor start the group.
    let started = wait_until(Duration::from_secs(10), || {
        n.unit_has_processes("opennebula.service") || n.has_addr(c.vip())
    });
    let s = admin::status(n);
    assert!(
        !started,
        "{owner} started the group alone after a reboot; status: {s:#?}"
    );
}

#[test]
fn a_start_that_fails_at_once_is_not_retried_in_a_busy_loop() {
    let mut c = Cluster::start(
        "find_busy",
        Opts {
            kind: Kind::TwoNode,
            quiet: true,
            ..Opts::default()
        },
    );
    let owner = c.wait_started(T).expect("group started");
    // No fence device: nobody can end the episode by powering the owner off.
    c.stop_fence_daemon();
    let n = c.node(&owner).clone();
    let starts = |log: &str| log.matches("starting the group").count();
    let before = starts(&c.agent_log(&owner));
    n.link_down();
    std::thread::sleep(Duration::from_secs(3));
    let during = starts(&c.agent_log(&owner)) - before;
    n.link_up();
    assert!(
        during <= 30,
        "{during} group starts in 3 s with the link down on {owner}"
    );
}

#[test]
fn a_relocation_past_max_restarts_settles() {
    let c = Cluster::start(
        "find_bounce",
        Opts {
            resources_extra: "  max_restarts: 0\n".into(),
            quiet: true,
            ..Opts::default()
        },
    );
    let owner = c.wait_started(T).expect("group started");
    let other = if owner == "node1" { "node2" } else { "node1" };
    c.node(&owner).kill_unit("opennebula.service");
    assert!(
        c.client_reaches(other, T),
        "the group never settled on {other}: it bounces (Relocate/Assign in the agents' logs)"
    );
    let g0 = admin::status(c.node(other))
        .expect("status")
        .group
        .generation;
    std::thread::sleep(Duration::from_secs(5));
    let s = admin::status(c.node(other)).expect("status");
    assert_eq!(
        (s.group.owner.as_deref(), s.group.generation),
        (Some(other), g0),
        "the group kept moving after the relocation"
    );
}
