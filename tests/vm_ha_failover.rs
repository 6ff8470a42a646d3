//! VM HA across a front-end failover, on real hosts. Two front-ends and a witness run oneha
//! agents; the group is a filesystem on a shared disk (a loop device every node sees, like a
//! SAN LUN), the floating IP and `opennebula.service`, which runs the fake oned with its world
//! state on that disk: the new owner's oned continues the old one's world, as two oned
//! sharing a database would. Hypervisors are harness hosts with simulated BMCs (`ipmi_sim`),
//! probed by the fake's monitord. When one crashes, the fake's HEM runs the real
//! `oneha-host-error` on the owner, which opens a case through the agent's hook socket; the
//! agent fences the host with the real `fence_ipmilan` and reschedules its VMs, slowly (the
//! fake answers each VM action a second late). The owner is powered off in the middle; the
//! survivor fences it, takes the group (disk, oned) and finishes the case.

mod e2e;
mod harness;

use std::path::Path;
use std::time::Duration;

use e2e::{Cluster, Opts};
use harness::{BmcSpec, HYPERVISOR_PORT, Node, wait_until};
use oneha::vmha::case::{Case, Closed, Fenced};
use oneha_testkit::world::World;

const MOUNTPOINT: &str = "/run/shared";
const STATE: &str = "/run/shared/oned-state.json";
const USER: &str = "admin";
const PASSWORD: &str = "bmc-Pw-5520";
const SESSION: &str = "oneadmin:Fake-0ned-Pw";
/// VMs on the hypervisor that crashes.
const VMS: std::ops::Range<i64> = 100..112;
const T: Duration = Duration::from_secs(60);

/// `opennebula.service`: the fake oned, its world on the shared disk.
fn oned_unit() -> String {
    format!(
        "[Unit]\nDescription=OpenNebula oned (test stand-in: fake oned, state on {MOUNTPOINT})\n\
         [Service]\nType=simple\n\
         ExecStart={{{{testkit}}}} fake-oned --listen 127.0.0.1:2633 --session {SESSION} \
         --world /etc/oneha/world.yaml --state {STATE}\n\
         StandardOutput=append:/var/log/oneha/fake-oned.log\nStandardError=inherit\n"
    )
}

fn opts() -> Opts {
    let extra = "vm_ha:\n  host_template: {levels: [{device: bmc, retries: 0}]}\n  \
                 poll_interval: 500ms\n  fence_backoff: 1s\n  fence_backoff_max: 2s\n  \
                 max_parallel: 2\n  log_file: /var/log/oneha/host_error.log\n";
    Opts {
        group_head: format!(
            "    - {{name: data, type: filesystem, device: \"{{{{disk}}}}\", mountpoint: \
             {MOUNTPOINT}, fstype: ext4, monitor_interval: 1s, stop_timeout: 20s}}\n"
        ),
        resources_extra: "  autostart: false\n".into(),
        units: vec![("opennebula.service".into(), oned_unit())],
        opennebula: "{endpoint: \"http://127.0.0.1:2633/RPC2\", auth_file: /etc/oneha/one_auth, \
                     report_on_takeover: false, timeout: 5s}"
            .into(),
        fence_devices: format!(
            "    bmc: {{type: agent, agent: fence_ipmilan, timeout: 40s, options: {{ip: \
             \"{{FENCE_IP}}\", username: {USER}, password_script: /etc/oneha/ipmi-pw, lanplus: \
             \"1\", cipher: \"3\"}}}}\n"
        ),
        extra: extra.into(),
        quiet: true,
        ..Opts::default()
    }
}

/// The fake oned's first world: kvm1 (fails) with the VMs, kvm2 with room; the stock hook
/// template with `oneha-host-error` as its command.
fn world(kvm: &[(&str, u8, u8)]) -> String {
    let mut w = String::from(
        "settings: {monitoring_interval_ms: 1500, beacon_interval_ms: 250, sched_delay_ms: 200, \
         action_delay_ms: 1000, hook_log: /var/log/oneha/hooks.jsonl}\n\
         datastores:\n  - {id: 0, name: system, tm_mad: shared}\nhosts:\n",
    );
    for (i, (name, ip, bmc)) in kvm.iter().enumerate() {
        w.push_str(&format!(
            "  - {{id: {i}, name: {name}, template: {{FENCE_IP: 192.0.2.{bmc}}}, \
             probe: \"192.0.2.{ip}:{HYPERVISOR_PORT}\"}}\n"
        ));
    }
    w.push_str("vms:\n");
    for id in VMS {
        w.push_str(&format!("  - {{id: {id}, host: 0}}\n"));
    }
    w.push_str(
        "hooks:\n  - {name: host_error, state: ERROR, command: /etc/oneha/hook.sh, \
         arguments: \"$TEMPLATE -m -p 0\"}\n",
    );
    w
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A front-end's files: oned's session, the BMC password script, the world, and the hook
/// (HEM runs `/etc/oneha/hook.sh`: `oneha-host-error` with OpenNebula's environment).
fn front_end_files(n: &Node, world_text: &str) {
    let etc = n.etc_dir();
    write_mode(&etc.join("one_auth"), &format!("{SESSION}\n"), 0o600);
    write_mode(
        &etc.join("ipmi-pw"),
        &format!("#!/bin/sh\necho {PASSWORD}\n"),
        0o700,
    );
    std::fs::write(etc.join("world.yaml"), world_text).expect("world");
    std::os::unix::fs::symlink(harness::ONEHA, etc.join("oneha-host-error")).expect("link");
    write_mode(
        &etc.join("hook.sh"),
        "#!/bin/sh\nexec env ONE_XMLRPC=http://127.0.0.1:2633/RPC2 ONE_AUTH=/etc/oneha/one_auth \
         /etc/oneha/oneha-host-error\n",
        0o755,
    );
}

/// The fake oned's world as its state file on the shared disk says, read on `node`.
fn oned_world(n: &Node) -> Option<World> {
    let out = n.try_run(&["cat", STATE])?;
    if out.code != Some(0) {
        return None;
    }
    World::parse(&out.stdout, STATE, 0).ok()
}

/// `oneha vm-ha --json` on `node`.
fn cases(c: &Cluster, node: &str) -> Vec<Case> {
    let (code, out, _) = c.oneha(node, &["vm-ha", "--json"]);
    if code != 0 {
        return Vec::new();
    }
    serde_json::from_str(&out).unwrap_or_default()
}

fn other(name: &str) -> &'static str {
    if name == "node1" { "node2" } else { "node1" }
}

