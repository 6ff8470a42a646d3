//! `oneha host-error` for hypervisor hosts that are VMs, fenced through fence_xvm against the
//! real Debian fence_virtd (libvirt's mock hypervisor; the lab of tests/fence_virtd.rs).
//!
//! The lab's "host" namespace is the physical machine: fence_virtd with two running domains,
//! `one1` and `one2`, which are the OpenNebula hosts kvm1 and kvm2. Its "guest" namespace is
//! front-end fe1 (192.0.2.11): the fake oned listens on its loopback, and its hook manager runs
//! the real `oneha-host-error` there, under fe1's hostname, standalone (no oneha agent). The
//! config fences kvm1 through `vm_ha.hosts` (plug `one1`) and every other host through
//! `vm_ha.host_template` (plug `{XVM_DOMAIN}` from the host's template), both with one `xvm`
//! device whose key file is mode 0600. The domains' power state is read back from fence_virtd
//! with oneha's client and the stock fence_xvm, as tests/fence_virtd.rs does.

mod fence_net;
mod support;

use std::path::{Path, PathBuf};

use fence_net::{GUEST_IP, KEY, Lab, Verdict, both, start_virtd};
use oneha::fence::Action;
use oneha_testkit::fake_oned::{FakeOned, Running, Vms};
use oneha_testkit::world::World;
use oneha_testkit::world_handle::WorldHandle;
use support::{SESSION, auth_file, hook_done, vm, wait_until};

/// What a wrong key file holds (never to be seen in a log or an error).
const WRONG_KEY: &[u8] = b"not-the-hypervisors-key-QWERTYUIOP";

/// A test's front-end files: the key, the config, the hook wrapper, the hook log.
struct FrontEnd {
    dir: tempfile::TempDir,
}

