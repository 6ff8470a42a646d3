//! What comes back to the control loop: executor outcomes (probe, start, stop, restart,
//! monitors, fences) and claim results. The held state follows them; failures are proposed
//! to the replicated state.

use std::time::Instant;

use super::Loop;
use crate::cluster::state::Command;
use crate::executor::Done;
use crate::policy::Held;
use crate::resources::ResourceState;

impl Loop {
    pub(super) fn on_claimed(&mut self, generation: u64, r: Result<(), String>) {
        if self.held != Held::Starting(generation) {
            return;
        }
        match r {
            Ok(()) => {
                tracing::info!(generation, "claim committed: starting the group");
                self.ex.start(generation);
            }
            Err(why) => {
                tracing::warn!(generation, "not starting the group: claim failed: {why}");
                self.held = std::mem::take(&mut self.claim_prev);
                self.busy = false;
            }
        }
    }

    pub(super) async fn on_done(&mut self, d: Done) {
        let me = self.ctx.me;
        match d {
            Done::Probed {
                states,
                any_running,
            } => {
                tracing::info!(?states, "probed the group's resources");
                self.states = states;
                self.held = if any_running {
                    Held::Unknown
                } else {
                    Held::Stopped
                };
                self.busy = false;
                if !any_running {
                    self.ex.prepare();
                }
            }
            Done::Started {
                generation,
                error,
                must_fence,
                took,
            } => {
                self.busy = false;
                match error {
                    None => {
                        tracing::info!(generation, ?took, "group started");
                        crate::events::group_started(
                            &self.ctx.name,
                            generation,
                            self.takeover_since.contains_key(&generation),
                        );
                        if let Some(t0) = self.takeover_since.remove(&generation) {
                            self.ctx.counters.record_failover(t0.elapsed());
                        }
                        self.takeover_since.clear();
                        self.monitor_failed.clear();
                        self.held = Held::Running(generation);
                        self.set_states("running");
                        self.ex.start_monitors();
                        self.propose(Command::Started {
                            node: me,
                            generation,
                        });
                        self.ctx.after_start();
                    }
                    Some(e) if must_fence => {
                        tracing::error!(
                            generation,
                            "group start failed and could not be undone: {e}"
                        );
                        crate::events::group_failed(Some(generation), "start (not undone)", &e);
                        self.held = Held::StopFailed(e);
                    }
                    Some(e) => {
                        tracing::error!(generation, "group start failed: {e}");
                        crate::events::group_failed(Some(generation), "start", &e);
                        self.start_failed(generation, e);
                    }
                }
            }
            Done::Stopped { error } => {
                self.busy = false;
                match error {
                    None => {
                        tracing::info!("group stopped");
                        self.monitor_failed.clear();
                        self.held = Held::Stopped;
                        self.set_states("stopped");
                        self.ex.prepare();
                    }
                    Some(e) => {
                        tracing::error!("group stop FAILED, this node must be fenced: {e}");
                        crate::events::group_failed(None, "stop", &e);
                        self.held = Held::StopFailed(e);
                    }
                }
            }
            Done::Restarted { generation, error } => {
                self.busy = false;
                self.restarting = false;
                match error {
                    None => {
                        tracing::info!("group restarted in place");
                        self.monitor_failed.clear();
                        self.held = Held::Running(generation);
                        self.set_states("running");
                        self.ex.start_monitors();
                    }
                    Some((e, true)) => {
                        tracing::error!("restart failed while stopping: {e}");
                        crate::events::group_failed(Some(generation), "restart (stop)", &e);
                        self.held = Held::StopFailed(e);
                    }
                    Some((e, false)) => {
                        tracing::error!("restart failed while starting: {e}");
                        crate::events::group_failed(Some(generation), "restart (start)", &e);
                        self.start_failed(generation, e);
                    }
                }
            }
            Done::Monitor {
                resource,
                state,
                run,
            } => {
                if run != self.ex.run() || !matches!(self.held, Held::Running(_)) {
                    return;
                }
                let text = match &state {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("monitor failed: {e}"),
                };
                if let Some(s) = self.states.iter_mut().find(|(n, _)| *n == resource) {
                    s.1 = text.clone();
                }
                let known = self.monitor_failed.iter().any(|(n, _)| *n == resource);
                match state {
                    // A link that came back within its grace: nothing failed after all.
                    Ok(ResourceState::Running) => {
                        if self.link_down.remove(&resource).is_some() && known {
                            tracing::info!(resource = %resource, "monitor: the link is back");
                            self.monitor_failed.retain(|(n, _)| *n != resource);
                        }
                    }
                    _ if known => {}
                    _ => {
                        tracing::warn!(resource = %resource, "monitor: {text}");
                        if matches!(state, Ok(ResourceState::LinkDown(_))) {
                            self.link_down.insert(resource.clone(), Instant::now());
                        } else {
                            self.link_down.remove(&resource);
                        }
                        self.monitor_failed.push((resource, text));
                    }
                }
            }
            Done::Fenced {
                target,
                epoch,
                report,
            } => self.on_fenced(target, epoch, *report).await,
        }
    }

    /// A start (or the start half of a restart) failed and was rolled back cleanly.
    fn start_failed(&mut self, generation: u64, reason: String) {
        self.held = Held::Stopped;
        self.failed_start = Some((generation, Instant::now()));
        self.set_states("stopped");
        self.propose(Command::StartFailed {
            node: self.ctx.me,
            generation,
            reason,
        });
    }

    fn set_states(&mut self, s: &str) {
        self.states = self
            .ex
            .resource_names()
            .into_iter()
            .map(|n| (n, s.to_string()))
            .collect();
    }
}
