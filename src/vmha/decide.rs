//! The VM-HA policy: a pure function from (case, facts, rules) to steps. No I/O, no clock:
//! the interpreter ([`super::run`]) gathers the facts the steps ask for and carries the steps
//! out; `decide_tests.rs` covers the rules as tables.
//!
//! The order of a case: wait `-p` monitoring intervals, polling the host (it leaving ERROR
//! closes the case, also while fencing fails); the mass-failure guard; fence (S5: only a
//! device's `off`/`reboot` success or an operator's acknowledgement counts; failures are
//! retried with backoff and no VM is touched meanwhile); plan every VM of the host (journaled,
//! so a resumed case acts on the same plan); act on them in priority order, a bounded number
//! at a time, journaling each intent before the call and each outcome after it. A VM with an
//! intent but no outcome (the front-end failed over mid-call) is read again first: if oned
//! shows the action applied it is recorded as done, otherwise it is sent again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::case::{Case, Closed, Event, Fenced, Plan, VmOp, VmOutcome};
use super::host::state as host_state;
use super::input::{Flags, Mode};
use super::vm::{VmFacts, lcm_state, vm_state};

/// Static settings of the policy.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Poll the host this often while waiting and while fencing fails.
    pub poll_every: Duration,
    /// The mass-failure guard: more failing hosts than this and nothing is fenced or touched.
    pub guard_limit: u32,
    /// VM actions in flight at once.
    pub max_parallel: usize,
    /// First pause after a failed fence round (doubles each time).
    pub fence_backoff_first: Duration,
    /// Longest pause between fence rounds.
    pub fence_backoff_max: Duration,
    /// Sends of one VM's action before giving up on transient errors.
    pub max_tries: u32,
    /// The user-template attribute that opts a VM out (`HA = "no"`).
    pub ha_attribute: String,
    /// The user-template attribute with the VM's priority (higher first).
    pub priority_attribute: String,
    /// How long oned may stay unreadable before the case ends with an error.
    pub oned_patience: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            poll_every: Duration::from_secs(10),
            guard_limit: 2,
            max_parallel: 8,
            fence_backoff_first: Duration::from_secs(10),
            fence_backoff_max: Duration::from_secs(300),
            max_tries: 3,
            ha_attribute: "HA".into(),
            priority_attribute: "HA_PRIORITY".into(),
            oned_patience: Duration::from_secs(300),
        }
    }
}

/// The host as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// STATE.
    pub state: i64,
    /// `VMS/ID`.
    pub vms: Vec<i64>,
    /// Hosts failing within the guard window (this one included): hosts in ERROR now, and
    /// hosts with a case opened within the window.
    pub failing: u32,
    /// When it was read (ms).
    pub read_at: u64,
}

/// A VM as last read: `None` when oned says it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRead {
    /// The facts, or `None` (NO_EXISTS).
    pub vm: Option<VmFacts>,
    /// When it was read (ms).
    pub read_at: u64,
}

/// What the interpreter knows now.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Now (ms since the epoch).
    pub now: u64,
    /// The host, once read.
    pub host: Option<HostFacts>,
    /// A fence round is running.
    pub fencing: bool,
    /// VMs read so far.
    pub vms: BTreeMap<i64, VmRead>,
    /// System datastores (id -> shared), once read.
    pub datastores: Option<BTreeMap<i64, bool>>,
    /// VMs whose action is being sent now.
    pub in_flight: BTreeSet<i64>,
    /// An operator has acknowledged that the host is off (standalone: `oneha fence-ack`).
    pub acked: bool,
    /// oned has failed every read since then (ms), with the last error.
    pub oned_failing: Option<(u64, String)>,
}

/// What the interpreter should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Read the host (`one.host.info`) and count failing hosts (`one.hostpool.info`).
    PollHost,
    /// Run a fence round (every level), then journal its result.
    Fence,
    /// Read these VMs (`one.vm.info`), and the datastores when `datastores` is set.
    Read {
        /// VM ids.
        vms: Vec<i64>,
        /// Also read the datastore pool.
        datastores: bool,
    },
    /// Journal an event.
    Record(Event),
    /// Send the action. The interpreter journals the intents of one turn's sends (with the
    /// outcomes that arrived since) in one `Progress` event before making the calls.
    Send {
        /// VM id.
        vm: i64,
        /// The action.
        op: VmOp,
    },
    /// Nothing to do before this time (ms), unless something completes first.
    WaitUntil(u64),
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The pause after `failures` failed fence rounds.
pub fn fence_backoff(rules: &Rules, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    rules
        .fence_backoff_first
        .saturating_mul(1u32 << shift)
        .min(rules.fence_backoff_max)
}

