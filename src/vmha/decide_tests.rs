//! Table tests of the VM-HA policy, and a simulation of cases interrupted at every point.

use std::collections::BTreeMap;

use super::*;
use crate::vmha::case::{VmEntry, VmOutcome};

const S: u64 = 1000;
const T0: u64 = 1_000_000;

fn flags(mode: Mode) -> Flags {
    Flags {
        mode,
        force: false,
        pause: 2,
        fencing: true,
    }
}

/// A case opened at T0 for host 4, waiting two 60 s intervals.
fn case_with(f: Flags) -> Case {
    let ev = open_event(4, "kvm4", &f, T0, Duration::from_secs(60));
    Case::open(1, &ev).unwrap()
}

fn case() -> Case {
    case_with(flags(Mode::Migrate))
}

fn host(state: i64, failing: u32, read_at: u64) -> Option<HostFacts> {
    Some(HostFacts {
        state,
        vms: vec![10, 11],
        failing,
        read_at,
    })
}

fn facts(now: u64, host: Option<HostFacts>) -> Facts {
    Facts {
        now,
        host,
        ..Facts::default()
    }
}

const ERR: i64 = host_state::ERROR;
const WAIT_END: u64 = T0 + 120 * S;

fn closed(how: Closed, at: u64) -> Vec<Step> {
    vec![Step::Record(Event::Closed { how, at })]
}

