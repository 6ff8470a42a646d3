//! Hypervisor hosts with simulated BMCs: the real `fence_ipmilan` (Debian `fence-agents`)
//! fences them over real IPMI over LAN (`ipmi_sim`), and a power-off is a real one.

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harness::{
    BmcSpec, CIPHER_SUITE, CmdOutput, HYPERVISOR_PORT, Host, Hypervisor, Topology, run_cmd,
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-9Xq";
/// A VM stand-in's port on the hypervisor.
const VM_PORT: u16 = 5907;

/// A front-end stand-in (192.0.2.10) and hypervisor hv1 (192.0.2.21) with its BMC at
/// 192.0.2.31.
fn front_end_and_hypervisor(test: &str) -> (Topology, Host, Hypervisor) {
    let topo = Topology::new(test);
    let fe = topo.add_host("fe", 10);
    let hv = topo.add_hypervisor("hv1", 21, BmcSpec::new(31, USER, PASSWORD));
    (topo, fe, hv)
}

/// `fence_ipmilan -a BMC -l USER -p PASSWORD -P -C 3 -o ACTION` from `from`: the agent's
/// documented command line. The password is in its argv (visible in `ps`): fine for a
/// test's throw-away password, never for oneha, which uses stdin (see [`fence_stdin`]).
/// The password is masked in the returned command line.
fn fence_argv(from: &Host, hv: &Hypervisor, password: &str, action: &str) -> CmdOutput {
    let ip = hv.bmc().ip().to_string();
    let mut out = from.exec(&[
        "fence_ipmilan",
        "-a",
        &ip,
        "-l",
        hv.bmc().user(),
        "-p",
        password,
        "-P",
        "-C",
        CIPHER_SUITE,
        "-o",
        action,
    ]);
    out.cmdline = out.cmdline.replace(password, "[password]");
    out
}

/// `fence_ipmilan` run without arguments, its options as `key=value` lines on stdin (the
/// password among them): how oneha's fence-agent adapter calls agents.
fn fence_stdin(from: &Host, input: &str) -> CmdOutput {
    from.exec_with_input(&["fence_ipmilan"], input)
}

/// Nothing of `hv` answers or runs: no TCP service, no ping, no process in its namespace
/// or cgroup, no address.
fn assert_really_off(fe: &Host, hv: &Hypervisor) {
    let ip = hv.ip().to_string();
    assert!(fe.tcp_get(hv.ip().into(), HYPERVISOR_PORT).is_err());
    assert!(fe.tcp_get(hv.ip().into(), VM_PORT).is_err());
    assert!(
        !fe.exec(&["ping", "-c", "1", "-W", "1", &ip]).ok(),
        "a powered-off host answers ping"
    );
    let pids = run_cmd(&["ip", "netns", "pids", hv.ns()]).stdout;
    assert!(
        pids.trim().is_empty(),
        "processes left in {}: {pids}",
        hv.ns()
    );
    assert!(hv.processes().is_empty(), "processes left in its cgroup");
    assert!(!hv.is_running());
    assert!(hv.addresses().is_empty(), "{:?}", hv.addresses());
}

fn expect_status(out: &CmdOutput, code: i32, text: &str) {
    assert_eq!(out.code, Some(code), "`{}`: {out:?}", out.cmdline);
    assert!(out.stdout.contains(text), "`{}`: {out:?}", out.cmdline);
}

#[test]
fn fence_ipmilan_powers_a_hypervisor_off_and_on() {
    let (topo, fe, hv) = front_end_and_hypervisor("bmc_fence");
    let hv2 = topo.add_hypervisor("hv2", 22, BmcSpec::new(32, "ops", "other-pw-2"));
    let prefix = topo.prefix().to_string();
    let hv_ip = hv.ip().into();
    let hv2_ip = hv2.ip().into();
    assert_eq!(fe.tcp_get(hv_ip, HYPERVISOR_PORT).as_deref(), Ok("hv1"));
    hv.start_vm("one-7", VM_PORT);
    assert_eq!(fe.tcp_get(hv_ip, VM_PORT).as_deref(), Ok("one-7"));
    assert!(hv.powered() && hv.is_running());

    expect_status(&fence_argv(&fe, &hv, PASSWORD, "status"), 0, "Status: ON");

    // A wrong password is refused and changes nothing.
    let power_log = hv.power_log();
    let wrong = fence_argv(&fe, &hv, "not-the-password", "off");
    assert_eq!(wrong.code, Some(1), "{wrong:?}");
    assert_eq!(fe.tcp_get(hv_ip, VM_PORT).as_deref(), Ok("one-7"));
    assert_eq!(hv.power_log(), power_log, "the host was not power-cycled");
    assert!(hv.powered());

    expect_status(&fence_argv(&fe, &hv, PASSWORD, "off"), 0, "Powered OFF");
    assert!(!hv.powered(), "the BMC's power process is gone");
    assert_really_off(&fe, &hv);
    assert!(hv.power_log().contains("power off (SIGTERM)"));
    assert_eq!(
        fe.tcp_get(hv2_ip, HYPERVISOR_PORT).as_deref(),
        Ok("hv2"),
        "the other hypervisor runs on"
    );
    assert!(hv2.powered());
    // hv2's BMC does not take hv1's credentials.
    let foreign = hv2.bmc().agent_input("off").replace("other-pw-2", PASSWORD);
    assert_eq!(fence_stdin(&fe, &foreign).code, Some(1));
    assert!(hv2.is_running());

    expect_status(&fence_argv(&fe, &hv, PASSWORD, "status"), 2, "Status: OFF");

    // Options on stdin: the password never appears in the agent's command line.
    let done = AtomicBool::new(false);
    let (out, seen) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let ps = run_cmd(&["ps", "-eo", "args"]).stdout;
                seen.extend(
                    ps.lines()
                        .filter(|l| l.contains("fence_ipmilan"))
                        .map(str::to_string),
                );
            }
            seen
        });
        let out = fence_stdin(&fe, &hv.bmc().agent_input("on"));
        done.store(true, Ordering::SeqCst);
        (out, watcher.join().expect("ps watcher"))
    });
    expect_status(&out, 0, "Powered ON");
    assert!(!seen.is_empty(), "ps never saw the agent run");
    assert!(
        seen.iter().all(|l| !l.contains(PASSWORD)),
        "the password shows in ps"
    );
    assert!(hv.wait_serving(Duration::from_secs(30)));
    assert_eq!(fe.tcp_get(hv_ip, HYPERVISOR_PORT).as_deref(), Ok("hv1"));
    assert!(
        fe.tcp_get(hv_ip, VM_PORT).is_err(),
        "VMs do not come back at a power-on"
    );
    expect_status(
        &fence_stdin(&fe, &hv.bmc().agent_input("status")),
        0,
        "Status: ON",
    );

    for text in [hv.power_log(), hv.host_log(), hv.bmc().log()] {
        assert!(!text.contains(PASSWORD), "a log shows the password");
    }

    drop(topo);
    assert_eq!(harness::leftovers(&prefix), Vec::<String>::new());
}

