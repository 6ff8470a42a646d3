//! The executor: performs the policy's actions (group start/stop/restart, monitors,
//! fencing) as background tasks and reports each outcome back to the control loop.
//!
//! At most one group operation runs at a time (the control loop guarantees it), and the
//! fencer serialises fence operations itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::fence::{Action as FenceAction, FenceReport, Fencer};
use crate::resources::{Group, ResourceState};

/// The outcome of an action.
#[derive(Debug)]
pub enum Done {
    /// A group start finished.
    Started {
        /// Generation it was for.
        generation: u64,
        /// Error text, if it failed.
        error: Option<String>,
        /// The start failed and so did its rollback: the node must be fenced (S8).
        must_fence: bool,
        /// How long it took.
        took: Duration,
    },
    /// A group stop finished.
    Stopped {
        /// Error text, if it failed (the node must then be fenced, S8).
        error: Option<String>,
    },
    /// An in-place restart finished.
    Restarted {
        /// Generation it ran for.
        generation: u64,
        /// Error text, and whether the stop half failed.
        error: Option<(String, bool)>,
    },
    /// The probe at agent start: whether anything of the group runs here.
    Probed {
        /// Name and state of each resource.
        states: Vec<(String, String)>,
        /// Something runs (or cannot be told).
        any_running: bool,
    },
    /// A monitor result.
    Monitor {
        /// Resource name.
        resource: String,
        /// What it saw (Err: the monitor itself failed).
        state: Result<ResourceState, String>,
        /// Monitors belong to one run of the group; stale ones are ignored.
        run: u64,
    },
    /// A fence operation finished.
    Fenced {
        /// Target node id.
        target: u64,
        /// The dirty epoch it was meant to clear.
        epoch: u64,
        /// The fencer's report.
        report: Box<FenceReport>,
    },
}

/// Runs actions in the background.
pub struct Executor {
    group: Arc<Group>,
    fencer: Option<Arc<Fencer>>,
    tx: mpsc::Sender<Done>,
    monitors: Vec<JoinHandle<()>>,
    run: u64,
}

impl Executor {
    /// An executor reporting to `tx`.
    pub fn new(group: Group, fencer: Option<Fencer>, tx: mpsc::Sender<Done>) -> Executor {
        Executor {
            group: Arc::new(group),
            fencer: fencer.map(Arc::new),
            tx,
            monitors: Vec::new(),
            run: 0,
        }
    }

    /// The fencer, if fencing is configured.
    pub fn fencer(&self) -> Option<&Fencer> {
        self.fencer.as_deref()
    }

    /// A shared handle on the fencer, for background queries.
    pub fn fencer_arc(&self) -> Option<Arc<Fencer>> {
        self.fencer.clone()
    }

    /// The group's resources, in start order.
    pub fn resource_names(&self) -> Vec<String> {
        self.group
            .resources()
            .iter()
            .map(|r| r.name().to_string())
            .collect()
    }

    /// The run number of the current monitors.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Probes every resource (agent start).
    pub fn probe(&self) {
        let (g, tx) = (self.group.clone(), self.tx.clone());
        tokio::spawn(async move {
            let probes = g.probe().await;
            let mut any = false;
            let states = probes
                .into_iter()
                .map(|p| {
                    let s = match p.state {
                        Ok(ResourceState::Stopped) => "stopped".to_string(),
                        Ok(other) => {
                            any = true;
                            other.to_string()
                        }
                        Err(e) => {
                            any = true;
                            format!("unknown: {e}")
                        }
                    };
                    (p.name, s)
                })
                .collect();
            let _ = tx
                .send(Done::Probed {
                    states,
                    any_running: any,
                })
                .await;
        });
    }

    /// Readies a later start on a standby node (systemd drop-ins loaded, so a takeover
    /// needs no daemon-reload); errors are only logged.
    pub fn prepare(&self) {
        let g = self.group.clone();
        tokio::spawn(async move {
            if let Err(e) = g.prepare().await {
                tracing::debug!("prepare: {e}");
            }
        });
    }

    /// Starts the group for `generation`.
    pub fn start(&mut self, generation: u64) {
        self.stop_monitors();
        let (g, tx) = (self.group.clone(), self.tx.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = g.start().await;
            let (error, must_fence) = match &r {
                Ok(()) => (None, false),
                Err(e) => (Some(e.to_string()), e.must_fence()),
            };
            let _ = tx
                .send(Done::Started {
                    generation,
                    error,
                    must_fence,
                    took: t0.elapsed(),
                })
                .await;
        });
    }

    /// Before stopping the group during the agent's own shutdown.
    pub async fn release_ordering(&self) {
        if let Err(e) = self.group.release_ordering().await {
            tracing::warn!("cannot drop the shutdown ordering of the units: {e}");
        }
    }

    /// Stops the group (the policy has the release journaled once it sees it stopped).
    pub fn stop(&mut self) {
        self.stop_monitors();
        let (g, tx) = (self.group.clone(), self.tx.clone());
        tokio::spawn(async move {
            let error = g.stop().await.err().map(|e| e.to_string());
            let _ = tx.send(Done::Stopped { error }).await;
        });
    }

    /// Restarts the group in place (stop in reverse, start in order).
    pub fn restart(&mut self, generation: u64) {
        self.stop_monitors();
        let (g, tx) = (self.group.clone(), self.tx.clone());
        tokio::spawn(async move {
            let error = match g.stop().await {
                Err(e) => Some((e.to_string(), true)),
                Ok(()) => g
                    .start()
                    .await
                    .err()
                    .map(|e| (e.to_string(), e.must_fence())),
            };
            let _ = tx.send(Done::Restarted { generation, error }).await;
        });
    }

    /// Starts one monitor task per resource, each at its own interval.
    pub fn start_monitors(&mut self) {
        self.stop_monitors();
        self.run += 1;
        for idx in 0..self.group.resources().len() {
            let (g, tx, run) = (self.group.clone(), self.tx.clone(), self.run);
            self.monitors.push(tokio::spawn(async move {
                let Some(interval) = g.resources().get(idx).map(|r| r.monitor_interval()) else {
                    return;
                };
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await; // the first tick is immediate: the start just checked it
                loop {
                    tick.tick().await;
                    let Some(r) = g.resources().get(idx) else {
                        return;
                    };
                    let state = r.monitor().await.map_err(|e| e.to_string());
                    let done = Done::Monitor {
                        resource: r.name().to_string(),
                        state,
                        run,
                    };
                    if tx.send(done).await.is_err() {
                        return;
                    }
                }
            }));
        }
    }

    /// Cancels the monitors (before any stop, restart or start).
    pub fn stop_monitors(&mut self) {
        for m in self.monitors.drain(..) {
            m.abort();
        }
        self.run += 1;
    }

    /// Fences `target` (by name) after `delay`, to clear its dirty `epoch`.
    pub fn fence(
        &self,
        target: u64,
        name: String,
        epoch: u64,
        delay: Duration,
        action: FenceAction,
    ) {
        let Some(f) = self.fencer.clone() else {
            return;
        };
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let report = f.fence(&name, action).await;
            let _ = tx
                .send(Done::Fenced {
                    target,
                    epoch,
                    report: Box::new(report),
                })
                .await;
        });
    }
}