#[test]
fn before_the_fence() {
    let rules = Rules::default();
    let fenced_case = {
        let mut c = case();
        c.apply(&Event::FenceResult {
            at: WAIT_END + S,
            fenced: None,
            error: Some("timeout".into()),
        })
        .unwrap();
        c
    };
    let no_fencing = case_with(Flags {
        fencing: false,
        ..flags(Mode::Migrate)
    });
    let back = |s: &str| Closed::HostBack { state: s.into() };
    let fresh = case();
    #[rustfmt::skip]
    let table: Vec<(&str, &Case, Facts, Vec<Step>)> = vec![
        ("nothing read yet: poll", &fresh, facts(T0, None), vec![Step::PollHost]),
        ("waiting, fresh reading: sleep to the next poll", &fresh,
            facts(T0 + S, host(ERR, 1, T0)), vec![Step::WaitUntil(T0 + 10 * S)]),
        ("waiting, stale reading: poll", &fresh,
            facts(T0 + 10 * S, host(ERR, 1, T0)), vec![Step::PollHost]),
        ("near the end of the wait: sleep to its end", &fresh,
            facts(WAIT_END - S, host(ERR, 1, WAIT_END - 2 * S)), vec![Step::WaitUntil(WAIT_END)]),
        ("host came back while waiting", &fresh,
            facts(T0 + 30 * S, host(host_state::MONITORED, 1, T0 + 30 * S)),
            closed(back("MONITORED"), T0 + 30 * S)),
        ("admin disabled it while waiting: counts as back, nothing done", &fresh,
            facts(T0 + 30 * S, host(host_state::DISABLED, 1, T0 + 30 * S)),
            closed(back("DISABLED"), T0 + 30 * S)),
        ("wait over, reading from before its end: poll again", &fresh,
            facts(WAIT_END + S, host(ERR, 1, WAIT_END - S)), vec![Step::PollHost]),
        ("wait over, still in ERROR: fence", &fresh,
            facts(WAIT_END + S, host(ERR, 1, WAIT_END)), vec![Step::Fence]),
        ("guard: at the limit still fences", &fresh,
            facts(WAIT_END, host(ERR, 2, WAIT_END)), vec![Step::Fence]),
        ("guard: above the limit, nothing fenced", &fresh,
            facts(WAIT_END, host(ERR, 5, WAIT_END)),
            closed(Closed::Guard { failing: 5, limit: 2 }, WAIT_END)),
        ("-u: no fencing, recorded as such", &no_fencing,
            facts(WAIT_END, host(ERR, 1, WAIT_END)),
            vec![Step::Record(Event::FenceResult { at: WAIT_END, fenced: Some(Fenced::Disabled), error: None })]),
        ("-u still obeys the guard", &no_fencing,
            facts(WAIT_END, host(ERR, 3, WAIT_END)),
            closed(Closed::Guard { failing: 3, limit: 2 }, WAIT_END)),
        ("fence running: keep polling", &fresh,
            Facts { fencing: true, ..facts(WAIT_END + 20 * S, host(ERR, 1, WAIT_END)) },
            vec![Step::PollHost]),
        ("failed fence: back off", &fenced_case,
            facts(WAIT_END + 5 * S, host(ERR, 1, WAIT_END + 2 * S)), vec![Step::WaitUntil(WAIT_END + 11 * S)]),
        ("backoff over, reading older than the round: poll first", &fenced_case,
            facts(WAIT_END + 11 * S, host(ERR, 1, WAIT_END)), vec![Step::PollHost]),
        ("backoff over: fence again", &fenced_case,
            facts(WAIT_END + 11 * S, host(ERR, 1, WAIT_END + 10 * S)), vec![Step::Fence]),
        ("host back while fencing fails: close, nothing touched", &fenced_case,
            facts(WAIT_END + 9 * S, host(host_state::MONITORED, 1, WAIT_END + 9 * S)),
            closed(back("MONITORED"), WAIT_END + 9 * S)),
        ("an operator acknowledged the host off: recorded, no fence", &fresh,
            Facts { acked: true, ..facts(T0 + S, host(ERR, 1, T0)) },
            vec![Step::Record(Event::FenceResult { at: T0 + S, fenced: Some(Fenced::Acked), error: None })]),
        ("acknowledged during a fence round: the round's result comes first", &fenced_case,
            Facts { acked: true, fencing: true, ..facts(WAIT_END + 20 * S, host(ERR, 1, WAIT_END + 15 * S)) },
            vec![Step::WaitUntil(WAIT_END + 25 * S)]),
        ("oned unreadable past its patience: the case ends with an error", &fresh,
            Facts { oned_failing: Some((T0, "refused".into())), ..facts(T0 + 301 * S, host(ERR, 1, T0)) },
            closed(Closed::Error { detail: "oned unreadable for 300s: refused".into() }, T0 + 301 * S)),
        ("oned unreadable for less: go on", &fresh,
            Facts { oned_failing: Some((T0, "refused".into())), ..facts(T0 + 5 * S, host(ERR, 1, T0)) },
            vec![Step::WaitUntil(T0 + 10 * S)]),
        ("guard trips between fence rounds", &fenced_case,
            facts(WAIT_END + 11 * S, host(ERR, 4, WAIT_END + 10 * S)),
            closed(Closed::Guard { failing: 4, limit: 2 }, WAIT_END + 11 * S)),
    ];
    for (name, c, f, want) in table {
        assert_eq!(decide(c, &f, &rules), want, "{name}");
    }
}

#[test]
fn pause_zero_still_reads_the_host_once() {
    let c = case_with(Flags {
        pause: 0,
        ..flags(Mode::Recreate)
    });
    let rules = Rules::default();
    assert_eq!(decide(&c, &facts(T0, None), &rules), vec![Step::PollHost]);
    assert_eq!(
        decide(&c, &facts(T0, host(ERR, 1, T0)), &rules),
        vec![Step::Fence]
    );
}

#[test]
fn fence_backoff_doubles_up_to_the_cap() {
    let r = Rules::default();
    let secs: Vec<u64> = (1..=8).map(|n| fence_backoff(&r, n).as_secs()).collect();
    assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(fence_backoff(&r, u32::MAX), r.fence_backoff_max);
}

fn vm(id: i64, state: i64, ds: i64) -> VmFacts {
    VmFacts {
        id,
        name: format!("vm{id}"),
        state,
        lcm_state: 16,
        locked: 0,
        resched: false,
        host_id: Some(4),
        host_name: Some("kvm4".into()),
        ds_id: Some(ds),
        user_template: BTreeMap::new(),
    }
}

