//! The invariant sampler: every 50 ms, who holds the floating IP, on which nodes the main
//! unit has processes and which nodes have each shared disk mounted; at most one of each is
//! allowed (safety rules S1 and S2, and S2 for storage: a filesystem mounted on two nodes
//! is corrupted).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::disk::SharedDisk;
use super::host::Host;
use super::node::Node;

/// Sampling period.
pub const PERIOD: Duration = Duration::from_millis(50);

/// A running sampler; [`Sampler::stop`] returns what it saw. Stops itself when dropped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    violations: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Report>>,
}

/// A moment when an invariant was broken.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Time since the sampler started.
    pub at: Duration,
    /// What was seen, e.g. `192.0.2.100 held by node1, node2`.
    pub what: String,
}

/// A change of holders, for timelines (who held what from when).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Time since the sampler started.
    pub at: Duration,
    /// Hosts holding the address.
    pub holders: Vec<String>,
    /// Nodes where the unit has processes.
    pub active: Vec<String>,
    /// Per shared disk (in creation order), the nodes that have it mounted.
    pub mounted: Vec<Vec<String>>,
}

/// What a sampler saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Number of samples taken.
    pub samples: usize,
    /// Every sample that broke an invariant.
    pub violations: Vec<Violation>,
    /// The holders and active nodes each time they changed (first sample included).
    pub changes: Vec<Change>,
}

impl Report {
    /// Panics, listing them, if any invariant was broken; also if nothing was sampled.
    pub fn assert_clean(&self) {
        assert!(self.samples > 0, "the sampler took no sample");
        assert!(
            self.violations.is_empty(),
            "invariants broken in {} of {} samples: {:#?}\ntimeline: {:#?}",
            self.violations.len(),
            self.samples,
            self.violations,
            self.changes
        );
    }
}

impl Sampler {
    /// Starts a sampler thread watching `vip` on `hosts`, `unit` on `nodes` and the mounts
    /// of `disks` on `nodes`.
    pub fn start(
        vip: IpAddr,
        unit: &str,
        hosts: Vec<Host>,
        nodes: Vec<Node>,
        disks: Vec<SharedDisk>,
    ) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let violations = Arc::new(AtomicUsize::new(0));
        let count = violations.clone();
        let unit = unit.to_string();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut report = Report::default();
            while !flag.load(Ordering::Relaxed) {
                let tick = Instant::now();
                let holders: Vec<String> = hosts
                    .iter()
                    .filter(|h| h.has_addr(vip))
                    .map(|h| h.name().to_string())
                    .collect();
                let active: Vec<String> = nodes
                    .iter()
                    .filter(|n| n.unit_has_processes(&unit))
                    .map(|n| n.name().to_string())
                    .collect();
                let mounted: Vec<Vec<String>> =
                    disks.iter().map(|d| d.mounted_on(&nodes)).collect();
                let at = start.elapsed();
                report.samples += 1;
                if holders.len() > 1 || active.len() > 1 || mounted.iter().any(|m| m.len() > 1) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                for (disk, on) in disks.iter().zip(&mounted) {
                    if on.len() > 1 {
                        let what = format!(
                            "disk {} ({}) mounted on {}",
                            disk.name(),
                            disk.device().display(),
                            on.join(", ")
                        );
                        report.violations.push(Violation { at, what });
                    }
                }
                if holders.len() > 1 {
                    let what = format!("{vip} held by {}", holders.join(", "));
                    report.violations.push(Violation { at, what });
                }
                if active.len() > 1 {
                    let what = format!("{unit} running on {}", active.join(", "));
                    report.violations.push(Violation { at, what });
                }
                let changed = report.changes.last().is_none_or(|c| {
                    c.holders != holders || c.active != active || c.mounted != mounted
                });
                if changed {
                    report.changes.push(Change {
                        at,
                        holders,
                        active,
                        mounted,
                    });
                }
                std::thread::sleep(PERIOD.saturating_sub(tick.elapsed()));
            }
            report
        });
        Sampler {
            stop,
            violations,
            thread: Some(thread),
        }
    }

    /// Samples that broke an invariant so far (while still sampling).
    pub fn violations_so_far(&self) -> usize {
        self.violations.load(Ordering::Relaxed)
    }

    /// Stops sampling and returns the report.
    pub fn stop(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
