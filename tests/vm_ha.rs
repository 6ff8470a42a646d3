//! `oneha host-error` end to end over loopback: the fake oned's world puts a host in ERROR,
//! its hook manager runs `oneha-host-error` (the real binary, under the name OpenNebula's hook
//! template gives it) with `$TEMPLATE -m -p N` on stdin, and the hook fences the host through a
//! fence agent (a script that records what it was asked) and acts on the VMs, which the fake
//! scheduler then brings back on another host. Standalone mode: no oneha agent here.
//!
//! The BMC scenarios with the real fence_ipmilan against ipmi_sim are in tests/vm_ha_hosts.rs.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dxr::Value;
use oneha_testkit::fake_oned::Running;
use oneha_testkit::world::World;
use oneha_testkit::world_handle::WorldHandle;
use support::*;

/// A world: three hosts; on kvm1 (id 0) VMs on a shared and a local system datastore, one
/// opted out, one suspended, one powered off; `extra` adds YAML under `vms:`.
fn world(hook: &Path, args: &str, extra: &str) -> World {
    let text = format!(
        "settings: {{beacon_interval_ms: 100, sched_delay_ms: 100}}\n\
         hosts:\n\
         \x20 - {{id: 0, name: kvm1, template: {{FENCE_IP: 192.0.2.51}}}}\n\
         \x20 - {{id: 1, name: kvm2, template: {{FENCE_IP: 192.0.2.52}}}}\n\
         \x20 - {{id: 2, name: kvm3, template: {{FENCE_IP: 192.0.2.53}}}}\n\
         datastores:\n\
         \x20 - {{id: 0, name: system, tm_mad: shared}}\n\
         \x20 - {{id: 100, name: local, tm_mad: ssh, shared: false}}\n\
         vms:\n\
         \x20 - {{id: 10, host: 0, user_template: {{HA_PRIORITY: \"5\"}}}}\n\
         \x20 - {{id: 11, host: 0}}\n\
         \x20 - {{id: 12, host: 0, ds_id: 100}}\n\
         \x20 - {{id: 13, host: 0, user_template: {{HA: \"no\"}}}}\n\
         \x20 - {{id: 15, host: 0, state: 5, lcm_state: 0}}\n\
         \x20 - {{id: 16, host: 0, state: 8, lcm_state: 0}}\n\
         \x20 - {{id: 20, host: 1}}\n\
         {extra}\
         hooks:\n\
         \x20 - {{name: host_error, state: ERROR, command: {}, arguments: \"{args}\"}}\n",
        hook.display()
    );
    World::parse(&text, "world.yaml", 1_700_000_000).expect("world parses")
}

/// A test's files: the hook wrapper, the fence agent and its log, the config, the hook log.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        Site {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// What the fence agent was asked: one `action ip` line per call.
    fn fence_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("fence.calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
    fn hook_log(&self) -> String {
        std::fs::read_to_string(self.path("host_error.log")).unwrap_or_default()
    }
    /// Makes the fence agent fail (1) or succeed (0).
    fn fence_exit(&self, code: i32) {
        std::fs::write(self.path("fence.rc"), code.to_string()).expect("write rc");
    }
    /// Writes the fence agent, the config and the hook wrapper (the link OpenNebula's hook
    /// template runs, with the environment HEM would give it) for oned at `endpoint`.
    fn write(&self, endpoint: &str) -> PathBuf {
        let agent = self.path("fence_test");
        // A fence agent as fence-agents write them: options on stdin, exit 0 = done. It
        // records the action and the address, and whether a password reached it, never the
        // password itself.
        std::fs::write(
            &agent,
            format!(
                "#!/bin/sh\naction=; ip=; pw=no\nwhile IFS= read -r l; do case \"$l\" in \
                 action=*) action=${{l#action=}};; ip=*) ip=${{l#ip=}};; \
                 password_script=*) pw=yes;; esac; done\n\
                 echo \"$action $ip pw=$pw\" >> {calls}\n\
                 rc=$(cat {rc} 2>/dev/null || echo 0)\n\
                 [ \"$action\" = status ] && exit 0\nexit $rc\n",
                calls = self.path("fence.calls").display(),
                rc = self.path("fence.rc").display()
            ),
        )
        .expect("write agent");
        chmod_x(&agent);
        std::fs::write(self.path("ipmi-pw"), "#!/bin/sh\necho s3cret-bmc-pw\n").expect("pw");
        chmod_x(&self.path("ipmi-pw"));
        let config = format!(
            "fencing:\n  devices:\n    bmc:\n      type: agent\n      agent: {agent}\n      \
             timeout: 10s\n      options: {{ip: \"{{FENCE_IP}}\", username: admin, \
             password_script: {pw}}}\n\
             vm_ha:\n  host_template: {{levels: [{{device: bmc, retries: 0}}]}}\n  \
             monitoring_interval: 1s\n  poll_interval: 200ms\n  fence_backoff: 300ms\n  \
             fence_backoff_max: 600ms\n  log_file: {log}\n",
            agent = agent.display(),
            pw = self.path("ipmi-pw").display(),
            log = self.path("host_error.log").display()
        );
        std::fs::write(self.path("oneha.yaml"), config).expect("config");
        let auth = auth_file(self.dir.path());
        let link = self.path("oneha-host-error");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_oneha"), &link).expect("link");
        let wrapper = self.path("hook.sh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec env ONE_XMLRPC={endpoint} ONE_AUTH={auth} \
                 ONEHA_CONFIG={cfg} ONEHA_HOOK_SOCKET={sock} ONEHA_HOST_ACK_DIR={ack} {link}\n",
                auth = auth.display(),
                cfg = self.path("oneha.yaml").display(),
                sock = self.path("no-agent.sock").display(),
                ack = self.path("ack").display(),
                link = link.display()
            ),
        )
        .expect("wrapper");
        chmod_x(&wrapper);
        wrapper
    }
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Starts the fake with a world built for `site`'s hook wrapper.
async fn start(site: &Site, args: &str, extra: &str) -> (Running, WorldHandle) {
    // The hook needs the endpoint before the world exists: take a free port first.
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}/RPC2");
    let wrapper = site.write(&endpoint);
    let handle = WorldHandle::new(world(&wrapper, args, extra), None).expect("world");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the fake's port");
    let fake = oneha_testkit::fake_oned::FakeOned {
        session: SESSION.to_string(),
        order: Default::default(),
        faults: Default::default(),
        vms: oneha_testkit::fake_oned::Vms::World(handle.clone()),
        now: 1_700_000_000,
    }
    .spawn(listener)
    .expect("fake oned");
    (fake, handle)
}

