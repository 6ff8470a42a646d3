//! `make bench-failover`: unplanned failover, oneha against keepalived, on the same
//! topology in the same run. Each run builds a fresh cluster of real hosts (namespaces,
//! systemd as PID 1, the same stand-in units), waits until the active node serves, powers it
//! off and measures, from the power-off:
//!   (a) the floating IP answering from the survivor as a client sees it (the client polls
//!       TCP to VIP:2633 every 10 ms: a reset or a connection from the survivor),
//!   (b) `opennebula.service` active on the survivor (systemd's own activation timestamp),
//!   (c) the stuck-VM report written (oneha only; `report_delay: 0s` here),
//! plus the footprint of the agent (oneha) or keepalived: RSS and CPU, idle and during the
//! failover. Configurations run interleaved, round by round, so load changes hit all alike.
//!
//! `ONEHA_BENCH_RUNS=N` (default 20) runs per configuration; `ONEHA_BENCH_QUICK=1` is 3 runs;
//! `ONEHA_BENCH_CONFIGS=witness,two-node` only the configurations whose label contains one of
//! these; `ONEHA_BENCH_IDLE_SECS=N` the idle window (default 30 s, first round only);
//! `ONEHA_BENCH_IDLE_DETAIL=1` prints each agent's threads over it.
//! The figures are printed as markdown and written to `target/bench-failover.md`.

#[path = "../tests/e2e/mod.rs"]
mod e2e;
#[path = "../tests/harness/mod.rs"]
mod harness;
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use e2e::failover::{Step, power_off_and_watch};
use e2e::keepalived::{KaCluster, KaOpts};
use e2e::{Cluster, Kind, Opts};
use harness::{Host, Node, ONED_PORT, Topology, Usage, wait_until};
use support::{interrupted, ms, threads};

/// Bound for a cluster to serve, and for a failover to complete.
const BOUND: Duration = Duration::from_secs(40);
/// Idle footprint window (first round only); `ONEHA_BENCH_IDLE_SECS` overrides it.
const IDLE_WINDOW: Duration = Duration::from_secs(30);

fn idle_window() -> Duration {
    std::env::var("ONEHA_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(IDLE_WINDOW, Duration::from_secs)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Config {
    Oneha(Kind, &'static str),
    Keepalived(KaOpts),
}

impl Config {
    fn label(&self) -> String {
        match self {
            Config::Oneha(Kind::Witness, p) => format!("oneha {p}, witness"),
            Config::Oneha(Kind::TwoNode, p) => format!("oneha {p}, two-node"),
            Config::Keepalived(k) => k.label(),
        }
    }

    fn steps(&self) -> Vec<Step> {
        match self {
            Config::Oneha(..) => Step::ALL.to_vec(),
            Config::Keepalived(_) => vec![Step::VipAnswers, Step::UnitActive, Step::Served],
        }
    }

    fn unit(&self) -> &'static str {
        match self {
            Config::Oneha(..) => "oneha.service",
            Config::Keepalived(_) => "keepalived.service",
        }
    }
}

const CONFIGS: [Config; 6] = [
    Config::Oneha(Kind::Witness, "default"),
    Config::Oneha(Kind::Witness, "fast"),
    Config::Oneha(Kind::TwoNode, "default"),
    Config::Oneha(Kind::TwoNode, "fast"),
    Config::Keepalived(KaOpts::V2_DEFAULT),
    Config::Keepalived(KaOpts::V3_FAST),
];

/// A running cluster of either kind (dropping it tears it down).
// Built once per run: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Built {
    Oneha(Cluster),
    Keepalived(KaCluster),
}

impl Built {
    fn start(cfg: Config, run: usize) -> Built {
        let name = format!("benchfo{run}");
        match cfg {
            Config::Oneha(kind, profile) => Built::Oneha(Cluster::start(
                &name,
                Opts {
                    kind,
                    profile,
                    fake_oned: Some("0s"),
                    quiet: true,
                    // The resources' default monitor interval (the tests use 1 s).
                    monitor: "10s",
                    ..Opts::default()
                },
            )),
            Config::Keepalived(k) => Built::Keepalived(KaCluster::start(&name, k)),
        }
    }

