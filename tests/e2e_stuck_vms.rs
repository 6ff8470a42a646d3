//! After a failover, the survivor reports exactly the VMs the dead front-end left stuck.
//! The `opennebula` unit of each front-end serves the fake oned (OpenNebula's XML-RPC, with
//! replies shaped like oned's) holding the same pool, as a shared database would.

mod e2e;
mod harness;

use std::time::Duration;

use e2e::{Cluster, Opts};
use harness::wait_until;

const T: Duration = Duration::from_secs(40);

const FAKE_ONED: &str = "[Unit]\nDescription=fake oned (test)\n\
[Service]\nExecStart={{testkit}} fake-oned --listen 127.0.0.1:2633 --generate 40 \
--stuck 7:3:1 --stuck 12:3:25:24 --stuck 30:3:36\n\
StandardOutput=append:/var/log/oneha/fake-oned.log\nStandardError=inherit\n";

#[test]
fn the_survivor_reports_the_stuck_vms_after_a_failover() {
    let opts = Opts {
        opennebula: "{endpoint: \"http://127.0.0.1:2633/RPC2\", auth_file: /etc/oneha/one_auth, \
                     report_delay: 1s, report_on_takeover: true}"
            .into(),
        units: vec![("opennebula.service".into(), FAKE_ONED.into())],
        extra: "metrics: {listen: \"127.0.0.1:9464\"}".into(),
        ..Opts::default()
    };
    let c = Cluster::start("stuck_failover", opts);
    for n in ["node1", "node2"] {
        std::fs::write(
            c.node(n).etc_dir().join("one_auth"),
            "oneadmin:opennebula\n",
        )
        .expect("one_auth");
    }
    let owner = c.wait_started(T).expect("started");
    let survivor = if owner == "node1" { "node2" } else { "node1" };
    let report = c.node(survivor).state_dir().join("stuck-vms.json");
    let _ = std::fs::remove_file(&report);
    c.node(&owner).power_off();
    assert!(
        wait_until(T, || report.exists()),
        "no report after the takeover:\n{}",
        c.agent_log(survivor)
    );
    let text = std::fs::read_to_string(&report).expect("report");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut ids: Vec<i64> = v["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .filter_map(|vm| vm["id"].as_i64())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![7, 12, 30], "{text}");
    // Visible in status, and the same on demand with the right exit code.
    let s = c.status(survivor).expect("status");
    assert_eq!(
        s.stuck_vms.as_ref().and_then(|x| x["stuck"].as_u64()),
        Some(3)
    );
    // And in the metrics (they stayed at 0 before: nothing recorded the report).
    let metrics = c
        .node(survivor)
        .run(&["curl", "-sf", "http://127.0.0.1:9464/metrics"])
        .stdout;
    for line in [
        "oneha_stuck_vm_reports_total 1",
        "oneha_stuck_vms_found_total 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }
    let (code, table, err) = c.oneha(
        survivor,
        &[
            "stuck-vms",
            "--endpoint",
            "http://127.0.0.1:2633/RPC2",
            "--auth-file",
            "/etc/oneha/one_auth",
        ],
    );
    assert_eq!(code, 1, "some stuck: exit 1 ({err})");
    assert!(table.contains("onevm recover"), "{table}");
    // VM 12 was detaching a NIC (HOTPLUG_NIC, history action 24): the advice is inverted.
    let vm12 = v["vms"]
        .as_array()
        .and_then(|a| a.iter().find(|vm| vm["id"] == 12))
        .expect("vm 12")
        .to_string();
    assert!(vm12.to_lowercase().contains("detach"), "{vm12}");
}
