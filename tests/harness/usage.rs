//! Footprint of a unit, read from the host: CPU time from its cgroup's `cpu.stat` (children
//! such as notify scripts included) and resident memory of its processes.

use std::fs;

use super::node::Node;

/// CPU and memory of one unit at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used so far by every process the unit ever had (µs, user + system).
    pub cpu_usec: u64,
    /// Sum of the resident set sizes of its live processes (kB).
    pub rss_kb: u64,
    /// Sum of their peak resident set sizes (kB, `VmHWM`).
    pub peak_rss_kb: u64,
    /// Number of live processes.
    pub procs: usize,
}

impl Node {
    /// The footprint of `unit` now; zeros when it has no cgroup (not running, node off).
    pub fn unit_usage(&self, unit: &str) -> Usage {
        let cg = self.unit_cgroup(unit);
        let cpu_usec = fs::read_to_string(cg.join("cpu.stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        let mut u = Usage {
            cpu_usec,
            ..Usage::default()
        };
        let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            u.procs += 1;
            u.rss_kb += status_kb(&status, "VmRSS:");
            u.peak_rss_kb += status_kb(&status, "VmHWM:");
        }
        u
    }
}

fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
