use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::*;
use crate::config::Dur;

#[test]
fn an_alert_entry_defaults_to_30s_and_all_events() {
    let a: AlertConfig = serde_norway::from_str("path: /usr/local/bin/page-me\n").expect("parses");
    assert_eq!(a.timeout, Dur::secs(30));
    assert!(a.wants(Kind::Failover) && a.wants(Kind::CaseClosed));
    let f: AlertConfig =
        serde_norway::from_str("{path: /x, events: [fence-failed]}").expect("parses");
    assert!(f.wants(Kind::FenceFailed) && !f.wants(Kind::Failover));
    let bad = serde_norway::from_str::<AlertConfig>("{path: /x, timout: 5s}");
    assert!(bad.is_err(), "a misspelt key is an error");
}

#[test]
fn the_environment_carries_the_event() {
    let ev = Event::new(Kind::FenceSucceeded, "n2 is off")
        .target("n2")
        .group(4);
    let origin = Origin {
        cluster: "c1".into(),
        node: "n1".into(),
    };
    let env = environment(&ev, &origin, 9);
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert_eq!(get("ONEHA_EVENT"), "fence-succeeded");
    assert_eq!(get("ONEHA_TARGET"), "n2");
    assert_eq!(get("ONEHA_GROUP"), "4");
    assert_eq!(get("ONEHA_NODE"), "n1");
    assert_eq!(get("ONEHA_CLUSTER"), "c1");
    assert_eq!(get("ONEHA_DETAIL"), "n2 is off");
    assert_eq!(get("ONEHA_SEQUENCE"), "9");
    assert_eq!(get("ONEHA_MESSAGE_ID"), Kind::FenceSucceeded.message_id());
    assert!(
        get("ONEHA_TIMESTAMP").ends_with('Z'),
        "{}",
        get("ONEHA_TIMESTAMP")
    );
}

fn script(dir: &Path, body: &str, timeout: Dur) -> AlertConfig {
    let path = dir.join("s.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    AlertConfig {
        path,
        timeout,
        events: Vec::new(),
    }
}

#[tokio::test]
async fn a_chatty_script_runs_to_its_end_and_its_output_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 1 MB on stdout (far more than a pipe holds), then a line on stderr, then exit 3.
    let a = script(
        dir.path(),
        "head -c 1048576 /dev/zero | tr '\\0' x; echo oops >&2; exit 3",
        Dur::secs(20),
    );
    let t0 = std::time::Instant::now();
    match execute(&a, &[]).await {
        Ended::Exited(status, out) => {
            assert_eq!(status.code(), Some(3));
            assert!(out.len() <= 2 * OUTPUT_LIMIT, "{}", out.len());
            assert!(out.starts_with("xxx"), "{out}");
        }
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn a_script_that_leaves_a_child_behind_ends_when_it_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("bg.pid");
    let a = script(
        dir.path(),
        &format!("sleep 60 & echo $! > {}; echo sent", pidfile.display()),
        Dur::secs(30),
    );
    let t0 = std::time::Instant::now();
    let ended = execute(&a, &[]).await;
    assert!(
        matches!(&ended, Ended::Exited(s, _) if s.success()),
        "{ended:?}"
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "waited for the child"
    );
    if let Some(pid) = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[tokio::test]
async fn a_script_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("bg.pid");
    let a = script(
        dir.path(),
        &format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
        Dur::ms(300),
    );
    let t0 = std::time::Instant::now();
    let ended = execute(&a, &[("ONEHA_EVENT", "failover".into())]).await;
    assert!(matches!(ended, Ended::TimedOut), "{ended:?}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    // The background sleep was in the script's process group: killed too (then reaped by
    // init, or a zombie for a moment).
    let gone = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    });
    assert!(gone, "the script's child {pid} outlived the kill");
}