async fn set_host_state(fake: &Running, id: i32, state: i32) {
    let c = client(&fake.endpoint(), Duration::from_secs(10));
    c.call(
        "testkit.host.state",
        &[Value::Integer(id), Value::Integer(state)],
    )
    .await
    .expect("testkit.host.state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_host_is_fenced_then_its_vms_on_shared_storage_are_rescheduled() {
    let site = Site::new();
    let (fake, h) = start(&site, "$TEMPLATE -m -p 0", "").await;
    set_host_state(&fake, 0, 3).await;
    let run = hook_done(&h, 1).await;
    let log = site.hook_log();
    assert_eq!(run.exit, 0, "{log}\n{}", run.stderr);
    assert_eq!(site.fence_calls(), ["off 192.0.2.51 pw=yes"], "{log}");
    for id in [10, 11] {
        wait_until("the VM runs on another host", || {
            let (s, l, hid) = vm(&h, id);
            (s, l) == (3, 3) && hid.is_some_and(|x| x != 0)
        })
        .await;
    }
    // Left alone: local datastore, opted out, suspended and powered off without -f.
    assert_eq!(vm(&h, 12).2, Some(0));
    assert_eq!(vm(&h, 13).2, Some(0));
    assert_eq!(vm(&h, 15), (5, 0, Some(0)));
    assert_eq!(vm(&h, 16), (8, 0, Some(0)));
    assert_eq!(vm(&h, 20), (3, 3, Some(1)), "a VM of another host");
    for line in [
        "][HOST 0][I] Hook launched",
        "Fencing success (device bmc)",
        "skip VM 12",
        "is local (SHARED=NO)",
        "skip VM 13",
        "opted out",
        "add -f to include it",
        "onevm resched 10",
        "VM 11: done",
        "][I] Hook finished",
    ] {
        assert!(log.contains(line), "no `{line}` in:\n{log}");
    }
    assert!(!log.contains("s3cret"), "{log}");
    // Priority: VM 10 (HA_PRIORITY 5) before VM 11.
    let first = |s: &str| log.find(s).expect(s);
    assert!(
        first("onevm resched 10") < first("onevm resched 11"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_with_force_reports_a_locked_vm_and_exits_255() {
    let site = Site::new();
    let locked = "  - {id: 14, host: 0, lock: {locked: 1}}\n";
    let (fake, h) = start(&site, "$TEMPLATE -r -f -p 0", locked).await;
    set_host_state(&fake, 0, 3).await;
    let run = hook_done(&h, 1).await;
    let log = site.hook_log();
    assert_eq!(run.exit, 255, "a locked VM needs an operator:\n{log}");
    assert!(log.contains("VM 14: refused, the VM is locked"), "{log}");
    assert!(log.contains("onevm unlock 14"), "{log}");
    assert_eq!(vm(&h, 14).2, Some(0), "the locked VM was not touched");
    // -f: suspended and powered-off VMs are recreated too (every mode, as the docs say).
    for id in [10, 11, 12, 15, 16] {
        wait_until("the VM runs on another host", || {
            let (s, l, hid) = vm(&h, id);
            (s, l) == (3, 3) && hid.is_some_and(|x| x != 0)
        })
        .await;
    }
    assert_eq!(vm(&h, 13).2, Some(0), "HA=no");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_back_within_the_pause_is_neither_fenced_nor_touched() {
    let site = Site::new();
    let (fake, h) = start(&site, "$TEMPLATE -d -p 3", "").await;
    set_host_state(&fake, 0, 3).await;
    wait_until("the hook waits", || {
        site.hook_log().contains("Wait 3 cycles")
    })
    .await;
    set_host_state(&fake, 0, 2).await;
    let run = hook_done(&h, 1).await;
    let log = site.hook_log();
    assert_eq!(run.exit, 0, "{log}");
    assert!(log.contains("Host came back (MONITORED)"), "{log}");
    assert!(site.fence_calls().is_empty(), "{log}");
    assert_eq!(vm(&h, 10).0, 3, "not deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_cannot_be_fenced_keeps_its_vms_until_an_operator_acknowledges() {
    let site = Site::new();
    site.fence_exit(1);
    let (fake, h) = start(&site, "$TEMPLATE -d -p 0", "").await;
    set_host_state(&fake, 0, 3).await;
    wait_until("fencing was retried", || site.fence_calls().len() >= 3).await;
    assert!(h.hook_runs().is_empty(), "the hook keeps trying");
    assert!(
        site.hook_log().contains("Fencing error"),
        "{}",
        site.hook_log()
    );
    assert_eq!(vm(&h, 10).0, 3, "no VM touched without a fence");
    // The operator checked the host is off.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oneha"))
        .args(["fence-ack", "kvm1", "--yes"])
        .env("ONEHA_CONFIG", site.path("none.yaml"))
        .env("ONEHA_HOST_ACK_DIR", site.path("ack"))
        .output()
        .expect("fence-ack");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = hook_done(&h, 1).await;
    let log = site.hook_log();
    assert_eq!(run.exit, 0, "{log}");
    assert!(log.contains("acknowledged by an operator"), "{log}");
    assert_eq!(vm(&h, 10).0, 6, "deleted once acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hosts_failing_at_once_trip_the_guard() {
    let site = Site::new();
    let (fake, h) = start(&site, "$TEMPLATE -r -p 0", "").await;
    for id in 0..3 {
        set_host_state(&fake, id, 3).await;
    }
    for n in 1..=3 {
        let run = hook_done(&h, n).await;
        assert_eq!(run.exit, 255);
    }
    let log = site.hook_log();
    assert!(log.contains("Mass-failure guard: 3 hosts failing"), "{log}");
    assert!(site.fence_calls().is_empty(), "nothing fenced:\n{log}");
    assert_eq!(vm(&h, 10).2, Some(0), "nothing touched");
    assert_eq!(vm(&h, 20).2, Some(1));
}

/// Runs `oneha host-error` by hand with `stdin`; (exit code, stderr).
fn run_hook(site: &Site, endpoint: &str, stdin: &str) -> (i32, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oneha"))
        .arg("host-error")
        .env("ONE_XMLRPC", endpoint)
        .env("ONE_AUTH", site.path("one_auth"))
        .env("ONEHA_CONFIG", site.path("oneha.yaml"))
        .env("ONEHA_HOOK_SOCKET", site.path("no-agent.sock"))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_wrong_credentials_or_oned_down_do_nothing_and_exit_255() {
    use base64::Engine as _;
    let site = Site::new();
    let (fake, h) = start(&site, "$TEMPLATE -m -p 0", "").await;
    let ep = fake.endpoint();
    let host = base64::engine::general_purpose::STANDARD
        .encode("<HOST><ID>0</ID><NAME>kvm1</NAME><STATE>3</STATE></HOST>");
    let truncated = base64::engine::general_purpose::STANDARD.encode("<HOST><ID>0</ID><NA");
    let cases: Vec<(String, &str)> = vec![
        ("garbage!".into(), "not base64"),
        (format!("{truncated} -m"), "not a valid <HOST>"),
        (format!("{host} -p 0"), "a mode must be supplied"),
        (String::new(), "no input"),
    ];
    for (stdin, want) in cases {
        let (code, err) = run_hook(&site, &ep, &stdin);
        assert_eq!(code, 255, "{stdin}: {err}");
        assert!(err.contains(want), "{stdin}: {err}");
    }
    // Wrong credentials.
    std::fs::write(site.dir.path().join("one_auth"), "oneadmin:wrong\n").expect("auth");
    let (code, err) = run_hook(&site, &ep, &format!("{host} -m -p 0"));
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("AUTHENTICATION"), "{err}");
    assert!(!err.contains("wrong"), "the password is not shown: {err}");
    // oned down.
    let down = format!("http://127.0.0.1:{}/RPC2", free_port());
    auth_file(site.dir.path());
    let (code, err) = run_hook(&site, &down, &format!("{host} -m -p 0"));
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("cannot connect to oned"), "{err}");
    assert!(site.fence_calls().is_empty());
    assert_eq!(vm(&h, 10), (3, 3, Some(0)));
}
