//! deploy/grafana/oneha-dashboard.json and deploy/prometheus/oneha-alerts.yml: every metric,
//! label and label value they use is one a real agent exports (its `/metrics` scraped over
//! loopback), every exported family has a panel, the dashboard and the rules are well formed,
//! each alert names its runbook section, and (when promtool is installed) each alert fires in
//! its scenario and none fires in a healthy cluster (tests/dashboards/alert_cases.rs).

mod local;
mod ops;

#[path = "dashboards/alert_cases.rs"]
mod alert_cases;
#[path = "dashboards/files.rs"]
mod files;
#[path = "dashboards/promql.rs"]
mod promql;
#[path = "dashboards/promtool.rs"]
mod promtool;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use files::{
    ALERTS, ROOT, RUNBOOK, alerts, anchor, dashboard, dashboard_exprs, panels, read, rules,
};
use local::{LocalCluster, wait_for};
use promql::Exposition;
use serde_json::Value;

/// Families the agent exports only in some states, with the state: checked against the
/// exposition of a status in that state instead of the scrape.
const CONDITIONAL: [(&str, &str); 3] = [
    (
        "oneha_stuck_vms",
        "once a stuck-VM report exists on the node",
    ),
    (
        "oneha_last_failover_duration_seconds",
        "after a takeover by this node",
    ),
    ("oneha_raft_leader", "while a leader is known"),
];

/// Exported families the dashboard does not show, and why.
const NOT_SHOWN: [(&str, &str); 0] = [];

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// GET /metrics from `addr`.
fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// What the metrics say with a status in the states of `CONDITIONAL` (a stuck-VM report, a
/// takeover), a fence failure and success, an open VM-HA case and resource states: the
/// exposition of the real agent's own status, so every label has values.
fn enriched(status: &oneha::status::StatusReport) -> Exposition {
    let mut s = status.clone();
    s.stuck_vms = Some(serde_json::json!({"stuck": 2}));
    s.vm_ha.push(oneha::status::VmHaCaseStatus {
        id: 1,
        host: "kvm1".into(),
        state: "fencing".into(),
        fence_failures: 1,
    });
    for success in [false, true] {
        s.fencing.journal.push(oneha::status::FenceLine {
            target: "n2".into(),
            by: "n1".into(),
            method: "kvm (xvm)".into(),
            action: "off".into(),
            success,
            detail: String::new(),
            at_ms: 1_700_000_000_000,
        });
    }
    for m in &mut s.members {
        m.resources = vec![
            ("vip".into(), "running".into()),
            ("opennebula".into(), "monitor failed: inactive".into()),
        ];
    }
    let counters = oneha::metrics::Counters::new();
    counters.record_failover(Duration::from_secs(3));
    counters.record_fence("n2", "xvm", "off", false);
    counters.record_fence("n2", "xvm", "off", true);
    Exposition::parse(&oneha::metrics::render(&s, &counters)).expect("rendered exposition")
}

