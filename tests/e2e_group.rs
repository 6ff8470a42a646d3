//! End to end on real hosts: the owner really holds the floating IP and runs the units,
//! operators move the group, monitors restart units, and fencing gates every takeover.

mod e2e;
mod harness;

use std::time::Duration;

use e2e::{Cluster, Opts};
use harness::ONED_PORT;

const T: Duration = Duration::from_secs(30);

#[test]
fn owner_serves_through_the_vip_and_relocation_moves_it() {
    let c = Cluster::start("grp_reloc", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    assert!(c.client_reaches(&owner, T), "client does not reach {owner}");
    // The client's neighbour entry points at the owner's MAC (gratuitous ARP / ARP reply).
    let mac = c.node(&owner).mac();
    assert_eq!(c.client.neigh_mac(c.vip()).as_deref(), Some(mac.as_str()));

    let other = if owner == "node1" { "node2" } else { "node1" };
    let (code, _, err) = c.oneha("node3", &["relocate", "--to", other]);
    assert_eq!(code, 0, "relocate: {err}");
    assert!(
        c.client_reaches(other, T),
        "client did not follow the relocation"
    );
    let mac = c.node(other).mac();
    assert!(
        harness::wait_until(T, || c.client.neigh_mac(c.vip()).as_deref()
            == Some(mac.as_str())),
        "neighbour entry still points at the old owner"
    );
    assert!(!c.node(&owner).is_active("opennebula.service"));
    // A clean relocation needs no fencing.
    let s = c.status(other).expect("status");
    assert!(s.fencing.journal.is_empty(), "{:?}", s.fencing.journal);
    // Refusals say why.
    let (code, _, err) = c.oneha("node1", &["relocate", "--to", "node3"]);
    assert_eq!(code, 1);
    assert!(err.contains("node3 is a witness"), "{err}");

    sampler.stop().assert_clean();
}

#[test]
fn killed_unit_is_restarted_then_relocated_past_max_restarts_and_freeze_stops_monitoring() {
    let opts = Opts {
        resources_extra: "  max_restarts: 1\n".into(),
        ..Opts::default()
    };
    let c = Cluster::start("grp_restart", opts);
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    let n = c.node(&owner);
    let pid0 = n.pid_of("opennebula.service").expect("running");

    // Freeze: a killed unit stays dead.
    assert_eq!(c.oneha(&owner, &["freeze"]).0, 0);
    n.kill_unit("opennebula.service");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !n.is_active("opennebula.service"),
        "frozen group was recovered"
    );
    assert_eq!(c.status(&owner).expect("status").group.state, "frozen");
    assert_eq!(c.oneha(&owner, &["unfreeze"]).0, 0);
    assert!(
        n.wait_active("opennebula.service", T),
        "not restarted after unfreeze"
    );
    let pid1 = n.pid_of("opennebula.service").expect("running");
    assert_ne!(pid0, pid1);
    assert!(c.client_reaches(&owner, T), "restarted in place");

    // That was restart 1 of max 1: the next failure relocates.
    n.kill_unit("opennebula.service");
    let other = if owner == "node1" { "node2" } else { "node1" };
    assert!(
        c.client_reaches(other, T),
        "did not relocate past max_restarts"
    );
    sampler.stop().assert_clean();
}

