//! The replicated state machine: what the Raft log carries and how each command applies.
//!
//! Every node applies the same commands in the same order and so answers "who owns the
//! group" from its own applied state. Apply is deterministic: times come inside commands
//! (the proposer's clock), never from the applying node.
//!
//! Ownership and the S3 rule: a node is *dirty* from the moment the group is assigned to it
//! until its clean stop is journaled (`Released`) or a fence of it succeeds (`Fenced`). The
//! owner starts the group only when no other node is dirty ([`GroupState::may_start`]).
//! Each dirty mark carries an epoch (the log index that set it); a release or fence clears
//! a mark only if it names that epoch, so a late, stale record never clears a newer mark.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// A Raft node id (`nodes[].id`).
pub type NodeId = u64;

/// How many fence records the journal keeps.
pub const FENCE_JOURNAL_LEN: usize = 64;

/// A command with who proposed it, when, and a request id the proposer waits on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Proposal {
    /// Unique per proposer; lets the proposer see its own command applied.
    pub request: u64,
    /// Proposing node.
    pub by: NodeId,
    /// Proposer's wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// What to do.
    pub cmd: Command,
}

/// The commands of the replicated state machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Operator: the group may run (optionally preferring a node).
    Enable {
        /// Preferred node.
        on: Option<NodeId>,
    },
    /// Operator: stop the group and keep it stopped.
    Disable,
    /// Operator: maintenance mode: no monitoring, no recovery, no failover.
    Freeze,
    /// Operator: leave maintenance mode.
    Unfreeze,
    /// Operator: move the group (to a node, or to the next best one).
    Relocate {
        /// Target node.
        to: Option<NodeId>,
    },
    /// Operator: restart the group in place.
    Restart,
    /// Owner: recovery gave up on this node (failures past `max_restarts`, or recovery
    /// `relocate`): move the group elsewhere. Ignored unless `node` still owns `generation`.
    GiveUp {
        /// The owner giving up.
        node: NodeId,
        /// Its generation.
        generation: u64,
        /// Why.
        reason: String,
    },
    /// Leader: the group now belongs to `owner` (None: nobody). Applies only if the
    /// generation is still `expected_generation` (compare-and-set).
    Assign {
        /// New owner.
        owner: Option<NodeId>,
        /// Generation the leader based its decision on.
        expected_generation: u64,
        /// Why (shown in status and logs).
        reason: String,
    },
    /// Owner: about to start the group for this generation. Applied only while the node
    /// is still the owner and no other node may hold the group (S3), so a node whose state
    /// is stale (cut off, or just booted) cannot start on it: its claim does not commit, or
    /// commits after the entries that made it stale and is refused.
    Claim {
        /// Claiming node.
        node: NodeId,
        /// Generation it wants to start.
        generation: u64,
    },
    /// Owner: the group is running for this generation.
    Started {
        /// Reporting node.
        node: NodeId,
        /// Generation it started.
        generation: u64,
    },
    /// Owner: starting failed (what was started was stopped again cleanly).
    StartFailed {
        /// Reporting node.
        node: NodeId,
        /// Generation.
        generation: u64,
        /// What failed.
        reason: String,
    },
    /// A node stopped everything cleanly: it holds nothing (clears its dirty mark).
    Released {
        /// Reporting node.
        node: NodeId,
        /// The dirty epoch it observed when it stopped.
        epoch: u64,
    },
    /// A node's stop failed: it must be fenced before the group starts elsewhere (S8).
    StopFailed {
        /// Reporting node.
        node: NodeId,
        /// What failed.
        reason: String,
    },
    /// A fence attempt finished (success or not).
    Fenced(FenceRecord),
    /// No effect: a node that sees it applied knows its state holds everything committed
    /// before it (the agent's start-up barrier).
    Sync {
        /// The node that proposed it.
        node: NodeId,
    },
    /// VM HA: open a host-failure case, or record an event of one.
    VmHa(crate::vmha::cases::CaseCommand),
    /// A node left two-node mode's tie-break as the survivor with a confirmed fence. No
    /// effect and no longer proposed (nothing read what it recorded); kept so that logs
    /// written by earlier versions still decode.
    Survivor {
        /// The survivor.
        node: NodeId,
        /// The fenced peer.
        fenced: NodeId,
    },
}

