//! oneha's fence_xvm client against the real Debian fence_virtd (libvirt mock backend) in a
//! network namespace pair, side by side with the stock fence_xvm: list, status, off, on,
//! reboot, UUIDs, the hash/auth matrix with mismatches, an unknown domain, a daemon that is
//! down, and the fence-agents adapter running the stock fence_xvm.

mod fence_net;

use std::collections::BTreeMap;
use std::time::Duration;

use fence_net::{
    Lab, ONE2_UUID, Verdict, both, both_list, fence_virt_dir, ours, params, start_virtd, stock,
    stock_fence_xvm, stock_verdict,
};
use oneha::fence::xvm::HashType;
use oneha::fence::xvm_client::{self, XvmParams};
use oneha::fence::{Action, Answer, FenceError, agent};

fn params_with(lab: &Lab, hash: HashType, auth: HashType) -> XvmParams {
    XvmParams {
        hash,
        auth,
        ..params(lab)
    }
}

#[test]
fn oneha_and_stock_fence_xvm_agree_against_real_fence_virtd() {
    let lab = Lab::new("fv1");
    let _d = start_virtd(&lab, "sha256", "sha256");
    let p = params(&lab);

    // list: the same domains, UUIDs and states from both clients.
    let listed = both_list(&lab);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], ("one2".into(), ONE2_UUID.into(), "on".into()));

    both(&lab, Action::Status, "one1", Verdict::Ok);
    both(&lab, Action::Monitor, "", Verdict::Ok);
    // off by oneha, seen off by both; off again is still success (already off).
    assert_eq!(ours(&lab, &p, Action::Off, "one1"), Ok(Answer::Done));
    both(&lab, Action::Status, "one1", Verdict::Off);
    both(&lab, Action::Off, "one1", Verdict::Ok);
    // reboot of a domain that is off succeeds without powering it on.
    both(&lab, Action::Reboot, "one1", Verdict::Ok);
    both(&lab, Action::Status, "one1", Verdict::Off);
    // on, then a real reboot: stays on.
    both(&lab, Action::On, "one1", Verdict::Ok);
    both(&lab, Action::Status, "one1", Verdict::Ok);
    both(&lab, Action::Reboot, "one1", Verdict::Ok);
    both(&lab, Action::Status, "one1", Verdict::Ok);

    // By UUID.
    let r = lab.block_on(
        "guest",
        xvm_client::request(&p, Action::Off, ONE2_UUID, true),
    );
    assert_eq!(r, Ok(Answer::Done));
    let (code, _) = stock_fence_xvm(&lab, &["-o", "status", "-u", "-H", ONE2_UUID, "-t", "5"]);
    assert_eq!(code, 2, "stock sees one2 off");

    // Unknown domain: off fails with an explanation; status answers OFF (never proof).
    let e = ours(&lab, &p, Action::Off, "nosuchvm").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, FenceError::Refused { code: 1, .. }), "{e:?}");
    assert!(text.contains("nosuchvm") && text.contains("plug"), "{text}");
    assert_eq!(
        stock_verdict(stock(&lab, "off", "nosuchvm").0),
        Verdict::Fail
    );
    both(&lab, Action::Status, "nosuchvm", Verdict::Off);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    NoCallback,
    Auth,
}

fn matrix_case(lab: &Lab, hash: HashType, auth: HashType, key_ok: bool, want: Expect) {
    let mut p = params_with(lab, hash, auth);
    let key = if key_ok {
        lab.key()
    } else {
        let k = lab.path("wrong.key");
        std::fs::write(&k, b"not the host's key").unwrap();
        k
    };
    p.key_file = key.clone();
    let r = ours(lab, &p, Action::Status, "one1");
    let got = match &r {
        Ok(_) => Expect::Ok,
        Err(FenceError::NoCallback { .. }) => Expect::NoCallback,
        Err(FenceError::Auth { .. }) => Expect::Auth,
        Err(e) => panic!("hash {hash} auth {auth} key_ok {key_ok}: unexpected {e}"),
    };
    assert_eq!(got, want, "hash {hash} auth {auth} key_ok {key_ok}: {r:?}");
    if let Err(e) = &r {
        let t = e.to_string();
        match want {
            Expect::NoCallback => {
                assert!(t.contains("key file") && t.contains("hash"), "{t}")
            }
            _ => assert!(t.contains("auth") && t.contains("key"), "{t}"),
        }
    }
    let (code, out) = stock_fence_xvm(
        lab,
        &[
            "-k",
            key.to_str().unwrap(),
            "-o",
            "status",
            "-H",
            "one1",
            "-c",
            hash.name(),
            "-C",
            auth.name(),
            "-t",
            "2",
            "-r",
            "5",
        ],
    );
    let stock_ok = stock_verdict(code) == Verdict::Ok;
    assert_eq!(
        stock_ok,
        want == Expect::Ok,
        "stock disagrees for hash {hash} auth {auth} key_ok {key_ok}: exit {code} {out}"
    );
}

