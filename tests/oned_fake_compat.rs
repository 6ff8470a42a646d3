//! The fake oned cannot drift from the real protocol: its fixtures and replies validate against
//! OpenNebula's XSDs (xmllint), and OpenNebula's own Python client, pyone, reads its replies the
//! way oneha does.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dxr::Value;
use oneha::opennebula::pool::{VmRecord, parse_pool};
use oneha_testkit::fake_oned::{Faults, Order};
use serde::Deserialize;
use support::*;

const NS: &str = "http://opennebula.org/XMLSchema";

fn xsd_dir() -> PathBuf {
    let dir = match std::env::var_os("ONEHA_XSD_DIR") {
        Some(d) => PathBuf::from(d),
        // OpenNebula's own schemas, copied unchanged (see xsd/SOURCE.md).
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/opennebula/xsd"),
    };
    assert!(
        dir.join("vm_pool_extended.xsd").exists(),
        "OpenNebula's XSDs are not in {}: set ONEHA_XSD_DIR",
        dir.display()
    );
    dir
}

/// Validates a VM_POOL document (as oned sends it: no namespace) against `schema`.
fn validate(xml: &str, schema: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(at) = xml.find("<VM_POOL") else {
        panic!("{what}: no <VM_POOL>");
    };
    let mut with_ns = xml.to_string();
    with_ns.insert_str(at + "<VM_POOL".len(), &format!(" xmlns=\"{NS}\""));
    let file = dir.path().join("pool.xml");
    std::fs::write(&file, with_ns).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd_dir().join(schema))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint ({e}): install libxml2-utils (tools/install-deps.sh)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} does not validate against {schema}:\n{stderr}"
    );
    assert!(stderr.contains("validates"), "{stderr}");
}

#[test]
fn fixtures_validate_against_the_xsds() {
    for (file, schema) in [
        ("pool_after_failover.xml", "vm_pool_extended.xsd"),
        ("pool_short.xml", "vm_pool.xsd"),
    ] {
        let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
        validate(&text, schema, file);
    }
}

#[test]
fn a_broken_document_does_not_validate() {
    // The check above can fail: an element out of order is refused.
    let text = std::fs::read_to_string(fixtures().join("pool_short.xml")).unwrap();
    let broken = text.replacen("<RESCHED>0</RESCHED>", "", 1);
    let result = std::panic::catch_unwind(|| validate(&broken, "vm_pool.xsd", "broken"));
    assert!(result.is_err(), "a VM without RESCHED must not validate");
}

