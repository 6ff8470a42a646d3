//! The policy as tables: (replicated state, observations) -> actions.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::cluster::state::{GroupState, ReplicatedState};

const ME: NodeId = 1;

fn cfg() -> PolicyConfig {
    PolicyConfig {
        me: ME,
        eligible: vec![1, 2],
        members: vec![1, 2, 3],
        two_node: false,
        wait_for_all: true,
        failback: false,
        recovery: Recovery::Restart,
        max_restarts: 2,
        restart_window: Duration::from_secs(600),
        release_timeout: Duration::from_secs(10),
        lease: Duration::from_secs(1),
        link_down_grace: Duration::from_secs(2),
        link_move_after: Duration::from_millis(500),
        one_way_confirm: Duration::from_secs(1),
        witness: false,
    }
}

fn two_node_cfg() -> PolicyConfig {
    PolicyConfig {
        members: vec![1, 2],
        two_node: true,
        ..cfg()
    }
}

fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

fn obs() -> Observations {
    Observations {
        synced: true,
        live: set(&[1, 2, 3]),
        within_lease: set(&[1, 2, 3]),
        seen_all: true,
        peer_fence_delay: Duration::from_secs(5),
        ..Observations::default()
    }
}

/// A group owned by `owner` with the given dirty marks.
fn st(owner: Option<NodeId>, dirty: &[(NodeId, u64)], phase: Phase) -> ReplicatedState {
    ReplicatedState {
        applied: 10,
        voters: vec![1, 2, 3],
        group: GroupState {
            enabled: true,
            owner,
            generation: 4,
            phase,
            dirty: dirty.iter().copied().collect(),
            ..GroupState::default()
        },
        ..ReplicatedState::default()
    }
}

fn assign(owner: Option<NodeId>, reason: &str) -> Action {
    Action::Propose(Command::Assign {
        owner,
        expected_generation: 4,
        reason: reason.into(),
    })
}

fn without_notices(v: Vec<Action>) -> Vec<Action> {
    v.into_iter()
        .filter(|a| !matches!(a, Action::Notice(_)))
        .collect()
}

#[test]
fn leader_table() {
    struct Case {
        name: &'static str,
        state: ReplicatedState,
        live: &'static [NodeId],
        expect: Vec<Action>,
    }
    let mut relocating = st(Some(1), &[(1, 3)], Phase::Started);
    relocating.group.relocate = Some(None);
    let mut relocate_to_down = st(Some(1), &[(1, 3)], Phase::Started);
    relocate_to_down.group.relocate = Some(Some(2));
    let mut failed_start = st(Some(2), &[(2, 3)], Phase::Failed);
    failed_start.group.start_failed.insert(2, "boom".into());
    let mut disabled = st(Some(2), &[(2, 3)], Phase::Started);
    disabled.group.enabled = false;
    let mut frozen = st(Some(2), &[(2, 3)], Phase::Started);
    frozen.group.frozen = true;
    let mut preferred = st(None, &[], Phase::Stopped);
    preferred.group.preferred = Some(2);
    let cases = vec![
        Case {
            name: "initial placement on the most preferred live node",
            state: st(None, &[], Phase::Stopped),
            live: &[1, 2, 3],
            expect: vec![assign(Some(1), "placement")],
        },
        Case {
            name: "placement skips nodes that are down",
            state: st(None, &[], Phase::Stopped),
            live: &[2, 3],
            expect: vec![assign(Some(2), "placement")],
        },
        Case {
            name: "enable --on wins",
            state: preferred,
            live: &[1, 2, 3],
            expect: vec![assign(Some(2), "placement")],
        },
        Case {
            name: "lost owner: failover to the next node",
            state: st(Some(2), &[(2, 3)], Phase::Started),
            live: &[1, 3],
            expect: vec![assign(Some(1), "owner 2 lost")],
        },
        Case {
            name: "lost owner and nobody else eligible: no assignment",
            state: st(Some(1), &[(1, 3)], Phase::Started),
            live: &[3],
            expect: vec![],
        },
        Case {
            name: "relocation to anywhere else",
            state: relocating,
            live: &[1, 2, 3],
            expect: vec![assign(Some(2), "relocation requested")],
        },
        Case {
            name: "relocation to a node that is down waits",
            state: relocate_to_down,
            live: &[1, 3],
            expect: vec![],
        },
        Case {
            name: "a failed start moves the group on",
            state: failed_start,
            live: &[1, 2, 3],
            expect: vec![assign(Some(1), "start failed on 2")],
        },
        Case {
            name: "disable takes the owner away",
            state: disabled,
            live: &[1, 2, 3],
            expect: vec![assign(None, "disabled by an operator")],
        },
        Case {
            name: "frozen: no failover even when the owner is lost",
            state: frozen,
            live: &[1, 3],
            expect: vec![],
        },
        Case {
            name: "healthy: nothing to do",
            state: st(Some(2), &[(2, 3)], Phase::Started),
            live: &[1, 2, 3],
            expect: vec![],
        },
    ];
    for c in cases {
        let o = Observations {
            leader: true,
            live: set(c.live),
            within_lease: set(c.live),
            // This node is not the owner in these cases unless said; hold nothing.
            ..obs()
        };
        let mut out = Vec::new();
        leader_actions(&cfg(), &c.state, &o, &mut out);
        assert_eq!(without_notices(out), c.expect, "case: {}", c.name);
    }
}

