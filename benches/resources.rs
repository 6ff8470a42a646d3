//! Resource driver and harness timings on real hosts (`make bench-resources`, root).
//!
//! Prints, in milliseconds: node boot and power-off, each driver's start and stop as the
//! agent would run them (in process, inside a node), and `systemctl start`/`stop` of the
//! same unit for reference (what the unit itself costs, plus the systemctl client).
//! Filesystems: an ext4 and an xfs shared disk (loop devices), the driver's start (checks,
//! fsck for ext4, mount) and stop (checks, unmount) against `mount -t TYPE DEV MNT` /
//! `umount MNT` run from a shell in the same node, and the difference (the driver's
//! overhead; issue 14 allows 50 ms).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Node, NodeSpec, SharedDisk, Topology, testkit};

const ROUNDS: usize = 20;

/// The filesystems benchmarked: type and shared disk size (xfs needs 300 MiB).
const FILESYSTEMS: [(&str, u32); 2] = [("ext4", 64), ("xfs", 300)];

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

/// The mountpoint of the filesystem of type `fstype`.
fn mountpoint(fstype: &str) -> String {
    format!("/run/bench-{fstype}")
}

/// CONFIG with, per disk, resources `fs-TYPE` (device by path, on [`mountpoint`]) and
/// `fs-TYPE-label` (`LABEL=`, looked up as the driver does: udev's links, else `blkid`; on
/// the same path with `-label`: check-config refuses a mountpoint used twice).
fn config(disks: &[SharedDisk]) -> String {
    let mut text = CONFIG.to_string();
    for d in disks {
        let t = d.fstype();
        for (suffix, device) in [
            ("", d.device().display().to_string()),
            ("-label", format!("LABEL={}", d.label())),
        ] {
            text.push_str(&format!(
                "    - {{name: fs-{t}{suffix}, type: filesystem, device: \"{device}\", \
                 mountpoint: {}{suffix}, fstype: {t}}}\n",
                mountpoint(t)
            ));
        }
    }
    text
}

fn main() {
    let t = Instant::now();
    let topo = Topology::new("bench_resources");
    let disks: Vec<SharedDisk> = FILESYSTEMS
        .iter()
        .map(|(t, mib)| topo.add_shared_disk_of(&format!("bench-{t}"), *mib, t))
        .collect();
    let spec = NodeSpec::opennebula()
        .etc_file("oneha.yaml", &config(&disks))
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

    for d in &disks {
        filesystem(&node, d);
    }

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

/// The driver's start and stop of `fs-TYPE` and `fs-TYPE-label` against `mount`/`umount`
/// from a shell in `node`, and the differences (median and p90).
fn filesystem(node: &Node, disk: &SharedDisk) {
    let t = disk.fstype();
    let (name, label) = (format!("fs-{t}"), format!("fs-{t}-label"));
    let rounds = ROUNDS.to_string();
    let cycle = node.run_ok(&[
        testkit(),
        "resource-cycle",
        "--config",
        "/etc/oneha/oneha.yaml",
        "--rounds",
        &rounds,
        &name,
        &label,
    ]);
    print!("{cycle}");

    let (dev, mnt) = (disk.device().display().to_string(), mountpoint(t));
    let script = format!(
        "mkdir -p {mnt}; for i in $(seq {ROUNDS}); do a=$(date +%s%N); mount -t {t} {dev} {mnt}; \
         b=$(date +%s%N); umount {mnt}; c=$(date +%s%N); echo $((b - a)) $((c - b)); done"
    );
    let raw = node.run_ok(&["sh", "-c", &script]);
    let (mut mounts, mut umounts): (Vec<Duration>, Vec<Duration>) = raw
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((nanos(a)?, nanos(b)?))
        })
        .unzip();
    println!(
        "reference: mount -t {t} {dev} {mnt}: {}",
        summary(&mut mounts)
    );
    println!("reference: umount {mnt}: {}", summary(&mut umounts));

    for (op, reference) in [("start", &mounts), ("stop", &umounts)] {
        let refs = (ms(median(reference)), ms(p90(reference)));
        for r in [&name, &label] {
            let Some((med, p)) = cycle_stats(&cycle, r, op) else {
                println!("{r} {op}: not in the resource-cycle output");
                continue;
            };
            println!(
                "overhead {r} {op} over {}: median {:+.1} ms, p90 {:+.1} ms",
                if op == "start" { "mount" } else { "umount" },
                med - refs.0,
                p - refs.1
            );
        }
    }
}

/// Median and p90 (ms) of `NAME OP min median p90 max` in resource-cycle's output.
fn cycle_stats(text: &str, name: &str, op: &str) -> Option<(f64, f64)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 6 && f[0] == name && f[1] == op {
            Some((f[3].parse().ok()?, f[4].parse().ok()?))
        } else {
            None
        }
    })
}

/// The median of sorted `d`.
fn median(d: &[Duration]) -> Duration {
    d.get(d.len() / 2).copied().unwrap_or_default()
}

/// The 90th percentile (nearest rank) of sorted `d`.
fn p90(d: &[Duration]) -> Duration {
    let i = (d.len() * 9).div_ceil(10).saturating_sub(1);
    d.get(i).copied().unwrap_or_default()
}

fn nanos(s: &str) -> Option<Duration> {
    s.trim().parse().ok().map(Duration::from_nanos)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `min / median / p90 / max ms (n)`; sorts `d`.
fn summary(d: &mut [Duration]) -> String {
    d.sort();
    let at = |i: usize| d.get(i).map_or(0.0, |x| ms(*x));
    format!(
        "min {:.1} / median {:.1} / p90 {:.1} / max {:.1} ms ({} runs)",
        at(0),
        ms(median(d)),
        ms(p90(d)),
        at(d.len().saturating_sub(1)),
        d.len()
    )
}