fn fenced(mut c: Case) -> Case {
    c.apply(&Event::FenceResult {
        at: WAIT_END,
        fenced: Some(Fenced::Device {
            device: "ipmi".into(),
        }),
        error: None,
    })
    .unwrap();
    c
}

#[test]
fn after_the_fence_the_vms_are_read_then_planned() {
    let rules = Rules::default();
    let c = fenced(case());
    let f = facts(WAIT_END, host(ERR, 1, WAIT_END));
    assert_eq!(
        decide(&c, &f, &rules),
        vec![Step::Read {
            vms: vec![10, 11],
            datastores: true
        }]
    );
    let mut f2 = f.clone();
    for id in [10, 11] {
        let read = VmRead {
            vm: Some(vm(id, vm_state::ACTIVE, 0)),
            read_at: WAIT_END,
        };
        f2.vms.insert(id, read);
    }
    f2.datastores = Some(BTreeMap::from([(0, true)]));
    let steps = decide(&c, &f2, &rules);
    let [Step::Record(Event::Planned { vms, .. })] = steps.as_slice() else {
        panic!("{steps:?}")
    };
    assert!(vms.values().all(|(_, p)| *p
        == Plan::Act {
            op: VmOp::Resched,
            priority: 0
        }));
    // -r and -d need no datastores.
    let c = fenced(case_with(flags(Mode::Delete)));
    assert_eq!(
        decide(&c, &f, &rules),
        vec![Step::Read {
            vms: vec![10, 11],
            datastores: false
        }]
    );
}

#[test]
fn what_each_vm_gets() {
    let rules = Rules::default();
    let ds = BTreeMap::from([(0, true), (100, false)]);
    let with = |f: fn(&mut VmFacts)| {
        let mut v = vm(10, vm_state::ACTIVE, 0);
        f(&mut v);
        Some(v)
    };
    let act = |op| Plan::Act { op, priority: 0 };
    let m = flags(Mode::Migrate);
    let mf = Flags {
        force: true,
        ..flags(Mode::Migrate)
    };
    let r = flags(Mode::Recreate);
    let d = flags(Mode::Delete);
    type Row<'a> = (&'a str, &'a Flags, Option<VmFacts>, Result<Plan, &'a str>);
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("-m, shared system datastore", &m, with(|_| {}), Ok(act(VmOp::Resched))),
        ("-m, local system datastore", &m, with(|v| v.ds_id = Some(100)), Err("is local (SHARED=NO)")),
        ("-m, unknown datastore", &m, with(|v| v.ds_id = Some(7)), Err("datastore 7 not found")),
        ("-r, local datastore is fine", &r, with(|v| v.ds_id = Some(100)), Ok(act(VmOp::Recreate))),
        ("-d", &d, with(|_| {}), Ok(act(VmOp::Delete))),
        ("HA=no opts out", &r, with(|v| { v.user_template.insert("HA".into(), "NO".into()); }), Err("opted out")),
        ("priority is kept", &r, with(|v| { v.user_template.insert("HA_PRIORITY".into(), "9".into()); }),
            Ok(Plan::Act { op: VmOp::Recreate, priority: 9 })),
        ("suspended without -f", &m, with(|v| v.state = vm_state::SUSPENDED), Err("add -f")),
        ("poweroff without -f, also for -d", &d, with(|v| v.state = vm_state::POWEROFF), Err("add -f")),
        ("suspended with -f (every mode)", &mf, with(|v| v.state = vm_state::SUSPENDED), Ok(act(VmOp::Resched))),
        ("pending: nothing on the host", &r, with(|v| v.state = vm_state::PENDING), Err("nothing runs")),
        ("moved away meanwhile", &r, with(|v| { v.host_id = Some(2); v.host_name = Some("kvm2".into()); }), Err("now on kvm2")),
        ("gone", &r, None, Err("no longer exists")),
    ];
    for (name, f, v, want) in table {
        let c = case_with(f.clone());
        let got = plan_vm(&c, v.as_ref(), &ds, &rules);
        match (want, &got) {
            (Ok(p), g) => assert_eq!(g, &p, "{name}"),
            (Err(text), Plan::Skip { reason }) => {
                assert!(reason.contains(text), "{name}: {reason}")
            }
            (Err(_), g) => panic!("{name}: {g:?}"),
        }
    }
}