    fn topo(&self) -> &Topology {
        match self {
            Built::Oneha(c) => &c.topo,
            Built::Keepalived(c) => &c.topo,
        }
    }

    fn client(&self) -> &Host {
        match self {
            Built::Oneha(c) => &c.client,
            Built::Keepalived(c) => &c.client,
        }
    }

    /// The two front-ends.
    fn frontends(&self) -> Vec<Node> {
        let nodes = match self {
            Built::Oneha(c) => &c.nodes,
            Built::Keepalived(c) => &c.nodes,
        };
        nodes.iter().take(2).cloned().collect()
    }
}

/// What one run measured.
#[derive(Default)]
struct RunResult {
    times: BTreeMap<Step, f64>,
    /// Survivor's agent: CPU ms from the power-off to the last step, window ms, peak RSS kB.
    failover_cpu_ms: f64,
    window_ms: f64,
    peak_rss_kb: u64,
    violations: usize,
    /// (node role, RSS kB, CPU % of one core) over the idle window; first round only.
    idle: Vec<(String, u64, f64)>,
}

fn one_run(cfg: Config, run: usize, measure_idle: bool) -> Result<RunResult, String> {
    let b = Built::start(cfg, run);
    let vip = e2e::VIP.parse().map_err(|e| format!("VIP: {e}"))?;
    let client = b.client().clone();
    let mut active = None;
    wait_until(BOUND, || {
        active = client
            .tcp_get(vip, ONED_PORT)
            .ok()
            .filter(|n| n == "node1" || n == "node2");
        interrupted() || active.is_some()
    });
    let active = active.ok_or("the cluster did not serve the client")?;
    let fe = b.frontends();
    let (old, new) = if fe[0].name() == active {
        (fe[0].clone(), fe[1].clone())
    } else {
        (fe[1].clone(), fe[0].clone())
    };
    // Steady state: heartbeats flowing, the first start's report written.
    support::sleep(Duration::from_secs(2));
    let mut res = RunResult::default();
    if measure_idle {
        let window = idle_window();
        let before: Vec<Usage> = [&old, &new].map(|n| n.unit_usage(cfg.unit())).to_vec();
        let pids = [&old, &new].map(|n| n.pid_of(cfg.unit()));
        let threads_before = pids.map(|p| p.map(threads::per_thread).unwrap_or_default());
        support::sleep(window);
        for (i, (n, role)) in [(&old, "active"), (&new, "passive")].iter().enumerate() {
            let u = n.unit_usage(cfg.unit());
            let cpu = (u.cpu_usec - before[i].cpu_usec) as f64 / 1000.0 / ms(window);
            res.idle.push((role.to_string(), u.rss_kb, cpu * 100.0));
            if idle_detail()
                && let Some(p) = pids[i]
            {
                let lines = threads::report(
                    &threads_before[i],
                    &threads::per_thread(p),
                    window.as_secs_f64(),
                );
                println!(
                    "  idle {role} ({}), {:.3}% CPU (cgroup), per thread:",
                    cfg.label(),
                    cpu * 100.0
                );
                for l in lines {
                    println!("    {l}");
                }
            }
        }
    }
    if interrupted() {
        return Err("interrupted".into());
    }
    let probe = client.probe_tcp(vip, ONED_PORT, Duration::from_millis(10));
    let sampler = b.topo().sampler(vip);
    support::sleep(Duration::from_millis(300));
    let cpu0 = new.unit_usage(cfg.unit()).cpu_usec;
    let (mark, seen) =
        power_off_and_watch(&probe, &old, &new, cfg.steps(), BOUND, &interrupted, |_| {});
    let end = mark.at.elapsed();
    let u = new.unit_usage(cfg.unit());
    res.failover_cpu_ms = (u.cpu_usec.saturating_sub(cpu0)) as f64 / 1000.0;
    res.window_ms = ms(end);
    res.peak_rss_kb = u.peak_rss_kb;
    res.violations = sampler.stop().violations.len();
    for s in &seen {
        res.times.insert(s.step, ms(s.after));
    }
    if seen.len() < cfg.steps().len() {
        let missing: Vec<&str> = cfg
            .steps()
            .iter()
            .filter(|s| !res.times.contains_key(s))
            .map(|s| s.label())
            .collect();
        return Err(format!("not seen within {BOUND:?}: {}", missing.join(", ")));
    }
    Ok(res)
}

