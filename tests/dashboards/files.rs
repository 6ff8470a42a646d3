//! The files under test, parsed, and the pieces tests/dashboards.rs reads from them.

#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;

/// The package root.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The Grafana dashboard.
pub const DASHBOARD: &str = "deploy/grafana/oneha-dashboard.json";
/// The Prometheus alert rules.
pub const ALERTS: &str = "deploy/prometheus/oneha-alerts.yml";
/// The runbook the alerts point to.
pub const RUNBOOK: &str = "docs/runbook.md";

/// A file of the package, by its path from the root.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The dashboard, parsed.
pub fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// The alert rules, parsed.
pub fn alerts() -> Value {
    serde_norway::from_str(&read(ALERTS)).unwrap_or_else(|e| panic!("{ALERTS}: {e}"))
}

/// Every panel, rows' nested panels included.
pub fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// Every PromQL expression of the dashboard: (where, expr, legend format).
pub fn dashboard_exprs(d: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let legend = t["legendFormat"].as_str().unwrap_or("").to_string();
            let expr = t["expr"].as_str().unwrap_or("").to_string();
            out.push((format!("panel {:?}", p["title"]), expr, legend));
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            let title = a["titleFormat"].as_str().unwrap_or("").to_string();
            out.push((format!("annotation {:?}", a["name"]), e.to_string(), title));
        }
    }
    out
}

/// Every rule: (alert name, rule).
pub fn rules(doc: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for g in doc["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            out.push((r["alert"].as_str().unwrap_or("").to_string(), r));
        }
    }
    out
}

/// GitHub's anchor of a Markdown heading.
pub fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}
