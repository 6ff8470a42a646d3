//! deploy/: the example configs pass `oneha check-config`'s validation, and the systemd unit
//! works under a real systemd (harness node): its sandbox still allows netlink, AF_PACKET
//! and D-Bus, it becomes active on READY=1, and its watchdog kills and restarts a main loop
//! that stops pinging.

mod harness;
mod ops;

use std::path::Path;
use std::time::Duration;

use harness::{NodeSpec, Topology, wait_until};
use oneha::config::Role;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const EXEC: &str = "ExecStart=/usr/sbin/oneha agent --config /etc/oneha/oneha.yaml";

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn example_configs_pass_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let two = ops::validate(&read("deploy/examples/two-node.yaml"), dir.path());
    assert!(two.two_node && two.nodes.len() == 2);
    assert_eq!(two.fencing.nodes["one-server1"].delay.get().as_secs(), 15);
    let w = ops::validate(&read("deploy/examples/witness.yaml"), dir.path());
    assert!(!w.two_node);
    assert_eq!(
        w.nodes.iter().filter(|n| n.role == Role::Witness).count(),
        1
    );
    let three = ops::validate(&read("deploy/examples/three-frontends.yaml"), dir.path());
    assert_eq!(three.frontends().len(), 3);
    assert_eq!(three.fencing.nodes["fe2"].levels.len(), 2);
    assert!(three.metrics.listen.is_some());
    // OpenNebula 7.x's units, the hook manager named (the VM-HA hook runs in it).
    for c in [&two, &w, &three] {
        let units: Vec<&str> = c
            .resources
            .group
            .iter()
            .filter_map(|r| r.unit.as_deref())
            .collect();
        assert_eq!(
            units,
            [
                "opennebula.service",
                "opennebula-hem.service",
                "opennebula-fireedge.service",
                "opennebula-flow.service",
                "opennebula-gate.service"
            ]
        );
    }
    // The packaged example is one of these.
    assert!(read("deploy/examples/witness.yaml").contains("role: witness"));
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        panic!("systemd-analyze not found: install systemd (tools/install-deps.sh)");
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/oneha.service").replace(
        EXEC,
        &format!(
            "ExecStart={} agent --config /etc/oneha/oneha.yaml",
            harness::ONEHA
        ),
    );
    assert_ne!(
        unit,
        read("deploy/oneha.service"),
        "ExecStart line changed: update EXEC"
    );
    let path = dir.path().join("oneha.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Only warnings about units of the machine itself are tolerated, none about ours.
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("oneha.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
}

/// deploy/oneha.service with `exec` as ExecStart and the watchdog at 2s (test speed).
fn unit_with(exec: &str) -> String {
    let text = read("deploy/oneha.service");
    assert!(
        text.contains(EXEC) && text.contains("WatchdogSec=10s"),
        "unit changed: update the test"
    );
    text.replace(EXEC, &format!("ExecStart={exec}"))
        .replace("WatchdogSec=10s", "WatchdogSec=2s")
}

#[test]
fn unit_sandbox_readiness_and_watchdog_under_real_systemd() {
    let topo = Topology::new("ops_unit");
    let unit = unit_with("{{testkit}} notify-probe --pings 3");
    let n = topo.add_node("node1", 1, NodeSpec::new().unit("oneha.service", &unit));
    // Type=notify: `systemctl start` returns once the probe sent READY=1.
    let out = n.systemctl(&["start", "oneha.service"]);
    assert!(
        out.ok(),
        "start failed: {}\n{}",
        out.stderr,
        n.log("console.log")
    );
    assert_eq!(n.unit_property("oneha.service", "ActiveState"), "active");
    assert_eq!(
        n.unit_property("oneha.service", "StatusText"),
        "netlink ok, packet ok, dbus ok",
        "the hardening blocks something the agent needs"
    );
    assert_eq!(n.unit_property("oneha.service", "WatchdogUSec"), "2s");
    assert_eq!(n.unit_property("oneha.service", "NRestarts"), "0");
    // The probe pings 3 times (every 1s), then goes silent: the watchdog kills it and
    // Restart=on-failure schedules a restart after RestartSec.
    let restarted = wait_until(Duration::from_secs(30), || {
        let sub = n.unit_property("oneha.service", "SubState");
        let result = n.unit_property("oneha.service", "Result");
        let restarts: u32 = n
            .unit_property("oneha.service", "NRestarts")
            .parse()
            .unwrap_or(0);
        (sub == "auto-restart" && result == "watchdog") || restarts >= 1
    });
    assert!(
        restarted,
        "watchdog did not fire:\n{}",
        n.log("console.log")
    );
}

const AGENT_CONFIG: &str = "cluster: unit\ntwo_node: true\nkey_file: /etc/oneha/cluster.key\n\
nodes:\n  - {name: node1, id: 1, address: \"192.0.2.1:7400\"}\n  - {name: node2, id: 2, address: \"192.0.2.2:7400\"}\n\
opennebula: {report_on_takeover: false}\n";

#[test]
fn real_agent_under_the_unit_file_is_ready_and_pings_the_watchdog() {
    use std::os::unix::fs::PermissionsExt;
    let topo = Topology::new("ops_agent_unit");
    let unit = unit_with("{{oneha}} agent --config /etc/oneha/oneha.yaml");
    let spec = NodeSpec::opennebula()
        .etc_file("oneha.yaml", AGENT_CONFIG)
        .unit("oneha.service", &unit);
    let nodes: Vec<_> = (1..=2u8)
        .map(|i| {
            let n = topo.add_node(&format!("node{i}"), i, spec.clone());
            let key = n.etc_dir().join("cluster.key");
            std::fs::write(&key, [5u8; 64]).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            n
        })
        .collect();
    for n in &nodes {
        assert!(n.systemctl(&["start", "--no-block", "oneha.service"]).ok());
    }
    for n in &nodes {
        assert!(
            n.wait_active("oneha.service", Duration::from_secs(60)),
            "{} not ready: {}",
            n.name(),
            n.log("console.log")
        );
        assert!(!n.unit_property("oneha.service", "StatusText").is_empty());
    }
    // Proving a negative: over twice WatchdogSec, no watchdog restart.
    std::thread::sleep(Duration::from_secs(5));
    for n in &nodes {
        assert_eq!(
            n.unit_property("oneha.service", "NRestarts"),
            "0",
            "{}",
            n.name()
        );
        assert_eq!(n.unit_property("oneha.service", "ActiveState"), "active");
    }
}
