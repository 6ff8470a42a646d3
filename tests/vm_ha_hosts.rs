//! VM HA on real hosts: hypervisors are harness hosts with simulated BMCs (`ipmi_sim`), the
//! fake oned's monitord probes them over the switch, its hook manager runs
//! `oneha-host-error` on the front-end when one stops answering, and the hook fences it with
//! the real `fence_ipmilan` over real IPMI-over-LAN before it touches a VM. Standalone mode
//! (no oneha agent on the front-end).

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{BmcSpec, HYPERVISOR_PORT, Host, Hypervisor, Topology, wait_until};

const USER: &str = "admin";
const PASSWORD: &str = "bmc-Pw-7731";
const SESSION: &str = "oneadmin:Fake-0ned-Pw";
const ONED: &str = "127.0.0.1:2633";

fn write_x(p: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, text).expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

/// The front-end's files: oned's session, the BMC password script, oneha's config, the hook
/// wrapper (what HEM runs: oneha under the name of the hook template, with OpenNebula's
/// environment) and the fake oned's world.
fn front_end_files(dir: &Path, hosts: &[&Hypervisor]) -> std::path::PathBuf {
    std::fs::write(dir.join("one_auth"), format!("{SESSION}\n")).expect("auth");
    write_x(
        &dir.join("ipmi-pw"),
        &format!("#!/bin/sh\necho {PASSWORD}\n"),
    );
    let config = format!(
        "fencing:\n  devices:\n    bmc:\n      type: agent\n      agent: fence_ipmilan\n      \
         timeout: 40s\n      options: {{ip: \"{{FENCE_IP}}\", username: {USER}, \
         password_script: {pw}, lanplus: \"1\", cipher: \"3\"}}\n\
         vm_ha:\n  host_template: {{levels: [{{device: bmc, retries: 0}}]}}\n  \
         monitoring_interval: 1s\n  poll_interval: 500ms\n  fence_backoff: 1s\n  \
         fence_backoff_max: 2s\n  log_file: {log}\n",
        pw = dir.join("ipmi-pw").display(),
        log = dir.join("host_error.log").display()
    );
    std::fs::write(dir.join("oneha.yaml"), config).expect("config");
    let link = dir.join("oneha-host-error");
    std::os::unix::fs::symlink(harness::ONEHA, &link).expect("link");
    let wrapper = dir.join("hook.sh");
    write_x(
        &wrapper,
        &format!(
            "#!/bin/sh\nexec env ONE_XMLRPC=http://{ONED}/RPC2 ONE_AUTH={auth} ONEHA_CONFIG={cfg} \
             ONEHA_HOOK_SOCKET={dir}/no-agent.sock ONEHA_HOST_ACK_DIR={dir}/ack {link}\n",
            auth = dir.join("one_auth").display(),
            cfg = dir.join("oneha.yaml").display(),
            dir = dir.display(),
            link = link.display()
        ),
    );
    let mut world = String::from(
        "settings: {monitoring_interval_ms: 1500, beacon_interval_ms: 250, sched_delay_ms: 200}\n\
         datastores:\n  - {id: 0, name: system, tm_mad: shared}\nhosts:\n",
    );
    for (i, h) in hosts.iter().enumerate() {
        world.push_str(&format!(
            "  - {{id: {i}, name: {}, template: {{FENCE_IP: {}}}, probe: \"{}:{HYPERVISOR_PORT}\"}}\n",
            h.name(),
            h.bmc().ip(),
            h.ip()
        ));
    }
    // Two VMs on each host but the last, which has room.
    world.push_str("vms:\n");
    for i in 0..hosts.len() - 1 {
        for k in 0..2 {
            world.push_str(&format!("  - {{id: {}, host: {i}}}\n", 10 * (i + 1) + k));
        }
    }
    world.push_str(&format!(
        "hooks:\n  - {{name: host_error, state: ERROR, command: {}, arguments: \"$TEMPLATE -m -p 0\"}}\n",
        wrapper.display()
    ));
    let path = dir.join("world.yaml");
    std::fs::write(&path, world).expect("world");
    path
}

/// The fake oned on the front-end, as `opennebula.service` would run it there.
fn start_oned(fe: &Host, dir: &Path, world: &Path) -> harness::Proc {
    fe.spawn_logged(
        &[
            harness::testkit(),
            "fake-oned",
            "--listen",
            ONED,
            "--session",
            SESSION,
            "--world",
            world.to_str().expect("utf-8"),
            "--hook-log",
            dir.join("hooks.jsonl").to_str().expect("utf-8"),
        ],
        &dir.join("fake-oned.log"),
    )
}

