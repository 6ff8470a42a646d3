//! The VM-HA cases kept in the cluster's replicated state: open cases, and the last closed
//! ones for `oneha vm-ha`. Applied by every node in log order, so any node can show them and
//! the group's new owner resumes the open ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::case::{Case, Event};

/// Closed cases kept for `oneha vm-ha`.
pub const KEEP_CLOSED: usize = 32;

/// VM-HA requests over the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "vm_ha", rename_all = "snake_case")]
pub enum VmHaRequest {
    /// Open a case (the hook): answers the case id.
    Open {
        /// The `Opened` event.
        event: Event,
    },
    /// One case.
    Get {
        /// Case id.
        id: u64,
    },
    /// Every case kept.
    List,
    /// An operator acknowledges that the host of an open case is off.
    Ack {
        /// Host name.
        host: String,
    },
}

/// A change to the cases, as a replicated command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CaseCommand {
    /// Opens a case (its id is the log index) unless one is open for the host already.
    Open {
        /// The `Opened` event.
        event: Event,
    },
    /// An event of an open case.
    Event {
        /// Case id.
        case: u64,
        /// The event.
        event: Event,
    },
}

/// Every case the cluster knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cases {
    /// By id (the log index that opened it).
    pub by_id: BTreeMap<u64, Case>,
}

impl Cases {
    /// Applies `cmd` at log `index`: `Ok(case id)` or why it was ignored.
    pub fn apply(&mut self, index: u64, cmd: &CaseCommand) -> Result<u64, String> {
        match cmd {
            CaseCommand::Open { event } => {
                let Some(case) = Case::open(index, event) else {
                    return Err("a case opens with an Opened event".into());
                };
                if let Some(open) = self.open_for(case.host_id) {
                    return Err(format!(
                        "case {} for host {} is still open",
                        open.id, open.host_name
                    ));
                }
                self.by_id.insert(index, case);
                Ok(index)
            }
            CaseCommand::Event { case, event } => {
                let c = self
                    .by_id
                    .get_mut(case)
                    .ok_or_else(|| format!("no case {case}"))?;
                c.apply(event)?;
                if c.closed.is_some() {
                    self.trim();
                }
                Ok(*case)
            }
        }
    }

    /// The open case of host `host_id`, if any.
    pub fn open_for(&self, host_id: i64) -> Option<&Case> {
        self.by_id
            .values()
            .find(|c| c.host_id == host_id && c.closed.is_none())
    }

    /// Open cases, oldest first.
    pub fn open(&self) -> impl Iterator<Item = &Case> {
        self.by_id.values().filter(|c| c.closed.is_none())
    }

    /// Names of hosts with a case opened at or after `since` (ms), `except` one host id.
    pub fn hosts_since(&self, since: u64, except: i64) -> Vec<String> {
        self.by_id
            .values()
            .filter(|c| c.opened_at >= since && c.host_id != except)
            .map(|c| c.host_name.clone())
            .collect()
    }

    fn trim(&mut self) {
        let closed: Vec<u64> = self
            .by_id
            .values()
            .filter(|c| c.closed.is_some())
            .map(|c| c.id)
            .collect();
        for id in closed.iter().take(closed.len().saturating_sub(KEEP_CLOSED)) {
            self.by_id.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmha::case::Closed;
    use crate::vmha::input::{Flags, Mode};

    fn opened(host: i64, at: u64) -> CaseCommand {
        let flags = Flags {
            mode: Mode::Migrate,
            force: false,
            pause: 0,
            fencing: true,
        };
        let c = Case::new(0, host, &format!("kvm{host}"), &flags, at, at);
        CaseCommand::Open {
            event: c.opened_event(),
        }
    }

    fn close(case: u64) -> CaseCommand {
        CaseCommand::Event {
            case,
            event: Event::Closed {
                how: Closed::Cancelled,
                at: 9,
            },
        }
    }

    #[test]
    fn one_open_case_per_host_and_closed_ones_trimmed() {
        let mut s = Cases::default();
        assert_eq!(s.apply(10, &opened(4, 100)), Ok(10));
        assert!(
            s.apply(11, &opened(4, 101))
                .unwrap_err()
                .contains("still open")
        );
        assert_eq!(s.apply(12, &opened(5, 102)), Ok(12));
        assert_eq!(s.hosts_since(101, 4), ["kvm5"]);
        assert_eq!(s.open().count(), 2);
        assert_eq!(s.apply(13, &close(10)), Ok(10));
        assert!(s.apply(14, &close(10)).is_err(), "closed twice");
        assert!(s.apply(15, &close(99)).is_err());
        assert_eq!(
            s.apply(16, &opened(4, 103)),
            Ok(16),
            "a new case after the old closed"
        );
        for i in 0..(KEEP_CLOSED as u64 + 5) {
            let idx = 100 + 2 * i;
            s.apply(idx, &opened(1000 + i as i64, idx)).unwrap();
            s.apply(idx + 1, &close(idx)).unwrap();
        }
        let closed = s.by_id.values().filter(|c| c.closed.is_some()).count();
        assert_eq!(closed, KEEP_CLOSED);
        assert!(
            s.by_id.contains_key(&12) && s.by_id.contains_key(&16),
            "open cases kept"
        );
    }
}
