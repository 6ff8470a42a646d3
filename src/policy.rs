//! The policy: a pure function from (replicated state, local observations, clock) to
//! actions. No I/O, no async; `policy/tests.rs` covers the cases as tables.
//!
//! Three roles can apply on one node at once:
//! - **leader**: decides who owns the group (placement, failover, relocation, failback,
//!   recovery after a failed start), and re-admits a fenced two-node peer;
//! - **owner**: fences or waits for every other node that may still hold the group (S3),
//!   then starts it; restarts or asks for relocation on monitor failures;
//! - **everyone**: stops what it should not run and journals the release; an owner that
//!   loses quorum stops within its lease (S4); in two-node mode, a node that loses its peer
//!   fences it (the active side at once, the passive after its fence delay) and continues
//!   alone only with a confirmed fence.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::cluster::state::{Command, NodeId, Phase, ReplicatedState};
use crate::resources::Recovery;

/// What this node is doing with the group, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Held {
    /// Nothing of the group runs here (probed or stopped).
    #[default]
    Stopped,
    /// Not yet probed since the agent started.
    Unknown,
    /// A start is in progress for this generation.
    Starting(u64),
    /// Running for this generation.
    Running(u64),
    /// A stop is in progress.
    Stopping,
    /// A stop failed: this node may still hold parts of the group (S8).
    StopFailed(String),
}

impl Held {
    /// True when some of the group may run here.
    pub fn may_hold(&self) -> bool {
        !matches!(self, Held::Stopped)
    }
}

/// Static settings of the policy.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// This node.
    pub me: NodeId,
    /// Front-ends that may run the group, most preferred first (failover domain order).
    pub eligible: Vec<NodeId>,
    /// Every voter configured.
    pub members: Vec<NodeId>,
    /// two_node mode.
    pub two_node: bool,
    /// wait_for_all (S6).
    pub wait_for_all: bool,
    /// Fail back to a more preferred node when it returns.
    pub failback: bool,
    /// Recovery after a failed monitor.
    pub recovery: Recovery,
    /// Restarts in place allowed within `restart_window`.
    pub max_restarts: u32,
    /// Window for counting restarts.
    pub restart_window: Duration,
    /// How long a node that may hold the group gets to release it before it is fenced.
    pub release_timeout: Duration,
    /// S4: an owner out of touch with a quorum this long stops the group.
    pub lease: Duration,
    /// A resource whose link lost its carrier (a cable out, a switch port down) is given
    /// this long for the link to return before it counts as failed: a restart cannot fix
    /// a cable, and a flap must not cost a restart.
    pub link_down_grace: Duration,
    /// The owner whose client link (a floating IP's interface) has been without carrier this
    /// long hands the group over to a peer whose link is up (`client_link`).
    pub link_move_after: Duration,
    /// Two-node: the peer must be heard saying it lost this node for this long before the
    /// active side takes it for a one-way split and fences first. Right after a flap the
    /// peer's gossip still says "lost" for a moment although both sides hear each other.
    pub one_way_confirm: Duration,
    /// This node is a witness: it votes and, as leader, places the group, but never runs,
    /// stops or fences anything.
    pub witness: bool,
}

