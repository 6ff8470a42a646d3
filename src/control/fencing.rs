//! Fencing in the control loop: running fence operations, journaling their outcome (and
//! answering the operator who asked), two-node single-voter continuation, and the admin
//! requests that concern fencing.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{ControlMsg, Loop};
use crate::cluster::node::{Event, now_ms};
use crate::cluster::state::{Command, FenceRecord, NodeId};
use crate::fence::Action as FenceAction;
use crate::policy::timing::fence_retry_after;
use crate::policy::{self, Action, Held};

impl Loop {
    pub(super) fn fence(&mut self, target: NodeId, epoch: u64, action: FenceAction) {
        let name = self.ctx.node_name(target);
        let Some(f) = self.ex.fencer() else {
            self.notices.push(format!(
                "{name} must be fenced but fencing is not configured on this node: verify \
                 {name} is powered off, then run `oneha fence-ack {name}`"
            ));
            return;
        };
        if !f.can_fence(&name) {
            self.notices.push(format!(
                "{name} must be fenced but has no fence device configured: verify it is \
                 powered off, then run `oneha fence-ack {name}`"
            ));
            return;
        }
        if self.fencing.is_some() {
            return;
        }
        tracing::warn!(fence_target = %name, epoch, "fencing {name} ({action})");
        self.fencing = Some(target);
        self.fence_began = Instant::now();
        self.ex.fence(target, name, epoch, Duration::ZERO, action);
    }

    pub(super) async fn on_fenced(
        &mut self,
        target: NodeId,
        epoch: u64,
        report: crate::fence::FenceReport,
    ) {
        self.fencing = None;
        let success = report.success();
        let name = self.ctx.node_name(target);
        for a in &report.attempts {
            self.ctx.counters.record_fence(
                &name,
                &a.method,
                a.action.name(),
                a.result == crate::fence::AttemptResult::Success,
            );
        }
        let method = report
            .succeeded_by()
            .or(report.attempts.last())
            .map(|a| format!("{} ({})", a.device, a.method))
            .unwrap_or_else(|| "none".into());
        let detail = if success {
            String::new()
        } else {
            report
                .last_error()
                .unwrap_or("no attempt was made")
                .to_string()
        };
        if success {
            tracing::warn!("{report}");
            crate::events::fence_result(&name, true, report.to_string());
            self.fence_retry.remove(&target);
            self.recently_fenced.insert(target, Instant::now());
            let during = self.fence_began.elapsed();
            self.confirmed_fence(
                target,
                epoch,
                method,
                report.action.to_string(),
                detail,
                during,
            )
            .await;
        } else {
            tracing::error!("{report}");
            crate::events::fence_result(&name, false, report.to_string());
            let (_, fails, _) = self.fence_retry.get(&target).cloned().unwrap_or((
                Instant::now(),
                0,
                String::new(),
            ));
            let backoff = fence_retry_after(
                fails,
                self.ctx.cfg.two_node,
                matches!(self.held, Held::Running(_)),
                self.ctx.cfg.fencing.passive_delay.get(),
            );
            self.fence_retry.insert(
                target,
                (
                    Instant::now() + backoff,
                    fails + 1,
                    format!("fencing {name} via {method} failed: {detail}"),
                ),
            );
            let rec = self.record(
                target,
                epoch,
                method,
                report.action.to_string(),
                false,
                detail,
            );
            self.journal(rec).await;
        }
    }

    /// Journals a fence record. An operator waiting on this target (`oneha fence`) is
    /// answered once the record is committed, so `oneha status` shows it right after.
    async fn journal(&mut self, rec: FenceRecord) {
        let waiting: Vec<_> = {
            let (mine, rest) = self
                .pending_replies
                .drain(..)
                .partition(|(t, _)| *t == rec.target);
            self.pending_replies = rest;
            mine
        };
        if waiting.is_empty() {
            self.propose(Command::Fenced(rec));
            return;
        }
        let verdict = if rec.success {
            Ok(format!("fenced via {}", rec.method))
        } else {
            Err(format!("fencing failed: {}", rec.detail))
        };
        let committed = self
            .ctx
            .node
            .propose_idempotent(Command::Fenced(rec), Duration::from_secs(10))
            .await;
        for (_, reply) in waiting {
            let _ = reply.send(match (&committed, &verdict) {
                (Err(e), Ok(v)) => Ok(format!("{v}; not yet journaled: {e}")),
                _ => verdict.clone(),
            });
        }
    }