/// Checks one expression against what the agent exports; returns the problems found.
fn check_expr(
    what: &str,
    expr: &str,
    scraped: &Exposition,
    known: &Exposition,
    all_labels: &BTreeSet<String>,
) -> Vec<String> {
    let mut bad = Vec::new();
    if let Err(e) = promql::balanced(expr) {
        bad.push(format!("{what}: {e}: {expr}"));
    }
    let uses = match promql::uses(expr) {
        Ok(u) => u,
        Err(e) => return vec![format!("{what}: {e}: {expr}")],
    };
    for sel in &uses.selectors {
        let m = sel.metric.as_str();
        if m == "up" {
            continue;
        }
        let conditional = CONDITIONAL.iter().any(|(c, _)| *c == m);
        let exported = scraped.has(m) || (conditional && known.has(m));
        if !exported {
            bad.push(format!("{what}: {m} is not exported by the agent"));
            continue;
        }
        let labels = known.labels(m);
        for mt in &sel.matchers {
            if TARGET_LABELS.contains(&mt.key.as_str()) {
                continue;
            }
            if !labels.contains(&mt.key) {
                bad.push(format!("{what}: {m} has no label {} ({labels:?})", mt.key));
                continue;
            }
            let values = known.values(m, &mt.key);
            match mt.op.as_str() {
                "=" | "!=" if !mt.value.contains('$') && !values.contains(&mt.value) => {
                    bad.push(format!(
                        "{what}: {m}{{{}}} never takes the value {:?} ({values:?})",
                        mt.key, mt.value
                    ))
                }
                "=~" | "!~" if !mt.value.contains('$') => {
                    match promql::regex_matches_known(&mt.value, &values) {
                        Some(missing) if !missing.is_empty() => bad.push(format!(
                            "{what}: {m}{{{}}} never takes {missing:?} ({values:?})",
                            mt.key
                        )),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
    for l in &uses.grouping {
        if !all_labels.contains(l) {
            bad.push(format!(
                "{what}: no metric has the label {l} it groups or matches on"
            ));
        }
    }
    bad
}

#[test]
fn dashboard_and_alerts_use_only_what_a_real_agent_exports() {
    let mut c = LocalCluster::start("dashboards", &["frontend", "frontend", "witness"], "");
    c.wait_leader(Duration::from_secs(20)).expect("leader");
    // Node 1 again, with a metrics address next to its peer port.
    let cfg = std::fs::read_to_string(&c.agents[0].config).expect("config");
    let peer = oneha::config::parse(Path::new("x"), &cfg)
        .expect("config parses")
        .node("n1")
        .expect("n1")
        .address;
    let addr = std::net::SocketAddr::new(peer.ip(), peer.port() + 1000);
    std::fs::write(
        &c.agents[0].config,
        format!("{cfg}metrics: {{listen: \"{addr}\"}}\n"),
    )
    .expect("write config");
    c.term(0);
    c.start_agent(0);
    // Wait until it hears both peers on their link, so per-link and contact series exist.
    let (body, scraped) = wait_for(Duration::from_secs(20), || {
        let b = scrape(addr)?;
        let e = Exposition::parse(&b).expect("the agent's exposition parses");
        let heard = |m: &str| e.values(m, "peer").len() + e.values(m, "member").len() == 2;
        // The sample line itself: the HELP line also reads "oneha_raft_has_leader 1 when...".
        (b.lines().any(|l| l == "oneha_raft_has_leader 1")
            && heard("oneha_peer_link_last_heard_seconds")
            && heard("oneha_member_last_contact_seconds"))
        .then_some((b, e))
    })
    .expect("metrics with a leader, both peers heard");
    let status = c.status(0).expect("status");
    let mut known = scraped.clone();
    known.merge(&enriched(&status));
    // The real topology names, for the rules that tell topologies apart.
    let dir = tempfile::tempdir().expect("tempdir");
    let two = ops::validate(&read("deploy/examples/two-node.yaml"), dir.path());
    let two_node = oneha::agent::topology_name(&two);
    known
        .samples
        .entry("oneha_info".into())
        .or_default()
        .entry("topology".into())
        .or_default()
        .insert(two_node.clone());
    let all_labels: BTreeSet<String> = known
        .samples
        .values()
        .flat_map(|l| l.keys().cloned())
        .chain(TARGET_LABELS.iter().map(|s| s.to_string()))
        .collect();

    for (m, why) in CONDITIONAL {
        assert!(
            known.has(m),
            "{m} ({why}) is not exported even in that state"
        );
    }
    let mut bad = Vec::new();
    let d = dashboard();
    let mut shown = BTreeSet::new();
    for (what, expr, legend) in dashboard_exprs(&d) {
        bad.extend(check_expr(&what, &expr, &scraped, &known, &all_labels));
        for s in promql::uses(&expr).map(|u| u.selectors).unwrap_or_default() {
            shown.insert(s.metric);
        }
        for p in promql::placeholders(&legend) {
            if !all_labels.contains(&p) {
                bad.push(format!("{what}: legend {{{{{p}}}}} is no label"));
            }
        }
    }
    for v in d["templating"]["list"].as_array().expect("variables") {
        let Some(q) = v["query"]["query"].as_str() else {
            continue;
        };
        let what = format!("variable {}", v["name"]);
        let (sel, label) = promql::label_values(q).unwrap_or_else(|| panic!("{what}: {q}"));
        bad.extend(check_expr(&what, &sel, &scraped, &known, &all_labels));
        for s in promql::uses(&sel).expect("selector").selectors {
            if !known.labels(&s.metric).contains(&label) && !TARGET_LABELS.contains(&label.as_str())
            {
                bad.push(format!("{what}: {} has no label {label}", s.metric));
            }
        }
    }
    let doc = alerts();
    for (name, r) in rules(&doc) {
        let expr = r["expr"].as_str().unwrap_or("");
        bad.extend(check_expr(
            &format!("alert {name}"),
            expr,
            &scraped,
            &known,
            &all_labels,
        ));
    }
    // Every family the agent exports has a panel (or a reason not to).
    for f in scraped.families.keys() {
        let base_shown = shown.iter().any(|s| {
            s == f
                || s.strip_prefix(f.as_str())
                    .is_some_and(|x| ["_bucket", "_sum", "_count"].contains(&x))
        });
        if !base_shown && !NOT_SHOWN.iter().any(|(n, _)| n == f) {
            bad.push(format!("{f} is exported but no panel shows it"));
        }
    }
    // The alert scenarios' series are what agents export: same names, same labels.
    let topo = alert_cases::Topologies { two_node };
    for case in alert_cases::cases() {
        let mut w = alert_cases::World::healthy();
        (case.edit)(&mut w, &topo);
        for s in w.series.iter().filter(|s| s.name != "up") {
            let have: BTreeSet<String> = s.labels.iter().map(|(k, _)| k.clone()).collect();
            if !scraped.has(&s.name) && !CONDITIONAL.iter().any(|(c, _)| *c == s.name) {
                bad.push(format!(
                    "scenario {:?}: {} is not exported",
                    case.what, s.name
                ));
            } else if have != known.labels(&s.name) {
                bad.push(format!(
                    "scenario {:?}: {} has labels {have:?}, the agent's {:?}",
                    case.what,
                    s.name,
                    known.labels(&s.name)
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} problem(s):\n{}\n\nscraped:\n{body}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn alert_rules_are_well_formed_and_name_their_runbook_section() {
    let doc = alerts();
    let runbook = read(RUNBOOK);
    let headings: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_string())
        .collect();
    let mut bad = Vec::new();
    let mut names = BTreeSet::new();
    let rs = rules(&doc);
    assert!(rs.len() >= 10, "only {} rules", rs.len());
    for (name, r) in &rs {
        let what = format!("alert {name:?}");
        if !name.starts_with("Oneha") || !names.insert(name.clone()) {
            bad.push(format!("{what}: not named Oneha..., or twice"));
        }
        let expr = r["expr"].as_str().unwrap_or("");
        if expr.trim().is_empty() {
            bad.push(format!("{what}: no expr"));
        } else if let Err(e) = promql::balanced(expr) {
            bad.push(format!("{what}: {e}: {expr}"));
        }
        if let Some(f) = r.get("for") {
            let f = f.as_str().unwrap_or("");
            let n = f.trim_end_matches(['s', 'm', 'h', 'd']);
            if n.is_empty() || n.len() + 1 != f.len() || !n.chars().all(|c| c.is_ascii_digit()) {
                bad.push(format!("{what}: bad for {f:?}"));
            }
        }
        let sev = r["labels"]["severity"].as_str().unwrap_or("");
        if !["critical", "warning", "info"].contains(&sev) {
            bad.push(format!("{what}: severity {sev:?}"));
        }
        let a = &r["annotations"];
        for k in ["summary", "description"] {
            if a[k].as_str().is_none_or(|s| s.trim().is_empty()) {
                bad.push(format!("{what}: no {k}"));
            }
        }
        if !a["description"].as_str().unwrap_or("").contains(RUNBOOK) {
            bad.push(format!("{what}: the description does not name {RUNBOOK}"));
        }
        let want = format!("{RUNBOOK}#{}", anchor(name));
        if a["runbook"].as_str() != Some(want.as_str()) {
            bad.push(format!("{what}: runbook should be {want}"));
        }
        if !headings.contains(name.as_str()) {
            bad.push(format!("{what}: {RUNBOOK} has no heading \"### {name}\""));
        }
    }
    for h in headings.iter().filter(|h| h.starts_with("Oneha")) {
        if !names.contains(h) {
            bad.push(format!("{RUNBOOK} explains {h}, which is no alert"));
        }
    }
    // Every alert has a scenario that makes it fire.
    for name in &names {
        let fires = alert_cases::cases()
            .iter()
            .any(|c| c.alert == name && c.labels.is_some());
        if !fires {
            bad.push(format!(
                "alert {name}: no scenario in tests/dashboards/alert_cases.rs fires it"
            ));
        }
    }
    // The annotations expand with the labels each alert carries (promtool checks the rest).
    let topo = alert_cases::Topologies {
        two_node: "two-node".into(),
    };
    if let Err(e) = promtool::promtool_tests("x", &serde_json::to_value(&doc).unwrap(), &topo) {
        bad.push(e);
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn dashboard_is_well_formed() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    assert!(
        d["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40),
        "uid"
    );
    let vars: BTreeMap<&str, &Value> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| (v["name"].as_str().expect("variable name"), v))
        .collect();
    let ds = vars.get("datasource").expect("a datasource variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    for v in ["job", "cluster", "instance"] {
        let v = vars.get(v).unwrap_or_else(|| panic!("variable {v}"));
        assert_eq!(v["type"], "query");
        assert_eq!(v["datasource"]["uid"], "${datasource}");
    }
    let mut bad = Vec::new();
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, u64, u64, u64, u64)> = Vec::new();
    let known_types = [
        "row",
        "stat",
        "timeseries",
        "table",
        "state-timeline",
        "text",
        "gauge",
    ];
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or("").to_string();
        let kind = p["type"].as_str().unwrap_or("");
        if !known_types.contains(&kind) {
            bad.push(format!("{title}: type {kind:?} is not a built-in panel"));
        }
        if !ids.insert(p["id"].as_u64().unwrap_or(0)) {
            bad.push(format!("{title}: id {} twice", p["id"]));
        }
        let g = &p["gridPos"];
        let n = |k: &str| g[k].as_u64().unwrap_or(u64::MAX);
        let (x, y, w, h) = (n("x"), n("y"), n("w"), n("h"));
        if w == 0 || h == 0 || x.saturating_add(w) > 24 || y == u64::MAX {
            bad.push(format!("{title}: gridPos {g}"));
        }
        for (other, ox, oy, ow, oh) in &boxes {
            if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                bad.push(format!("{title} overlaps {other}"));
            }
        }
        boxes.push((title.clone(), x, y, w, h));
        if kind == "row" {
            continue;
        }
        if p["datasource"]["uid"] != "${datasource}" {
            bad.push(format!("{title}: datasource is not ${{datasource}}"));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            bad.push(format!("{title}: no query"));
        }
        let mut refs = BTreeSet::new();
        for t in &targets {
            if !refs.insert(t["refId"].as_str().unwrap_or("").to_string()) {
                bad.push(format!("{title}: refId {} twice", t["refId"]));
            }
        }
    }
    // Every selector honours the job and instance variables.
    for (what, expr, _) in dashboard_exprs(&d) {
        match promql::uses(&expr) {
            Ok(u) => {
                for s in u.selectors {
                    let has = |k: &str, v: &str| {
                        s.matchers
                            .iter()
                            .any(|m| m.key == k && m.op == "=~" && m.value == v)
                    };
                    if !has("job", "$job") || !has("instance", "$instance") {
                        bad.push(format!(
                            "{what}: {} is not filtered by $job and $instance",
                            s.metric
                        ));
                    }
                }
            }
            Err(e) => bad.push(format!("{what}: {e}")),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn alert_rules_pass_promtool_check_and_their_scenarios() {
    let Some(tool) = promtool::find() else {
        eprintln!(
            "SKIPPED: promtool not found (set PROMTOOL or put it on PATH; Debian package \
             prometheus): `promtool check rules` and the alert scenarios were not run"
        );
        return;
    };
    let rule_file = Path::new(ROOT).join(ALERTS);
    let out = std::process::Command::new(&tool)
        .arg("check")
        .arg("rules")
        .arg(&rule_file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = ops::validate(&read("deploy/examples/two-node.yaml"), dir.path());
    let topo = alert_cases::Topologies {
        two_node: oneha::agent::topology_name(&cfg),
    };
    let doc = serde_json::to_value(alerts()).expect("rules as JSON");
    let tests = promtool::promtool_tests(rule_file.to_str().expect("utf8"), &doc, &topo)
        .expect("scenarios");
    let path = dir.path().join("oneha-alerts.test.yml");
    std::fs::write(&path, serde_norway::to_string(&tests).expect("yaml")).expect("write tests");
    let out = std::process::Command::new(&tool)
        .arg("test")
        .arg("rules")
        .arg(&path)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool test rules ({} scenarios):\n{}{}",
        alert_cases::cases().len(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