#[test]
fn failback_only_when_configured() {
    let s = st(Some(2), &[(2, 3)], Phase::Started);
    let o = Observations {
        leader: true,
        ..obs()
    };
    let mut out = Vec::new();
    leader_actions(&cfg(), &s, &o, &mut out);
    assert!(out.is_empty(), "nofailback by default: {out:?}");
    let c = PolicyConfig {
        failback: true,
        ..cfg()
    };
    let mut out = Vec::new();
    leader_actions(&c, &s, &o, &mut out);
    assert_eq!(out, vec![assign(Some(1), "failback")]);
}

#[test]
fn owner_table() {
    struct Case {
        name: &'static str,
        state: ReplicatedState,
        obs: Observations,
        expect: Vec<Action>,
    }
    let mut stop_failed_elsewhere = st(Some(1), &[(1, 7)], Phase::Failed);
    stop_failed_elsewhere
        .group
        .stop_failed
        .insert(2, "timeout".into());
    let mut restart_req = st(Some(1), &[(1, 7)], Phase::Started);
    restart_req.group.restart_requests = 3;
    let cases = vec![
        Case {
            name: "nobody else may hold it: start",
            state: st(Some(1), &[(1, 7)], Phase::Starting),
            obs: obs(),
            expect: vec![Action::Start(4)],
        },
        Case {
            name: "unknown (just started): start is idempotent",
            state: st(Some(1), &[(1, 7)], Phase::Starting),
            obs: Observations {
                held: Held::Unknown,
                ..obs()
            },
            expect: vec![Action::Start(4)],
        },
        Case {
            name: "old owner alive: wait for its release",
            state: st(Some(1), &[(1, 7), (2, 5)], Phase::Starting),
            obs: obs(),
            expect: vec![],
        },
        Case {
            name: "old owner alive but too slow to release: fence it (S8)",
            state: st(Some(1), &[(1, 7), (2, 5)], Phase::Starting),
            obs: Observations {
                waiting: vec![(2, Duration::from_secs(11))],
                ..obs()
            },
            expect: vec![Action::Fence {
                target: 2,
                epoch: 5,
            }],
        },
        Case {
            name: "old owner lost: fence it before starting (S3)",
            state: st(Some(1), &[(1, 7), (2, 5)], Phase::Starting),
            obs: Observations {
                live: set(&[1, 3]),
                ..obs()
            },
            expect: vec![Action::Fence {
                target: 2,
                epoch: 5,
            }],
        },
        Case {
            name: "wait-for-all not satisfied: never fence (S6)",
            state: st(Some(1), &[(1, 7), (2, 5)], Phase::Starting),
            obs: Observations {
                live: set(&[1, 3]),
                seen_all: false,
                ..obs()
            },
            expect: vec![],
        },
        Case {
            name: "fence in flight: do not start another",
            state: st(Some(1), &[(1, 7), (2, 5)], Phase::Starting),
            obs: Observations {
                live: set(&[1, 3]),
                fencing: true,
                ..obs()
            },
            expect: vec![],
        },
        Case {
            name: "fence backing off after a failure: wait",
            state: st(Some(1), &[(1, 7), (2, 5)], Phase::Starting),
            obs: Observations {
                live: set(&[1, 3]),
                fence_backoff: set(&[2]),
                ..obs()
            },
            expect: vec![],
        },
        Case {
            name: "a failed stop elsewhere is fenced even without a dirty mark",
            state: stop_failed_elsewhere,
            obs: obs(),
            expect: vec![Action::Fence {
                target: 2,
                epoch: 0,
            }],
        },
        Case {
            name: "running: operator restart",
            state: restart_req,
            obs: Observations {
                held: Held::Running(4),
                restarts_served: 2,
                ..obs()
            },
            expect: vec![Action::Restart(RestartCause::Operator)],
        },
        Case {
            name: "monitor failure: restart in place",
            state: st(Some(1), &[(1, 7)], Phase::Started),
            obs: Observations {
                held: Held::Running(4),
                monitor_failed: vec![("opennebula".into(), "inactive".into())],
                recent_restarts: 1,
                ..obs()
            },
            expect: vec![Action::Restart(RestartCause::Monitor {
                resource: "opennebula".into(),
                reason: "inactive".into(),
            })],
        },
        Case {
            name: "monitor failure past max_restarts: relocate",
            state: st(Some(1), &[(1, 7)], Phase::Started),
            obs: Observations {
                held: Held::Running(4),
                monitor_failed: vec![("opennebula".into(), "inactive".into())],
                recent_restarts: 2,
                ..obs()
            },
            expect: vec![Action::Propose(Command::GiveUp {
                node: 1,
                generation: 4,
                reason: "opennebula failed: inactive".into(),
            })],
        },
        Case {
            name: "busy: no new action",
            state: st(Some(1), &[(1, 7)], Phase::Starting),
            obs: Observations {
                busy: true,
                ..obs()
            },
            expect: vec![],
        },
        Case {
            name: "frozen: no monitoring-driven recovery",
            state: {
                let mut s = st(Some(1), &[(1, 7)], Phase::Started);
                s.group.frozen = true;
                s
            },
            obs: Observations {
                held: Held::Running(4),
                monitor_failed: vec![("opennebula".into(), "inactive".into())],
                ..obs()
            },
            expect: vec![],
        },
    ];
    for c in cases {
        let mut out = Vec::new();
        local_actions(&cfg(), &c.state, &c.obs, &mut out);
        assert_eq!(without_notices(out), c.expect, "case: {}", c.name);
    }
}

