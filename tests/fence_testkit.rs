//! The test fence daemon (`oneha-testkit fence-daemon`) against oneha's client and the stock
//! fence_xvm, and the whole `Fencer` (config -> levels -> xvm -> hook) end to end in a
//! namespace pair.

mod fence_net;

use std::path::{Path, PathBuf};

use fence_net::{GUEST_IP, HOST_IP, Lab, Proc, Verdict, both, both_list, ours, params, wait_ready};
use oneha::fence::xvm::HashType;
use oneha::fence::xvm_client;
use oneha::fence::{Action, Answer, AttemptResult, FenceError, Fencer};

#[allow(dead_code)]
#[path = "harness/bins.rs"]
mod bins;

fn testkit() -> PathBuf {
    PathBuf::from(bins::testkit())
}

/// Starts the test daemon in the host namespace with a hook logging to `hook.log`; the hook
/// fails for domain `stuck`.
fn start_daemon(lab: &Lab, hash: &str, auth: &str) -> Proc {
    let hook = lab.path("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$1 $2\" >> {}\n[ \"$2\" != stuck ]\n",
            lab.path("hook.log").display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", hook.to_str().unwrap()])
        .status()
        .unwrap();
    let key = lab.key();
    let p = lab.spawn(
        "host",
        &testkit(),
        &[
            "fence-daemon",
            "--listen",
            HOST_IP,
            "--key-file",
            key.to_str().unwrap(),
            "--hash",
            hash,
            "--auth",
            auth,
            "--domain",
            "one1",
            "--domain",
            "one2:6695eb01-f6a4-8304-79aa-97f2502e1940:off",
            "--domain",
            "stuck",
            "--hook",
            hook.to_str().unwrap(),
        ],
        "daemon.log",
    );
    wait_ready(&p);
    p
}

fn hook_log(lab: &Lab) -> String {
    std::fs::read_to_string(lab.path("hook.log")).unwrap_or_default()
}

#[test]
fn test_daemon_speaks_the_protocol_like_fence_virtd() {
    let lab = Lab::new("fk1");
    let d = start_daemon(&lab, "sha256", "sha256");
    let p = params(&lab);
    assert_eq!(both_list(&lab).len(), 3, "{}", d.log_text());

    both(&lab, Action::Status, "one1", Verdict::Ok);
    both(&lab, Action::Status, "one2", Verdict::Off);
    both(&lab, Action::Off, "one1", Verdict::Ok);
    both(&lab, Action::Status, "one1", Verdict::Off);
    both(&lab, Action::Reboot, "one1", Verdict::Ok); // off stays off, no hook
    both(&lab, Action::On, "one1", Verdict::Ok);
    both(&lab, Action::Reboot, "one1", Verdict::Ok);
    both(&lab, Action::Off, "nosuchvm", Verdict::Fail);
    both(&lab, Action::Status, "nosuchvm", Verdict::Off);
    // The hook decides: it fails for `stuck`, so off fails.
    both(&lab, Action::Off, "stuck", Verdict::Fail);
    assert_eq!(
        hook_log(&lab),
        // Each line twice where both clients acted: already-off/on requests run no hook.
        "off one1\non one1\nreboot one1\nreboot one1\noff stuck\noff stuck\n"
    );
    // By UUID.
    let r = lab.block_on(
        "guest",
        xvm_client::request(&p, Action::On, "6695eb01-f6a4-8304-79aa-97f2502e1940", true),
    );
    assert_eq!(r, Ok(Answer::Done));
    assert!(hook_log(&lab).ends_with("on one2\n"));

    // Wrong auth hash: a clear message, and the daemon never acted.
    let mut wrong = params(&lab);
    wrong.auth = HashType::Sha512;
    let e = ours(&lab, &wrong, Action::Off, "one1").unwrap_err();
    assert!(matches!(e, FenceError::Auth { .. }), "{e:?}");
    // Weaker hash than the daemon's minimum: dropped, a timeout naming the causes.
    let mut weak = params(&lab);
    weak.hash = HashType::Sha1;
    let e = ours(&lab, &weak, Action::Off, "one1").unwrap_err();
    assert!(e.to_string().contains("hash setting (sha1)"), "{e}");
    assert!(!hook_log(&lab).ends_with("off one1\n"));
}

fn fencer_config(lab: &Lab, plug_first: &str) -> oneha::config::Config {
    std::fs::write(lab.path("cluster.key"), b"k").unwrap();
    // The agent and check-config refuse a cluster key others can read.
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(lab.path("cluster.key"), private).unwrap();
    let text = format!(
        "cluster: test
key_file: {dir}/cluster.key
two_node: true
nodes:
  - name: one-server1
    id: 1
    address: {GUEST_IP}:7788
  - name: one-server2
    id: 2
    address: 192.0.2.12:7788
fencing:
  devices:
    kvm:
      type: xvm
      key_file: {key}
      timeout: 2s
      retransmit: 500ms
  nodes:
    one-server2:
      levels:
        - {{device: kvm, plug: {plug_first}, retries: 1, retry_sleep: 100ms}}
        - {{device: kvm, plug: one2}}
",
        dir = lab.dir.path().display(),
        key = lab.key().display(),
    );
    oneha::config::parse(Path::new("oneha.yaml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn fencer_powers_a_node_off_through_xvm_levels() {
    let lab = Lab::new("fk2");
    let d = start_daemon(&lab, "sha256", "sha256");
    let cfg = fencer_config(&lab, "stuck");
    let f = Fencer::new(&cfg, "one-server1").unwrap();

    // fence-check: list finds one2's domain on both levels; `stuck` is listed too.
    let checks = lab.block_on("guest", f.check(Some("one-server2")));
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(
        checks.iter().all(|c| c.ok && c.action == Action::List),
        "{checks:?}"
    );

    // The first level's hook fails (twice: one retry), the second level powers one2 off.
    let r = lab.block_on("guest", f.fence("one-server2", Action::On));
    assert!(!r.success(), "on is never fencing");
    // one2 starts off in the daemon: power it on so that `off` has something to do.
    let on = lab.block_on(
        "guest",
        xvm_client::request(&params(&lab), Action::On, "one2", false),
    );
    assert_eq!(on, Ok(Answer::Done));
    let r = lab.block_on("guest", f.fence("one-server2", Action::Off));
    assert!(r.success(), "{r}\n{}", d.log_text());
    let results: Vec<(usize, AttemptResult)> =
        r.attempts.iter().map(|a| (a.level, a.result)).collect();
    assert_eq!(
        results,
        [
            (0, AttemptResult::Failed),
            (0, AttemptResult::Failed),
            (1, AttemptResult::Success)
        ]
    );
    assert!(
        r.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("answered off for `stuck` with 1")
    );
    assert!(
        hook_log(&lab).ends_with("off stuck\noff stuck\noff one2\n"),
        "{}",
        hook_log(&lab)
    );

    // Device down: every attempt times out, no success.
    drop(d);
    let r = lab.block_on("guest", f.fence("one-server2", Action::Off));
    assert!(!r.success());
    assert!(
        r.attempts
            .iter()
            .all(|a| a.result == AttemptResult::Timeout),
        "{r}"
    );
    let checks = lab.block_on("guest", f.check(Some("one-server2")));
    assert!(
        checks
            .iter()
            .all(|c| !c.ok && c.detail.contains("no fence_virtd answered"))
    );
}

#[test]
fn fence_check_reports_a_wrong_plug() {
    let lab = Lab::new("fk3");
    let _d = start_daemon(&lab, "sha256", "sha256");
    let cfg = fencer_config(&lab, "typo-vm");
    let f = Fencer::new(&cfg, "one-server1").unwrap();
    let checks = lab.block_on("guest", f.check(None));
    assert!(!checks[0].ok);
    assert!(
        checks[0].detail.contains("does not list domain `typo-vm`"),
        "{checks:?}"
    );
    assert!(checks[1].ok);
    let code = lab.block_on(
        "guest",
        oneha::fence::cli::run_fence_check(
            &cfg,
            "one-server1",
            &oneha::fence::cli::FenceCheckArgs {
                node: None,
                json: false,
            },
        ),
    );
    assert_eq!(code, 1, "a failed level makes fence-check fail");
}

#[test]
fn fence_xvm_debug_command_exit_codes() {
    use clap::Parser;
    #[derive(Parser)]
    struct W {
        #[command(flatten)]
        a: oneha::fence::cli::FenceXvmArgs,
    }
    let lab = Lab::new("fk4");
    let _d = start_daemon(&lab, "sha256", "sha256");
    let key = lab.key();
    let run = |extra: &[&str]| {
        let mut argv = vec![
            "x",
            "-k",
            key.to_str().unwrap(),
            "--source",
            GUEST_IP,
            "-t",
            "2",
            "-r",
            "5",
        ];
        argv.extend_from_slice(extra);
        let w = W::try_parse_from(argv).unwrap();
        lab.block_on("guest", oneha::fence::cli::run_fence_xvm(&w.a))
    };
    assert_eq!(run(&["-o", "status", "-H", "one1"]), 0);
    assert_eq!(run(&["-o", "status", "-H", "one2"]), 2);
    assert_eq!(run(&["-o", "list"]), 0);
    assert_eq!(run(&["-o", "off", "-H", "one1"]), 0);
    assert_eq!(run(&["-o", "status", "-n", "one1"]), 2);
    assert_eq!(run(&["-o", "off", "-H", "nosuchvm"]), 1);
    assert_eq!(run(&["-o", "off"]), 1, "off needs a domain");
    assert_eq!(run(&["-o", "status", "-H", "one1", "-C", "sha1"]), 1);
}
