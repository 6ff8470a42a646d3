//! A VM-HA case: one run of the host-failure hook for one host, as a record built only by
//! applying [`Event`]s. The same events are journaled in the cluster's replicated state (so a
//! new owner resumes the case) or kept in memory (standalone), and applied by the same
//! [`Case::apply`]: deterministic, times come inside the events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::input::Flags;
use super::sanitize;

/// What the hook does to one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmOp {
    /// `one.vm.action("resched", id)`.
    Resched,
    /// `one.vm.recover(id, 4)`: delete and recreate.
    Recreate,
    /// `one.vm.recover(id, 3)`: delete.
    Delete,
}

impl VmOp {
    /// The call as an operator would type it.
    pub fn command(self, vm: i64) -> String {
        match self {
            VmOp::Resched => format!("onevm resched {vm}"),
            VmOp::Recreate => format!("onevm recover --recreate {vm}"),
            VmOp::Delete => format!("onevm recover --delete {vm}"),
        }
    }
}

/// How one VM's action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum VmOutcome {
    /// oned accepted the action (or, after a failover, the VM shows it was applied).
    Done {
        /// How we know.
        detail: String,
    },
    /// oned refused it: the VM is locked (`onevm unlock`, then act by hand).
    Locked {
        /// oned's message.
        detail: String,
    },
    /// oned refused it: not allowed in the VM's state.
    WrongState {
        /// oned's message.
        detail: String,
    },
    /// The VM no longer exists.
    Gone,
    /// The call failed (after retries).
    Failed {
        /// What went wrong.
        detail: String,
    },
}

impl VmOutcome {
    /// True for outcomes an operator must look at.
    pub fn is_problem(&self) -> bool {
        !matches!(self, VmOutcome::Done { .. } | VmOutcome::Gone)
    }
}

/// The plan for one VM: an action, or why it is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Act with this op; `priority` orders the work (higher first).
    Act {
        /// The op.
        op: VmOp,
        /// HA_PRIORITY.
        priority: i64,
    },
    /// Left alone, with the reason (local datastore, `HA=no`, state...).
    Skip {
        /// Why.
        reason: String,
    },
}

/// One VM of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmEntry {
    /// VM name when planned.
    pub name: String,
    /// The plan.
    pub plan: Plan,
    /// When the action was about to be sent (ms since the epoch); set before sending.
    pub intent_at: Option<u64>,
    /// Tries sent so far.
    pub tries: u32,
    /// How it ended.
    pub outcome: Option<VmOutcome>,
}

/// How a host was fenced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fenced {
    /// A fence device reported `off`/`reboot` success (S5).
    Device {
        /// Device that did it.
        device: String,
    },
    /// An operator acknowledged the host is off (`oneha fence-ack HOST`).
    Acked,
    /// Fencing disabled with `-u`.
    Disabled,
}

/// Fencing progress of a case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceState {
    /// Failed fence rounds so far.
    pub failures: u32,
    /// When the last round ended (ms).
    pub last_at: Option<u64>,
    /// The last round's error.
    pub last_error: Option<String>,
    /// Done: how.
    pub done: Option<Fenced>,
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum Closed {
    /// The host left ERROR before anything was done (came back, disabled, offline).
    HostBack {
        /// Its state then.
        state: String,
    },
    /// The mass-failure guard held the case: nothing fenced, nothing touched.
    Guard {
        /// Hosts failing within the window.
        failing: u32,
        /// The limit.
        limit: u32,
    },
    /// Every VM was handled (see each outcome).
    Finished,
    /// An operator cancelled it.
    Cancelled,
    /// oned could not be read for too long, or the host vanished.
    Error {
        /// What went wrong.
        detail: String,
    },
}