/// What this node observes now.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Raft role here is leader.
    pub leader: bool,
    /// Members heard from within the peer timeout (this node included).
    pub live: BTreeSet<NodeId>,
    /// Members heard from within the lease (this node included).
    pub within_lease: BTreeSet<NodeId>,
    /// Heard from every member since start, or an operator overrode wait-for-all.
    pub seen_all: bool,
    /// What the executor reports.
    pub held: Held,
    /// A group operation (start/stop/restart) is in flight.
    pub busy: bool,
    /// A fence operation is in flight.
    pub fencing: bool,
    /// Resources whose monitor failed since the last action, with the reason.
    pub monitor_failed: Vec<(String, String)>,
    /// Every failure in `monitor_failed` is a link without carrier, the oldest this long.
    pub link_down_for: Option<Duration>,
    /// Restarts done within the restart window.
    pub recent_restarts: u32,
    /// Restart requests already served here.
    pub restarts_served: u64,
    /// For each blocker, how long this node (as owner) has been waiting for its release.
    pub waiting: Vec<(NodeId, Duration)>,
    /// Nodes whose fencing failed recently and must not be retried yet (backoff).
    pub fence_backoff: BTreeSet<NodeId>,
    /// How long the two-node peer has been out of touch (None: in touch).
    pub peer_lost_for: Option<Duration>,
    /// Two-node: the peer is heard now, and its gossip has said it lost this node for this
    /// long without a break (a one-way split: it is about to fence this node).
    pub peer_lost_me_for: Option<Duration>,
    /// The fence delay for the peer (two-node tie-break).
    pub peer_fence_delay: Duration,
    /// Every link of this node has lost its carrier: it hears nobody because its own cables
    /// are out, and it is the one cut off from clients too.
    pub own_links_down: bool,
    /// This node's state is known to hold everything committed before the agent started
    /// (its start-up barrier was applied). Until then it neither starts nor stops the group
    /// on its own (an agent restarted on a running owner adopts the group rather than
    /// stopping it on a stale view).
    pub synced: bool,
    /// A start of the current generation failed here and its report is not applied yet:
    /// starting again now would run the group under a generation about to be marked failed.
    pub start_failure_pending: bool,
    /// How long this agent has been waiting for its start-up barrier (zero once synced).
    pub unsynced_for: Duration,
    /// Members out of touch that announced a restart of their agent in place and are
    /// still within [`exit::RESTART_GRACE`]: not fenced, not replaced as owner yet.
    pub restarting: BTreeSet<NodeId>,
    /// How long a client link of this node (a floating IP's interface) has been without
    /// carrier (None: all have it, or none is known).
    pub client_link_down_for: Option<Duration>,
    /// Nodes (this one included) known to have a client link without carrier (their own
    /// word, gossiped): placement avoids them.
    pub client_links_down: BTreeSet<NodeId>,
    /// While a client link of this node is down: the other nodes heard since it went down
    /// (over another link) whose client links are up.
    pub link_peers: BTreeSet<NodeId>,
}

/// What the control loop should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Replicate a command.
    Propose(Command),
    /// Start the group for this generation.
    Start(u64),
    /// Stop the group (the release is journaled once it is stopped, by the rule for a
    /// stopped node that is still marked dirty).
    Stop {
        /// Why.
        reason: String,
    },
    /// Restart the group in place.
    Restart(RestartCause),
    /// Fence `target` to clear its dirty `epoch` (0: none recorded).
    Fence {
        /// Node to fence.
        target: NodeId,
        /// Its dirty epoch.
        epoch: u64,
    },
    /// Two-node: after a confirmed fence, continue as the single voter.
    ForceSingleVoter,
    /// Two-node: re-admit a returned peer as a voter.
    AddVoter(NodeId),
    /// Nothing can be done now; tell the operator why (shown in status).
    Notice(String),
}

/// Why the group is restarted in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartCause {
    /// An operator asked (`oneha restart`): served once, not counted against
    /// `max_restarts`.
    Operator,
    /// A resource's monitor failed: counted against `max_restarts`.
    Monitor {
        /// The resource.
        resource: String,
        /// What its monitor said.
        reason: String,
    },
}

impl std::fmt::Display for RestartCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartCause::Operator => f.write_str("restart requested by an operator"),
            RestartCause::Monitor { resource, reason } => write!(f, "{resource} failed: {reason}"),
        }
    }
}

/// VM HA: this node works the cluster's open host-failure cases (fences hosts, touches VMs)
/// only while it owns the group and the group runs here: oned runs here then, and nobody
/// else works them. Ownership moving away stops it; the new owner resumes.
pub fn works_vm_ha_cases(st: &ReplicatedState, me: NodeId) -> bool {
    st.group.owner == Some(me) && st.group.phase == Phase::Started
}

