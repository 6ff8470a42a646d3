//! The fault campaign: a seeded random schedule of faults against a oneha cluster of real
//! hosts, with the invariant sampler running throughout (at most one holder of the floating
//! IP, OpenNebula on at most one node) and, after each fault heals, a check that exactly one
//! owner serves within a bound. Used by `make chaos` (benches/chaos.rs) and the short CI run
//! (tests/chaos_short.rs).

#![allow(dead_code)]

pub mod inject;
pub mod report;
pub mod schedule;

use std::time::{Duration, Instant};

use crate::e2e::{Cluster, Kind, Opts, VIP, admin};
use crate::harness::{ONED_PORT, Probe, Sampler};

use inject::{AGENT, heal_network, heal_nodes, inject};
pub use report::{Finding, Outcome};
use schedule::{Fault, Link, Planned, draw_links};

/// What to run.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// Seed of the schedule.
    pub seed: u64,
    /// Number of faults.
    pub faults: usize,
    /// Topology.
    pub kind: Kind,
    /// Timer profile.
    pub profile: &'static str,
    /// Networks between the front-ends: 1, or 2 (two-node only: the LAN and a
    /// back-to-back cable; adds the one-link faults).
    pub links: u8,
    /// After a fault heals, exactly one owner must serve within this.
    pub bound: Duration,
    /// Name for the topology (test name).
    pub name: &'static str,
}

/// The live pieces: the cluster, its sampler and the client's probe, started together.
struct Rig {
    c: Cluster,
    sampler: Sampler,
    probe: Probe,
    started: Instant,
    /// (fault index, description, from, to) relative to `started`, to attribute violations.
    windows: Vec<(usize, String, Duration, Duration)>,
}

impl Rig {
    fn build(camp: &Campaign) -> Rig {
        let c = Cluster::start(
            camp.name,
            Opts {
                kind: camp.kind,
                profile: camp.profile,
                links: camp.links,
                quiet: true,
                ..Opts::default()
            },
        );
        let vip = c.vip();
        let sampler = c.topo.sampler(vip);
        let probe = c
            .client
            .probe_tcp(vip, ONED_PORT, Duration::from_millis(10));
        Rig {
            c,
            sampler,
            probe,
            started: Instant::now(),
            windows: Vec::new(),
        }
    }

    /// Stops the sampler and turns its violations into findings: one per stretch of
    /// consecutive bad samples, blamed on the last fault injected before it began.
    fn finish(self, out: &mut Outcome) {
        let report = self.sampler.stop();
        out.samples += report.samples;
        let mut stretches: Vec<(Duration, Duration, String, usize)> = Vec::new();
        for v in report.violations {
            let kind = v.what.split(" held by ").next().unwrap_or("").to_string();
            let kind = kind.split(" running on ").next().unwrap_or("").to_string();
            let open = stretches.iter_mut().rev().find(|(_, to, what, _)| {
                what.starts_with(&kind) && v.at.saturating_sub(*to) <= Duration::from_millis(200)
            });
            match open {
                Some(st) => {
                    st.1 = v.at;
                    st.3 += 1;
                }
                None => stretches.push((v.at, v.at, v.what.clone(), 1)),
            }
        }
        for (from, to, what, n) in stretches {
            let (index, fault) = self
                .windows
                .iter()
                .rev()
                .find(|(_, _, start, _)| *start <= from)
                .map(|(i, f, _, _)| (*i, f.clone()))
                .unwrap_or((usize::MAX, "before the first fault".into()));
            out.violations.push(Finding {
                index,
                fault,
                what: format!(
                    "{what}, from {:.2}s to {:.2}s of the run ({n} samples)",
                    from.as_secs_f64(),
                    to.as_secs_f64()
                ),
            });
        }
    }
}