/// One line of the fence journal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FenceRecord {
    /// Fenced node.
    pub target: NodeId,
    /// Node that fenced (or where the operator acknowledged).
    pub by: NodeId,
    /// Device/method (`kvm-host (xvm)`), or `manual` for `oneha fence-ack`.
    pub method: String,
    /// `off`, `reboot`, `ack`.
    pub action: String,
    /// True only when `off`/`reboot` reported success, or an operator acknowledged (S5).
    pub success: bool,
    /// Error text or detail.
    pub detail: String,
    /// When it finished, ms since the Unix epoch (fencer's clock).
    pub at_ms: u64,
    /// The target's dirty epoch this fence was meant to clear (0: none).
    pub epoch: u64,
}

/// The group's phase as reported by its owner.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not running anywhere.
    #[default]
    Stopped,
    /// Assigned; the owner is starting it (after fencing or waiting for releases).
    Starting,
    /// Running on the owner.
    Started,
    /// The owner failed to start it, or a stop failed somewhere: needs an operator.
    Failed,
}

/// The resource group's replicated state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct GroupState {
    /// Operator wants it running.
    pub enabled: bool,
    /// Maintenance mode.
    pub frozen: bool,
    /// Current owner.
    pub owner: Option<NodeId>,
    /// Increases at every owner change.
    pub generation: u64,
    /// Phase reported by the owner.
    pub phase: Phase,
    /// Why the owner is what it is (last Assign's reason).
    pub reason: String,
    /// Nodes that may hold resources, with the epoch of their mark.
    pub dirty: BTreeMap<NodeId, u64>,
    /// Nodes whose stop failed (they must be fenced: S8), with the reason.
    pub stop_failed: BTreeMap<NodeId, String>,
    /// Pending operator relocation: `Some(None)` means "anywhere else".
    pub relocate: Option<Option<NodeId>>,
    /// Node preferred by `enable --on`.
    pub preferred: Option<NodeId>,
    /// Restart-in-place requests served so far (the owner restarts when it sees a new one).
    pub restart_requests: u64,
    /// Last start failure per node (cleared when the node starts the group).
    pub start_failed: BTreeMap<NodeId, String>,
}

impl GroupState {
    /// S3: `node` may start the group now: it is the owner, the group is enabled, and no
    /// other node may still hold it.
    pub fn may_start(&self, node: NodeId) -> bool {
        self.enabled
            && self.owner == Some(node)
            && self.dirty.keys().all(|&n| n == node)
            && !self.stop_failed.keys().any(|&n| n != node)
    }

    /// Nodes other than `node` that must release or be fenced before `node` may start.
    pub fn blockers(&self, node: NodeId) -> Vec<NodeId> {
        self.dirty.keys().copied().filter(|&n| n != node).collect()
    }
}

/// Everything the Raft log carries, as applied up to `applied`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReplicatedState {
    /// Log index of the last applied entry.
    pub applied: u64,
    /// Current voters (from the conf state).
    pub voters: Vec<NodeId>,
    /// The resource group.
    pub group: GroupState,
    /// The last fence records, oldest first.
    pub fence_journal: VecDeque<FenceRecord>,
    /// VM-HA cases (`oneha host-error`).
    #[serde(default)]
    pub vm_ha: crate::vmha::cases::Cases,
}

/// What applying a command changed, for logs and waiters.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The command took effect.
    Done,
    /// The command was valid but stale or refused; the text says why.
    Ignored(String),
}

impl ReplicatedState {
    /// A fresh state: the group enabled unless `autostart` is off.
    pub fn new(autostart: bool, voters: Vec<NodeId>) -> ReplicatedState {
        ReplicatedState {
            voters,
            group: GroupState {
                enabled: autostart,
                ..GroupState::default()
            },
            ..ReplicatedState::default()
        }
    }