/// The policy for one turn.
pub fn decide(cfg: &PolicyConfig, st: &ReplicatedState, obs: &Observations) -> Vec<Action> {
    let mut out = Vec::new();
    if obs.leader {
        leader_actions(cfg, st, obs, &mut out);
    }
    if cfg.witness {
        return out;
    }
    if cfg.two_node {
        two_node_actions(cfg, st, obs, &mut out);
    } else {
        quorum_loss_actions(st, obs, &mut out);
    }
    local_actions(cfg, st, obs, &mut out);
    out
}

/// Best live eligible node, `preferred` first, never one in `exclude`.
fn best(
    cfg: &PolicyConfig,
    obs: &Observations,
    preferred: Option<NodeId>,
    exclude: &[NodeId],
) -> Option<NodeId> {
    let ok = |n: &NodeId| obs.live.contains(n) && !exclude.contains(n);
    let preferred = preferred.filter(|p| cfg.eligible.contains(p) && ok(p));
    client_link::prefer_links_up(
        obs,
        preferred
            .into_iter()
            .chain(cfg.eligible.iter().copied().filter(ok)),
    )
}

fn assign(st: &ReplicatedState, owner: Option<NodeId>, reason: String) -> Action {
    Action::Propose(Command::Assign {
        owner,
        expected_generation: st.group.generation,
        reason,
    })
}

fn leader_actions(
    cfg: &PolicyConfig,
    st: &ReplicatedState,
    obs: &Observations,
    out: &mut Vec<Action>,
) {
    let g = &st.group;
    // Two-node: a fenced peer that is back is re-admitted as a voter.
    if cfg.two_node && st.voters == [cfg.me] {
        for &m in &cfg.members {
            if m != cfg.me && obs.live.contains(&m) {
                out.push(Action::AddVoter(m));
            }
        }
    }
    if !g.enabled {
        if g.owner.is_some() {
            out.push(assign(st, None, "disabled by an operator".into()));
        }
        return;
    }
    if g.frozen {
        return;
    }
    match g.owner {
        None => {
            if g.phase == Phase::Failed {
                return;
            }
            match best(cfg, obs, g.preferred, &[]) {
                Some(n) => out.push(assign(st, Some(n), "placement".into())),
                None => out.push(Action::Notice(
                    "no eligible front-end is online to run the group".into(),
                )),
            }
        }
        Some(o) if !obs.live.contains(&o) && obs.restarting.contains(&o) => {
            out.push(Action::Notice(format!(
                "owner {o} is restarting its agent in place: waiting for it (at most {}s)",
                exit::RESTART_GRACE.as_secs()
            )));
        }
        Some(o) if !obs.live.contains(&o) => {
            if let Some(n) = best(cfg, obs, g.preferred, &[o]) {
                out.push(assign(st, Some(n), format!("owner {o} lost")));
            }
        }
        Some(o) => {
            if let Some(req) = g.relocate {
                // An operator's explicit target is honoured as asked (carrier or not).
                let pick = match req {
                    Some(t) => Some(t)
                        .filter(|t| *t != o && cfg.eligible.contains(t) && obs.live.contains(t)),
                    None => best(cfg, obs, None, &[o]),
                };
                match pick {
                    Some(n) => out.push(assign(st, Some(n), "relocation requested".into())),
                    None => out.push(Action::Notice(
                        "relocation requested but the target is not online".into(),
                    )),
                }
            } else if g.phase == Phase::Failed && g.start_failed.contains_key(&o) {
                let failed: Vec<NodeId> = g.start_failed.keys().copied().collect();
                match best(cfg, obs, None, &failed) {
                    Some(n) => out.push(assign(st, Some(n), format!("start failed on {o}"))),
                    None => out.push(Action::Notice(format!(
                        "the group failed to start on node(s) {failed:?} and no other eligible node \
                         is online: fix the cause (see the start failures in `oneha status`), \
                         then run `oneha enable` to try again"
                    ))),
                }
            } else if cfg.failback && g.phase == Phase::Started {
                let more = best(cfg, obs, g.preferred, &[]);
                let rank = |n: NodeId| cfg.eligible.iter().position(|&e| e == n);
                if let Some(n) = more
                    && rank(n) < rank(o)
                {
                    out.push(assign(st, Some(n), "failback".into()));
                }
            }
        }
    }
}

