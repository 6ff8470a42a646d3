//! The stuck-VM report against a fake oned on loopback: exactly the stuck VMs, oned's paging,
//! a clear error (never a panic) for every fault, the CLI's exit codes, the takeover hook.

mod support;

use std::time::{Duration, Instant};

use dxr::Value;
use oneha::opennebula::pool::{FILTER_ALL, INFOEXTENDED, STATE_NOT_DONE};
use oneha::opennebula::report::{self, Report};
use oneha::opennebula::xmlrpc::Retry;
use oneha::opennebula::{OnedError, OpennebulaConfig, load_last_report, report_after_takeover};
use oneha_testkit::fake_oned::{Faults, Order};
use support::*;

async fn report_from(endpoint: &str, page_size: u32, wait: Duration) -> Result<Report, OnedError> {
    let c = client(endpoint, Duration::from_secs(5));
    report::build(&c, page_size, Retry::within(wait), &mut None).await
}

fn ids(r: &Report) -> Vec<i64> {
    r.vms.iter().map(|v| v.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_names_exactly_the_stuck_vms_of_the_fixture() {
    let fake = fake(
        fixture_vms("pool_after_failover.xml"),
        Faults::default(),
        Order::Desc,
    )
    .await;
    let r = report_from(&fake.endpoint(), 5, Duration::ZERO)
        .await
        .unwrap();
    // 12 VMs in the fixture, VM 11 is DONE (not listed by oned with state -1).
    assert_eq!(r.counts.total, 11);
    assert_eq!(ids(&r), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        (
            r.counts.transient,
            r.counts.failure,
            r.counts.lost,
            r.counts.unknown
        ),
        (5, 1, 1, 1)
    );
    assert_eq!(r.oned_version.as_deref(), Some("7.0.0"));

    let vm = |id: i64| r.vms.iter().find(|v| v.id == id).unwrap();
    assert_eq!(vm(1).lcm_state.as_deref(), Some("PROLOG"));
    assert_eq!(vm(1).host.as_deref(), Some("node2"));
    assert_eq!(vm(1).owner, "alice");
    assert_eq!(vm(2).suggestions[0].command, "onevm recover --retry 2");
    assert_eq!(
        vm(3).suggestions[0].command,
        "onevm recover --failure 3",
        "detach inverted"
    );
    assert_eq!(vm(5).state, "CLONING");
    assert_eq!(vm(5).host, None);
    assert_eq!(vm(8).lcm_state.as_deref(), Some("LCM_STATE_99"));
    assert!(vm(8).suggestions.is_empty());
    assert!(
        vm(7)
            .note
            .as_deref()
            .unwrap()
            .contains("next monitoring cycle")
    );
    // Pages of 5 over 11 VMs: offsets 0, 5, 10 (and the prefetched 15).
    let offsets: Vec<i64> = fake
        .calls()
        .iter()
        .filter(|c| c.method == INFOEXTENDED)
        .map(|c| c.ints[1])
        .collect();
    assert_eq!(&offsets[..3], [0, 5, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_as_oned_does_in_both_orders() {
    let stuck = [
        (0, 3, 1, 0),
        (7, 3, 39, 0),
        (250, 10, 0, 0),
        (999, 3, 4, 0),
        (1233, 3, 60, 0),
    ];
    for order in [Order::Desc, Order::Asc] {
        for page_size in [100u32, 1000, 1234, 5000] {
            let fake = fake(generated(1234, &stuck), Faults::default(), order).await;
            let r = report_from(&fake.endpoint(), page_size, Duration::ZERO)
                .await
                .unwrap();
            let done = (0..1234).filter(|id| id % 20 == 19 && !stuck.iter().any(|s| s.0 == *id));
            assert_eq!(
                r.counts.total,
                1234 - done.count() as u64,
                "{order:?} {page_size}"
            );
            assert_eq!(ids(&r), [0, 7, 250, 999, 1233], "{order:?} {page_size}");
            let calls = fake.calls();
            let pages: Vec<&Vec<i64>> = calls
                .iter()
                .filter(|c| c.method == INFOEXTENDED)
                .map(|c| &c.ints)
                .collect();
            for (i, p) in pages.iter().enumerate() {
                let expect = [
                    i64::from(FILTER_ALL),
                    i as i64 * i64::from(page_size),
                    -i64::from(page_size),
                    i64::from(STATE_NOT_DONE),
                ];
                assert_eq!(p.as_slice(), expect, "{order:?} {page_size}");
            }
            let needed = (r.counts.total / u64::from(page_size)) as usize + 1;
            assert!(
                pages.len() >= needed && pages.len() <= needed + 1,
                "{} pages",
                pages.len()
            );
        }
    }
}

fn no_secret(e: &OnedError) -> String {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(SECRET), "the secret leaked: {text}");
    e.to_string()
}

async fn error_with(faults: Faults, wait: Duration, timeout: Duration) -> String {
    let fake = fake(generated(30, &[(3, 3, 1, 0)]), faults, Order::Desc).await;
    let c = client(&fake.endpoint(), timeout);
    let e = report::build(&c, 10, Retry::within(wait), &mut None)
        .await
        .expect_err("the fault must give an error");
    no_secret(&e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_gives_a_clear_error() {
    let t = Duration::from_secs(5);
    let auth = Faults {
        auth_error: true,
        ..Faults::default()
    };
    let e = error_with(auth, Duration::from_secs(1), t).await;
    assert!(
        e.contains("AUTHENTICATION") && e.contains("auth-file"),
        "{e}"
    );

    let e = error_with(
        Faults {
            malformed_pool: true,
            ..Faults::default()
        },
        Duration::ZERO,
        t,
    )
    .await;
    assert!(e.contains("VM pool from oned is malformed"), "{e}");

    let e = error_with(
        Faults {
            malformed_reply: true,
            ..Faults::default()
        },
        Duration::ZERO,
        t,
    )
    .await;
    assert!(e.contains("not valid OpenNebula XML-RPC"), "{e}");

    let e = error_with(
        Faults {
            wrong_type_pool: true,
            ..Faults::default()
        },
        Duration::ZERO,
        t,
    )
    .await;
    assert!(
        e.contains("element LCM_STATE") && e.contains("expected an integer"),
        "{e}"
    );
    assert!(e.contains("VM 29"), "names the VM: {e}");

    let e = error_with(
        Faults {
            wrong_type_reply: true,
            ..Faults::default()
        },
        Duration::ZERO,
        t,
    )
    .await;
    assert!(
        e.contains("expected the VM pool as a string, found an i4"),
        "{e}"
    );

    let slow = Faults {
        delay: Duration::from_millis(1500),
        ..Faults::default()
    };
    let started = Instant::now();
    let e = error_with(slow, Duration::ZERO, Duration::from_millis(300)).await;
    assert!(e.contains("did not answer") && e.contains("0.3s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let e = error_with(
        Faults {
            close: true,
            ..Faults::default()
        },
        Duration::ZERO,
        t,
    )
    .await;
    assert!(e.contains("closed the connection"), "{e}");

    let election = Faults {
        election_calls: 1000,
        ..Faults::default()
    };
    let e = error_with(election, Duration::from_millis(500), t).await;
    assert!(
        e.contains("INTERNAL") && e.contains("election mode") && e.contains("retry"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_while_oned_elects_then_reports() {
    let faults = Faults {
        election_calls: 3,
        ..Faults::default()
    };
    let fake = fake(generated(50, &[(4, 3, 2, 0)]), faults, Order::Desc).await;
    let r = report_from(&fake.endpoint(), 20, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(ids(&r), [4]);
    assert!(fake.calls().len() >= 3 + 1 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_retried_within_the_window_then_reported() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}/RPC2");
    let started = Instant::now();
    let e = report_from(&endpoint, 10, Duration::from_millis(700))
        .await
        .unwrap_err();
    let text = no_secret(&e);
    assert!(
        matches!(e, OnedError::Connect { refused: true, .. }),
        "{e:?}"
    );
    assert!(text.contains("is the opennebula unit running"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it retried"
    );

    // oned comes up after 600ms: a report within a 10s window succeeds.
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        oneha_testkit::fake_oned::FakeOned {
            session: SESSION.into(),
            order: Order::Desc,
            faults: Faults::default(),
            vms: generated(10, &[(2, 3, 11, 0)]),
            now: NOW,
        }
        .spawn(listener)
        .unwrap()
    });
    let r = report_from(&endpoint, 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(ids(&r), [2]);
    drop(late.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oned_faults_and_api_errors_are_named() {
    let fake = fake(generated(5, &[]), Faults::default(), Order::Desc).await;
    let c = client(&fake.endpoint(), Duration::from_secs(5));
    let e = c.call("one.nothing.here", &[]).await.unwrap_err();
    assert!(matches!(e, OnedError::Fault { code: -506, .. }), "{e:?}");
    let bad_state = [
        Value::Integer(-2),
        Value::Integer(-1),
        Value::Integer(-1),
        Value::Integer(12),
    ];
    let e = c
        .call(INFOEXTENDED, &bad_state)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("XML_RPC_API") && e.contains("Incorrect filter_flag, state"),
        "{e}"
    );
    let wrong = oneha::opennebula::xmlrpc::Client::new(
        oneha::opennebula::auth::parse_endpoint(&fake.endpoint()).unwrap(),
        oneha::opennebula::auth::Session::new("oneadmin:wrong-password").unwrap(),
        Duration::from_secs(5),
    );
    let e = wrong.call("one.system.version", &[]).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("AUTHENTICATION") && !text.contains("wrong-password"),
        "{text}"
    );
    assert!(!format!("{wrong:?}").contains("wrong-password"));
}

/// Runs the `oneha` command (no oneha config on this machine: the report needs none).
async fn testkit(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_oneha"))
        .args(args)
        .env("ONEHA_CONFIG", "/nonexistent/oneha.yaml")
        .env_remove("ONE_AUTH")
        .env_remove("ONE_XMLRPC")
        .output()
        .await
        .expect("run oneha");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_vms_command_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_file(dir.path());
    let auth = auth.to_str().unwrap();

    let calm = fake(generated(60, &[]), Faults::default(), Order::Desc).await;
    let ep = calm.endpoint();
    let (code, out, _) = testkit(&["stuck-vms", "--endpoint", &ep, "--auth-file", auth]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no VM stuck among 57"), "{out}");

    let stuck = fake(
        generated(60, &[(12, 3, 17, 21), (40, 11, 0, 0)]),
        Faults::default(),
        Order::Desc,
    )
    .await;
    let ep = stuck.endpoint();
    let (code, out, _) = testkit(&[
        "stuck-vms",
        "--json",
        "--endpoint",
        &ep,
        "--auth-file",
        auth,
    ])
    .await;
    assert_eq!(code, 1, "{out}");
    let r: Report = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(ids(&r), [12, 40]);
    assert!(!out.contains(SECRET));
    let (code, table, _) = testkit(&["stuck-vms", "--endpoint", &ep, "--auth-file", auth]).await;
    assert_eq!(code, 1);
    assert!(
        table.contains("onevm recover --success 12") && table.contains("CLONING_FAILURE"),
        "{table}"
    );

    let bad = fake(
        generated(5, &[]),
        Faults {
            auth_error: true,
            ..Faults::default()
        },
        Order::Desc,
    )
    .await;
    let ep = bad.endpoint();
    let (code, out, err) = testkit(&[
        "stuck-vms",
        "--endpoint",
        &ep,
        "--auth-file",
        auth,
        "--wait",
        "0s",
    ])
    .await;
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with("oneha stuck-vms: ") && err.contains("AUTHENTICATION"),
        "{err}"
    );
    assert!(!err.contains(SECRET) && !err.contains("panicked"), "{err}");

    let missing = dir.path().join("nope");
    let (code, _, err) = testkit(&[
        "stuck-vms",
        "--endpoint",
        &ep,
        "--auth-file",
        missing.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read the auth file") && err.contains("--auth-file"),
        "{err}"
    );

    let (code, _, err) =
        testkit(&["stuck-vms", "--endpoint", "ftp://x", "--auth-file", auth]).await;
    assert_eq!(code, 2);
    assert!(err.contains("http://"), "{err}");
}

fn takeover_cfg(endpoint: &str, auth: &std::path::Path, delay_ms: u64) -> OpennebulaConfig {
    let yaml = format!(
        "endpoint: {endpoint}\nauth_file: {}\ntimeout: 5s\npage_size: 7\nreport_delay: {delay_ms}ms\nwait_for_oned: 20s\n",
        auth.display()
    );
    serde_norway::from_str(&yaml).expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_hook_waits_reports_and_keeps_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_file(dir.path());
    let faults = Faults {
        election_calls: 2,
        ..Faults::default()
    };
    let fake = fake(
        generated(40, &[(3, 3, 2, 0), (17, 3, 40, 0)]),
        faults,
        Order::Desc,
    )
    .await;
    let cfg = takeover_cfg(&fake.endpoint(), &auth, 300);
    let data = dir.path().join("data");
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let r = report_after_takeover(&cfg, &data, rx).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited the report delay"
    );
    assert_eq!(ids(&r), [3, 17]);
    assert_eq!(load_last_report(&data), Some(r.clone()));
    let on_disk = std::fs::read_to_string(data.join("stuck-vms.json")).unwrap();
    assert!(!on_disk.contains(SECRET));
    let versions = fake
        .calls()
        .iter()
        .filter(|c| c.method == "one.system.version")
        .count();
    assert!(versions >= 3, "retried through the election: {versions}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_hook_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_file(dir.path());
    let fake = fake(generated(10, &[]), Faults::default(), Order::Desc).await;
    let cfg = takeover_cfg(&fake.endpoint(), &auth, 60_000);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn({
        let data = dir.path().join("data");
        async move { report_after_takeover(&cfg, &data, rx).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(true).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r, Err(OnedError::Cancelled)), "{r:?}");
    assert!(load_last_report(&dir.path().join("data")).is_none());

    // A dropped sender cancels too (the agent shutting down).
    let (tx, rx) = tokio::sync::watch::channel(false);
    drop(tx);
    let cfg = takeover_cfg(&fake.endpoint(), &auth, 60_000);
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        report_after_takeover(&cfg, dir.path(), rx),
    )
    .await
    .unwrap();
    assert!(matches!(r, Err(OnedError::Cancelled)), "{r:?}");
}

/// Found by fuzzing: an endpoint answering every offset with the same full page made the
/// report page forever (`--timeout` did not stop it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_does_not_page_stops_the_report() {
    let faults = Faults {
        ignore_offset: true,
        ..Faults::default()
    };
    let fake = fake(generated(30, &[(3, 3, 1, 0)]), faults, Order::Desc).await;
    // The bound only turns a regression into a failure instead of a hang.
    let e = tokio::time::timeout(
        Duration::from_secs(300),
        report_from(&fake.endpoint(), 10, Duration::ZERO),
    )
    .await
    .expect("the report must stop")
    .expect_err("a page that does not advance is an error");
    let text = no_secret(&e);
    assert!(
        text.contains("offset 10 does not advance") && text.contains("already read"),
        "{text}"
    );
}

/// `oneha stuck-vms` against `endpoint` with the test session and `extra` arguments.
async fn stuck_vms_cli(endpoint: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_file(dir.path());
    let mut args = vec!["stuck-vms", "--endpoint", endpoint, "--auth-file"];
    args.push(auth.to_str().unwrap());
    args.extend_from_slice(extra);
    testkit(&args).await
}

/// A page size of 1 would ask oned for `end` -1, which it reads as "no limit": it is read as 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_size_one_still_pages() {
    let fake = fake(
        generated(30, &[(3, 3, 1, 0)]),
        Faults::default(),
        Order::Desc,
    )
    .await;
    let r = report_from(&fake.endpoint(), 1, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(ids(&r), [3]);
    let pages = fake.calls();
    let pages = pages.iter().filter(|c| c.method == INFOEXTENDED);
    assert!(pages.map(|c| c.ints[2]).all(|end| end == -2));
}

/// Found by fuzzing: an error text from oned that echoed the session was printed as is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_that_echoes_the_session_is_redacted() {
    let faults = Faults {
        auth_error: true,
        echo_session: true,
        ..Faults::default()
    };
    let fake = fake(generated(5, &[]), faults, Order::Desc).await;
    let e = report_from(&fake.endpoint(), 10, Duration::ZERO)
        .await
        .expect_err("refused");
    let text = no_secret(&e);
    assert!(
        text.contains("AUTHENTICATION") && text.contains("<redacted>"),
        "{text}"
    );
    let (code, _, err) = stuck_vms_cli(&fake.endpoint(), &["--wait", "0s"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains(SECRET) && err.contains("<redacted>"), "{err}");
}

/// `--timeout` bounds the whole report, not only each request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_bounds_the_whole_report() {
    // 16 requests of at least 300 ms each: longer than 2 s in all, each well within it.
    let faults = Faults {
        delay: Duration::from_millis(300),
        ..Faults::default()
    };
    let fake = fake(generated(30, &[]), faults, Order::Desc).await;
    let (code, out, err) =
        stuck_vms_cli(&fake.endpoint(), &["--page-size", "2", "--timeout", "2s"]).await;
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("did not complete within --timeout 2s"),
        "{err}"
    );
}