/// The single owner serving now, if the cluster has settled: the client is served by X
/// through the floating IP, only X holds the address, only X runs OpenNebula, and every
/// node's agent reports the group started on X.
pub fn settled(c: &Cluster) -> Option<String> {
    let vip = c.vip();
    let name = c.client.tcp_get(vip, ONED_PORT).ok()?;
    if c.topo.addr_holders(vip) != [name.clone()] {
        return None;
    }
    let running: Vec<&str> = c
        .nodes
        .iter()
        .filter(|n| n.unit_has_processes("opennebula.service"))
        .map(|n| n.name())
        .collect();
    if running != [name.as_str()] {
        return None;
    }
    for n in &c.nodes {
        let s = admin::status(n)?;
        if s.group.owner.as_deref() != Some(name.as_str()) || s.group.state != "started" {
            return None;
        }
    }
    Some(name)
}

/// Heals what is left (network, fence daemon, nodes, agents) until one owner serves or the
/// bound passes. Returns the owner and the time it took, plus what healing found.
fn recover(
    c: &mut Cluster,
    bound: Duration,
    killed: Option<&str>,
    stop: &dyn Fn() -> bool,
) -> (Option<String>, Duration, inject::Healed) {
    let t = Instant::now();
    heal_network(c);
    let mut all = inject::Healed::default();
    while t.elapsed() < bound && !stop() {
        let h = heal_nodes(c, killed);
        all.booted.extend(h.booted);
        for (node, why) in h.agent_exited {
            if !all.agent_exited.iter().any(|(n, _)| *n == node) {
                all.agent_exited.push((node, why));
            }
        }
        if let Some(owner) = settled(c) {
            return (Some(owner), t.elapsed(), all);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (None, t.elapsed(), all)
}

/// Runs the campaign; `log` gets one line per fault; `stop` interrupts between steps.
pub fn run(camp: &Campaign, stop: &dyn Fn() -> bool, log: &mut dyn FnMut(&str)) -> Outcome {
    let witness = camp.kind == Kind::Witness;
    let schedule: Vec<Planned> = draw_links(camp.seed, camp.faults, witness, camp.links);
    let mut out = Outcome {
        seed: camp.seed,
        setup: format!(
            "{} topology{}, {} timers, bound {:?}",
            if witness { "witness" } else { "two-node" },
            if camp.links == 2 {
                " on two networks"
            } else {
                ""
            },
            camp.profile,
            camp.bound
        ),
        ..Outcome::default()
    };
    let t0 = Instant::now();
    let sleep = |d: Duration| {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if stop() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
        true
    };
    let mut rig = Rig::build(camp);
    let (mut owner, _, _) = recover(&mut rig.c, camp.bound, None, stop);
    for (i, p) in schedule.iter().enumerate() {
        if stop() {
            break;
        }
        if owner.is_none() {
            // No single owner after the last fault (recorded then): go on with a fresh
            // cluster, so every planned fault is still injected.
            rig.finish(&mut out);
            rig = Rig::build(camp);
            owner = recover(&mut rig.c, camp.bound, None, stop).0;
        }
        let Some(before) = owner.clone() else {
            out.liveness.push(Finding {
                index: i,
                fault: "(fresh cluster)".into(),
                what: format!(
                    "a fresh cluster had no single owner within {:?}",
                    camp.bound
                ),
            });
            continue;
        };
        let desc = describe(&p.fault, &before, &rig.c);
        let clock = utc_now();
        let bad_before = rig.sampler.violations_so_far();
        let start = Instant::now();
        let from = rig.started.elapsed();
        rig.windows.push((i, desc.clone(), from, from));
        let target = |t| inject::resolve(&rig.c, &before, t).name().to_string();
        let killed = match &p.fault {
            Fault::AgentKill(t) => Some(target(*t)),
            _ => None,
        };
        let powered_off = match &p.fault {
            Fault::PowerCycle(t) => Some(target(*t)),
            Fault::FenceDown(true) => Some(before.clone()),
            Fault::WitnessDown if witness => Some("node3".to_string()),
            _ => None,
        };
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inject(&mut rig.c, &before, &p.fault, p.hold, &sleep);
            recover(&mut rig.c, camp.bound, killed.as_deref(), stop)
        }));
        let (after, took, healed) = match step {
            Ok(r) => r,
            Err(e) => {
                // The harness itself failed (a command it could not run): keep the finding,
                // start over on a fresh cluster.
                let what = panic_text(e.as_ref());
                log(&format!("#{i:<3} {clock} {desc:<50} HARNESS ERROR: {what}"));
                log(&format!(
                    "#{i:<3} ! {}",
                    save_logs(&rig.c, camp, i, &mut out)
                ));
                out.harness_errors.push(Finding {
                    index: i,
                    fault: desc.clone(),
                    what,
                });
                rig.finish(&mut out);
                rig = Rig::build(camp);
                owner = recover(&mut rig.c, camp.bound, None, stop).0;
                continue;
            }
        };
        let unavailable =
            rig.probe
                .unserved_time(start, Instant::now(), Duration::from_millis(100));
        if let Some(w) = rig.windows.last_mut() {
            w.3 = rig.started.elapsed();
        }
        rig.probe.forget_before(Instant::now());
        out.injected += 1;
        let s = out.by_type.entry(p.fault.kind()).or_default();
        s.injected += 1;
        s.unavailable += unavailable;
        s.worst_unavailable = s.worst_unavailable.max(unavailable);
        s.worst_recovery = s.worst_recovery.max(took);
        let mut booted = healed.booted.clone();
        if let Some(at) = powered_off
            .as_ref()
            .and_then(|n| booted.iter().position(|b| b.split('@').next() == Some(n)))
        {
            booted.remove(at);
        }
        s.fenced_nodes += booted.len();
        let moved = after.as_ref().is_some_and(|a| *a != before);
        if moved {
            s.failovers += 1;
            s.failover_unavailable.push(unavailable);
            out.failovers += 1;
        }
        for (node, why) in healed.agent_exited {
            out.agent_exits.push(Finding {
                index: i,
                fault: desc.clone(),
                what: format!("agent on {node} was not running: {why}"),
            });
        }
        let line = match &after {
            Some(a) => format!(
                "#{i:<3} {clock} {desc:<50} hold {:>4.1}s | owner {before} -> {a} | recovered {:>5.2}s after heal | unavailable {:>5.2}s{}",
                p.hold.as_secs_f64(),
                took.as_secs_f64(),
                unavailable.as_secs_f64(),
                if healed.booted.is_empty() {
                    String::new()
                } else {
                    format!(" | booted {}", healed.booted.join(","))
                }
            ),
            None => {
                let what = format!(
                    "no single owner within {:?} after healing; {}",
                    camp.bound,
                    diagnose(&rig.c)
                );
                out.liveness.push(Finding {
                    index: i,
                    fault: desc.clone(),
                    what: what.clone(),
                });
                format!("#{i:<3} {clock} {desc:<50} LIVENESS FAILURE: {what}")
            }
        };
        log(&line);
        let bad = rig.sampler.violations_so_far() - bad_before;
        if bad > 0 || after.is_none() {
            let why = if bad > 0 {
                format!("{bad} bad invariant samples")
            } else {
                "no single owner".to_string()
            };
            log(&format!(
                "#{i:<3} ! {why}: {}",
                save_logs(&rig.c, camp, i, &mut out)
            ));
        }
        owner = after;
        if !sleep(p.pause) {
            break;
        }
    }
    rig.finish(&mut out);
    out.took = t0.elapsed();
    out
}

