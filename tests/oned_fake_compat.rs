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

/// Validates a document as oned sends it (no namespace: added to the root element here)
/// against `schema`.
fn validate(xml: &str, schema: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = xml
        .match_indices('<')
        .map(|(i, _)| i)
        .find(|i| xml[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic()));
    let Some(at) = root else {
        panic!("{what}: no root element");
    };
    let name_len = xml[at + 1..]
        .find(|c: char| c == '>' || c == '/' || c.is_whitespace())
        .unwrap_or(0);
    let mut with_ns = xml.to_string();
    with_ns.insert_str(at + 1 + name_len, &format!(" xmlns=\"{NS}\""));
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

/// One reply payload of the world fake, as a string.
async fn world_payload(endpoint: &str, method: &str, params: &[Value]) -> String {
    let c = client(endpoint, Duration::from_secs(10));
    match c.call(method, params).await.unwrap() {
        Value::String(s) => s,
        other => panic!("{method}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_replies_validate_against_the_xsds() {
    let mut world = test_world();
    world.hosts.push(oneha_testkit::world::Host {
        state: 0,
        probe: None,
        ..world.hosts[2].clone()
    });
    world.hosts[3].id = 3;
    world.hosts[3].name = "node4".into();
    let (fake, handle) = fake_world(world, None).await;
    let ep = fake.endpoint();
    let c = client(&ep, Duration::from_secs(10));
    // Some history: host 0 in ERROR, VM 0 migrated, VM 6 recreated (CDATA, LOCK, several
    // history records, an ERROR attribute, a never monitored host).
    c.call(
        "testkit.host.state",
        &[Value::Integer(0), Value::Integer(3)],
    )
    .await
    .unwrap();
    c.call(
        "one.vm.migrate",
        &[0, 1]
            .map(Value::Integer)
            .into_iter()
            .chain([Value::Boolean(false)])
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    c.call("one.vm.recover", &[Value::Integer(6), Value::Integer(4)])
        .await
        .unwrap();
    let int = |n| Value::Integer(n);
    for (method, params, schema) in [
        ("one.hostpool.info", vec![], "host_pool.xsd"),
        ("one.host.info", vec![int(0)], "host.xsd"),
        ("one.host.info", vec![int(3)], "host.xsd"),
        ("one.datastorepool.info", vec![], "datastore_pool.xsd"),
        ("one.datastore.info", vec![int(100)], "datastore.xsd"),
        ("one.vm.info", vec![int(0)], "vm.xsd"),
        ("one.vm.info", vec![int(2)], "vm.xsd"),
        ("one.vm.info", vec![int(6)], "vm.xsd"),
        ("one.vm.info", vec![int(7)], "vm.xsd"),
        (
            "one.vmpool.infoextended",
            [-2, -1, -1, -2].map(int).to_vec(),
            "vm_pool_extended.xsd",
        ),
        (
            "one.vmpool.info",
            [-2, -1, -1, -2].map(int).to_vec(),
            "vm_pool.xsd",
        ),
    ] {
        let xml = world_payload(&ep, method, &params).await;
        validate(&xml, schema, &format!("world {method} {params:?}"));
    }
    let host0 = world_payload(&ep, "one.host.info", &[int(0)]).await;
    assert!(host0.contains("<STATE>3</STATE>"), "{host0}");
    assert!(
        host0.contains("<FENCE_IP><![CDATA[192.0.2.11]]></FENCE_IP>"),
        "{host0}"
    );
    let broken = host0.replacen("<PREV_STATE>", "<PREVIOUS>", 1);
    let broken = broken.replacen("</PREV_STATE>", "</PREVIOUS>", 1);
    let refused = std::panic::catch_unwind(|| validate(&broken, "host.xsd", "broken host"));
    assert!(
        refused.is_err(),
        "a HOST with an unknown element must not validate"
    );
    let vm2 = world_payload(&ep, "one.vm.info", &[int(2)]).await;
    assert!(vm2.contains("<LOCK><LOCKED>1</LOCKED>"), "{vm2}");
    assert!(
        vm2.contains("<HA_PRIORITY><![CDATA[10]]></HA_PRIORITY>"),
        "{vm2}"
    );
    drop(handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyone_reads_the_world_and_its_refusals() {
    let Some(py) = python() else {
        eprintln!("SKIPPED pyone_reads_the_world_and_its_refusals: no python3 on this machine");
        return;
    };
    let (fake, handle) = fake_world(test_world(), None).await;
    let ep = fake.endpoint();
    let json = |s: String| -> serde_json::Value { serde_json::from_str(&s).unwrap() };

    let hosts = json(pyone(&py, &ep, &["hosts"]).await);
    let names: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    assert_eq!(hosts[0]["fence_ip"], "192.0.2.11");
    let on0 = handle.read(|w| w.vms_on(0));
    assert_eq!(hosts[0]["vms"], serde_json::json!(on0));
    assert_eq!(on0, [0, 1, 2, 3, 4, 5]);

    let ds = json(pyone(&py, &ep, &["datastores"]).await);
    assert_eq!(ds[0]["shared"], "YES");
    assert_eq!(ds[2]["shared"], "NO");
    assert_eq!(ds[2]["tm_mad"], "ssh");

    let vm = json(pyone(&py, &ep, &["vm", "2"]).await);
    assert_eq!(vm["locked"], 1);
    assert_eq!(vm["user_template"]["HA_PRIORITY"], "10");
    let vm5 = json(pyone(&py, &ep, &["vm", "5"]).await);
    assert_eq!(
        (vm5["name"].as_str(), vm5["ds_id"].as_i64()),
        (Some("web & db <prod>"), Some(100))
    );

    let call = |method: &'static str, args: &'static str| {
        let (py, ep) = (py.clone(), ep.clone());
        async move { json(pyone(&py, &ep, &["call", method, args]).await) }
    };
    let r = call("vm.action", r#"["resched", 0]"#).await;
    assert_eq!(
        (r["exception"].is_null(), r["result"].as_i64()),
        (true, Some(0)),
        "{r}"
    );
    let r = call("vm.action", r#"["resched", 4]"#).await;
    assert_eq!(r["exception"], "OneActionException", "{r}");
    assert_eq!(
        r["message"],
        "[one.vm.action] Error performing action \"resched\": This action is not available for state SUSPENDED"
    );
    let r = call("vm.recover", r#"[2, 3]"#).await;
    assert_eq!(r["exception"], "OneAuthorizationException", "{r}");
    assert_eq!(
        r["message"],
        "[one.vm.recover] User [0] : VM is locked. [2]."
    );
    let r = call("vm.recover", r#"[42, 4]"#).await;
    assert_eq!(r["exception"], "OneNoExistsException", "{r}");
    assert_eq!(
        r["message"],
        "[one.vm.recover] Error getting virtual machine [42]."
    );
    let r = call("host.status", r#"[2, 1]"#).await;
    assert_eq!(r["result"], 2, "{r}");
    let r = call("vm.recover", r#"[6, 3]"#).await;
    assert_eq!(r["result"], 6, "{r}");
    let vm6 = json(pyone(&py, &ep, &["vm", "6"]).await);
    assert_eq!(
        (vm6["state"].as_i64(), vm6["action"].as_i64()),
        (Some(6), Some(13))
    );
    let h = json(pyone(&py, &ep, &["host", "2"]).await);
    assert_eq!(h["state"], 4);
    let conf = json(pyone(&py, &ep, &["config"]).await);
    assert!(
        conf["exception"].is_null(),
        "pyone reads one.system.config: {conf}"
    );
}