    /// Applies one command at log index `index`.
    pub fn apply(&mut self, index: u64, p: &Proposal) -> Applied {
        self.applied = index;
        let g = &mut self.group;
        match &p.cmd {
            Command::Enable { on } => {
                g.enabled = true;
                g.preferred = *on;
                if g.phase == Phase::Failed {
                    g.phase = Phase::Stopped;
                    g.start_failed.clear();
                }
                if on.is_some() && g.owner.is_some() && g.owner != *on {
                    g.relocate = Some(*on);
                }
            }
            Command::Disable => {
                g.enabled = false;
                g.relocate = None;
            }
            Command::Freeze => g.frozen = true,
            Command::Unfreeze => g.frozen = false,
            Command::Relocate { to } => {
                if g.owner.is_none() {
                    return Applied::Ignored("the group has no owner to relocate from".into());
                }
                g.relocate = Some(*to);
            }
            Command::Restart => g.restart_requests += 1,
            Command::GiveUp {
                node,
                generation,
                reason,
            } => {
                if g.owner != Some(*node) || g.generation != *generation {
                    return Applied::Ignored("give-up from an old generation".into());
                }
                g.relocate = Some(None);
                g.reason = reason.clone();
            }
            Command::Assign {
                owner,
                expected_generation,
                reason,
            } => {
                if *expected_generation != g.generation {
                    return Applied::Ignored(format!(
                        "stale assignment (generation {expected_generation}, now {})",
                        g.generation
                    ));
                }
                g.generation += 1;
                g.owner = *owner;
                g.reason = reason.clone();
                g.relocate = None;
                g.phase = if owner.is_some() {
                    Phase::Starting
                } else {
                    Phase::Stopped
                };
                if let Some(o) = owner {
                    // The new owner may hold resources from now on.
                    g.dirty.entry(*o).or_insert(index);
                }
            }
            Command::Claim { node, generation } => {
                if g.owner != Some(*node) || g.generation != *generation {
                    return Applied::Ignored(format!(
                        "node {node} is not the owner of generation {generation}"
                    ));
                }
                if !g.may_start(*node) {
                    return Applied::Ignored(format!(
                        "node {node} may not start: {:?} may still hold the group",
                        g.blockers(*node)
                    ));
                }
                // The claimant holds resources from now on, also when a fence or release
                // cleared its mark since the assignment (a fenced owner that boots and
                // claims again): without the mark, the next owner could start before this
                // one has stopped (S3).
                g.dirty.entry(*node).or_insert(index);
            }
            Command::Started { node, generation } => {
                if g.owner != Some(*node) || g.generation != *generation {
                    return Applied::Ignored("start report for an old generation".into());
                }
                g.phase = Phase::Started;
                // The group runs again: earlier start failures (elsewhere too) were of their
                // moment (a link down, a peer still stopping); they no longer rule nodes out.
                g.start_failed.clear();
            }
            Command::StartFailed {
                node,
                generation,
                reason,
            } => {
                if g.owner != Some(*node) || g.generation != *generation {
                    return Applied::Ignored("start failure for an old generation".into());
                }
                g.start_failed.insert(*node, reason.clone());
                g.phase = Phase::Failed;
            }
            Command::Released { node, epoch } => {
                if g.dirty.get(node) != Some(epoch) {
                    return Applied::Ignored(format!(
                        "release of epoch {epoch} does not match the current mark"
                    ));
                }
                g.dirty.remove(node);
                if g.owner == Some(*node) && g.phase != Phase::Failed {
                    g.phase = Phase::Stopped;
                }
            }
            Command::StopFailed { node, reason } => {
                g.stop_failed.insert(*node, reason.clone());
                g.phase = Phase::Failed;
            }
            Command::Fenced(rec) => {
                if rec.success && g.dirty.get(&rec.target) == Some(&rec.epoch) {
                    g.dirty.remove(&rec.target);
                }
                if rec.success {
                    // A powered-off node holds nothing: its failed stop is resolved.
                    g.stop_failed.remove(&rec.target);
                    if g.phase == Phase::Failed && g.stop_failed.is_empty() {
                        g.phase = if g.owner.is_some() {
                            Phase::Starting
                        } else {
                            Phase::Stopped
                        };
                    }
                }
                self.fence_journal.push_back(rec.clone());
                while self.fence_journal.len() > FENCE_JOURNAL_LEN {
                    self.fence_journal.pop_front();
                }
            }
            Command::VmHa(cmd) => {
                if let Err(why) = self.vm_ha.apply(index, cmd) {
                    return Applied::Ignored(why);
                }
            }
            Command::Sync { .. } | Command::Survivor { .. } => {}
        }
        Applied::Done
    }

    /// Serialises the state for a Raft snapshot.
    pub fn to_snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Restores the state from a Raft snapshot's bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<ReplicatedState, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("cannot decode state snapshot: {e}"))
    }
}

impl Proposal {
    /// Encodes a proposal as a log entry's data.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a log entry's data.
    pub fn decode(bytes: &[u8]) -> Result<Proposal, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("cannot decode command: {e}"))
    }
}

#[cfg(test)]
mod tests;