/// The fault with its targets named.
fn describe(f: &Fault, owner: &str, c: &Cluster) -> String {
    let n = |t| inject::resolve(c, owner, t).name().to_string();
    match f {
        Fault::PowerCycle(t) => format!("power-off + boot of {}", n(*t)),
        Fault::AgentKill(t) => format!("kill -9 of the agent on {}", n(*t)),
        Fault::AgentHang(t) => format!("SIGSTOP/SIGCONT of the agent on {}", n(*t)),
        Fault::Partition(a, b) => format!("partition {} <-> {}", n(*a), n(*b)),
        Fault::OneWay(a, b) => format!("one-way partition {} -> {}", n(*a), n(*b)),
        Fault::Loss(t, p) => format!("{p}% loss at {}", n(*t)),
        Fault::LinkFlap(t, flaps) => format!("{} link flaps of {}", flaps.len(), n(*t)),
        Fault::FenceDown(false) => "fence device down".to_string(),
        Fault::FenceDown(true) => format!("fence device down + power-off of {owner}"),
        Fault::WitnessDown => "witness down + boot".to_string(),
        Fault::AgentRestart(t) => format!("agent restart on {}", n(*t)),
        Fault::OneLinkDown(l, t) => format!("{} down at {}", link_name(*l), n(*t)),
        Fault::OneLinkFlap(l, t, flaps) => {
            format!("{} {} flaps at {}", flaps.len(), link_name(*l), n(*t))
        }
        Fault::OneLinkLossy(l, t, p) => format!("{p}% loss on {} at {}", link_name(*l), n(*t)),
    }
}