#[test]
fn lost_owner_is_fenced_before_the_survivor_takes_over() {
    let c = Cluster::start("grp_fence", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    let other = if owner == "node1" { "node2" } else { "node1" };
    c.node(&owner).power_off();
    assert!(
        c.client_reaches(other, T),
        "no takeover:\n{}",
        c.agent_log(other)
    );
    let s = c.status(other).expect("status");
    let last = s.fencing.journal.last().expect("a fence record");
    assert_eq!(last.target, owner);
    assert!(last.success, "{last:?}");
    assert_eq!(last.by, other);
    let report = sampler.stop();
    report.assert_clean();
}

#[test]
fn without_a_fence_device_nobody_takes_over_until_fence_ack() {
    let mut c = Cluster::start("grp_ack", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    let other = if owner == "node1" { "node2" } else { "node1" };
    c.stop_fence_daemon();
    c.node(&owner).power_off();
    // The survivor tries, fails, and says so.
    assert!(
        harness::wait_until(T, || {
            c.status(other).is_some_and(|s| {
                s.fencing
                    .in_progress
                    .as_deref()
                    .is_some_and(|p| p.contains("failed"))
            })
        }),
        "status does not explain the failing fence:\n{}",
        c.agent_log(other)
    );
    assert!(
        c.client.tcp_get(c.vip(), ONED_PORT).is_err(),
        "took over without fencing"
    );
    assert!(!c.node(other).is_active("opennebula.service"));
    let s = c.status(other).expect("status");
    assert_eq!(s.group.waiting_for, vec![owner.clone()], "{:?}", s.group);
    // The operator checks the node is off and acknowledges.
    let (code, _, err) = c.oneha(other, &["fence-ack", &owner]);
    assert_eq!(code, 2, "fence-ack without --yes must refuse: {err}");
    let (code, _, err) = c.oneha(other, &["fence-ack", &owner, "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(c.client_reaches(other, T), "no takeover after fence-ack");
    sampler.stop().assert_clean();
}

#[test]
fn a_node_that_comes_back_with_the_floating_ip_drops_it() {
    let c = Cluster::start("grp_staleip", Opts::default());
    let owner = c.wait_started(T).expect("group started");
    let other = if owner == "node1" { "node2" } else { "node1" };
    let n = c.node(other);
    n.power_off();
    // The node comes back with the floating IP on its interface (a crash left it there).
    n.exec_ok(&["ip", "addr", "add", "192.0.2.100/24", "dev", "eth0"]);
    n.boot();
    assert!(
        harness::wait_until(T, || !n.has_addr(c.vip())),
        "the returning node kept the floating IP:\n{}",
        c.agent_log(other)
    );
    assert_eq!(c.topo.addr_holders(c.vip()), vec![owner.clone()]);
    assert!(c.client_reaches(&owner, T));
    assert!(c.agent_log(other).contains("stopping the group"));
}

#[test]
fn operator_fence_check_and_fence() {
    let c = Cluster::start("grp_opfence", Opts::default());
    let owner = c.wait_started(T).expect("group started");
    let other = if owner == "node1" { "node2" } else { "node1" };
    // fence-check proves the device answers for every node, powering nothing off.
    let (code, out, err) = c.oneha(&owner, &["fence-check"]);
    assert_eq!(code, 0, "fence-check: {out}{err}");
    assert!(c.node(other).is_on());
    // A refusal names the reason.
    let (code, _, err) = c.oneha(&owner, &["fence", &owner]);
    assert_eq!(code, 1);
    assert!(err.contains("refusing to fence this node itself"), "{err}");
    // Fencing the passive node powers it off and is journaled; the group stays put.
    let (code, out, err) = c.oneha(&owner, &["fence", other]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(harness::wait_until(T, || !c.node(other).is_on()));
    let s = c.status(&owner).expect("status");
    let last = s.fencing.journal.last().expect("journal");
    assert_eq!((last.target.as_str(), last.success), (other, true));
    assert!(c.client_reaches(&owner, T));
}

#[test]
fn periodic_gratuitous_arp_while_the_address_is_held() {
    let opts = Opts {
        vip_extra: ", garp_refresh: 1s, garp_repeat_after: 200ms".into(),
        ..Opts::default()
    };
    let c = Cluster::start("grp_garp", opts);
    let owner = c.wait_started(T).expect("group started");
    assert!(c.client_reaches(&owner, T));
    // Past the start's two bursts: only the periodic refresh announces the address now.
    std::thread::sleep(Duration::from_secs(2));
    let vip = c.vip().to_string();
    let out = c
        .client
        .exec(&["timeout", "4.5", "tcpdump", "-l", "-n", "-i", "eth0", "arp"]);
    let garps = out
        .stdout
        .lines()
        .filter(|l| {
            l.contains(&format!("who-has {vip} tell {vip}"))
                || l.contains(&format!("Reply {vip} is-at"))
        })
        .count();
    // Each refresh sends one unsolicited request and one reply, every second: over the
    // capture (4.5 s, less tcpdump's start-up) several frames; none without `garp_refresh`.
    assert!(
        garps >= 3,
        "{garps} gratuitous ARPs seen:\n{}{}",
        out.stdout,
        out.stderr
    );
}