/// A planned case with these (vm, priority) to act on.
fn planned(vms: &[(i64, i64)]) -> Case {
    let mut c = fenced(case_with(flags(Mode::Recreate)));
    let plan = vms
        .iter()
        .map(|(id, p)| {
            let plan = Plan::Act {
                op: VmOp::Recreate,
                priority: *p,
            };
            (*id, (format!("vm{id}"), plan))
        })
        .collect();
    c.apply(&Event::Planned {
        at: WAIT_END,
        vms: plan,
    })
    .unwrap();
    c
}

fn intent(vm: i64, at: u64) -> Event {
    Event::Progress {
        at,
        outcomes: vec![],
        intents: vec![vm],
    }
}

fn outcome(vm: i64, o: VmOutcome, at: u64) -> Event {
    Event::Progress {
        at,
        outcomes: vec![(vm, o)],
        intents: vec![],
    }
}

fn sends(steps: &[Step]) -> Vec<i64> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Send { vm, .. } => Some(*vm),
            _ => None,
        })
        .collect()
}

#[test]
fn acts_by_priority_within_the_concurrency_limit() {
    let rules = Rules {
        max_parallel: 2,
        ..Rules::default()
    };
    let c = planned(&[(1, 0), (2, 5), (3, 0), (4, 9)]);
    let f = facts(WAIT_END, None);
    assert_eq!(sends(&decide(&c, &f, &rules)), [4, 2]);
    let busy = Facts {
        in_flight: [4].into(),
        ..f.clone()
    };
    assert_eq!(sends(&decide(&c, &busy, &rules)), [2]);
    let full = Facts {
        in_flight: [4, 2].into(),
        ..f
    };
    assert_eq!(decide(&c, &full, &rules), vec![]);
}

#[test]
fn an_intent_without_outcome_is_read_before_it_is_sent_again() {
    let rules = Rules::default();
    let mut c = planned(&[(10, 0)]);
    c.apply(&intent(10, WAIT_END + S)).unwrap();
    let f = facts(WAIT_END + 2 * S, None);
    assert_eq!(
        decide(&c, &f, &rules),
        vec![Step::Read {
            vms: vec![10],
            datastores: false
        }]
    );
    let read = |v: Option<VmFacts>, at| {
        let mut f = f.clone();
        f.vms.insert(10, VmRead { vm: v, read_at: at });
        f
    };
    // A reading from before the intent does not count.
    let old = read(Some(vm(10, vm_state::ACTIVE, 0)), WAIT_END);
    assert!(matches!(decide(&c, &old, &rules)[0], Step::Read { .. }));
    // Applied: recorded as done, not sent again.
    let pending = read(Some(vm(10, vm_state::PENDING, 0)), WAIT_END + 2 * S);
    let steps = decide(&c, &pending, &rules);
    assert!(
        matches!(&steps[..], [Step::Record(Event::Progress { outcomes, .. })]
            if matches!(outcomes[..], [(10, VmOutcome::Done { .. })])),
        "{steps:?}"
    );
    // Not applied: sent again.
    let still = read(Some(vm(10, vm_state::ACTIVE, 0)), WAIT_END + 2 * S);
    assert_eq!(sends(&decide(&c, &still, &rules)), [10]);
    // Not applied after max_tries sends: failed.
    for _ in 1..rules.max_tries {
        c.apply(&intent(10, WAIT_END + S)).unwrap();
    }
    let steps = decide(&c, &still, &rules);
    assert!(
        matches!(&steps[..], [Step::Record(Event::Progress { outcomes, .. })]
            if matches!(outcomes[..], [(10, VmOutcome::Failed { .. })])),
        "{steps:?}"
    );
}