/// `ONEHA_BENCH_IDLE_DETAIL=1`: print each agent's threads over the idle window.
fn idle_detail() -> bool {
    std::env::var("ONEHA_BENCH_IDLE_DETAIL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `ONEHA_BENCH_CONFIGS=a,b`: only the configurations whose label contains one of these.
fn selected(cfg: &Config) -> bool {
    match std::env::var("ONEHA_BENCH_CONFIGS") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(str::trim)
            .any(|want| cfg.label().contains(want)),
        _ => true,
    }
}

fn runs() -> usize {
    if let Some(n) = std::env::var("ONEHA_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return n;
    }
    if std::env::var("ONEHA_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0") {
        3
    } else {
        20
    }
}

fn main() {
    support::install_interrupt_handler();
    let runs = runs();
    let machine = support::machine();
    println!("bench-failover: {runs} runs per configuration, {machine}");
    let mut results: Vec<Vec<RunResult>> = CONFIGS.iter().map(|_| Vec::new()).collect();
    let mut failures: Vec<Vec<String>> = CONFIGS.iter().map(|_| Vec::new()).collect();
    let started = Instant::now();
    'rounds: for run in 0..runs {
        for (i, cfg) in CONFIGS.iter().enumerate() {
            if interrupted() {
                break 'rounds;
            }
            if !selected(cfg) {
                continue;
            }
            let outcome = std::panic::catch_unwind(|| one_run(*cfg, run, run == 0));
            let line = match outcome {
                Ok(Ok(r)) => {
                    let t = |s| r.times.get(&s).map_or("-".into(), |v| format!("{v:.0}"));
                    let l = format!(
                        "vip {} ms, active {} ms, served {} ms, report {} ms",
                        t(Step::VipAnswers),
                        t(Step::UnitActive),
                        t(Step::Served),
                        t(Step::Report)
                    );
                    results[i].push(r);
                    l
                }
                Ok(Err(e)) => {
                    failures[i].push(format!("run {run}: {e}"));
                    format!("FAILED: {e}")
                }
                Err(_) => {
                    failures[i].push(format!("run {run}: panicked (see above)"));
                    "FAILED: panicked".into()
                }
            };
            println!(
                "[{:5.0}s] run {run:>2} {:<36} {line}",
                started.elapsed().as_secs_f64(),
                cfg.label()
            );
        }
    }
    let md = render(runs, &machine, &results, &failures);
    println!("\n{md}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-failover.md");
    match std::fs::write(&out, &md) {
        Ok(()) => println!("written to {}", out.display()),
        Err(e) => eprintln!("cannot write {}: {e}", out.display()),
    }
    let clean = support::check_nothing_left(&harness::prefixes_claimed());
    if interrupted() {
        std::process::exit(130);
    }
    std::process::exit(if clean { 0 } else { 1 });
}

fn median(v: &[f64]) -> Option<f64> {
    support::quantiles(v).map(|q| q[1])
}