#[test]
fn the_new_owner_finishes_a_case_cut_off_by_a_front_end_power_off() {
    let c = Cluster::start("vmha_fo", opts());
    let disk = c.topo.shared_disks().into_iter().next().expect("a disk");
    let kvm1 = c
        .topo
        .add_hypervisor("kvm1", 21, BmcSpec::new(31, USER, PASSWORD));
    let kvm2 = c
        .topo
        .add_hypervisor("kvm2", 22, BmcSpec::new(32, USER, PASSWORD));
    let world_text = world(&[("kvm1", 21, 31), ("kvm2", 22, 32)]);
    for n in ["node1", "node2"] {
        front_end_files(c.node(n), &world_text);
    }
    write_mode(
        &c.node("node3").etc_dir().join("ipmi-pw"),
        &format!("#!/bin/sh\necho {PASSWORD}\n"),
        0o700,
    );
    let sampler = c.topo.sampler(c.vip());
    let mut err = String::new();
    assert!(
        wait_until(T, || {
            let (code, _, e) = c.oneha("node3", &["enable"]);
            err = e;
            code == 0
        }),
        "enable: {err}"
    );
    let first = c.wait_started(T).expect("group started");
    let owner = c.node(&first);
    assert!(
        wait_until(T, || oned_world(owner)
            .is_some_and(|w| w.hosts.iter().all(|h| h.state == 2))),
        "the fake oned on {first} monitors both hosts:\n{}",
        owner.log("fake-oned.log")
    );

    // kvm1 dies behind its BMC's back: monitord sets it ERROR, HEM runs the hook, the
    // hook opens a case, the owner's agent fences kvm1 and starts rescheduling.
    kvm1.crash();
    let mut seen = None;
    let mid_case = wait_until(Duration::from_secs(120), || {
        seen = cases(&c, "node3").into_iter().next();
        seen.as_ref()
            .is_some_and(|k| k.fence.done.is_some() && k.vms.values().any(|v| v.outcome.is_some()))
    });
    assert!(
        mid_case,
        "no case in progress: {seen:?}\n{}\n{}",
        owner.log("host_error.log"),
        c.agent_log(&first)
    );
    let case = seen.expect("a case");
    let left = case.vms.values().filter(|v| v.outcome.is_none()).count();
    assert!(left > 0, "the case was already done: {case:?}");
    assert_eq!(
        case.fence.done,
        Some(Fenced::Device {
            device: "bmc".into()
        })
    );
    assert!(!kvm1.powered(), "the BMC powered kvm1 off");

    // The owner is powered off in the middle of the case.
    owner.power_off();
    let second = other(&first);
    let mut last = None;
    let closed = wait_until(Duration::from_secs(120), || {
        last = cases(&c, second).into_iter().find(|k| k.id == case.id);
        last.as_ref().is_some_and(|k| k.closed.is_some())
    });
    let survivor = c.node(second);
    assert!(
        closed,
        "{second} did not finish case {}: {last:?}\n{}\n{}",
        case.id,
        survivor.log("host_error.log"),
        c.agent_log(second)
    );
    let done = last.expect("the case");
    assert!(
        matches!(done.closed, Some((Closed::Finished, _))),
        "{done:?}"
    );
    assert_eq!(disk.mounted_on(&c.nodes), [second]);
    assert!(
        survivor
            .log("host_error.log")
            .contains(&format!("case {}: worked by {second}", case.id)),
        "the survivor worked the case:\n{}",
        survivor.log("host_error.log")
    );

    // kvm1 was powered off once (the new owner did not fence it again).
    let offs = kvm1.power_log().matches("power off").count();
    assert_eq!(offs, 1, "power log:\n{}", kvm1.power_log());
    assert!(kvm2.powered(), "kvm2 untouched");
    // Every VM: one outcome, done, and one accepted action in oned's log, across both
    // fakes; all run on kvm2 in the end.
    let world = oned_world(survivor).expect("the world on the shared disk");
    for id in VMS {
        let entry = &done.vms[&id];
        assert!(
            matches!(
                entry.outcome,
                Some(oneha::vmha::case::VmOutcome::Done { .. })
            ),
            "VM {id}: {entry:?}"
        );
        let calls: Vec<_> = world.actions.iter().filter(|a| a.vm == id).collect();
        assert_eq!(calls.len(), 1, "VM {id} acted on once: {calls:?}");
        assert!(calls[0].ok && calls[0].what == "resched", "{calls:?}");
    }
    assert!(
        wait_until(T, || oned_world(survivor).is_some_and(|w| VMS.clone().all(
            |id| w
                .vm(id)
                .is_some_and(|v| v.last().map(|h| h.hid) == Some(1) && v.state == 3)
        ))),
        "the VMs run on kvm2: {:?}",
        oned_world(survivor).map(|w| w.vms)
    );
    sampler.stop().assert_clean();
}