/// True for the host states in which the hook goes on (the host is still failed).
pub fn host_failed(state: i64) -> bool {
    state == host_state::ERROR || state == host_state::MONITORING_ERROR
}

/// The steps for one turn.
pub fn decide(case: &Case, facts: &Facts, rules: &Rules) -> Vec<Step> {
    if case.closed.is_some() {
        return Vec::new();
    }
    if let Some((since, e)) = &facts.oned_failing
        && facts.now.saturating_sub(*since) > ms(rules.oned_patience)
    {
        let detail = format!(
            "oned unreadable for {}s: {e}",
            rules.oned_patience.as_secs()
        );
        let how = Closed::Error { detail };
        return vec![Step::Record(Event::Closed { how, at: facts.now })];
    }
    if case.fence.done.is_none() {
        return before_fence(case, facts, rules);
    }
    if case.planned_at.is_none() {
        return plan(case, facts, rules);
    }
    act(case, facts, rules)
}

fn before_fence(case: &Case, facts: &Facts, rules: &Rules) -> Vec<Step> {
    let now = facts.now;
    if facts.acked && !facts.fencing {
        return vec![Step::Record(Event::FenceResult {
            at: now,
            fenced: Some(Fenced::Acked),
            error: None,
        })];
    }
    let Some(host) = &facts.host else {
        return vec![Step::PollHost];
    };
    if !host_failed(host.state) {
        let how = Closed::HostBack {
            state: host_state::name(host.state).to_string(),
        };
        return vec![Step::Record(Event::Closed { how, at: now })];
    }
    let next_poll = host.read_at.saturating_add(ms(rules.poll_every));
    let poll_or_wait = |until: u64| {
        if next_poll <= now {
            vec![Step::PollHost]
        } else {
            vec![Step::WaitUntil(until.min(next_poll))]
        }
    };
    if now < case.wait_until {
        return poll_or_wait(case.wait_until);
    }
    // The decision to fence needs a reading made after the wait.
    if host.read_at < case.wait_until {
        return vec![Step::PollHost];
    }
    if host.failing > rules.guard_limit {
        let how = Closed::Guard {
            failing: host.failing,
            limit: rules.guard_limit,
        };
        return vec![Step::Record(Event::Closed { how, at: now })];
    }
    if !case.flags.fencing {
        return vec![Step::Record(Event::FenceResult {
            at: now,
            fenced: Some(Fenced::Disabled),
            error: None,
        })];
    }
    if facts.fencing {
        return poll_or_wait(u64::MAX);
    }
    if let Some(last) = case.fence.last_at {
        let next = last.saturating_add(ms(fence_backoff(rules, case.fence.failures)));
        if now < next {
            return poll_or_wait(next);
        }
        // Fence again only on a reading newer than the last round.
        if host.read_at < last {
            return vec![Step::PollHost];
        }
    }
    vec![Step::Fence]
}

fn plan(case: &Case, facts: &Facts, rules: &Rules) -> Vec<Step> {
    let Some(host) = &facts.host else {
        return vec![Step::PollHost];
    };
    let missing: Vec<i64> = host
        .vms
        .iter()
        .copied()
        .filter(|id| !facts.vms.contains_key(id))
        .collect();
    let need_ds = case.flags.mode == Mode::Migrate && facts.datastores.is_none();
    if !missing.is_empty() || need_ds {
        return vec![Step::Read {
            vms: missing,
            datastores: need_ds,
        }];
    }
    let empty = BTreeMap::new();
    let ds = facts.datastores.as_ref().unwrap_or(&empty);
    let vms = host
        .vms
        .iter()
        .map(|id| {
            let read = facts.vms.get(id).and_then(|r| r.vm.as_ref());
            let name = read.map(|v| v.name.clone()).unwrap_or_default();
            (*id, (name, plan_vm(case, read, ds, rules)))
        })
        .collect();
    vec![Step::Record(Event::Planned { at: facts.now, vms })]
}