async fn payload(endpoint: &str, method: &str) -> String {
    let c = client(endpoint, Duration::from_secs(10));
    let params = [-2, -1, -1, -1].map(Value::Integer);
    match c.call(method, &params).await.unwrap() {
        Value::String(s) => s,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_replies_validate_against_the_xsds() {
    let stuck = [(1, 3, 1, 0), (2, 10, 0, 0), (3, 3, 17, 22), (5, 11, 0, 0)];
    let fake = fake(generated(45, &stuck), Faults::default(), Order::Desc).await;
    let ext = payload(&fake.endpoint(), "one.vmpool.infoextended").await;
    validate(&ext, "vm_pool_extended.xsd", "generated infoextended");
    let short = payload(&fake.endpoint(), "one.vmpool.info").await;
    validate(&short, "vm_pool.xsd", "generated info");
    let fixture = fake_fixture().await;
    let short = payload(&fixture.endpoint(), "one.vmpool.info").await;
    validate(&short, "vm_pool.xsd", "fixture info");
}

async fn fake_fixture() -> oneha_testkit::fake_oned::Running {
    fake(
        fixture_vms("pool_after_failover.xml"),
        Faults::default(),
        Order::Desc,
    )
    .await
}

/// What pyone saw of one VM.
#[derive(Debug, Deserialize, PartialEq, Eq)]
struct PyVm {
    id: i64,
    name: String,
    owner: String,
    state: i64,
    lcm_state: i64,
    deploy_id: String,
    host: Option<String>,
    action: Option<i64>,
}

impl From<&VmRecord> for PyVm {
    fn from(r: &VmRecord) -> PyVm {
        PyVm {
            id: r.id,
            name: r.name.clone(),
            owner: r.owner.clone(),
            state: r.state,
            lcm_state: r.lcm_state,
            deploy_id: r.deploy_id.clone(),
            host: r.history.as_ref().map(|h| h.hostname.clone()),
            action: r.history.as_ref().map(|h| h.action),
        }
    }
}

/// The Python with pyone: $ONEHA_PYTHON, the venv tools/install-deps.sh makes, or python3.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ONEHA_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from("/opt/oneha-test/pyone-venv/bin/python3");
    if venv.exists() {
        return Some(venv);
    }
    let found = Command::new("python3").arg("--version").output().is_ok();
    found.then(|| PathBuf::from("python3"))
}

async fn pyone(py: &Path, endpoint: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pyone_check.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .arg(endpoint)
        .arg(SESSION)
        .args(args)
        .output()
        .await
        .expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pyone_check.py {args:?} failed:\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyone_reads_the_fake_like_oneha() {
    let Some(py) = python() else {
        eprintln!("SKIPPED pyone_reads_the_fake_like_oneha: no python3 on this machine");
        return;
    };
    let import = Command::new(&py)
        .args(["-c", "import pyone"])
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{} cannot import pyone: run tools/install-deps.sh (it installs pyone in \
         /opt/oneha-test/pyone-venv) or set ONEHA_PYTHON:\n{}",
        py.display(),
        String::from_utf8_lossy(&import.stderr)
    );

    let fixture_text = std::fs::read_to_string(fixtures().join("pool_after_failover.xml")).unwrap();
    let mut ours = Vec::new();
    parse_pool(&fixture_text, &mut |r| ours.push(r)).unwrap();
    ours.retain(|r| r.state != 6); // state filter -1: not DONE
    ours.sort_by_key(|r| std::cmp::Reverse(r.id)); // oned's default order
    let expect: Vec<PyVm> = ours.iter().map(PyVm::from).collect();

    let served = fake_fixture().await;
    let ep = served.endpoint();
    let seen: Vec<PyVm> =
        serde_json::from_str(&pyone(&py, &ep, &["pool", "-1", "-1"]).await).unwrap();
    assert_eq!(
        seen, expect,
        "pyone and oneha read the same pool differently"
    );
    assert!(
        seen.iter().any(|v| v.name == "web & db <prod>"),
        "CDATA name"
    );

    // Paging with pyone, 4 at a time, gives the same VMs in the same order.
    let mut paged = Vec::new();
    for offset in (0..).step_by(4) {
        let page: Vec<PyVm> =
            serde_json::from_str(&pyone(&py, &ep, &["pool", &offset.to_string(), "4"]).await)
                .unwrap();
        let n = page.len();
        paged.extend(page);
        if n < 4 {
            break;
        }
    }
    assert_eq!(paged, expect);

    let short: Vec<PyVm> = serde_json::from_str(&pyone(&py, &ep, &["short"]).await).unwrap();
    let short_ids: Vec<(i64, i64, i64)> =
        short.iter().map(|v| (v.id, v.state, v.lcm_state)).collect();
    let expect_ids: Vec<(i64, i64, i64)> = expect
        .iter()
        .map(|v| (v.id, v.state, v.lcm_state))
        .collect();
    assert_eq!(short_ids, expect_ids);

    let v: serde_json::Value = serde_json::from_str(&pyone(&py, &ep, &["version"]).await).unwrap();
    assert_eq!(v["version"], "7.0.0");

    let denied = fake(
        generated(3, &[]),
        Faults {
            auth_error: true,
            ..Faults::default()
        },
        Order::Desc,
    )
    .await;
    let e: serde_json::Value =
        serde_json::from_str(&pyone(&py, &denied.endpoint(), &["error"]).await).unwrap();
    assert_eq!(e["exception"], "OneAuthenticationException", "{e}");

    let electing = fake(
        generated(3, &[]),
        Faults {
            election_calls: 5,
            ..Faults::default()
        },
        Order::Desc,
    )
    .await;
    let e: serde_json::Value =
        serde_json::from_str(&pyone(&py, &electing.endpoint(), &["error"]).await).unwrap();
    assert_eq!(e["exception"], "OneInternalException", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("election mode"),
        "{e}"
    );
}
