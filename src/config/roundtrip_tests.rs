//! Property: a config that passes `check-config` prints (check-config's output, `to_yaml`)
//! to a text that loads again to the same config, whatever the names, paths and numbers in
//! it (quotes, colons, `#`, YAML keywords, non-ASCII...).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_norway::{Mapping, Value};

use super::*;

/// Files the generated configs point at: the cluster key (0600) and an alert script.
struct Files {
    _dir: tempfile::TempDir,
    key: PathBuf,
    script: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("cluster.key");
    std::fs::write(&key, [7u8; 32]).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let script = dir.path().join("alert.sh");
    std::fs::write(&script, "#!/bin/sh\n").expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Files {
        _dir: dir,
        key,
        script,
    }
}

/// Text YAML treats specially when unquoted, mixed with ordinary characters.
fn tricky() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,12}",
        Just("yes".to_string()),
        Just("null".to_string()),
        Just("0x1F".to_string()),
        Just("1e3".to_string()),
        Just("~".to_string()),
        "[a-z:#&*!|>'\"%@`{}\\[\\],?-]{1,10}",
        "\\PC{1,8}",
    ]
}

/// A name: not empty, no whitespace (what validation asks of node names).
fn name() -> impl Strategy<Value = String> {
    tricky().prop_filter("no whitespace", |s| {
        !s.is_empty() && !s.contains(char::is_whitespace)
    })
}

#[derive(Debug, Clone)]
struct Gen {
    cluster: String,
    names: Vec<String>,
    witness: bool,
    wait_for_all: bool,
    data_dir: String,
    profile_fast: bool,
    recovery: usize,
    max_restarts: u32,
    expire_ms: u64,
    metrics_port: Option<u16>,
    alert_timeout_ms: Option<u64>,
    alert_events: Vec<usize>,
}

fn gen_config() -> impl Strategy<Value = Gen> {
    (
        tricky().prop_filter("a cluster name", |s| !s.trim().is_empty()),
        proptest::collection::btree_set(name(), 2..6),
        any::<bool>(),
        any::<bool>(),
        tricky().prop_map(|s| format!("/var/lib/{s}")),
        any::<bool>(),
        0..3usize,
        0..100u32,
        1..10_000_000u64,
        proptest::option::of(1..65535u16),
        proptest::option::of(1..600_000u64),
        proptest::collection::vec(0..super::alerts::EVENT_NAMES.len(), 0..4),
    )
        .prop_map(|t| Gen {
            cluster: t.0,
            names: t.1.into_iter().collect(),
            witness: t.2,
            wait_for_all: t.3,
            data_dir: t.4,
            profile_fast: t.5,
            recovery: t.6,
            max_restarts: t.7,
            expire_ms: t.8,
            metrics_port: t.9,
            alert_timeout_ms: t.10,
            alert_events: t.11,
        })
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// The config file an operator could write for `g`, as YAML text.
fn text(g: &Gen, f: &Files) -> String {
    let mut m = Mapping::new();
    m.insert(s("cluster"), s(&g.cluster));
    m.insert(s("key_file"), s(&f.key.display().to_string()));
    m.insert(s("data_dir"), s(&g.data_dir));
    m.insert(s("wait_for_all"), Value::Bool(g.wait_for_all));
    // Two nodes: two front-ends in two-node mode; more: the last may be a witness.
    let two = g.names.len() == 2;
    m.insert(s("two_node"), Value::Bool(two));
    let nodes: Vec<Value> = g
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut node = Mapping::new();
            node.insert(s("name"), s(n));
            node.insert(s("id"), Value::from(i as u64 + 1));
            node.insert(s("address"), s(&format!("192.0.2.{}:7400", i + 1)));
            if g.witness && !two && i == g.names.len() - 1 {
                node.insert(s("role"), s("witness"));
            }
            Value::Mapping(node)
        })
        .collect();
    m.insert(s("nodes"), Value::Sequence(nodes));
    if g.profile_fast {
        let mut t = Mapping::new();
        t.insert(s("profile"), s("fast"));
        m.insert(s("timers"), Value::Mapping(t));
    }
    let mut r = Mapping::new();
    r.insert(
        s("recovery"),
        s(["restart", "relocate", "disable"][g.recovery]),
    );
    r.insert(s("max_restarts"), Value::from(g.max_restarts));
    r.insert(s("restart_expire_time"), s(&format!("{}ms", g.expire_ms)));
    m.insert(s("resources"), Value::Mapping(r));
    if let Some(p) = g.metrics_port {
        let mut x = Mapping::new();
        x.insert(s("listen"), s(&format!("127.0.0.1:{p}")));
        m.insert(s("metrics"), Value::Mapping(x));
    }
    if let Some(ms) = g.alert_timeout_ms {
        let mut a = Mapping::new();
        a.insert(s("path"), s(&f.script.display().to_string()));
        a.insert(s("timeout"), s(&format!("{ms}ms")));
        let events: Vec<Value> = g
            .alert_events
            .iter()
            .map(|&i| s(super::alerts::EVENT_NAMES[i]))
            .collect();
        a.insert(s("events"), Value::Sequence(events));
        m.insert(s("alerts"), Value::Sequence(vec![Value::Mapping(a)]));
    }
    serde_norway::to_string(&Value::Mapping(m)).expect("printable")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_valid_config_round_trips_through_its_printed_form(g in gen_config()) {
        let f = files();
        let path = Path::new("gen.yaml");
        let written = text(&g, &f);
        let first = parse(path, &written)
            .map_err(|e| TestCaseError::fail(format!("generated config invalid: {e}\n{written}")))?;
        let printed = first.to_yaml();
        let again = parse(path, &printed)
            .map_err(|e| TestCaseError::fail(format!("printed config invalid: {e}\n{printed}")))?;
        prop_assert_eq!(&again.to_yaml(), &printed);
        // And it is the config that was written, not only a fixed point of printing.
        prop_assert_eq!(&again.cluster, &g.cluster);
        let names: Vec<&str> = again.nodes.iter().map(|n| n.name.as_str()).collect();
        prop_assert_eq!(names, g.names.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(again.data_dir.to_str(), Some(g.data_dir.as_str()));
        prop_assert_eq!(again.wait_for_all, g.wait_for_all);
        prop_assert_eq!(again.resources.max_restarts, g.max_restarts);
        prop_assert_eq!(
            again.resources.restart_expire_time.get(),
            std::time::Duration::from_millis(g.expire_ms)
        );
        prop_assert_eq!(again.metrics.listen.map(|a| a.port()), g.metrics_port);
        prop_assert_eq!(
            again.alerts.first().map(|a| a.timeout.get().as_millis() as u64),
            g.alert_timeout_ms
        );
        prop_assert_eq!(again.alerts.first().map(|a| a.events.len()), g.alert_timeout_ms.map(|_| g.alert_events.len()));
        prop_assert_eq!(again.timers.effective(), first.timers.effective());
    }
}
