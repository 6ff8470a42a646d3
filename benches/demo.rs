//! `make demo`: a oneha cluster of real hosts on this machine (network namespaces, systemd as
//! PID 1 of each front-end, a hypervisor with a fence daemon, a client), its status, the
//! active node powered off, and the failover narrated as it happens with the times measured
//! (peer lost, fence, floating IP, OpenNebula, stuck-VM report). Then everything is torn
//! down, also on Ctrl-C, and checked gone.
//!
//! `ONEHA_DEMO_TOPOLOGY=witness` (default: two front-ends and a witness) or `two-node`;
//! `ONEHA_DEMO_PROFILE=default` (default) or `fast`.

#[path = "../tests/e2e/mod.rs"]
mod e2e;
#[path = "../tests/harness/mod.rs"]
mod harness;
mod support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use e2e::failover::{Seen, Step, power_off_and_watch};
use e2e::{Cluster, Kind, Opts, VIP, admin};
use harness::{ONED_PORT, wait_until};
use support::{interrupted, ms};

/// Bound for each wait of the demo.
const WAIT: Duration = Duration::from_secs(60);
/// Stuck-VM report delay in the demo (a real cluster waits a monitoring cycle, 180 s).
const REPORT_DELAY: &str = "2s";

struct Demo {
    start: Instant,
}

impl Demo {
    fn say(&self, text: &str) {
        println!("[{:6.2}s] {text}", self.start.elapsed().as_secs_f64());
        let _ = std::io::stdout().flush();
    }

    fn block(&self, title: &str, text: &str) {
        println!("---- {title} ----");
        for l in text.lines() {
            println!("  | {l}");
        }
        let _ = std::io::stdout().flush();
    }
}

fn settings() -> Result<(Kind, &'static str), String> {
    let kind = match std::env::var("ONEHA_DEMO_TOPOLOGY").as_deref() {
        Err(_) | Ok("") | Ok("witness") => Kind::Witness,
        Ok("two-node") => Kind::TwoNode,
        Ok(other) => {
            return Err(format!(
                "ONEHA_DEMO_TOPOLOGY={other}: use `witness` (default) or `two-node`"
            ));
        }
    };
    let profile = match std::env::var("ONEHA_DEMO_PROFILE").as_deref() {
        Err(_) | Ok("") | Ok("default") => "default",
        Ok("fast") => "fast",
        Ok(other) => {
            return Err(format!(
                "ONEHA_DEMO_PROFILE={other}: use `default` (default) or `fast`"
            ));
        }
    };
    Ok((kind, profile))
}

/// The demo proper. Returns false if interrupted.
fn run(kind: Kind, profile: &'static str) -> bool {
    let d = Demo {
        start: Instant::now(),
    };
    let what = match kind {
        Kind::Witness => "two front-ends (node1, node2) and a witness (node3)",
        Kind::TwoNode => "two front-ends alone (node1, node2), fencing as the tie-breaker",
    };
    d.say(&format!(
        "building the cluster: {what}, timer profile `{profile}`"
    ));
    let addresses = match kind {
        Kind::Witness => "192.0.2.1-3",
        Kind::TwoNode => "192.0.2.1-2",
    };
    d.say(&format!(
        "  a switch (bridge), client 192.0.2.10, hypervisor 192.0.2.20 running the fence_xvm \
         daemon, nodes {addresses} with systemd as PID 1, floating IP {VIP}"
    ));
    let opts = Opts {
        kind,
        profile,
        fake_oned: Some(REPORT_DELAY),
        quiet: true,
        ..Opts::default()
    };
    let c = Cluster::start("demo", opts);
    d.say(&format!(
        "nodes booted; agents started (files under {})",
        c.topo.dir().display()
    ));

    let mut owner = None;
    wait_until(WAIT, || {
        owner = c
            .nodes
            .iter()
            .filter(|n| n.is_on())
            .find_map(admin::status)
            .filter(|s| s.group.state == "started")
            .and_then(|s| s.group.owner);
        interrupted() || owner.is_some()
    });
    if interrupted() {
        return false;
    }
    let Some(owner) = owner else {
        d.say("the group did not start: see the agents' logs above");
        panic!("no owner within {WAIT:?}");
    };
    let vip = c.vip();
    let served = wait_until(WAIT, || {
        interrupted() || c.client.tcp_get(vip, ONED_PORT).as_deref() == Ok(owner.as_str())
    });
    if interrupted() {
        return false;
    }
    assert!(served, "the client is not served by {owner}");
    d.say(&format!(
        "group started on {owner}; the client reaches OpenNebula on {owner} through {VIP}:{ONED_PORT}"
    ));
    let (_, text, _) = c.oneha(&owner, &["status"]);
    d.block(&format!("oneha status (on {owner})"), &text);

    let survivor = if owner == "node1" { "node2" } else { "node1" };
    let (old, new) = (c.node(&owner).clone(), c.node(survivor).clone());
    let probe = c
        .client
        .probe_tcp(vip, ONED_PORT, Duration::from_millis(10));
    let sampler = c.topo.sampler(vip);
    if !support::sleep(Duration::from_secs(1)) {
        return false;
    }
    d.say(&format!(
        "POWER OFF {owner} (the active node): cable pulled, every process killed. \
         The client polls {VIP}:{ONED_PORT} every 10 ms."
    ));
    let on_seen = |s: &Seen| {
        d.say(&format!(
            "  +{:>6.0} ms  {:<20} {}",
            ms(s.after),
            s.step.label(),
            s.detail
        ));
    };
    let (_, seen) = power_off_and_watch(
        &probe,
        &old,
        &new,
        Step::ALL.to_vec(),
        WAIT,
        &interrupted,
        on_seen,
    );
    if interrupted() {
        return false;
    }
    let report = sampler.stop();
    println!();
    d.say("failover timeline (times measured from the power-off):");
    let mut sorted = seen.clone();
    sorted.sort_by_key(|s| s.after);
    for s in &sorted {
        println!("    {:>7.0} ms  {}", ms(s.after), s.step.label());
    }
    for step in Step::ALL {
        if !seen.iter().any(|s| s.step == step) {
            println!("    (not seen within {WAIT:?}: {})", step.label());
        }
    }
    println!(
        "    invariants (sampled every 50 ms): {} samples, {} violations (at most one holder \
         of {VIP}, OpenNebula on at most one node)",
        report.samples,
        report.violations.len()
    );
    for v in &report.violations {
        println!("      ! {:?}: {}", v.at, v.what);
    }
    let (_, text, _) = c.oneha(survivor, &["status"]);
    d.block(&format!("oneha status (on {survivor})"), &text);
    let (_, text, err) = c.oneha(survivor, &["stuck-vms"]);
    d.block(
        &format!("oneha stuck-vms (on {survivor}): what to do about the VMs left in flight"),
        &format!("{text}{err}"),
    );
    d.say("tearing down");
    true
}

fn main() {
    support::install_interrupt_handler();
    let (kind, profile) = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(2);
        }
    };
    println!("oneha demo on {}", support::machine());
    let outcome = std::panic::catch_unwind(|| run(kind, profile));
    // The cluster was dropped inside `run`: everything it created is gone, or listed here.
    let mut code = match outcome {
        Ok(true) => 0,
        Ok(false) => 130,
        Err(_) if interrupted() => 130,
        Err(_) => 1,
    };
    if code == 130 {
        println!("interrupted: torn down");
    }
    if !support::check_nothing_left(&harness::prefixes_claimed()) {
        code = 1;
    }
    std::process::exit(code);
}