fn quorum_loss_actions(st: &ReplicatedState, obs: &Observations, out: &mut Vec<Action>) {
    let voters = st.voters.len().max(1);
    let in_touch = st
        .voters
        .iter()
        .filter(|v| obs.within_lease.contains(v))
        .count();
    if in_touch * 2 <= voters && obs.held.may_hold() && !obs.busy && obs.held != Held::Stopping {
        out.push(Action::Stop {
            reason: format!(
                "lost quorum ({in_touch} of {voters} voters in touch within the lease): \
                 stopping before the majority takes over (S4)"
            ),
        });
    }
}

fn local_actions(
    cfg: &PolicyConfig,
    st: &ReplicatedState,
    obs: &Observations,
    out: &mut Vec<Action>,
) {
    let g = &st.group;
    let me = cfg.me;
    let my_epoch = g.dirty.get(&me).copied();
    let owner = g.owner == Some(me);
    let should_run = owner && g.enabled;
    if obs.busy {
        return;
    }
    if !obs.synced {
        // Resources found running that even this node's own (possibly stale) view gives
        // to no one or to another node: after a lease without catching up (the cluster
        // unreachable, or reachable one way only), stop them. Nobody else would: the
        // cluster does not know this node runs anything (S1). A restarted owner, by its
        // own view, keeps adopting: if it is cut off, the others fence it first (S3).
        if !should_run && obs.held.may_hold() && obs.unsynced_for >= cfg.lease {
            out.push(Action::Stop {
                reason: format!(
                    "found running at start, not ours by this node's view, and not caught \
                     up with the cluster within {:.1}s: stopping what runs here",
                    obs.unsynced_for.as_secs_f64()
                ),
            });
            return;
        }
        out.push(Action::Notice(
            "catching up with the cluster's state before acting".into(),
        ));
        return;
    }
    // Not ours (or disabled): stop what runs here and journal the release.
    if !should_run {
        match &obs.held {
            Held::StopFailed(why) => {
                if !g.stop_failed.contains_key(&me) {
                    out.push(Action::Propose(Command::StopFailed {
                        node: me,
                        reason: why.clone(),
                    }));
                }
            }
            Held::Stopped => {
                if let Some(epoch) = my_epoch
                    && !g.stop_failed.contains_key(&me)
                {
                    out.push(Action::Propose(Command::Released { node: me, epoch }));
                }
            }
            Held::Stopping => {}
            _ if g.frozen && !owner => {}
            _ => out.push(Action::Stop {
                reason: if owner {
                    "the group is disabled".into()
                } else {
                    "this node is not the owner".into()
                },
            }),
        }
        return;
    }
    if g.frozen {
        return;
    }
    // Ours: clear the way (S3), then start.
    match &obs.held {
        Held::Stopped | Held::Unknown => {
            // Two-node mode: a node that has not seen its peer since it started is never
            // quorate (corosync's wait_for_all), even as the single voter it was before a
            // reboot: the peer may have fenced it and taken over meanwhile (S6).
            if cfg.two_node && cfg.wait_for_all && !obs.seen_all {
                out.push(Action::Notice(
                    "wait-for-all: not starting the group before the peer has been seen since \
                     this node started"
                        .into(),
                ));
                return;
            }
            if g.may_start(me) {
                if obs.start_failure_pending {
                    out.push(Action::Notice(
                        "the start failed here: waiting for the cluster to record it".into(),
                    ));
                } else if g.phase != Phase::Failed || !g.start_failed.contains_key(&me) {
                    out.push(Action::Start(g.generation));
                }
                return;
            }
            for b in g.blockers(me) {
                let epoch = g.dirty.get(&b).copied().unwrap_or(0);
                let waited = obs
                    .waiting
                    .iter()
                    .find(|(n, _)| *n == b)
                    .map(|(_, d)| *d)
                    .unwrap_or_default();
                let must_fence = !obs.live.contains(&b)
                    || g.stop_failed.contains_key(&b)
                    || waited >= cfg.release_timeout;
                if !must_fence {
                    out.push(Action::Notice(format!(
                        "waiting for node {b} to release the group"
                    )));
                } else if cfg.wait_for_all && !obs.seen_all {
                    out.push(Action::Notice(format!(
                        "node {b} must be fenced, but this node has not seen every member \
                         since it started (wait-for-all): not fencing"
                    )));
                } else if !obs.fencing && !obs.fence_backoff.contains(&b) {
                    out.push(Action::Fence { target: b, epoch });
                }
            }
            for n in g.stop_failed.keys().filter(|&&n| n != me) {
                if !g.dirty.contains_key(n) && !obs.fencing && !obs.fence_backoff.contains(n) {
                    out.push(Action::Fence {
                        target: *n,
                        epoch: 0,
                    });
                }
            }
        }
        Held::Running(running) if *running != g.generation => {
            // We kept running across an owner change back to us: just report it.
            out.push(Action::Propose(Command::Started {
                node: me,
                generation: g.generation,
            }));
        }
        Held::Running(_) => {
            let link_move = client_link::owner_link_move(cfg, st, obs);
            if let Some(give_up @ Action::Propose(_)) = link_move {
                out.push(give_up);
                return;
            }
            out.extend(link_move);
            if g.restart_requests > obs.restarts_served {
                out.push(Action::Restart(RestartCause::Operator));
            } else if let Some((res, why)) = obs.monitor_failed.first()
                && let Some(down) = obs.link_down_for
                && (down < cfg.link_down_grace || obs.client_link_down_for.is_some())
            {
                // The carrier watch confirms the cable: no other front-end could do better
                // (`client_link` would have moved the group), so wait for as long as it takes.
                out.push(Action::Notice(if obs.client_link_down_for.is_some() {
                    format!(
                        "{res}: {why}; no other front-end has its client link up: waiting for \
                         the link (a restart cannot fix a cable)"
                    )
                } else {
                    format!(
                        "{res}: {why}; waiting up to {:.1}s more for the link to come back \
                         before restarting or moving the group (a restart cannot fix a cable)",
                        (cfg.link_down_grace - down).as_secs_f64()
                    )
                }));
            } else if let Some((res, why)) = obs.monitor_failed.first() {
                let cause = RestartCause::Monitor {
                    resource: res.clone(),
                    reason: why.clone(),
                };
                let reason = cause.to_string();
                match cfg.recovery {
                    Recovery::Restart if obs.recent_restarts < cfg.max_restarts => {
                        out.push(Action::Restart(cause))
                    }
                    Recovery::Restart | Recovery::Relocate => {
                        out.push(Action::Propose(Command::GiveUp {
                            node: me,
                            generation: g.generation,
                            reason,
                        }))
                    }
                    Recovery::Disable => out.push(Action::Propose(Command::Disable)),
                }
            }
        }
        Held::StopFailed(why) => {
            if !g.stop_failed.contains_key(&me) {
                out.push(Action::Propose(Command::StopFailed {
                    node: me,
                    reason: why.clone(),
                }));
            }
        }
        Held::Starting(_) | Held::Stopping => {}
    }
}

pub mod client_link;
pub mod exit;
pub mod liveness;
pub mod timing;
mod two_node;

pub use two_node::continue_alone;
use two_node::two_node_actions;

#[cfg(test)]
mod tests;