/// One change to a case, journaled before it takes effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The hook ran for a host.
    Opened {
        /// Host id.
        host_id: i64,
        /// Host name.
        host_name: String,
        /// The hook's flags.
        flags: Flags,
        /// When (ms).
        at: u64,
        /// Until when to wait for the host to come back (ms).
        wait_until: u64,
    },
    /// A fence round ended.
    FenceResult {
        /// When (ms).
        at: u64,
        /// Success: how. None: it failed.
        fenced: Option<Fenced>,
        /// The error of a failed round.
        error: Option<String>,
    },
    /// The VMs and what to do with each.
    Planned {
        /// When (ms).
        at: u64,
        /// VM id -> (name, plan).
        #[serde(with = "super::id_keys")]
        vms: BTreeMap<i64, (String, Plan)>,
    },
    /// Outcomes of actions that ended, then actions about to be sent (journaled before the
    /// calls). One event per turn, so a thousand VMs cost a few dozen journal writes.
    Progress {
        /// When (ms).
        at: u64,
        /// VM id -> how its action ended.
        outcomes: Vec<(i64, VmOutcome)>,
        /// VMs whose action is about to be sent.
        intents: Vec<i64>,
    },
    /// The case ended.
    Closed {
        /// How.
        how: Closed,
        /// When (ms).
        at: u64,
    },
}

/// A case: everything the events said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Case id (unique in the journal).
    pub id: u64,
    /// Host id.
    pub host_id: i64,
    /// Host name.
    pub host_name: String,
    /// The hook's flags.
    pub flags: Flags,
    /// When it opened (ms).
    pub opened_at: u64,
    /// Until when to wait for the host to come back (ms).
    pub wait_until: u64,
    /// Fencing.
    pub fence: FenceState,
    /// The plan was made at (ms).
    pub planned_at: Option<u64>,
    /// The VMs.
    pub vms: BTreeMap<i64, VmEntry>,
    /// How and when it ended.
    pub closed: Option<(Closed, u64)>,
}

impl Case {
    /// A new case.
    pub fn new(
        id: u64,
        host_id: i64,
        host_name: &str,
        flags: &Flags,
        at: u64,
        wait_until: u64,
    ) -> Case {
        Case {
            id,
            host_id,
            host_name: host_name.to_string(),
            flags: flags.clone(),
            opened_at: at,
            wait_until,
            fence: FenceState::default(),
            planned_at: None,
            vms: BTreeMap::new(),
            closed: None,
        }
    }

    /// The event that opens this case (what the journal records first).
    pub fn opened_event(&self) -> Event {
        Event::Opened {
            host_id: self.host_id,
            host_name: self.host_name.clone(),
            flags: self.flags.clone(),
            at: self.opened_at,
            wait_until: self.wait_until,
        }
    }

    /// A case from its `Opened` event; `None` for any other event.
    pub fn open(id: u64, ev: &Event) -> Option<Case> {
        match ev {
            Event::Opened {
                host_id,
                host_name,
                flags,
                at,
                wait_until,
            } => Some(Case::new(id, *host_id, host_name, flags, *at, *wait_until)),
            _ => None,
        }
    }

