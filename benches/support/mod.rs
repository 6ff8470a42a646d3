//! Shared by the demo, the failover benchmark and the fault campaign: Ctrl-C handling (a
//! flag, so the program stops at the next check and its topology's drop guards tear down),
//! order statistics, and the machine's description for the figures.
#![allow(dead_code)] // each program uses a different part

pub mod threads;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM handler (sets the flag) and a panic hook that stays quiet once
/// interrupted: commands killed by the same Ctrl-C make the harness panic, and that unwind
/// is the teardown, not an error worth a backtrace.
pub fn install_interrupt_handler() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            eprintln!("cannot install the {sig} handler: {e}; Ctrl-C will not tear down");
        }
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !interrupted() {
            default(info);
        }
    }));
}

/// True once Ctrl-C (or SIGTERM) arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Sleeps `d` in small steps; returns false early if interrupted.
pub fn sleep(d: Duration) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if interrupted() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(end - std::time::Instant::now()));
    }
    !interrupted()
}

/// min, median, p90, max of `v` (nearest rank), or `None` when empty.
pub fn quantiles(v: &[f64]) -> Option<[f64; 4]> {
    let mut v: Vec<f64> = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    Some([pick(0.0)?, pick(0.5)?, pick(0.9)?, pick(1.0)?])
}

/// `nproc`, `uname -r` and the CPU model, in one line.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_string();
    format!(
        "nproc {cpus}, kernel {}, CPU \"{model}\", load average {load} at start",
        kernel.trim()
    )
}

/// Milliseconds of a duration, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The end-of-run check, like a test's: nothing left of any topology this process created
/// (namespaces with the bridge and cables, node cgroups, processes, files). Prints the
/// result; returns false if something is left.
pub fn check_nothing_left(prefixes: &[String]) -> bool {
    let left: Vec<String> = prefixes
        .iter()
        .flat_map(|p| crate::harness::leftovers(p))
        .collect();
    if left.is_empty() {
        println!(
            "check: nothing left behind by {} topolog{} (network namespaces with their bridge \
             and cables, node cgroups, processes, files)",
            prefixes.len(),
            if prefixes.len() == 1 { "y" } else { "ies" }
        );
        return true;
    }
    println!("check FAILED: left behind:");
    for l in &left {
        println!("  {l}");
    }
    println!("remove them with `make harness-cleanup`");
    false
}