#[test]
fn applied_table() {
    let c = case();
    let base = vm(10, vm_state::ACTIVE, 0);
    let moved = VmFacts {
        host_id: Some(2),
        ..base.clone()
    };
    let resched = VmFacts {
        resched: true,
        ..base.clone()
    };
    let done = VmFacts {
        state: vm_state::DONE,
        ..base.clone()
    };
    let pending = VmFacts {
        state: vm_state::PENDING,
        ..base.clone()
    };
    let in_lcm = |l| VmFacts {
        lcm_state: l,
        ..base.clone()
    };
    let (resubmit, deleting, migrating) = (in_lcm(15), in_lcm(23), in_lcm(60));
    #[rustfmt::skip]
    let table = [
        (VmOp::Delete, None, true), (VmOp::Delete, Some(&done), true), (VmOp::Delete, Some(&base), false),
        (VmOp::Recreate, Some(&pending), true), (VmOp::Recreate, Some(&moved), true),
        (VmOp::Recreate, Some(&base), false), (VmOp::Recreate, None, false),
        (VmOp::Resched, Some(&resched), true), (VmOp::Resched, Some(&moved), true),
        (VmOp::Resched, Some(&base), false),
        // Found with the fake oned: actions go through transient states first.
        (VmOp::Recreate, Some(&resubmit), true), (VmOp::Delete, Some(&deleting), true),
        (VmOp::Resched, Some(&migrating), true), (VmOp::Delete, Some(&resubmit), false),
    ];
    for (op, v, want) in table {
        assert_eq!(applied(&c, op, v), want, "{op:?} {v:?}");
    }
}

#[test]
fn a_case_closes_when_every_vm_has_an_outcome_and_then_does_nothing() {
    let rules = Rules::default();
    let mut c = planned(&[(10, 0)]);
    c.apply(&intent(10, 1)).unwrap();
    let locked = VmOutcome::Locked {
        detail: "locked".into(),
    };
    c.apply(&outcome(10, locked, 2)).unwrap();
    let f = facts(WAIT_END, None);
    assert_eq!(decide(&c, &f, &rules), closed(Closed::Finished, WAIT_END));
    c.apply(&Event::Closed {
        how: Closed::Finished,
        at: WAIT_END,
    })
    .unwrap();
    assert_eq!(decide(&c, &f, &rules), vec![]);
    assert_eq!(c.problems(), 1);
    assert!(!c.succeeded());
}

#[test]
fn duplicated_or_stray_events_change_nothing() {
    let mut c = planned(&[(10, 0)]);
    let before = c.clone();
    assert!(
        c.apply(&Event::Planned {
            at: 5,
            vms: BTreeMap::new()
        })
        .is_err()
    );
    assert!(c.apply(&intent(99, 5)).is_err());
    let twice = Event::Progress {
        at: 5,
        outcomes: vec![(10, VmOutcome::Gone)],
        intents: vec![10],
    };
    assert!(c.apply(&twice).is_err(), "one VM twice in one event");
    assert!(
        c.apply(&Event::FenceResult {
            at: 5,
            fenced: Some(Fenced::Acked),
            error: None
        })
        .is_err()
    );
    assert_eq!(c, before);
    let out = outcome(10, VmOutcome::Gone, 6);
    c.apply(&out).unwrap();
    assert!(c.apply(&out).is_err(), "a second outcome is refused");
    c.apply(&Event::Closed {
        how: Closed::Cancelled,
        at: 7,
    })
    .unwrap();
    assert!(c.apply(&intent(10, 8)).is_err());
}

/// A model oned for the simulation: per VM, how often an action was applied.
struct World {
    vms: BTreeMap<i64, VmFacts>,
    applied: BTreeMap<i64, u32>,
}

impl World {
    fn apply(&mut self, id: i64, op: VmOp) {
        *self.applied.entry(id).or_default() += 1;
        if let Some(v) = self.vms.get_mut(&id) {
            match op {
                VmOp::Delete => v.state = vm_state::DONE,
                VmOp::Recreate => v.state = vm_state::PENDING,
                VmOp::Resched => v.resched = true,
            }
        }
    }
}

