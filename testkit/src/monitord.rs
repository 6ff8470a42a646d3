//! The fake oned's background work: a monitord (each host with a probe `ADDR:PORT` is
//! TCP-connected every beacon interval; after `monitoring_interval` without a success it goes
//! to ERROR and its RUNNING VMs to UNKNOWN; a success brings it back to MONITORED), the
//! driver operations in flight, and the scheduler (PENDING and RESCHED VMs placed on a
//! MONITORED host after `sched_delay`).
//!
//! Like a restarted monitord, a new fake starts counting the monitoring interval afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::world::host_state;
use super::world_handle::{WorldHandle, now_ms};
use super::world_ops;

/// Stops the background work when dropped.
#[derive(Debug)]
pub struct Background {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the background work of `world` on the current tokio runtime.
pub fn start(world: WorldHandle) -> Background {
    Background {
        task: tokio::spawn(run(world)),
    }
}

/// What the monitord remembers between beacons (not persisted: a new fake starts afresh).
#[derive(Debug, Default)]
struct Memory {
    last_ok_ms: BTreeMap<i64, u64>,
    /// Hosts reported in ERROR since their last successful probe.
    reported: BTreeSet<i64>,
}

async fn run(world: WorldHandle) {
    let mut mem = Memory::default();
    loop {
        let (beacon, probes) = world.read(|w| {
            let probes: Vec<(i64, String)> = w
                .hosts
                .iter()
                .filter(|h| h.state != host_state::OFFLINE)
                .filter_map(|h| h.probe.clone().map(|p| (h.id, p)))
                .collect();
            (w.settings.beacon_interval_ms.max(10), probes)
        });
        let timeout = Duration::from_millis(beacon.clamp(100, 2_000));
        let checks = probes.into_iter().map(|(id, addr)| async move {
            let ok = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr.as_str()))
                .await
                .is_ok_and(|r| r.is_ok());
            (id, addr, ok)
        });
        let results = futures::future::join_all(checks).await;
        let now = now_ms();
        let tick = |w: &mut super::world::World| {
            let mut changed = false;
            let interval = w.settings.monitoring_interval_ms;
            for (id, addr, ok) in &results {
                let last = *mem.last_ok_ms.entry(*id).or_insert(now);
                let state = w.host(*id).map_or(host_state::OFFLINE, |h| h.state);
                if *ok {
                    mem.last_ok_ms.insert(*id, now);
                    mem.reported.remove(id);
                    if matches!(state, host_state::INIT | host_state::ERROR) {
                        changed |= world_ops::monitor_host_state(
                            w,
                            *id,
                            host_state::MONITORED,
                            "",
                            (now / 1000) as i64,
                        );
                    }
                } else if now.saturating_sub(last) >= interval
                    && match state {
                        host_state::ERROR | host_state::OFFLINE => false,
                        // A disabled host stays DISABLED: its VMs go UNKNOWN once.
                        host_state::DISABLED => !mem.reported.contains(id),
                        _ => true,
                    }
                {
                    mem.reported.insert(*id);
                    let msg = format!(
                        "Could not monitor host: no answer from {addr} for {} s",
                        now.saturating_sub(last) / 1000
                    );
                    changed |= world_ops::monitor_host_state(
                        w,
                        *id,
                        host_state::ERROR,
                        &msg,
                        (now / 1000) as i64,
                    );
                }
            }
            // Hosts without a probe are monitored successfully.
            let unprobed: Vec<i64> = w
                .hosts
                .iter()
                .filter(|h| h.probe.is_none() && h.state == host_state::INIT)
                .map(|h| h.id)
                .collect();
            for id in unprobed {
                changed |= world_ops::monitor_host_state(
                    w,
                    id,
                    host_state::MONITORED,
                    "",
                    (now / 1000) as i64,
                );
            }
            changed |= world_ops::drivers_tick(w, now);
            changed |= world_ops::sched_tick(w, now);
            changed
        };
        world.change(tick, |_, changed| *changed);
        tokio::time::sleep(Duration::from_millis(beacon)).await;
    }
}