fn link_name(l: Link) -> &'static str {
    match l {
        Link::Lan => "LAN link (between the front-ends)",
        Link::Crossover => "crossover link",
    }
}

/// What each node says, for a liveness failure.
fn diagnose(c: &Cluster) -> String {
    let mut parts = Vec::new();
    for n in &c.nodes {
        if !n.is_on() {
            parts.push(format!("{}: off", n.name()));
            continue;
        }
        let agent = if n.unit_has_processes(AGENT) {
            "agent up"
        } else {
            "agent DOWN"
        };
        let s = match admin::status(n) {
            Some(s) => format!(
                "{} owner {:?} state {} waiting {:?} role {} quorum `{}` fencing {:?} notices {:?}",
                agent,
                s.group.owner,
                s.group.state,
                s.group.waiting_for,
                s.raft.role,
                s.quorum,
                s.fencing.in_progress,
                s.notices
            ),
            None => format!("{agent}, no status"),
        };
        parts.push(format!("{}: {s}", n.name()));
    }
    parts.push(format!(
        "holders of {VIP}: {:?}; client: {:?}",
        c.topo.addr_holders(c.vip()),
        c.client.tcp_get(c.vip(), ONED_PORT)
    ));
    parts.join("; ")
}

/// Copies every node's logs (and the fence daemon's) to
/// `target/chaos-logs/seed-SEED-TOPOLOGY-fault-N/`, since the topology's files go with it.
fn save_logs(c: &Cluster, camp: &Campaign, index: usize, out: &mut Outcome) -> String {
    let kind = if camp.kind == Kind::Witness {
        "witness"
    } else {
        "two-node"
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/chaos-logs")
        .join(format!("seed-{}-{kind}-fault-{index}", camp.seed));
    let copy = |from: &std::path::Path, to: &std::path::Path| -> std::io::Result<()> {
        std::fs::create_dir_all(to.parent().unwrap_or(to))?;
        std::fs::copy(from, to).map(|_| ())
    };
    for n in &c.nodes {
        let Ok(entries) = std::fs::read_dir(n.log_dir()) else {
            continue;
        };
        for e in entries.flatten() {
            let _ = copy(&e.path(), &dir.join(n.name()).join(e.file_name()));
        }
    }
    let _ = copy(
        &c.topo.dir().join("fence-daemon.log"),
        &dir.join("fence-daemon.log"),
    );
    let shown = dir.display().to_string();
    out.saved_logs.push(shown.clone());
    format!("logs saved in {shown}")
}

/// The UTC time of day with milliseconds, as the agents' logs print it.
pub fn utc_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let day = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3_600_000,
        day / 60_000 % 60,
        day / 1000 % 60,
        day % 1000
    )
}

/// The message of a caught panic.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic without a message".to_string())
}
