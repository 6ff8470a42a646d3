//! Resource driver and harness timings on real hosts (`make bench-resources`, root).
//!
//! Prints, in milliseconds: node boot and power-off, each driver's start and stop as the
//! agent would run them (in process, inside a node), and `systemctl start`/`stop` of the
//! same unit for reference (what the unit itself costs, plus the systemctl client).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{NodeSpec, Topology, testkit};

const ROUNDS: usize = 20;

const CONFIG: &str = "cluster: bench
two_node: true
key_file: /etc/oneha/cluster.key
nodes:
  - {name: node1, id: 1, address: \"192.0.2.1:7000\"}
  - {name: node2, id: 2, address: \"192.0.2.2:7000\"}
resources:
  group:
    - name: vip
      type: ip
      address: 192.0.2.100/24
      interface: eth0
    - name: vip-no-dad
      type: ip
      address: 192.0.2.101/24
      interface: eth0
      conflict_check: false
    - name: oned
      type: systemd
      unit: opennebula.service
";

fn main() {
    let t = Instant::now();
    let topo = Topology::new("bench_resources");
    let spec = NodeSpec::opennebula()
        .etc_file("oneha.yaml", CONFIG)
        .etc_file("cluster.key", "bench\n");
    let node = topo.add_node("node1", 1, spec);
    println!("topology with one node up: {:.1} ms", ms(t.elapsed()));

    let mut boots = Vec::new();
    let mut offs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        node.power_off();
        offs.push(t.elapsed());
        let t = Instant::now();
        node.boot();
        boots.push(t.elapsed());
    }
    println!("node power-off: {}", summary(&mut offs));
    println!("node boot (to systemd running): {}", summary(&mut boots));

    let rounds = ROUNDS.to_string();
    let cycle = node.run_ok(&[
        testkit(),
        "resource-cycle",
        "--config",
        "/etc/oneha/oneha.yaml",
        "--rounds",
        &rounds,
        "vip",
        "vip-no-dad",
        "oned",
    ]);
    print!("{cycle}");

    let script = format!(
        "for i in $(seq {ROUNDS}); do a=$(date +%s%N); systemctl start opennebula.service; \
         b=$(date +%s%N); systemctl stop opennebula.service; c=$(date +%s%N); \
         echo $((b - a)) $((c - b)); done"
    );
    let raw = node.run_ok(&["sh", "-c", &script]);
    let (mut starts, mut stops): (Vec<Duration>, Vec<Duration>) = raw
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((nanos(a)?, nanos(b)?))
        })
        .unzip();
    println!(
        "systemctl start opennebula.service: {}",
        summary(&mut starts)
    );
    println!("systemctl stop opennebula.service: {}", summary(&mut stops));

    let t = Instant::now();
    drop(topo);
    println!("teardown: {:.1} ms", ms(t.elapsed()));
}

fn nanos(s: &str) -> Option<Duration> {
    s.trim().parse().ok().map(Duration::from_nanos)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `min / median / max ms (n)`.
fn summary(d: &mut [Duration]) -> String {
    d.sort();
    let at = |i: usize| d.get(i).map_or(0.0, |x| ms(*x));
    format!(
        "min {:.1} / median {:.1} / max {:.1} ms ({} runs)",
        at(0),
        at(d.len() / 2),
        at(d.len().saturating_sub(1)),
        d.len()
    )
}