/// What to do with one VM of the failed host.
pub fn plan_vm(
    case: &Case,
    vm: Option<&VmFacts>,
    datastores: &BTreeMap<i64, bool>,
    rules: &Rules,
) -> Plan {
    let skip = |reason: String| Plan::Skip { reason };
    let Some(vm) = vm else {
        return skip("no longer exists".into());
    };
    if vm.host_id != Some(case.host_id) {
        let now_on = vm.host_name.as_deref().unwrap_or("no host");
        return skip(format!("now on {now_on}, not on the failed host"));
    }
    if vm.opted_out(&rules.ha_attribute) {
        return skip(format!("opted out ({} = no)", rules.ha_attribute));
    }
    match vm.state {
        vm_state::ACTIVE => {}
        vm_state::SUSPENDED | vm_state::POWEROFF if case.flags.force => {}
        vm_state::SUSPENDED | vm_state::POWEROFF => {
            return skip(format!("{} (add -f to include it)", vm.state_name()));
        }
        _ => return skip(format!("{}: nothing runs on the host", vm.state_name())),
    }
    let op = match case.flags.mode {
        Mode::Recreate => VmOp::Recreate,
        Mode::Delete => VmOp::Delete,
        Mode::Migrate => match vm.ds_id.and_then(|d| datastores.get(&d).map(|s| (d, *s))) {
            Some((_, true)) => VmOp::Resched,
            Some((d, false)) => {
                return skip(format!(
                    "system datastore {d} is local (SHARED=NO): its disks are on the \
                         failed host; start it when the host is back, or use -r"
                ));
            }
            None => {
                return skip(format!(
                    "system datastore {} not found",
                    vm.ds_id.map_or("(none)".into(), |d| d.to_string())
                ));
            }
        },
    };
    Plan::Act {
        op,
        priority: vm.priority(&rules.priority_attribute),
    }
}

/// True when `vm` shows that `op` was applied (read after a failover mid-call).
pub fn applied(case: &Case, op: VmOp, vm: Option<&VmFacts>) -> bool {
    let Some(vm) = vm else {
        return op == VmOp::Delete;
    };
    let moved = vm.host_id.is_some_and(|h| h != case.host_id);
    let lcm = |l: i64| vm.state == vm_state::ACTIVE && vm.lcm_state == l;
    match op {
        VmOp::Delete => vm.state == vm_state::DONE || lcm(lcm_state::CLEANUP_DELETE),
        VmOp::Recreate => {
            vm.state == vm_state::PENDING || lcm(lcm_state::CLEANUP_RESUBMIT) || moved
        }
        VmOp::Resched => vm.resched || lcm(lcm_state::PROLOG_MIGRATE_UNKNOWN) || moved,
    }
}

fn act(case: &Case, facts: &Facts, rules: &Rules) -> Vec<Step> {
    let mut todo: Vec<(i64, i64, VmOp)> = case
        .vms
        .iter()
        .filter(|(_, e)| e.outcome.is_none())
        .filter_map(|(id, e)| match e.plan {
            Plan::Act { op, priority } => Some((priority, *id, op)),
            Plan::Skip { .. } => None,
        })
        .collect();
    if todo.is_empty() {
        let how = Closed::Finished;
        return vec![Step::Record(Event::Closed { how, at: facts.now })];
    }
    todo.sort_by_key(|(priority, id, _)| (std::cmp::Reverse(*priority), *id));
    let mut steps = Vec::new();
    let mut reads = Vec::new();
    let mut outcomes = Vec::new();
    let mut busy = facts.in_flight.len();
    for (_, id, op) in todo {
        if facts.in_flight.contains(&id) {
            continue;
        }
        let entry = &case.vms[&id];
        if let Some(intent) = entry.intent_at {
            // Sent before without an outcome: read it again before deciding.
            match facts.vms.get(&id) {
                Some(r) if r.read_at > intent => {
                    if applied(case, op, r.vm.as_ref()) {
                        outcomes.push((
                            id,
                            VmOutcome::Done {
                                detail: "oned shows it applied (resumed)".into(),
                            },
                        ));
                        continue;
                    }
                    if entry.tries >= rules.max_tries {
                        outcomes.push((
                            id,
                            VmOutcome::Failed {
                                detail: format!("no answer from oned after {} tries", entry.tries),
                            },
                        ));
                        continue;
                    }
                }
                _ => {
                    reads.push(id);
                    continue;
                }
            }
        }
        if busy < rules.max_parallel {
            busy += 1;
            steps.push(Step::Send { vm: id, op });
        }
    }
    if !outcomes.is_empty() {
        steps.insert(
            0,
            Step::Record(Event::Progress {
                at: facts.now,
                outcomes,
                intents: Vec::new(),
            }),
        );
    }
    if !reads.is_empty() {
        steps.insert(
            0,
            Step::Read {
                vms: reads,
                datastores: false,
            },
        );
    }
    steps
}

/// A case for `flags` opened at `now` (ms): it waits `flags.pause` monitoring intervals.
pub fn open_event(
    host_id: i64,
    host_name: &str,
    flags: &Flags,
    now: u64,
    interval: Duration,
) -> Event {
    let wait = ms(interval).saturating_mul(u64::from(flags.pause));
    Event::Opened {
        host_id,
        host_name: host_name.to_string(),
        flags: flags.clone(),
        at: now,
        wait_until: now.saturating_add(wait),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
