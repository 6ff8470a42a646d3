//! The status report (`oneha status`, the metrics endpoint) built from the Raft view, the
//! peer table and what the control loop reports about this node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Agent;
use crate::cluster::node::RaftView;
use crate::cluster::state::NodeId;
use crate::config::{Config, Role};
use crate::policy::liveness::Liveness;
use crate::status::{
    FenceLine, FencingStatus, GroupStatus, LinkStatus, MemberStatus, RaftStatus, StatusReport,
    TransportCounters,
};

impl Agent {
    /// Each link towards member `n`: up when a frame came on it within the peer timeout.
    fn link_status(&self, n: &crate::config::NodeConfig, timeout_ms: u64) -> Vec<LinkStatus> {
        self.links
            .ages(n.id)
            .into_iter()
            .zip(&n.addresses)
            .enumerate()
            .map(|(k, (age, addr))| {
                let ms = age.map(|a| a.as_millis() as u64);
                LinkStatus {
                    link: k + 1,
                    address: addr.to_string(),
                    up: ms.is_some_and(|ms| ms <= timeout_ms),
                    last_heard_ms: ms,
                }
            })
            .collect()
    }

    /// Builds the status report from the current view.
    pub fn status(&self) -> StatusReport {
        let v: Arc<RaftView> = self.node.view();
        let local = self.local.lock().map(|l| l.clone()).unwrap_or_default();
        let member_views = self.node.members();
        let timers = self.cfg.timers();
        let liveness = Liveness::derive(
            self.me,
            &member_views,
            timers.lost_after(),
            timers.lease(),
            self.started.elapsed(),
        );
        let contacts: HashMap<NodeId, _> = member_views.iter().map(|m| (m.id, m)).collect();
        let members: Vec<MemberStatus> = self
            .cfg
            .nodes
            .iter()
            .map(|n| {
                let is_local = n.id == self.me;
                let mv = contacts.get(&n.id);
                let last = mv.and_then(|m| m.last_contact_ms);
                MemberStatus {
                    name: n.name.clone(),
                    id: n.id,
                    role: match n.role {
                        Role::Frontend => "frontend".into(),
                        Role::Witness => "witness".into(),
                    },
                    local: is_local,
                    up: liveness.live.contains(&n.id),
                    direct: liveness.direct.contains(&n.id),
                    last_contact_ms: last,
                    voter: v.state.voters.contains(&n.id),
                    resources: if is_local {
                        local.resources.clone()
                    } else {
                        mv.and_then(|m| m.gossip.as_ref())
                            .map(|g| g.resources.clone())
                            .unwrap_or_default()
                    },
                    links: if is_local {
                        Vec::new()
                    } else {
                        self.link_status(n, timers.lost_after().as_millis() as u64)
                    },
                }
            })
            .collect();
        let voters_up = members.iter().filter(|m| m.voter && m.up).count();
        let voters = v.state.voters.len();
        let quorum = if self.cfg.two_node {
            let peer_up = members.iter().any(|m| !m.local && m.up);
            let delay = self.cfg.fencing.passive_delay;
            let split = match v.state.group.owner {
                Some(o) => format!(
                    "in a split {} (running the group) fences at once, the other after {delay}",
                    self.node_name(o)
                ),
                None => format!("in a split both fence after {delay}"),
            };
            if v.state.voters == [self.me] {
                format!("two-node, single voter after fencing its peer; {split}")
            } else if peer_up {
                format!("two-node, peer online; {split}")
            } else {
                format!("two-node, peer OFFLINE: fencing decides; {split}")
            }
        } else if voters_up * 2 > voters {
            format!("quorate ({voters_up} of {voters} voters up)")
        } else {
            format!("NOT quorate ({voters_up} of {voters} voters up)")
        };
        let g = &v.state.group;
        // What the owner itself says it is doing (its gossip, or our own local status).
        let owner_held = match g.owner {
            Some(o) if o == self.me => Some(local.held.clone()),
            Some(o) => contacts
                .get(&o)
                .and_then(|m| m.gossip.as_ref())
                .map(|g| g.held.clone()),
            None => None,
        };
        let recovering = owner_held
            .as_deref()
            .is_some_and(|h| h.starts_with("restarting"));
        let state = if g.frozen {
            "frozen"
        } else if !g.enabled && g.dirty.is_empty() {
            "disabled"
        } else if !g.enabled {
            "stopping"
        } else if recovering {
            "recovering"
        } else {
            match g.phase {
                crate::cluster::state::Phase::Stopped => "stopped",
                crate::cluster::state::Phase::Starting => "starting",
                crate::cluster::state::Phase::Started => "started",
                crate::cluster::state::Phase::Failed => "failed",
            }
        };
        let mut failures: Vec<(String, String)> = g
            .stop_failed
            .iter()
            .map(|(n, w)| (self.node_name(*n), format!("stop failed: {w}")))
            .collect();
        failures.extend(
            g.start_failed
                .iter()
                .map(|(n, w)| (self.node_name(*n), format!("start failed: {w}"))),
        );
        let owner = g.owner;
        let group = GroupStatus {
            state: state.to_string(),
            owner: owner.map(|o| self.node_name(o)),
            generation: g.generation,
            reason: g.reason.clone(),
            waiting_for: owner
                .map(|o| {
                    g.blockers(o)
                        .into_iter()
                        .map(|n| self.node_name(n))
                        .collect()
                })
                .unwrap_or_default(),
            relocating_to: g
                .relocate
                .map(|t| t.map(|n| self.node_name(n)).unwrap_or_else(|| "*".into())),
            enabled: g.enabled,
            frozen: g.frozen,
            failures,
            restarts_requested: g.restart_requests,
        };
        let journal = v
            .state
            .fence_journal
            .iter()
            .map(|r| FenceLine {
                target: self.node_name(r.target),
                by: self.node_name(r.by),
                method: r.method.clone(),
                action: r.action.clone(),
                success: r.success,
                detail: r.detail.clone(),
                at_ms: r.at_ms,
            })
            .collect();
        let mut notices = local.notices.clone();
        if local.forced_wait_for_all {
            notices.push("wait-for-all is overridden on this node by an operator".into());
        }
        if let Some(f) = &v.fatal {
            notices.push(format!("the Raft node stopped: {f}"));
        }
        if self.cfg.wait_for_all && !self.node.seen_all() && !local.forced_wait_for_all {
            notices.push(
                "wait-for-all: this node has not yet seen every member since it started; \
                 it will neither fence nor take over (S6)"
                    .to_string(),
            );
        }
        let topology = topology_name(&self.cfg);
        StatusReport {
            cluster: self.cfg.cluster.clone(),
            node: self.name.clone(),
            topology,
            quorum,
            raft: RaftStatus {
                role: v.role.as_str().to_string(),
                term: v.term,
                leader: v.leader.map(|l| self.node_name(l)),
                commit: v.commit,
                applied: v.state.applied,
                last_index: v.last_index,
                log_entries: v.log_entries,
                voters: v.state.voters.iter().map(|n| self.node_name(*n)).collect(),
            },
            members,
            group,
            fencing: FencingStatus {
                journal,
                in_progress: local.fencing.clone(),
            },
            notices,
            stuck_vms: crate::opennebula::load_last_report(&self.cfg.data_dir).map(|r| {
                serde_json::json!({
                    "generated_at": r.generated_at,
                    "summary": r.summary(),
                    "stuck": r.counts.stuck,
                })
            }),
            transport: TransportCounters {
                frames_in: self.stats.frames_in.load(Ordering::Relaxed),
                frames_out: self.stats.frames_out.load(Ordering::Relaxed),
                rejected: self.stats.rejected.load(Ordering::Relaxed),
                dropped: self.stats.dropped.load(Ordering::Relaxed),
                handshakes_refused: self.stats.handshakes_refused.load(Ordering::Relaxed),
                unauth_refused: self.stats.unauth_refused.load(Ordering::Relaxed),
            },
            vm_ha: v
                .state
                .vm_ha
                .open()
                .map(|c| crate::status::VmHaCaseStatus {
                    id: c.id,
                    host: c.host_name.clone(),
                    state: c.state_line(),
                    fence_failures: c.fence.failures,
                })
                .collect(),
        }
    }
}

/// The topology in words, for status.
pub fn topology_name(cfg: &Config) -> String {
    let fe = cfg
        .nodes
        .iter()
        .filter(|n| n.role == Role::Frontend)
        .count();
    let w = cfg.nodes.len() - fe;
    if cfg.two_node {
        "two-node, fencing as tie-breaker".into()
    } else if w == 0 {
        format!("{fe} front-ends")
    } else {
        format!("{fe} front-ends + {w} witness")
    }
}
