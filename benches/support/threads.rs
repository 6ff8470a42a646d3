//! Per-thread CPU time and wake-ups of a process, from `/proc/PID/task/*`: schedstat's
//! nanoseconds (exact, unlike the 10 ms ticks of `/proc/PID/stat`) and the voluntary
//! context switches (each one a sleep, so each one a later wake-up).

use std::collections::BTreeMap;

/// One thread's totals so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadTotals {
    /// CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Voluntary context switches.
    pub wakeups: u64,
}

/// Every thread of `pid` by `TID name`, with its totals so far (empty if the process is gone).
pub fn per_thread(pid: u32) -> BTreeMap<String, ThreadTotals> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for t in tasks.filter_map(Result::ok) {
        let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
        let cpu_ns = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let wakeups = read("status")
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let key = format!(
            "{} {}",
            t.file_name().to_string_lossy(),
            read("comm").trim()
        );
        out.insert(key, ThreadTotals { cpu_ns, wakeups });
    }
    out
}

/// The sum over every thread of `pid`.
pub fn totals(pid: u32) -> ThreadTotals {
    per_thread(pid)
        .values()
        .fold(ThreadTotals::default(), |a, t| ThreadTotals {
            cpu_ns: a.cpu_ns + t.cpu_ns,
            wakeups: a.wakeups + t.wakeups,
        })
}

/// Per thread, what was spent between `before` and `after` over `secs` seconds, as lines
/// `TID name: CPU % of one core, wake-ups/s` (threads born in between count from zero).
pub fn report(
    before: &BTreeMap<String, ThreadTotals>,
    after: &BTreeMap<String, ThreadTotals>,
    secs: f64,
) -> Vec<String> {
    after
        .iter()
        .map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or_default();
            format!(
                "{k}: {:.3}% CPU, {:.1} wake-ups/s",
                a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1e9 / secs * 100.0,
                a.wakeups.saturating_sub(b.wakeups) as f64 / secs
            )
        })
        .collect()
}