#[test]
fn non_owner_table() {
    let cases: Vec<(&str, ReplicatedState, Held, Vec<Action>)> = vec![
        (
            "running here but owned elsewhere: stop, then release epoch 7",
            st(Some(2), &[(1, 7), (2, 9)], Phase::Starting),
            Held::Running(3),
            vec![Action::Stop {
                reason: "this node is not the owner".into(),
            }],
        ),
        (
            "agent just started, not the owner: stop whatever may run",
            st(Some(2), &[(2, 9)], Phase::Started),
            Held::Unknown,
            vec![Action::Stop {
                reason: "this node is not the owner".into(),
            }],
        ),
        (
            "stopped and still marked: journal the release",
            st(Some(2), &[(1, 7), (2, 9)], Phase::Starting),
            Held::Stopped,
            vec![Action::Propose(Command::Released { node: 1, epoch: 7 })],
        ),
        (
            "stop failed: journal it so we are fenced (S8)",
            st(Some(2), &[(1, 7), (2, 9)], Phase::Starting),
            Held::StopFailed("timeout".into()),
            vec![Action::Propose(Command::StopFailed {
                node: 1,
                reason: "timeout".into(),
            })],
        ),
        (
            "stopped and clean: nothing",
            st(Some(2), &[(2, 9)], Phase::Started),
            Held::Stopped,
            vec![],
        ),
    ];
    for (name, s, held, expect) in cases {
        let o = Observations { held, ..obs() };
        let mut out = Vec::new();
        local_actions(&cfg(), &s, &o, &mut out);
        assert_eq!(without_notices(out), expect, "case: {name}");
    }
}