/// The hook runs logged by the fake HEM: (host id, exit code).
fn hook_runs(dir: &Path) -> Vec<(i64, i64)> {
    std::fs::read_to_string(dir.join("hooks.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["host_id"].as_i64().unwrap_or(-1),
                v["exit"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// A VM's host id as the fake oned's world dump says, and its STATE/LCM_STATE.
fn vm_host(fe: &Host, id: i64) -> Option<(i64, i64, i64)> {
    let body = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>one.vm.info</methodName><params>\
         <param><value><string>{SESSION}</string></value></param><param><value><i4>{id}</i4>\
         </value></param></params></methodCall>"
    );
    let out = fe.exec(&[
        "curl",
        "-s",
        "--max-time",
        "5",
        "-H",
        "Content-Type: text/xml",
        "--data-binary",
        &body,
        &format!("http://{ONED}/RPC2"),
    ]);
    let text = out.stdout.replace("&lt;", "<").replace("&gt;", ">");
    let tag = |t: &str| -> Vec<i64> {
        text.split(&format!("<{t}>"))
            .skip(1)
            .filter_map(|s| s.split('<').next()?.trim().parse().ok())
            .collect()
    };
    Some((
        *tag("HID").last()?,
        *tag("STATE").first()?,
        *tag("LCM_STATE").first()?,
    ))
}

#[test]
fn a_dead_hypervisor_is_fenced_through_its_bmc_then_its_vms_run_elsewhere() {
    let topo = Topology::new("vmha_bmc");
    let fe = topo.add_host("fe", 10);
    let kvm1 = topo.add_hypervisor("kvm1", 21, BmcSpec::new(31, USER, PASSWORD));
    // kvm2's BMC has another password: oneha cannot fence it.
    let kvm2 = topo.add_hypervisor("kvm2", 22, BmcSpec::new(32, USER, "not-the-pw"));
    let kvm3 = topo.add_hypervisor("kvm3", 23, BmcSpec::new(33, USER, PASSWORD));
    let dir = topo.dir().join("frontend");
    std::fs::create_dir_all(&dir).expect("dir");
    let world = front_end_files(&dir, &[&kvm1, &kvm2, &kvm3]);
    let _oned = start_oned(&fe, &dir, &world);
    assert!(
        wait_until(Duration::from_secs(20), || vm_host(&fe, 10).is_some()),
        "the fake oned answers: {}",
        std::fs::read_to_string(dir.join("fake-oned.log")).unwrap_or_default()
    );

    // kvm1 dies (its BMC still says ON): monitord puts it in ERROR, the hook fences it.
    kvm1.crash();
    kvm2.crash();
    let log = || std::fs::read_to_string(dir.join("host_error.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(120), || hook_runs(&dir)
            .contains(&(0, 0))),
        "kvm1's hook did not finish well: {:?}\n{}",
        hook_runs(&dir),
        log()
    );
    assert!(!kvm1.powered(), "the BMC powered kvm1 off");
    assert!(
        log().contains("][HOST 0][I] Fencing success (device bmc)"),
        "{}",
        log()
    );
    for id in [10, 11] {
        assert!(
            wait_until(Duration::from_secs(30), || vm_host(&fe, id)
                .is_some_and(|(h, s, l)| h == 2 && (s, l) == (3, 3))),
            "VM {id} runs on kvm3: {:?}",
            vm_host(&fe, id)
        );
    }

    // kvm2 cannot be fenced (wrong BMC password): its VMs stay where they are, the hook
    // keeps trying.
    assert!(
        wait_until(Duration::from_secs(60), || log()
            .matches("][HOST 1][E] Fencing error")
            .count()
            >= 2),
        "{}",
        log()
    );
    assert!(kvm2.powered(), "kvm2 was not powered off");
    assert_eq!(vm_host(&fe, 20).map(|v| v.0), Some(1), "VM 20 untouched");
    assert_eq!(vm_host(&fe, 21).map(|v| v.0), Some(1), "VM 21 untouched");
    assert!(
        !hook_runs(&dir).iter().any(|(h, _)| *h == 1),
        "still trying"
    );
    // The operator checks kvm2 is off and acknowledges it.
    let ack_dir = format!("ONEHA_HOST_ACK_DIR={}", dir.join("ack").display());
    let ack = fe.exec(&[
        "env",
        &ack_dir,
        harness::ONEHA,
        "--config",
        "/nonexistent/oneha.yaml",
        "fence-ack",
        "kvm2",
        "--yes",
    ]);
    assert!(ack.code == Some(0), "{ack:?}");
    assert!(
        wait_until(Duration::from_secs(60), || hook_runs(&dir)
            .contains(&(1, 0))),
        "kvm2's hook finished after the acknowledgement: {:?}\n{}",
        hook_runs(&dir),
        log()
    );
    for id in [20, 21] {
        assert!(
            wait_until(Duration::from_secs(30), || vm_host(&fe, id)
                .is_some_and(|(h, s, l)| h == 2 && (s, l) == (3, 3))),
            "VM {id} runs on kvm3: {:?}",
            vm_host(&fe, id)
        );
    }
    assert!(!log().contains(PASSWORD), "{}", log());
    assert!(kvm3.powered(), "kvm3 untouched");
}