#[test]
fn unreachable_bmc_isolated_host_and_crashed_host() {
    let (topo, fe, hv) = front_end_and_hypervisor("bmc_unreachable");
    let prefix = topo.prefix().to_string();
    let hv_ip = hv.ip().into();
    hv.start_vm("one-8", VM_PORT);

    // The BMC's cable is pulled: fencing fails and the host runs on.
    hv.bmc().link_down();
    let t0 = std::time::Instant::now();
    let off = fence_stdin(&fe, &hv.bmc().agent_input("off"));
    assert_eq!(off.code, Some(1), "{off:?}");
    eprintln!(
        "fence_ipmilan gave up on the unreachable BMC after {:?}",
        t0.elapsed()
    );
    assert!(hv.powered());
    assert_eq!(fe.tcp_get(hv_ip, VM_PORT).as_deref(), Ok("one-8"));
    hv.bmc().link_up();

    // The host's own cable is pulled: it looks dead but runs on. Fencing kills it for
    // real: with the cable back, nothing answers.
    hv.link_down();
    assert!(fe.tcp_get(hv_ip, VM_PORT).is_err());
    assert!(hv.is_running());
    expect_status(
        &fence_stdin(&fe, &hv.bmc().agent_input("off")),
        0,
        "Powered OFF",
    );
    hv.link_up();
    assert_really_off(&fe, &hv);
    hv.power_on();
    hv.start_vm("one-8", VM_PORT);

    // A crash: the host is dead, its BMC still says on (nobody fenced it).
    hv.crash();
    assert_really_off(&fe, &hv);
    assert!(hv.powered());
    expect_status(
        &fence_stdin(&fe, &hv.bmc().agent_input("status")),
        0,
        "Status: ON",
    );

    // Fencing it: off, then the harness powers it on through the BMC.
    expect_status(
        &fence_stdin(&fe, &hv.bmc().agent_input("off")),
        0,
        "Powered OFF",
    );
    assert!(!hv.powered());
    assert_really_off(&fe, &hv);
    hv.power_on();
    assert_eq!(fe.tcp_get(hv_ip, HYPERVISOR_PORT).as_deref(), Ok("hv1"));
    assert!(fe.tcp_get(hv_ip, VM_PORT).is_err());
    hv.power_off();
    assert_really_off(&fe, &hv);
    let log = hv.power_log();
    assert_eq!(log.matches("power on").count(), 3, "{log}");
    assert_eq!(log.matches("crash").count(), 1, "{log}");

    drop(topo);
    assert_eq!(harness::leftovers(&prefix), Vec::<String>::new());
}