#[test]
fn owner_that_loses_quorum_stops_within_its_lease() {
    let s = st(Some(1), &[(1, 7)], Phase::Started);
    let lost = Observations {
        held: Held::Running(4),
        within_lease: set(&[1]),
        live: set(&[1, 2, 3]),
        ..obs()
    };
    let out = decide(&cfg(), &s, &lost);
    assert!(
        out.iter().any(|a| matches!(a, Action::Stop { .. })),
        "{out:?}"
    );
    let fine = Observations {
        held: Held::Running(4),
        within_lease: set(&[1, 3]),
        ..obs()
    };
    assert!(
        !decide(&cfg(), &s, &fine)
            .iter()
            .any(|a| matches!(a, Action::Stop { .. }))
    );
}

#[test]
fn two_node_tie_break() {
    let mut s = st(Some(1), &[(1, 7)], Phase::Started);
    s.voters = vec![1, 2];
    let lost = |held: Held, for_s: u64| Observations {
        held,
        live: set(&[1]),
        within_lease: set(&[1]),
        peer_lost_for: Some(Duration::from_secs(for_s)),
        ..obs()
    };
    let fence = Action::Fence {
        target: 2,
        epoch: 0,
    };
    // The active side fences at once.
    let out = decide(&two_node_cfg(), &s, &lost(Held::Running(4), 0));
    assert!(out.contains(&fence), "{out:?}");
    // Two-node mode never stops on "quorum loss": fencing decides.
    assert!(
        !out.iter().any(|a| matches!(a, Action::Stop { .. })),
        "{out:?}"
    );
    // The passive side waits its delay, then fences.
    let passive = st(Some(2), &[(2, 9)], Phase::Started);
    let mut passive = passive;
    passive.voters = vec![1, 2];
    let out = decide(&two_node_cfg(), &passive, &lost(Held::Stopped, 2));
    assert!(
        !out.contains(&Action::Fence {
            target: 2,
            epoch: 9
        }),
        "{out:?}"
    );
    let out = decide(&two_node_cfg(), &passive, &lost(Held::Stopped, 6));
    assert!(
        out.contains(&Action::Fence {
            target: 2,
            epoch: 9
        }),
        "{out:?}"
    );
    // Booted without having seen the peer (wait-for-all): never fence (S6).
    let o = Observations {
        seen_all: false,
        ..lost(Held::Stopped, 60)
    };
    let out = decide(&two_node_cfg(), &passive, &o);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Fence { .. })),
        "{out:?}"
    );
    // Already the confirmed survivor: no more fencing.
    let mut survivor = st(Some(1), &[(1, 7)], Phase::Started);
    survivor.voters = vec![1];
    let out = decide(&two_node_cfg(), &survivor, &lost(Held::Running(4), 60));
    assert!(
        !out.iter().any(|a| matches!(a, Action::Fence { .. })),
        "{out:?}"
    );
}

#[test]
fn survivor_readmits_its_returned_peer() {
    let mut s = st(Some(1), &[(1, 7)], Phase::Started);
    s.voters = vec![1];
    let o = Observations {
        leader: true,
        held: Held::Running(4),
        live: set(&[1, 2]),
        ..obs()
    };
    let out = decide(&two_node_cfg(), &s, &o);
    assert!(out.contains(&Action::AddVoter(2)), "{out:?}");
}