    /// A node is confirmed off (fence success or operator acknowledgement): journal it and,
    /// in two-node mode, continue as the single voter, unless the node was heard from
    /// within `heard_within` (since the fence operation began): then it still runs, whatever
    /// its device said, and this node does not go on alone.
    pub(super) async fn confirmed_fence(
        &mut self,
        target: NodeId,
        epoch: u64,
        method: String,
        action: String,
        detail: String,
        heard_within: Duration,
    ) {
        let view = self.ctx.node.view();
        let epoch = if epoch == 0 {
            view.state.group.dirty.get(&target).copied().unwrap_or(0)
        } else {
            epoch
        };
        let last_contact = self
            .ctx
            .node
            .members()
            .iter()
            .find(|m| m.id == target)
            .and_then(|m| m.last_contact_ms);
        match policy::continue_alone(&self.pcfg, &view.state, target, last_contact, heard_within) {
            None => {}
            Some(Action::ForceSingleVoter) => {
                let (reply, rx) = oneshot::channel();
                if self
                    .ctx
                    .node
                    .send(Event::ForceSingleVoter { reply })
                    .is_ok()
                {
                    match rx.await {
                        Ok(Ok(())) => {
                            let marker = super::survivor_marker(&self.ctx.cfg);
                            if let Err(e) = std::fs::write(&marker, format!("{target}\n")) {
                                tracing::warn!("cannot write {}: {e}", marker.display());
                            }
                        }
                        Ok(Err(e)) => tracing::error!("cannot continue alone: {e}"),
                        Err(_) => tracing::error!("cannot continue alone: the Raft loop stopped"),
                    }
                }
            }
            Some(other) => tracing::error!("{}", notice_text(&other)),
        }
        let rec = self.record(target, epoch, method, action, true, detail);
        self.journal(rec).await;
    }

    fn record(
        &self,
        target: NodeId,
        epoch: u64,
        method: String,
        action: String,
        success: bool,
        detail: String,
    ) -> FenceRecord {
        FenceRecord {
            target,
            by: self.ctx.me,
            method,
            action,
            success,
            detail,
            at_ms: now_ms(),
            epoch,
        }
    }

    pub(super) async fn on_msg(&mut self, m: ControlMsg) {
        match m {
            ControlMsg::ForceWaitForAll { reply } => {
                self.forced_wfa = true;
                tracing::warn!("wait-for-all overridden by an operator");
                let _ = reply.send(Ok("wait-for-all overridden on this node".into()));
            }
            ControlMsg::FenceAck { target, reply } => {
                let name = self.ctx.node_name(target);
                tracing::warn!("operator acknowledged that {name} is powered off");
                self.fence_retry.remove(&target);
                // Answered by `journal` once the acknowledgement is committed.
                self.pending_replies.push((target, reply));
                self.confirmed_fence(
                    target,
                    0,
                    "manual".into(),
                    "ack".into(),
                    format!("operator acknowledged that {name} is off"),
                    // A peer heard within the loss timeout is not off, whatever the
                    // operator believes.
                    self.ctx.cfg.timers().lost_after(),
                )
                .await;
            }
            ControlMsg::Fence {
                target,
                action,
                reply,
            } => {
                if self.fencing.is_some() {
                    let _ = reply.send(Err("a fence operation is already running".into()));
                    return;
                }
                let epoch = self
                    .ctx
                    .node
                    .view()
                    .state
                    .group
                    .dirty
                    .get(&target)
                    .copied()
                    .unwrap_or(0);
                self.fence(target, epoch, action);
                if self.fencing == Some(target) {
                    self.pending_replies.push((target, reply));
                } else {
                    let why = self.notices.pop().unwrap_or_else(|| "cannot fence".into());
                    let _ = reply.send(Err(why));
                }
            }
        }
    }
}

/// The text of a notice (other actions as their debug form).
fn notice_text(a: &Action) -> String {
    match a {
        Action::Notice(n) => n.clone(),
        other => format!("{other:?}"),
    }
}
