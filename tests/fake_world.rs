//! The fake oned's world over loopback, read with oneha's own XML-RPC client: calls change the
//! world as oned's do, the fake monitord puts a host whose probe fails in ERROR and runs the
//! HOST hook like HEM, the scheduler brings rescheduled and recreated VMs back, and a second
//! fake continues the world from the state file.

mod support;

use std::path::Path;
use std::time::Duration;

use dxr::Value;
use oneha::opennebula::error::{ErrorCode, OnedError};
use oneha::opennebula::xmlrpc::Client;
use oneha_testkit::world::{Hook, World};
use oneha_testkit::world_handle::WorldHandle;
use support::*;

fn ints(v: &[i32]) -> Vec<Value> {
    v.iter().copied().map(Value::Integer).collect()
}

async fn call(c: &Client, method: &str, params: &[Value]) -> Result<Value, OnedError> {
    c.call(method, params).await
}

fn vm_state(h: &WorldHandle, id: i64) -> (i64, i64, Option<i64>) {
    h.read(|w| {
        let v = w.vm(id).expect("vm");
        (v.state, v.lcm(), v.last().map(|r| r.hid))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_answer_and_refuse_as_oned_does() {
    let (fake, world) = fake_world(test_world(), None).await;
    let c = client(&fake.endpoint(), Duration::from_secs(10));

    let ok = call(
        &c,
        "one.vm.action",
        &[Value::String("resched".into()), Value::Integer(0)],
    )
    .await;
    assert_eq!(ok.unwrap(), Value::Integer(0));
    assert!(world.read(|w| w.vm(0).is_some_and(|v| v.resched)));

    let refused = call(
        &c,
        "one.vm.action",
        &[Value::String("resched".into()), Value::Integer(4)],
    )
    .await
    .unwrap_err();
    match refused {
        OnedError::Api { code, message, .. } => {
            assert_eq!(code, ErrorCode::Action);
            assert_eq!(
                message,
                "[one.vm.action] Error performing action \"resched\": This action is not available for state SUSPENDED"
            );
        }
        other => panic!("{other:?}"),
    }
    let locked = call(&c, "one.vm.recover", &ints(&[2, 4]))
        .await
        .unwrap_err();
    assert!(
        matches!(&locked, OnedError::Api { code: ErrorCode::Authorization, message, .. }
            if message == "[one.vm.recover] User [0] : VM is locked. [2]."),
        "{locked:?}"
    );
    let missing = call(&c, "one.host.info", &ints(&[9])).await.unwrap_err();
    assert!(
        matches!(&missing, OnedError::Api { code: ErrorCode::NoExists, message, .. }
            if message == "[one.host.info] Error getting host [9]."),
        "{missing:?}"
    );
    // Delete: DONE at once (no driver delay), gone from the host's VMS.
    assert_eq!(
        call(&c, "one.vm.recover", &ints(&[1, 3])).await.unwrap(),
        Value::Integer(1)
    );
    assert_eq!(vm_state(&world, 1).0, 6);
    let host0 = match call(&c, "one.host.info", &ints(&[0])).await.unwrap() {
        Value::String(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(
        host0.contains("<VMS><ID>0</ID><ID>2</ID><ID>3</ID><ID>4</ID><ID>5</ID></VMS>"),
        "{host0}"
    );
    // Wrong parameter types are XML-RPC faults, unknown methods too.
    let fault = call(
        &c,
        "one.vm.recover",
        &[Value::String("x".into()), Value::Integer(3)],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(fault, OnedError::Fault { code: -501, .. }),
        "{fault:?}"
    );
    let fault = call(&c, "one.vm.dance", &ints(&[1])).await.unwrap_err();
    assert!(
        matches!(fault, OnedError::Fault { code: -506, .. }),
        "{fault:?}"
    );
    // The static pool's fake does not know the world's methods.
    let plain = fake_serving(generated(3, &[])).await;
    let c2 = client(&plain.endpoint(), Duration::from_secs(10));
    let fault = call(&c2, "one.hostpool.info", &[]).await.unwrap_err();
    assert!(
        matches!(fault, OnedError::Fault { code: -506, .. }),
        "{fault:?}"
    );
}

fn hook_script(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("hook.sh");
    let seen = dir.join("stdin");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat > {}\necho ran\nexit 3\n", seen.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

async fn probe_listener(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.bind(addr).unwrap();
    s.listen(16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_probe_puts_the_host_in_error_runs_the_hook_and_recovery_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let target = probe_listener("127.0.0.1:0".parse().unwrap()).await;
    let addr = target.local_addr().unwrap();
    let mut world = test_world();
    world.hosts[0].probe = Some(addr.to_string());
    world.settings.hook_log = Some(dir.path().join("hooks.log"));
    world.hooks.push(Hook {
        name: "host_error".into(),
        state: "ERROR".into(),
        command: hook_script(dir.path()),
        arguments: "$TEMPLATE -m -p 5".into(),
        arguments_stdin: true,
    });
    let (_fake, h) = fake_world(world, None).await;
    // Reachable: stays MONITORED well past the monitoring interval.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(h.read(|w| w.host(0).map(|x| x.state)), Some(2));
    assert!(h.hook_runs().is_empty());

    drop(target);
    wait_until("host 0 is in ERROR", || {
        h.read(|w| w.host(0).is_some_and(|x| x.state == 3))
    })
    .await;
    assert_eq!(vm_state(&h, 0), (3, 16, Some(0)), "RUNNING -> UNKNOWN");
    assert_eq!(vm_state(&h, 3), (8, 0, Some(0)), "POWEROFF stays");
    assert_eq!(vm_state(&h, 6), (3, 3, Some(1)), "other hosts' VMs stay");
    wait_until("the hook ran", || !h.hook_runs().is_empty()).await;
    let runs = h.hook_runs();
    assert_eq!(runs.len(), 1, "one run per transition: {runs:?}");
    assert_eq!((runs[0].exit, runs[0].stdout.as_str()), (3, "ran\n"));
    let stdin = std::fs::read_to_string(dir.path().join("stdin")).unwrap();
    let (b64, flags) = stdin.split_once(' ').unwrap();
    assert_eq!(flags, "-m -p 5");
    use base64::Engine as _;
    let host_xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(
        host_xml.starts_with(
            "<HOST><ID>0</ID><NAME>node1</NAME><STATE>3</STATE><PREV_STATE>2</PREV_STATE>"
        ),
        "{host_xml}"
    );
    assert!(host_xml.contains("<FENCE_IP><![CDATA[192.0.2.11]]></FENCE_IP>"));
    assert!(
        host_xml.contains("<PCI_DEVICES/>"),
        "as Nokogiri writes it: {host_xml}"
    );
    let log = std::fs::read_to_string(dir.path().join("hooks.log")).unwrap();
    let line: serde_json::Value = serde_json::from_str(log.trim()).unwrap();
    assert_eq!(
        (line["host_id"].as_i64(), line["exit"].as_i64()),
        (Some(0), Some(3))
    );

    let _back = probe_listener(addr).await;
    wait_until("host 0 is MONITORED again", || {
        h.read(|w| w.host(0).is_some_and(|x| x.state == 2))
    })
    .await;
    assert_eq!(
        vm_state(&h, 0),
        (3, 3, Some(0)),
        "its VMs are seen running again"
    );
    assert_eq!(h.hook_runs().len(), 1, "no hook for MONITORED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescheduled_and_recreated_vms_come_back_on_another_host() {
    let mut world = test_world();
    world.settings.driver_delay_ms = 300;
    let (fake, h) = fake_world(world, None).await;
    let c = client(&fake.endpoint(), Duration::from_secs(10));
    // A test without probes forces the host's state (test-only method).
    call(&c, "testkit.host.state", &ints(&[0, 3]))
        .await
        .unwrap();
    assert_eq!(vm_state(&h, 0), (3, 16, Some(0)));
    call(
        &c,
        "one.vm.action",
        &[Value::String("resched".into()), Value::Integer(0)],
    )
    .await
    .unwrap();
    call(&c, "one.vm.recover", &ints(&[3, 4])).await.unwrap();
    assert_eq!(vm_state(&h, 3), (3, 15, Some(0)), "CLEANUP_RESUBMIT first");
    let mut seen_transient = false;
    wait_until("VM 0 runs elsewhere", || {
        let (s, l, hid) = vm_state(&h, 0);
        seen_transient |= l == 60;
        (s, l) == (3, 3) && hid != Some(0)
    })
    .await;
    assert!(
        seen_transient,
        "the move went through PROLOG_MIGRATE_UNKNOWN"
    );
    wait_until("VM 3 runs elsewhere", || {
        let (s, l, hid) = vm_state(&h, 3);
        (s, l) == (3, 3) && hid.is_some_and(|x| x != 0)
    })
    .await;
    let history = h.read(|w| w.vm(3).map(|v| v.history.len()));
    assert_eq!(history, Some(2), "the old record stays, a new one is added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_fake_continues_the_world_from_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (first, h1) = fake_world(test_world(), Some(state.clone())).await;
    let c = client(&first.endpoint(), Duration::from_secs(10));
    call(&c, "one.vm.recover", &ints(&[6, 3])).await.unwrap();
    call(&c, "one.host.status", &ints(&[2, 1])).await.unwrap();
    call(&c, "one.vm.lock", &ints(&[0, 2])).await.unwrap();
    drop(first);
    drop(h1);

    // Another world file is given too: the state file wins.
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "hosts: [{id: 7, name: elsewhere}]\n").unwrap();
    let h2 = WorldHandle::open(Some(&other), Some(&state)).unwrap();
    let second = fake_serving(oneha_testkit::fake_oned::Vms::World(h2.clone())).await;
    let c = client(&second.endpoint(), Duration::from_secs(10));
    assert_eq!(vm_state(&h2, 6).0, 6, "VM 6 stays deleted");
    assert_eq!(h2.read(|w| w.host(2).map(|x| x.state)), Some(4));
    let e = call(
        &c,
        "one.vm.action",
        &[Value::String("resched".into()), Value::Integer(0)],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            OnedError::Api {
                code: ErrorCode::Authorization,
                ..
            }
        ),
        "{e:?}"
    );
    // And what the second one does lands in the file.
    call(&c, "one.vm.unlock", &ints(&[0])).await.unwrap();
    let text = std::fs::read_to_string(&state).unwrap();
    let saved = World::parse(&text, "state", NOW).unwrap();
    assert!(saved.vm(0).is_some_and(|v| v.lock.is_none()));
    // Both fakes' VM action calls are in the action log, the refused one too.
    let log: Vec<(&str, i64, &str, bool)> = saved
        .actions
        .iter()
        .map(|a| (a.method.as_str(), a.vm, a.what.as_str(), a.ok))
        .collect();
    assert_eq!(
        log,
        [
            ("one.vm.recover", 6, "3", true),
            ("one.vm.action", 0, "resched", false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_world_applies_an_action_before_it_answers() {
    let mut w = test_world();
    w.settings.action_delay_ms = 60_000;
    let (fake, h) = fake_world(w, None).await;
    // A client that gives up long before the answer: the change is made all the same.
    let c = client(&fake.endpoint(), Duration::from_millis(300));
    let e = call(&c, "one.vm.recover", &ints(&[6, 3])).await;
    assert!(e.is_err(), "answered despite the delay: {e:?}");
    assert_eq!(vm_state(&h, 6).0, 6, "VM 6 deleted");
    assert_eq!(h.read(|x| x.actions.len()), 1);
    // Reads are not delayed.
    let c = client(&fake.endpoint(), Duration::from_secs(10));
    call(&c, "one.vm.info", &ints(&[6])).await.unwrap();
}

#[test]
fn the_program_serves_a_world_file_and_a_second_run_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let world = fixtures().join("world.yaml");
    let run = |args: &[&std::ffi::OsStr]| {
        let mut child = std::process::Command::new(support::testkit_bin())
            .arg("fake-oned")
            .arg("--session")
            .arg(SESSION)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead as _;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        (child, format!("http://{addr}/RPC2"))
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut first, ep) = run(&[
        "--world".as_ref(),
        world.as_os_str(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    rt.block_on(async {
        let c = client(&ep, Duration::from_secs(10));
        call(&c, "one.vm.recover", &ints(&[0, 3])).await.unwrap();
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let script = hook_script(dir.path());
    let log = dir.path().join("hooks.log");
    let (mut second, ep) = run(&[
        "--state".as_ref(),
        state.as_os_str(),
        "--hook-command".as_ref(),
        script.as_os_str(),
        "--hook-log".as_ref(),
        log.as_os_str(),
    ]);
    rt.block_on(async {
        let c = client(&ep, Duration::from_secs(10));
        let vm = match call(&c, "one.vm.info", &ints(&[0])).await.unwrap() {
            Value::String(s) => s,
            other => panic!("{other:?}"),
        };
        assert!(vm.contains("<STATE>6</STATE>"), "{vm}");
        // The hook given on the command line runs when a host enters ERROR.
        call(&c, "testkit.host.state", &ints(&[1, 3]))
            .await
            .unwrap();
        wait_until("the hook is logged", || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.ends_with('\n'))
        })
        .await;
    });
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(
        (line["host_id"].as_i64(), line["exit"].as_i64()),
        (Some(1), Some(3))
    );
    let stdin = std::fs::read_to_string(dir.path().join("stdin")).unwrap();
    assert!(
        stdin.ends_with(" -m -p 5"),
        "the default ARGUMENTS: {stdin}"
    );
    second.kill().unwrap();
    second.wait().unwrap();
    let bad = std::process::Command::new(support::testkit_bin())
        .args(["fake-oned", "--world"])
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("missing.yaml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_transition_into_error_runs_the_hook_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = test_world();
    // Nobody listens there: the host fails from the start.
    world.hosts[1].probe = Some(format!("127.0.0.1:{}", free_port()));
    world.hooks.push(Hook {
        name: "host_error".into(),
        state: "ERROR".into(),
        command: hook_script(dir.path()),
        arguments: "$TEMPLATE".into(),
        arguments_stdin: true,
    });
    let (fake, h) = fake_world(world, None).await;
    let c = client(&fake.endpoint(), Duration::from_secs(10));
    let state = |h: &WorldHandle| h.read(|w| w.host(1).map_or(-1, |x| x.state));
    wait_until("host 1 is in ERROR", || state(&h) == 3).await;
    wait_until("the hook ran once", || h.hook_runs().len() == 1).await;
    // An admin enables it: INIT, then monitoring fails again: a new transition, a new run.
    call(&c, "one.host.status", &ints(&[1, 0])).await.unwrap();
    wait_until("the hook ran again", || h.hook_runs().len() == 2).await;
    assert_eq!(state(&h), 3);
    assert!(h.hook_runs().iter().all(|r| r.host_id == 1 && r.state == 3));
    // Disabled, it stays DISABLED and no hook runs.
    call(&c, "one.host.status", &ints(&[1, 1])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(state(&h), 4);
    assert_eq!(h.hook_runs().len(), 2);
}
