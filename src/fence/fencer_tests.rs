//! Levels, retries, S5 and serialisation of the fencer, driven through fake fence agents
//! (real processes).

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config;
use crate::config::fencing::tests::config_text;
use crate::fence::agent::tests::{rt, write_fake_agent};

fn device(name: &str, agent: &Path, dir: &Path, mode: &str, timeout: &str) -> String {
    format!(
        "    {name}:\n      type: agent\n      agent: {}\n      timeout: {timeout}\n      options:\n        mode: {mode}\n        log: {}\n        password: pw-{name}\n",
        agent.display(),
        dir.join(format!("{name}.log")).display()
    )
}

fn fencer(dir: &Path, devices: &str, nodes: &str) -> Fencer {
    let text = config_text(
        dir,
        &format!("fencing:\n  devices:\n{devices}  nodes:\n{nodes}"),
    );
    let cfg = config::parse(Path::new("oneha.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    Fencer::new(&cfg, "one-server1").unwrap()
}

#[test]
fn levels_in_order_with_retries_until_one_succeeds() {
    let d = tempfile::tempdir().unwrap();
    let a = write_fake_agent(d.path());
    let devices =
        device("broken", &a, d.path(), "fail", "10s") + &device("ipmi", &a, d.path(), "ok", "10s");
    let f = fencer(
        d.path(),
        &devices,
        "    one-server2:\n      delay: 3s\n      levels:\n        - {device: broken, plug: one2, retries: 1, retry_sleep: 10ms}\n        - {device: ipmi, plug: one2}\n",
    );
    assert_eq!(f.delay("one-server2"), Duration::from_secs(3));
    assert_eq!(f.delay("one-server1"), Duration::ZERO);
    assert!(f.can_fence("one-server2") && !f.can_fence("one-server1"));
    let r = rt().block_on(f.fence("one-server2", Action::Off));
    assert!(r.success(), "{r}");
    let steps: Vec<(usize, u32, &str, AttemptResult)> = r
        .attempts
        .iter()
        .map(|a| (a.level, a.try_number, a.device.as_str(), a.result))
        .collect();
    assert_eq!(
        steps,
        [
            (0, 1, "broken", AttemptResult::Failed),
            (0, 2, "broken", AttemptResult::Failed),
            (1, 1, "ipmi", AttemptResult::Success),
        ]
    );
    assert_eq!(r.succeeded_by().map(|a| a.device.as_str()), Some("ipmi"));
    assert_eq!(
        (r.target.as_str(), r.by.as_str()),
        ("one-server2", "one-server1")
    );
    let err = r.attempts[0].error.as_deref().unwrap();
    assert!(
        err.contains("login refused") && !err.contains("pw-broken"),
        "{err}"
    );
    // The report goes into the Raft journal and `status --json`.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["attempts"][2]["result"], "success");
    assert_eq!(json["attempts"][2]["method"], "agent");
    assert_eq!(json["attempts"][2]["answer"]["answer"], "done");
    assert_eq!(json["action"], "off");
    let back: FenceReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
    assert!(
        r.to_string()
            .contains("level 2 try 1 ipmi (agent) off: Success"),
        "{r}"
    );
}

#[test]
fn status_and_timeouts_never_count_as_fencing() {
    let d = tempfile::tempdir().unwrap();
    let a = write_fake_agent(d.path());
    let devices =
        device("off", &a, d.path(), "off", "10s") + &device("hang", &a, d.path(), "hang", "300ms");
    let f = fencer(
        d.path(),
        &devices,
        "    one-server2:\n      levels:\n        - {device: off, retries: 0}\n    one-server1:\n      levels:\n        - {device: hang, retries: 0}\n",
    );
    let rt = rt();
    // status OFF answered: the attempt worked, but it is no proof of fencing (S5).
    let r = rt.block_on(f.fence("one-server2", Action::Status));
    assert_eq!(r.attempts[0].result, AttemptResult::Success);
    assert_eq!(r.attempts[0].answer, Some(Answer::PowerOff));
    assert!(!r.success());
    // on is not fencing either.
    assert!(!rt.block_on(f.fence("one-server2", Action::On)).success());
    // A timeout is never success.
    let r = rt.block_on(f.fence("one-server1", Action::Off));
    assert_eq!(r.attempts[0].result, AttemptResult::Timeout);
    assert!(!r.success());
    assert!(r.last_error().unwrap().contains("killed"));
}

#[test]
fn a_node_without_levels_cannot_be_fenced_and_says_so() {
    let d = tempfile::tempdir().unwrap();
    let a = write_fake_agent(d.path());
    let f = fencer(d.path(), &device("ipmi", &a, d.path(), "ok", "10s"), "");
    let r = rt().block_on(f.fence("one-server2", Action::Off));
    assert!(!r.success());
    assert!(
        r.last_error()
            .unwrap()
            .contains("add fencing.nodes.one-server2.levels")
    );
    let c = rt().block_on(f.check(Some("one-server2")));
    assert_eq!(c.len(), 1);
    assert!(!c[0].ok && c[0].detail.contains("no fence levels"));
}

#[test]
fn check_runs_status_or_monitor_and_reports_each_level() {
    let d = tempfile::tempdir().unwrap();
    let a = write_fake_agent(d.path());
    let devices =
        device("good", &a, d.path(), "ok", "10s") + &device("bad", &a, d.path(), "fail", "10s");
    let f = fencer(
        d.path(),
        &devices,
        "    one-server2:\n      levels:\n        - {device: good, plug: one2}\n        - {device: bad}\n",
    );
    let c = rt().block_on(f.check(None));
    assert_eq!(c.len(), 2);
    assert!(
        c[0].ok && c[0].action == Action::Status && c[0].detail == "status ON",
        "{c:?}"
    );
    assert!(!c[1].ok && c[1].action == Action::Monitor, "{c:?}");
    assert!(c[1].detail.contains("login refused"));
    // Nothing was powered off: only status and monitor ran.
    let log = std::fs::read_to_string(d.path().join("good.log")).unwrap();
    assert!(log.contains("action=status") && !log.contains("action=off"));
}

#[test]
fn one_operation_at_a_time() {
    let d = tempfile::tempdir().unwrap();
    let a = write_fake_agent(d.path());
    let f = fencer(
        d.path(),
        &device("slow", &a, d.path(), "slow", "10s"),
        "    one-server2:\n      levels:\n        - {device: slow}\n    one-server1:\n      levels:\n        - {device: slow}\n",
    );
    let (r1, r2) = rt().block_on(async {
        tokio::join!(
            f.fence("one-server2", Action::Off),
            f.fence("one-server1", Action::Reboot)
        )
    });
    assert!(r1.success() && r2.success());
    let order = std::fs::read_to_string(d.path().join("slow.log.order")).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines.len(), 4, "{order}");
    assert!(
        lines[0].starts_with("start") && lines[1].starts_with("end"),
        "{order}"
    );
    assert!(
        lines[2].starts_with("start") && lines[3].starts_with("end"),
        "{order}"
    );
}

#[test]
fn unknown_local_node_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let text = config_text(d.path(), "");
    let cfg = config::parse(Path::new("oneha.yaml"), &text).unwrap();
    let e = Fencer::new(&cfg, "one-server9").unwrap_err();
    assert!(
        e.to_string().contains("`one-server9` is not in nodes[]"),
        "{e}"
    );
}

#[test]
fn debug_output_never_shows_passwords() {
    let d = tempfile::tempdir().unwrap();
    let a = write_fake_agent(d.path());
    let f = fencer(
        d.path(),
        &device("ipmi", &a, d.path(), "ok", "10s"),
        "    one-server2:\n      levels:\n        - {device: ipmi}\n",
    );
    let dbg = format!("{f:?}");
    assert!(
        !dbg.contains("pw-ipmi") && dbg.contains("<redacted>"),
        "{dbg}"
    );
}
