//! The fence-agent adapter against a small fake agent (a real process written by the test).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A fake fence agent: reads `key=value` lines, logs them and its argument count, and
/// behaves by its `mode=` option: ok, off (status exit 2), fail (prints the password it got
/// to stderr), hang (sleeps, with a child in its process group), slow (logs start/end).
pub(crate) const FAKE_AGENT: &str = r#"#!/bin/sh
input=$(cat)
get() { printf '%s\n' "$input" | sed -n "s/^$1=//p"; }
log=$(get log)
printf 'args:%s\n%s\n--\n' "$#" "$input" >> "$log"
case "$(get mode)" in
  fail) echo "Failed: login refused for password=$(get password)" >&2; exit 1;;
  hang) sleep 60 & echo $! > "$log.child"; sleep 60; exit 0;;
  slow) echo "start $(get action)" >> "$log.order"; sleep 0.3; echo "end $(get action)" >> "$log.order";;
esac
case "$(get action)" in
  status) [ "$(get mode)" = off ] && exit 2; exit 0;;
  list) echo "one1,first"; echo "one2,second"; exit 0;;
  *) exit 0;;
esac
"#;

/// Writes the fake agent into `dir` and returns its path.
pub(crate) fn write_fake_agent(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fence_fake");
    std::fs::write(&p, FAKE_AGENT).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn opts(dir: &Path, mode: &str) -> BTreeMap<String, String> {
    let mut o = BTreeMap::new();
    o.insert("mode".into(), mode.into());
    o.insert("log".into(), dir.join("log").display().to_string());
    o.insert("ip".into(), "192.0.2.50".into());
    o.insert("password".into(), "Sup3r-secret".into());
    o
}

/// A current-thread runtime for one test.
pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn passes_options_on_stdin_only_and_maps_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let agent = write_fake_agent(dir.path());
    let o = opts(dir.path(), "ok");
    let t = Duration::from_secs(10);
    let rt = rt();
    assert_eq!(
        rt.block_on(run_agent(&agent, &o, Action::Off, Some("one1"), t)),
        Ok(Answer::Done)
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.starts_with("args:0\naction=off\nplug=one1\n"), "{log}");
    assert!(log.contains("ip=192.0.2.50\n") && log.contains("password=Sup3r-secret\n"));
    assert_eq!(
        rt.block_on(run_agent(&agent, &o, Action::Status, Some("one1"), t)),
        Ok(Answer::PowerOn)
    );
    let off = opts(dir.path(), "off");
    assert_eq!(
        rt.block_on(run_agent(&agent, &off, Action::Status, Some("one1"), t)),
        Ok(Answer::PowerOff)
    );
    let Ok(Answer::Hosts(h)) = rt.block_on(run_agent(&agent, &o, Action::List, None, t)) else {
        panic!("list");
    };
    assert_eq!(
        h.iter().map(|e| e.domain.as_str()).collect::<Vec<_>>(),
        ["one1", "one2"]
    );
    // No plug line when no plug is configured.
    rt.block_on(run_agent(&agent, &o, Action::Monitor, None, t))
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(
        log.contains("args:0\naction=monitor\nip=192.0.2.50\n"),
        "{log}"
    );
}

/// Runs the fake agent in `mode` for `off` on one1 and returns its error.
fn off_error(mode: &str, timeout: Duration) -> (tempfile::TempDir, FenceError) {
    let dir = tempfile::tempdir().unwrap();
    let agent = write_fake_agent(dir.path());
    let o = opts(dir.path(), mode);
    let e = rt()
        .block_on(run_agent(&agent, &o, Action::Off, Some("one1"), timeout))
        .unwrap_err();
    (dir, e)
}

#[test]
fn failures_keep_the_reason_but_never_the_password() {
    let (_dir, e) = off_error("fail", Duration::from_secs(10));
    let t = e.to_string();
    assert!(t.contains("(exit 1)") && t.contains("login refused"), "{t}");
    assert!(t.contains("action=off, plug=one1"), "{t}");
    assert!(!t.contains("Sup3r-secret"), "{t}");
    assert!(t.contains(crate::fence::REDACTED), "{t}");
    assert!(!format!("{e:?}").contains("Sup3r-secret"));
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let (dir, e) = off_error("hang", Duration::from_millis(500));
    assert!(e.is_timeout(), "{e:?}");
    assert!(e.to_string().contains("killed"), "{e}");
    let child: i32 = std::fs::read_to_string(dir.path().join("log.child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The agent's own child (same process group) is gone or a zombie, not sleeping on.
    let mut alive = true;
    for _ in 0..50 {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        alive = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive, "child {child} of the timed-out agent still runs");
}

#[test]
fn missing_program_is_an_error_not_a_panic() {
    let e = rt()
        .block_on(run_agent(
            Path::new("/nonexistent/fence_x"),
            &BTreeMap::new(),
            Action::Off,
            None,
            Duration::from_secs(1),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("cannot start"), "{e}");
}

#[test]
fn input_scrub_tail_and_list_parsing() {
    let mut o = BTreeMap::new();
    o.insert("passwd".to_string(), "pw1".to_string());
    o.insert("login".to_string(), "admin".to_string());
    assert_eq!(
        agent_input(&o, Action::Reboot, Some("n1")),
        "action=reboot\nplug=n1\nlogin=admin\npasswd=pw1\n"
    );
    assert_eq!(scrub("bad pw1 for admin", &o), "bad <redacted> for admin");
    assert_eq!(tail("a\n\nb\nc\nd\n", 2), "c | d");
    let l = parse_list("one1  6695eb01-f6a4-8304-79aa-97f2502e193f on\none2,alias\nx y off\n");
    assert_eq!(l.len(), 3);
    assert_eq!(l[0].uuid, "6695eb01-f6a4-8304-79aa-97f2502e193f");
    assert_eq!(l[1].domain, "one2");
    assert_eq!(l[2].state, crate::fence::xvm::PowerState::Off);
}