fn render(
    runs: usize,
    machine: &str,
    results: &[Vec<RunResult>],
    failures: &[Vec<String>],
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Command: `make bench-failover` ({runs} runs per configuration)  "
    );
    let _ = writeln!(o, "Machine: {machine}\n");
    let metrics = [
        (
            Step::VipAnswers,
            "(a) floating IP answers from the survivor (client, 10 ms polls)",
        ),
        (
            Step::UnitActive,
            "(b) opennebula.service active on the survivor (systemd timestamp)",
        ),
        (
            Step::Served,
            "client served by the survivor's OpenNebula through the VIP",
        ),
        (
            Step::Report,
            "(c) stuck-VM report written (report_delay 0s)",
        ),
        (
            Step::PeerLost,
            "oneha: survivor reports the peer lost (status polled every 10 ms)",
        ),
        (Step::Fenced, "oneha: fence of the old node journaled"),
    ];
    for (step, title) in metrics {
        let _ = writeln!(o, "{title}, ms after the power-off:\n");
        let _ = writeln!(o, "| configuration | n | min | median | p90 | max |");
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for (i, cfg) in CONFIGS.iter().enumerate() {
            if !cfg.steps().contains(&step) {
                continue;
            }
            let v: Vec<f64> = results[i]
                .iter()
                .filter_map(|r| r.times.get(&step).copied())
                .collect();
            match support::quantiles(&v) {
                Some([a, b, c, d]) => {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {a:.0} | {b:.0} | {c:.0} | {d:.0} |",
                        cfg.label(),
                        v.len()
                    );
                }
                None => {
                    let _ = writeln!(o, "| {} | 0 | - | - | - | - |", cfg.label());
                }
            }
        }
        let _ = writeln!(o);
    }
    let med = |i: usize, s: Step| {
        let v: Vec<f64> = results[i]
            .iter()
            .filter_map(|r| r.times.get(&s).copied())
            .collect();
        median(&v)
    };
    let _ = writeln!(
        o,
        "Ratios of medians (oneha / keepalived; below 1: oneha faster):\n"
    );
    let _ = writeln!(
        o,
        "| oneha | keepalived | (a) floating IP | (b) opennebula active |"
    );
    let _ = writeln!(o, "|---|---|---|---|");
    for (a, k) in [(0, 4), (2, 4), (1, 5), (3, 5)] {
        let ratio = |s| match (med(a, s), med(k, s)) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
            _ => "-".into(),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            CONFIGS[a].label(),
            CONFIGS[k].label(),
            ratio(Step::VipAnswers),
            ratio(Step::UnitActive)
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Footprint (oneha: the agent; keepalived: its processes, notify scripts included):\n"
    );
    let _ = writeln!(
        o,
        "| configuration | idle RSS active / passive | idle CPU active / passive | failover CPU (survivor) | peak RSS (survivor) |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for (i, cfg) in CONFIGS.iter().enumerate() {
        let rs = &results[i];
        let idle = rs.iter().find(|r| !r.idle.is_empty());
        let (rss, cpu) = match idle {
            Some(r) => (
                r.idle
                    .iter()
                    .map(|(_, kb, _)| format!("{:.1} MB", *kb as f64 / 1024.0))
                    .collect::<Vec<_>>()
                    .join(" / "),
                r.idle
                    .iter()
                    .map(|(_, _, c)| format!("{c:.2}%"))
                    .collect::<Vec<_>>()
                    .join(" / "),
            ),
            None => ("-".into(), "-".into()),
        };
        let cpu_ms: Vec<f64> = rs.iter().map(|r| r.failover_cpu_ms).collect();
        let win: Vec<f64> = rs.iter().map(|r| r.window_ms).collect();
        let peak = rs.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0);
        let fo = match (median(&cpu_ms), median(&win)) {
            (Some(c), Some(w)) => format!("{c:.0} ms CPU in {w:.0} ms (median)"),
            _ => "-".into(),
        };
        let _ = writeln!(
            o,
            "| {} | {rss} | {cpu} | {fo} | {:.1} MB |",
            cfg.label(),
            peak as f64 / 1024.0
        );
    }
    let _ = writeln!(o);
    let violations: usize = results.iter().flatten().map(|r| r.violations).sum();
    let _ = writeln!(
        o,
        "Invariant samples (every 50 ms during each failover) with two holders of the VIP or \
         OpenNebula on two nodes: {violations}."
    );
    for (i, f) in failures.iter().enumerate() {
        for line in f {
            let _ = writeln!(o, "- failed run, {}: {line}", CONFIGS[i].label());
        }
    }
    o
}
