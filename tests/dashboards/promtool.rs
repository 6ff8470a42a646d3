//! The alert scenarios (tests/dashboards/alert_cases.rs) as a `promtool test rules` document,
//! with each alert's annotations expanded as Prometheus would, and where promtool is.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::alert_cases::{Topologies, World, cases};

/// Where `tools/install-deps.sh` unpacks Debian's promtool.
const UNPACKED: &str = "/opt/oneha-test/prometheus/usr/bin/promtool";

/// `promtool`: $PROMTOOL, else the one `tools/install-deps.sh` unpacked, else on PATH.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Some(PathBuf::from(p));
    }
    let unpacked = PathBuf::from(UNPACKED);
    if unpacked.is_file() {
        return Some(unpacked);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

/// The rules of the alert file: name -> (severity, annotations).
pub fn rules(doc: &Value) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let mut out = BTreeMap::new();
    for g in doc["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().expect("alert").to_string();
            let sev = r["labels"]["severity"].as_str().unwrap_or("").to_string();
            let ann = r["annotations"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(name, (sev, ann));
        }
    }
    out
}

/// Expands `{{ $labels.NAME }}` and `{{ $value }}`, the only template forms the rules use;
/// errors on a label the alert does not carry, a missing value, or any other template.
pub fn expand(
    text: &str,
    labels: &BTreeMap<&str, &str>,
    value: Option<&str>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(s) = rest.find("{{") {
        out.push_str(&rest[..s]);
        let e = rest[s..].find("}}").ok_or("unclosed {{")? + s;
        let inner = rest[s + 2..e].trim();
        if inner == "$value" {
            out.push_str(value.ok_or("the annotation uses $value: give the case a value")?);
        } else if let Some(l) = inner.strip_prefix("$labels.") {
            out.push_str(labels.get(l).ok_or(format!("the alert has no label {l}"))?);
        } else {
            return Err(format!("template {inner:?} is not expanded by this test"));
        }
        rest = &rest[e + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `promtool test rules` document for `rule_file` (an absolute path): one test group per
/// case. Errors when a case names an unknown alert or an annotation cannot be expanded.
pub fn promtool_tests(rule_file: &str, doc: &Value, topo: &Topologies) -> Result<Value, String> {
    let rules = rules(doc);
    let mut tests = Vec::new();
    for case in cases() {
        let mut w = World::healthy();
        (case.edit)(&mut w, topo);
        let input: Vec<Value> = w
            .series
            .iter()
            .map(|s| json!({"series": s.selector(), "values": s.values}))
            .collect();
        let alerts: Vec<&str> = if case.alert == "*" {
            rules.keys().map(String::as_str).collect()
        } else {
            vec![case.alert]
        };
        let mut checks = Vec::new();
        for alert in alerts {
            let (sev, ann) = rules
                .get(alert)
                .ok_or(format!("{}: no alert {alert}", case.what))?;
            let exp: Vec<Value> = match case.labels {
                None => vec![],
                Some(labels) => {
                    let map: BTreeMap<&str, &str> = labels.iter().copied().collect();
                    let mut l: serde_json::Map<String, Value> =
                        map.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                    l.insert("severity".into(), json!(sev));
                    let mut a = serde_json::Map::new();
                    for (k, v) in ann {
                        let text = expand(v, &map, case.value)
                            .map_err(|e| format!("{alert}, annotation {k}: {e}"))?;
                        a.insert(k.clone(), json!(text));
                    }
                    vec![json!({"exp_labels": l, "exp_annotations": a})]
                }
            };
            checks.push(json!({"eval_time": case.eval, "alertname": alert, "exp_alerts": exp}));
        }
        tests.push(json!({
            "name": case.what,
            "interval": "1m",
            "input_series": input,
            "alert_rule_test": checks,
        }));
    }
    Ok(json!({
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": tests,
    }))
}