/// Runs a case to the end like the interpreter does, with the journal surviving and
/// everything else (facts, calls in flight) lost at "crash" points: after the `crash_at`-th
/// journal write, the runner dies, either before the call it was about to make or after
/// it (before its outcome is journaled). Every VM must be acted on exactly once.
fn simulate(n_vms: i64, crash_at: &[usize], after_call: bool) -> (Case, World) {
    let rules = Rules {
        max_parallel: 3,
        ..Rules::default()
    };
    let mut world = World {
        vms: (0..n_vms)
            .map(|i| (i, vm(i, vm_state::ACTIVE, 0)))
            .collect(),
        applied: BTreeMap::new(),
    };
    let mut c = fenced(case_with(Flags {
        pause: 0,
        ..flags(Mode::Recreate)
    }));
    let mut facts = facts(WAIT_END, None);
    let mut writes = 0usize;
    let mut rounds = 0;
    // Outcomes of calls made, not journaled yet (lost at a crash).
    let mut pending: Vec<(i64, VmOutcome)> = Vec::new();
    let crash = |writes: usize, facts: &mut Facts, pending: &mut Vec<(i64, VmOutcome)>| {
        if crash_at.contains(&writes) {
            *facts = Facts {
                now: facts.now + 1,
                ..Facts::default()
            };
            pending.clear();
            return true;
        }
        false
    };
    while c.closed.is_none() {
        rounds += 1;
        assert!(rounds < 10_000, "the case does not end");
        facts.now += 1;
        let mut outcomes = std::mem::take(&mut pending);
        let mut to_send = Vec::new();
        for step in decide(&c, &facts, &rules) {
            match step {
                Step::PollHost => {
                    facts.host = Some(HostFacts {
                        state: ERR,
                        vms: world.vms.keys().copied().collect(),
                        failing: 1,
                        read_at: facts.now,
                    })
                }
                Step::Read { vms, .. } => {
                    for id in vms {
                        let read = VmRead {
                            vm: world.vms.get(&id).cloned(),
                            read_at: facts.now,
                        };
                        facts.vms.insert(id, read);
                    }
                }
                Step::Record(Event::Progress { outcomes: o, .. }) => outcomes.extend(o),
                Step::Record(ev) => {
                    c.apply(&ev).unwrap();
                    writes += 1;
                }
                Step::Send { vm, op } => to_send.push((vm, op)),
                Step::Fence | Step::WaitUntil(_) => {}
            }
        }
        if outcomes.is_empty() && to_send.is_empty() {
            continue;
        }
        let ev = Event::Progress {
            at: facts.now,
            outcomes,
            intents: to_send.iter().map(|(vm, _)| *vm).collect(),
        };
        c.apply(&ev).unwrap();
        writes += 1;
        if !after_call && crash(writes, &mut facts, &mut pending) {
            continue;
        }
        for (vm, op) in to_send {
            world.apply(vm, op);
            pending.push((
                vm,
                VmOutcome::Done {
                    detail: "accepted".into(),
                },
            ));
        }
        if after_call {
            crash(writes, &mut facts, &mut pending);
        }
    }
    (c, world)
}

#[test]
fn every_vm_is_acted_on_exactly_once_whatever_the_crash_point() {
    for after_call in [false, true] {
        for first in 1..40 {
            let (c, world) = simulate(12, &[first, first + 3, first + 11], after_call);
            assert_eq!(c.closed.as_ref().map(|x| &x.0), Some(&Closed::Finished));
            for id in 0..12 {
                assert_eq!(
                    world.applied.get(&id),
                    Some(&1),
                    "VM {id}, crash after write {first} ({}the call)",
                    if after_call { "after " } else { "before " }
                );
                assert!(matches!(
                    c.vms[&id],
                    VmEntry {
                        outcome: Some(VmOutcome::Done { .. }),
                        ..
                    }
                ));
            }
        }
    }
}