impl FrontEnd {
    /// Writes fe1's files for oned at `endpoint`, with `key` in the xvm key file (0600).
    fn new(lab: &Lab, endpoint: &str, key: &[u8]) -> FrontEnd {
        use std::os::unix::fs::PermissionsExt;
        let fe = FrontEnd {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let key_file = fe.path("fence_xvm.key");
        std::fs::write(&key_file, key).expect("key");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod key");
        let config = format!(
            "fencing:\n  devices:\n    kvm-host:\n      type: xvm\n      key_file: {key}\n      \
             timeout: 2s\n      retransmit: 500ms\n      source_addresses: {{fe1: {GUEST_IP}}}\n\
             vm_ha:\n  hosts:\n    kvm1:\n      levels: [{{device: kvm-host, plug: one1, \
             retries: 0}}]\n  host_template:\n    levels: [{{device: kvm-host, \
             plug: \"{{XVM_DOMAIN}}\", retries: 0}}]\n  monitoring_interval: 1s\n  \
             poll_interval: 200ms\n  fence_backoff: 300ms\n  fence_backoff_max: 600ms\n  \
             log_file: {log}\n",
            key = key_file.display(),
            log = fe.path("host_error.log").display()
        );
        std::fs::write(fe.path("oneha.yaml"), config).expect("config");
        let auth = auth_file(fe.dir.path());
        let link = fe.path("oneha-host-error");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_oneha"), &link).expect("link");
        // What HEM runs on fe1: the hook in fe1's network namespace, under its hostname (the
        // standalone hook's node name, which `source_addresses` is keyed by).
        let wrapper = fe.path("hook.sh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n\
                 [ -n \"$IN_FE1\" ] || exec env IN_FE1=1 ip netns exec {ns} unshare --uts \"$0\"\n\
                 echo fe1 > /proc/sys/kernel/hostname\n\
                 exec env ONE_XMLRPC={endpoint} ONE_AUTH={auth} ONEHA_CONFIG={cfg} \
                 ONEHA_HOOK_SOCKET={dir}/no-agent.sock ONEHA_HOST_ACK_DIR={dir}/ack {link}\n",
                ns = lab.ns("guest"),
                auth = auth.display(),
                cfg = fe.path("oneha.yaml").display(),
                dir = fe.dir.path().display(),
                link = link.display()
            ),
        )
        .expect("wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("chmod wrapper");
        fe
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn hook_log(&self) -> String {
        std::fs::read_to_string(self.path("host_error.log")).unwrap_or_default()
    }
}

/// kvm1 (id 0) and kvm2 (id 1) are the domains one1 and one2; kvm3 (id 2) has room.
fn world(hook: &Path) -> World {
    let text = format!(
        "settings: {{beacon_interval_ms: 100, sched_delay_ms: 100}}\n\
         hosts:\n\
         \x20 - {{id: 0, name: kvm1}}\n\
         \x20 - {{id: 1, name: kvm2, template: {{XVM_DOMAIN: one2}}}}\n\
         \x20 - {{id: 2, name: kvm3}}\n\
         datastores:\n\
         \x20 - {{id: 0, name: system, tm_mad: shared}}\n\
         vms:\n\
         \x20 - {{id: 10, host: 0}}\n\
         \x20 - {{id: 11, host: 0}}\n\
         \x20 - {{id: 20, host: 1}}\n\
         hooks:\n\
         \x20 - {{name: host_error, state: ERROR, command: {}, \
         arguments: \"$TEMPLATE -m -p 0\"}}\n",
        hook.display()
    );
    World::parse(&text, "world.yaml", support::NOW).expect("world parses")
}

/// Starts fence_virtd, fe1's files holding `key`, and the fake oned on fe1's loopback.
async fn start(lab: &Lab, key: &[u8]) -> (fence_net::Proc, FrontEnd, Running, WorldHandle) {
    let virtd = start_virtd(lab, "sha256", "sha256");
    // The listener is made in fe1's namespace (a socket stays in the namespace it was made
    // in); the fake serves it from this process.
    let listener = lab
        .block_on("guest", async {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(l)
        })
        .expect("bind in fe1");
    let endpoint = format!(
        "http://127.0.0.1:{}/RPC2",
        listener.local_addr().expect("addr").port()
    );
    let fe = FrontEnd::new(lab, &endpoint, key);
    let handle = WorldHandle::new(world(&fe.path("hook.sh")), None).expect("world");
    let fake = FakeOned {
        session: SESSION.to_string(),
        order: Default::default(),
        faults: Default::default(),
        vms: Vms::World(handle.clone()),
        now: support::NOW,
    }
    .spawn(tokio::net::TcpListener::from_std(listener).expect("tokio listener"))
    .expect("fake oned");
    (virtd, fe, fake, handle)
}

/// monitord reports host `id` in ERROR: its VMs go UNKNOWN, HEM runs the hook.
fn fail_host(h: &WorldHandle, id: i64) {
    h.call(|w| {
        let now = (oneha_testkit::world_handle::now_ms() / 1000) as i64;
        oneha_testkit::world_ops::monitor_host_state(w, id, 3, "forced by the test", now);
        Ok(())
    })
    .expect("host exists");
}

/// The domain's power state as fence_virtd's backend has it, asked by both clients.
fn power(lab: &Lab, domain: &str, want: Verdict) {
    tokio::task::block_in_place(|| both(lab, Action::Status, domain, want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_are_vms_are_fenced_through_fence_virtd_then_their_vms_rescheduled() {
    let lab = Lab::new("vhx1");
    let (_virtd, fe, _fake, h) = start(&lab, KEY).await;

    // kvm1 (vm_ha.hosts: plug one1) fails.
    fail_host(&h, 0);
    let run = hook_done(&h, 1).await;
    let log = fe.hook_log();
    assert_eq!(run.exit, 0, "{log}\n{}", run.stderr);
    power(&lab, "one1", Verdict::Off);
    power(&lab, "one2", Verdict::Ok);
    for line in [
        "][HOST 0][I] Hook launched",
        "][HOST 0][I] Fencing host kvm1",
        "][HOST 0][I] Fencing success (device kvm-host)",
        "onevm resched 10",
        "VM 11: done",
        "][HOST 0][I] Hook finished",
    ] {
        assert!(log.contains(line), "no `{line}` in:\n{log}");
    }
    for id in [10, 11] {
        wait_until("the VM runs on another host", || {
            let (s, l, hid) = vm(&h, id);
            (s, l) == (3, 3) && hid.is_some_and(|x| x != 0)
        })
        .await;
    }
    assert_eq!(vm(&h, 20), (3, 3, Some(1)), "a VM of another host");

    // kvm2 (vm_ha.host_template: plug {XVM_DOMAIN} = one2) fails: everything ends on kvm3.
    fail_host(&h, 1);
    let run = hook_done(&h, 2).await;
    let log = fe.hook_log();
    assert_eq!(run.exit, 0, "{log}\n{}", run.stderr);
    assert!(
        log.contains("][HOST 1][I] Fencing success (device kvm-host)"),
        "{log}"
    );
    power(&lab, "one2", Verdict::Off);
    for id in [10, 11, 20] {
        wait_until("the VM runs on kvm3", || vm(&h, id) == (3, 3, Some(2))).await;
    }
    assert!(
        !log.contains(std::str::from_utf8(KEY).expect("ascii")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_xvm_key_fences_nothing_and_touches_no_vm_until_acknowledged() {
    let lab = Lab::new("vhx2");
    let (_virtd, fe, _fake, h) = start(&lab, WRONG_KEY).await;
    fail_host(&h, 0);
    let before = [vm(&h, 10), vm(&h, 11)];
    // fence_virtd drops requests signed with another key: each round times out.
    let errors = |log: &str| log.matches("][HOST 0][E] Fencing error").count();
    wait_until("fencing failed twice", || errors(&fe.hook_log()) >= 2).await;
    let log = fe.hook_log();
    assert!(h.hook_runs().is_empty(), "the hook keeps trying:\n{log}");
    assert_eq!([vm(&h, 10), vm(&h, 11)], before, "no VM touched:\n{log}");
    assert!(
        h.read(|w| w.actions.is_empty()),
        "no VM action sent:\n{log}"
    );
    let error = log
        .lines()
        .find(|l| l.contains("][HOST 0][E] Fencing error"))
        .expect("an error line");
    for part in ["device kvm-host", "no fence_virtd answered", "key file"] {
        assert!(error.contains(part), "`{part}` missing in: {error}");
    }
    for key in [WRONG_KEY, KEY] {
        let key = std::str::from_utf8(key).expect("ascii");
        assert!(!log.contains(key), "key material in the log:\n{log}");
    }

    // The operator checks kvm1 is off and acknowledges it: the VMs move.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oneha"))
        .args(["fence-ack", "kvm1", "--yes"])
        .env("ONEHA_CONFIG", fe.path("none.yaml"))
        .env("ONEHA_HOST_ACK_DIR", fe.path("ack"))
        .output()
        .expect("fence-ack");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = hook_done(&h, 1).await;
    let log = fe.hook_log();
    assert_eq!(run.exit, 0, "{log}\n{}", run.stderr);
    assert!(log.contains("acknowledged by an operator"), "{log}");
    assert!(!log.contains("Fencing success"), "{log}");
    for id in [10, 11] {
        wait_until("the VM runs on another host", || {
            let (s, l, hid) = vm(&h, id);
            (s, l) == (3, 3) && hid.is_some_and(|x| x != 0)
        })
        .await;
    }
    for key in [WRONG_KEY, KEY] {
        let key = std::str::from_utf8(key).expect("ascii");
        assert!(
            !log.contains(key) && !run.stderr.contains(key),
            "key material shown"
        );
    }
    // fence_virtd never acted on a request with the wrong key.
    power(&lab, "one1", Verdict::Ok);
}