#[test]
fn a_rebooted_two_node_survivor_waits_for_its_peer() {
    // The single voter after a fence, rebooted: it owns the group and nobody else is dirty,
    // but it has not seen its peer since it started.
    let mut s = st(Some(1), &[(1, 7)], Phase::Started);
    s.voters = vec![1];
    let o = Observations {
        leader: true,
        seen_all: false,
        live: set(&[1]),
        within_lease: set(&[1]),
        peer_lost_for: Some(Duration::MAX),
        ..obs()
    };
    let out = decide(&two_node_cfg(), &s, &o);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Start(_))),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Notice(n) if n.contains("wait-for-all")))
    );
    // Seen it (or an operator override): it starts.
    let o = Observations {
        seen_all: true,
        ..o
    };
    assert!(decide(&two_node_cfg(), &s, &o).contains(&Action::Start(4)));
}

#[test]
fn nothing_local_happens_before_the_start_up_barrier() {
    // Not the owner by a possibly stale view, with the group running here: wait.
    let s = st(Some(2), &[(2, 9)], Phase::Started);
    let o = Observations {
        held: Held::Unknown,
        synced: false,
        ..obs()
    };
    let out = decide(&cfg(), &s, &o);
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::Stop { .. } | Action::Start(_))),
        "{out:?}"
    );
    // Still not caught up after a lease: what runs here and is not ours by this node's
    // own view stops (nobody else knows it runs here).
    let late = Observations {
        held: Held::Unknown,
        synced: false,
        unsynced_for: cfg().lease,
        ..obs()
    };
    assert!(
        decide(&cfg(), &s, &late)
            .iter()
            .any(|a| matches!(a, Action::Stop { .. })),
        "{:?}",
        decide(&cfg(), &s, &late)
    );
    // But a restarted owner by its own view keeps adopting the group (the others fence it
    // before taking over if it is really cut off).
    let mine = st(Some(1), &[(1, 9)], Phase::Started);
    assert!(
        !decide(&cfg(), &mine, &late)
            .iter()
            .any(|a| matches!(a, Action::Stop { .. }))
    );
    // Quorum loss still stops (S4), synced or not.
    let lost = Observations {
        held: Held::Running(4),
        synced: false,
        within_lease: set(&[1]),
        ..obs()
    };
    let s = st(Some(1), &[(1, 7)], Phase::Started);
    assert!(
        decide(&cfg(), &s, &lost)
            .iter()
            .any(|a| matches!(a, Action::Stop { .. }))
    );
}

/// Found by the fault campaign: a failed restart's report was still in flight when the
/// owner started the same generation again; the report then marked it failed while it ran,
/// the group went to the other node, and both ended up recorded as failed.
#[test]
fn no_new_start_while_the_last_failure_is_not_recorded() {
    let s = st(Some(1), &[(1, 9)], Phase::Starting);
    let o = Observations {
        held: Held::Stopped,
        ..obs()
    };
    assert!(decide(&cfg(), &s, &o).contains(&Action::Start(4)));
    let pending = Observations {
        start_failure_pending: true,
        ..o
    };
    let out = decide(&cfg(), &s, &pending);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Start(_))),
        "{out:?}"
    );
}

#[test]
fn a_group_failed_everywhere_tells_the_operator_what_to_do() {
    let mut s = st(Some(2), &[(2, 3)], Phase::Failed);
    s.group.start_failed.insert(1, "boom".into());
    s.group.start_failed.insert(2, "boom".into());
    let o = Observations {
        leader: true,
        ..obs()
    };
    let mut out = Vec::new();
    leader_actions(&cfg(), &s, &o, &mut out);
    assert!(
        matches!(out.as_slice(), [Action::Notice(n)] if n.contains("oneha enable")),
        "{out:?}"
    );
}

#[test]
fn only_the_owner_running_the_group_works_vm_ha_cases() {
    #[rustfmt::skip]
    let table = [
        (Some(1), Phase::Started, 1, true),
        (Some(1), Phase::Starting, 1, false),
        (Some(1), Phase::Failed, 1, false),
        (Some(2), Phase::Started, 1, false),
        (None, Phase::Stopped, 1, false),
    ];
    for (owner, phase, me, want) in table {
        let s = st(owner, &[], phase);
        assert_eq!(
            works_vm_ha_cases(&s, me),
            want,
            "{owner:?} {phase:?} me={me}"
        );
    }
}

mod client_link;
mod exit;
mod links;
mod roles;
