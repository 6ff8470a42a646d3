//! `make bench-relocation`: planned relocation downtime as a client sees it (the time the
//! floating IP does not answer), next to the units' own stop + start time, on real hosts
//! (two front-ends and a witness, real systemd, the agent as a unit).

mod common;
#[path = "../tests/e2e/mod.rs"]
mod e2e;
#[path = "../tests/harness/mod.rs"]
mod harness;

use common::{runs, stats};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{Cluster, Opts};
use harness::ONED_PORT;

/// Polls VIP:2633 from the client namespace every 2 ms; records (time, answer) changes.
/// Runs in a thread that entered the client's network namespace.
fn prober(ns: String, vip: IpAddr, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<(Instant, bool)>>>) {
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let addr = SocketAddr::new(vip, ONED_PORT);
        while !stop.load(Ordering::Relaxed) {
            let ok = TcpStream::connect_timeout(&addr, Duration::from_millis(20)).is_ok();
            log.lock().expect("log").push((Instant::now(), ok));
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

fn main() {
    println!(
        "bench-relocation: {} relocations, witness topology, default profile",
        runs()
    );
    let c = Cluster::start("bench_reloc", Opts::default());
    let vip = c.vip();
    let mut owner = c.wait_started(Duration::from_secs(30)).expect("started");
    assert!(c.client_reaches(&owner, Duration::from_secs(30)));
    // The units' own cost on a node: systemctl stop + start of both, as the client sees it.
    let mut units = Vec::new();
    let other_of = |o: &str| if o == "node1" { "node2" } else { "node1" };
    for _ in 0..runs() {
        let n = c.node(other_of(&owner));
        let t = Instant::now();
        n.systemctl(&["start", "opennebula.service", "opennebula-sunstone.service"]);
        n.systemctl(&["stop", "opennebula-sunstone.service", "opennebula.service"]);
        units.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut gaps = Vec::new();
    for _ in 0..runs() {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        prober(c.client.ns().to_string(), vip, stop.clone(), log.clone());
        std::thread::sleep(Duration::from_millis(200));
        let target = other_of(&owner).to_string();
        let (code, _, err) = c.oneha("node3", &["relocate", "--to", &target]);
        assert_eq!(code, 0, "{err}");
        assert!(c.client_reaches(&target, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        let log = log.lock().expect("log").clone();
        // The gap: from the last answer before the first failure to the first answer after.
        let first_fail = log.iter().position(|(_, ok)| !ok);
        if let Some(i) = first_fail {
            let last_ok = log[..i].last().map(|(t, _)| *t);
            let back = log[i..].iter().find(|(_, ok)| *ok).map(|(t, _)| *t);
            if let (Some(a), Some(b)) = (last_ok, back) {
                gaps.push(b.duration_since(a).as_secs_f64() * 1000.0);
            }
        } else {
            gaps.push(0.0);
        }
        owner = target;
        std::thread::sleep(Duration::from_millis(500));
    }
    let gm = stats("client-visible gap during relocation", gaps);
    let um = stats("units' own start + stop (systemctl)", units);
    if let (Some(gm), Some(um)) = (gm, um) {
        println!(
            "median gap minus the units' own time: {:.1} ms (target <= 100 ms)",
            gm - um
        );
    }
}
