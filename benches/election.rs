//! `make bench-election`: time to elect a leader from a cold start and to re-elect after
//! the leader's kill -9, for the default and fast timer profiles; the idle agent's RSS and
//! CPU. Real agent processes on loopback, like tests/cluster.rs.

mod common;
#[path = "../tests/local/mod.rs"]
mod local;
#[path = "support/threads.rs"]
#[allow(dead_code)] // the per-thread report is bench-failover's
mod threads;

use common::{runs, stats};
use std::time::{Duration, Instant};

use local::LocalCluster;

/// Polls the survivors every 2 ms until they agree on a leader other than `old`.
fn wait_new_leader(c: &LocalCluster, old: usize, t0: Instant) -> Option<f64> {
    while t0.elapsed() < Duration::from_secs(20) {
        let leaders: Vec<Option<String>> = c
            .running()
            .iter()
            .map(|&i| {
                c.status(i).and_then(|s| {
                    (s.raft.role == "leader" || s.raft.leader.is_some())
                        .then_some(s.raft.leader)
                        .flatten()
                })
            })
            .collect();
        if let Some(Some(l)) = leaders.first()
            && leaders.iter().all(|x| x.as_deref() == Some(l.as_str()))
            && c.index(l) != old
        {
            return Some(t0.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn profile(name: &str) {
    let extra = format!("timers:\n  profile: {name}\n");
    let mut cold = Vec::new();
    let mut re = Vec::new();
    for run in 0..runs() {
        let t0 = Instant::now();
        let mut c = LocalCluster::start(
            &format!("bench-{name}-{run}"),
            &["frontend", "frontend", "witness"],
            &extra,
        );
        let Some(leader) = c.wait_leader(Duration::from_secs(20)) else {
            eprintln!("run {run}: no leader");
            continue;
        };
        cold.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Let followers settle into steady heartbeats before the kill.
        std::thread::sleep(Duration::from_millis(300));
        let t1 = Instant::now();
        c.kill9(leader);
        match wait_new_leader(&c, leader, t1) {
            Some(ms) => re.push(ms),
            None => eprintln!("run {run}: no re-election"),
        }
        if run == 0 {
            idle(&mut c, name);
        }
    }
    stats(&format!("{name}: cold start to leader"), cold);
    stats(&format!("{name}: re-election after kill -9"), re);
}

fn idle(c: &mut LocalCluster, name: &str) {
    // Bring the killed node back, then measure every agent over 30 s of idleness.
    for i in 0..c.agents.len() {
        c.start_agent(i);
    }
    c.wait_leader(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let pids: Vec<u32> = c
        .agents
        .iter()
        .filter_map(|a| a.child.as_ref().map(|ch| ch.id()))
        .collect();
    let before: Vec<threads::ThreadTotals> = pids.iter().map(|&p| threads::totals(p)).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let window = t0.elapsed().as_secs_f64();
    for (k, &p) in pids.iter().enumerate() {
        let now = threads::totals(p);
        let cpu = now.cpu_ns.saturating_sub(before[k].cpu_ns) as f64 / 1e9 / window * 100.0;
        let wakeups = now.wakeups.saturating_sub(before[k].wakeups) as f64 / window;
        let role = c
            .status(k)
            .map(|s| s.raft.role)
            .unwrap_or_else(|| "?".into());
        println!(
            "{name}: idle agent {} ({role}) RSS {:.1} MB, CPU {:.2}% of one core, \
             {wakeups:.0} wake-ups/s",
            c.agents[k].name,
            local::rss_kb(p) as f64 / 1024.0,
            cpu
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    println!(
        "bench-election: 3 agents (2 front-ends + witness) on loopback, {} runs per profile",
        runs()
    );
    // ONEHA_BENCH_PROFILES=default: one profile only.
    let only = std::env::var("ONEHA_BENCH_PROFILES").unwrap_or_default();
    for p in ["default", "fast"] {
        if only.is_empty() || only.split(',').any(|o| o == p) {
            profile(p);
        }
    }
}