    /// Applies one event. Events that make no sense in the case's state (a second plan, an
    /// outcome for an unknown VM, anything after closing) are ignored and reported, so a
    /// duplicated journal entry never changes a case twice.
    pub fn apply(&mut self, ev: &Event) -> Result<(), String> {
        if self.closed.is_some() {
            return Err(format!("case {} is closed", self.id));
        }
        match ev {
            Event::Opened { .. } => return Err(format!("case {} is already open", self.id)),
            Event::FenceResult { at, fenced, error } => {
                if self.fence.done.is_some() {
                    return Err(format!("case {}: host already fenced", self.id));
                }
                self.fence.last_at = Some(*at);
                match fenced {
                    Some(how) => {
                        self.fence.done = Some(how.clone());
                        self.fence.last_error = None;
                    }
                    None => {
                        self.fence.failures += 1;
                        self.fence.last_error = error.clone();
                    }
                }
            }
            Event::Planned { at, vms } => {
                if self.planned_at.is_some() {
                    return Err(format!("case {}: already planned", self.id));
                }
                self.planned_at = Some(*at);
                self.vms = vms
                    .iter()
                    .map(|(id, (name, plan))| {
                        let entry = VmEntry {
                            name: name.clone(),
                            plan: plan.clone(),
                            intent_at: None,
                            tries: 0,
                            outcome: None,
                        };
                        (*id, entry)
                    })
                    .collect();
            }
            Event::Progress {
                at,
                outcomes,
                intents,
            } => {
                // Check everything first: an event applies whole or not at all.
                let mut seen = std::collections::BTreeSet::new();
                for vm in outcomes.iter().map(|(vm, _)| vm).chain(intents) {
                    self.open_entry(*vm)?;
                    if !seen.insert(*vm) {
                        return Err(format!("case {}: VM {vm} twice in one event", self.id));
                    }
                }
                for (vm, outcome) in outcomes {
                    if let Some(e) = self.vms.get_mut(vm) {
                        e.outcome = Some(outcome.clone());
                    }
                }
                for vm in intents {
                    if let Some(e) = self.vms.get_mut(vm)
                        && e.outcome.is_none()
                    {
                        e.intent_at = Some(*at);
                        e.tries += 1;
                    }
                }
            }
            Event::Closed { how, at } => self.closed = Some((how.clone(), *at)),
        }
        Ok(())
    }

    fn open_entry(&self, vm: i64) -> Result<&VmEntry, String> {
        let id = self.id;
        match self.vms.get(&vm) {
            Some(e) if e.outcome.is_none() && matches!(e.plan, Plan::Act { .. }) => Ok(e),
            Some(_) => Err(format!("case {id}: VM {vm} already has an outcome")),
            None => Err(format!("case {id}: VM {vm} is not in the plan")),
        }
    }

    /// VMs whose outcome needs an operator (locked, wrong state, failed).
    pub fn problems(&self) -> usize {
        self.vms
            .values()
            .filter(|e| e.outcome.as_ref().is_some_and(VmOutcome::is_problem))
            .count()
    }

    /// The case's state in a few words (status, `oneha vm-ha`).
    pub fn state_line(&self) -> String {
        let c = self;
        let acted = c.vms.values().filter(|e| e.outcome.is_some()).count();
        let to_act = c
            .vms
            .values()
            .filter(|e| matches!(e.plan, Plan::Act { .. }))
            .count();
        let problems = c.problems();
        let vms = format!("{acted}/{to_act} VMs done, {problems} need an operator");
        match &c.closed {
            Some((Closed::HostBack { state }, _)) => format!("closed: host came back ({state})"),
            Some((Closed::Guard { failing, limit }, _)) => {
                format!("HELD by the mass-failure guard ({failing} hosts failing > {limit})")
            }
            Some((Closed::Finished, _)) => format!("finished: {vms}"),
            Some((Closed::Cancelled, _)) => "cancelled".into(),
            Some((Closed::Error { detail }, _)) => format!("error: {}", sanitize(detail, 80)),
            None if c.fence.done.is_none() && c.fence.failures > 0 => format!(
                "FENCING FAILED {} time(s): {} (retrying; `oneha fence-ack {} --yes` once it is off)",
                c.fence.failures,
                sanitize(c.fence.last_error.as_deref().unwrap_or("?"), 60),
                sanitize(&c.host_name, 40)
            ),
            None if c.fence.done.is_none() => "waiting for the host / fencing".into(),
            None if c.planned_at.is_none() => "fenced: reading the VMs".into(),
            None => format!("acting: {vms}"),
        }
    }

    /// True when the case ended well: finished with no problem VM, or the host came back.
    pub fn succeeded(&self) -> bool {
        match &self.closed {
            Some((Closed::Finished, _)) => self.problems() == 0,
            Some((Closed::HostBack { .. }, _)) => true,
            _ => false,
        }
    }
}