#[test]
fn hash_and_auth_matrix_against_real_fence_virtd() {
    use HashType::*;
    let lab = Lab::new("fv2");
    {
        let _d = start_virtd(&lab, "sha256", "sha256");
        matrix_case(&lab, Sha256, Sha256, true, Expect::Ok);
        matrix_case(&lab, Sha512, Sha256, true, Expect::Ok); // stronger hash accepted
        matrix_case(&lab, Sha1, Sha256, true, Expect::NoCallback); // weaker: dropped
        matrix_case(&lab, None, Sha256, true, Expect::NoCallback);
        matrix_case(&lab, Sha256, Sha256, false, Expect::NoCallback); // bad signature
        matrix_case(&lab, Sha256, Sha512, true, Expect::Auth);
        matrix_case(&lab, Sha256, Sha1, true, Expect::Auth);
        matrix_case(&lab, Sha256, None, true, Expect::Auth);
    }
    {
        let _d = start_virtd(&lab, "none", "sha512");
        matrix_case(&lab, None, Sha512, true, Expect::Ok);
        matrix_case(&lab, Sha1, Sha512, true, Expect::Ok);
        matrix_case(&lab, None, Sha512, false, Expect::Auth); // unsigned gets a callback
        matrix_case(&lab, None, None, true, Expect::Auth);
    }
    {
        let _d = start_virtd(&lab, "sha1", "none");
        matrix_case(&lab, Sha1, None, true, Expect::Ok);
        matrix_case(&lab, Sha512, None, true, Expect::Ok);
        matrix_case(&lab, Sha1, Sha256, true, Expect::Auth);
    }
}

#[test]
fn daemon_down_is_a_timeout_that_names_the_causes() {
    let lab = Lab::new("fv3");
    let mut d = start_virtd(&lab, "sha256", "sha256");
    let p = params(&lab);
    assert_eq!(ours(&lab, &p, Action::Status, "one1"), Ok(Answer::PowerOn));
    d.stop();
    let e = ours(&lab, &p, Action::Off, "one1").unwrap_err();
    assert!(e.is_timeout());
    let t = e.to_string();
    assert!(t.starts_with("no fence_virtd answered"), "{t}");
    for part in [
        "key file",
        "hash setting (sha256)",
        "multicast",
        "UDP 1229",
        "192.0.2.11",
    ] {
        assert!(t.contains(part), "`{part}` missing in: {t}");
    }
    // The request was retransmitted (2 s timeout / 0.5 s interval).
    assert!(
        matches!(e, FenceError::NoCallback { sends, .. } if sends >= 3),
        "{e:?}"
    );
    assert_eq!(stock_verdict(stock(&lab, "off", "one1").0), Verdict::Fail);
}

#[test]
fn agent_adapter_runs_the_stock_fence_xvm_against_real_fence_virtd() {
    let lab = Lab::new("fv4");
    let _d = start_virtd(&lab, "sha256", "sha256");
    let prog = fence_virt_dir().join("usr/sbin/fence_xvm");
    let mut opts = BTreeMap::new();
    opts.insert("multicast_address".to_string(), "225.0.0.12".to_string());
    opts.insert("key_file".to_string(), lab.key().display().to_string());
    opts.insert("timeout".to_string(), "5".to_string());
    let run = |action: Action, plug: Option<&str>| {
        lab.block_on(
            "guest",
            agent::run_agent(&prog, &opts, action, plug, Duration::from_secs(20)),
        )
    };
    assert_eq!(run(Action::Status, Some("one1")), Ok(Answer::PowerOn));
    let Ok(Answer::Hosts(h)) = run(Action::List, None) else {
        panic!("list through the agent failed");
    };
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].domain, "one1");
    assert_eq!(run(Action::Off, Some("one1")), Ok(Answer::Done));
    assert_eq!(run(Action::Status, Some("one1")), Ok(Answer::PowerOff));
    // Seen off by oneha's own client too.
    let p = params(&lab);
    assert_eq!(ours(&lab, &p, Action::Status, "one1"), Ok(Answer::PowerOff));
    let e = run(Action::Off, Some("nosuchvm")).unwrap_err();
    assert!(matches!(e, FenceError::Failed { .. }), "{e:?}");
}
