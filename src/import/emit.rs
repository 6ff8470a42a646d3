//! Writes a [`Plan`] as oneha.yaml text, with comments.

use std::fmt::Write as _;

use super::plan::{Noted, Plan, PlanDevice, PlanKind, PlanResource};
use crate::config::Dur;

/// Quotes `s` for YAML unless it is safe as a plain scalar (names, paths, addresses).
pub fn yaml_str(s: &str) -> String {
    let safe_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | '+' | '@'));
    let safe_start = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/');
    let lower = s.to_ascii_lowercase();
    let special = matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    ) || s.parse::<f64>().is_ok()
        || lower.starts_with("0x")
        || lower.starts_with("0o");
    if safe_chars && safe_start && !special {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters never written raw into the YAML: control characters (CR and NEL among them)
/// and the other characters a YAML parser takes as a line break (U+2028, U+2029), a byte
/// order mark and the non-characters YAML does not allow. Raw, a line break in a name would
/// end its line, and what follows would be read as a key of its own.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// `text` for a `# ...` comment: every line break and control character (tab aside) shown
/// as an escape, so that the comment cannot end early and text from cluster.conf cannot
/// become YAML.
fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\t' && needs_escape(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// `key: value` at `indent`, with the note as an end-of-line comment.
fn line(o: &mut String, indent: usize, key: &str, value: &str, note: Option<&str>) {
    let _ = write!(o, "{:indent$}{key}: {value}", "");
    if let Some(n) = note {
        let _ = write!(o, "  # {}", comment_text(n));
    }
    o.push('\n');
}

fn noted<T>(o: &mut String, indent: usize, key: &str, v: &Noted<T>, show: impl Fn(&T) -> String) {
    line(o, indent, key, &show(&v.value), v.note.as_deref());
}

/// `text` as comment lines at `indent`: one per `\n` in it, other line breaks escaped.
fn comment(o: &mut String, indent: usize, text: &str) {
    for l in text.split('\n') {
        let _ = writeln!(o, "{:indent$}# {}", "", comment_text(l));
    }
}

fn dur(d: &Dur) -> String {
    d.to_string()
}

/// The YAML text of `plan`.
pub fn emit(plan: &Plan) -> String {
    let mut o = String::new();
    for h in &plan.header {
        if h.is_empty() {
            o.push_str("#\n");
        } else {
            comment(&mut o, 0, h);
        }
    }
    if !plan.header.is_empty() {
        o.push('\n');
    }
    line(&mut o, 0, "cluster", &yaml_str(&plan.cluster), None);
    if let Some(t) = &plan.two_node {
        noted(&mut o, 0, "two_node", t, bool::to_string);
    }
    noted(&mut o, 0, "key_file", &plan.key_file, |s| yaml_str(s));
    o.push_str("nodes:\n");
    for n in &plan.nodes {
        let _ = writeln!(o, "  - name: {}", yaml_str(&n.name));
        line(&mut o, 4, "id", &n.id.to_string(), None);
        match &n.alt {
            None => noted(&mut o, 4, "address", &n.address, |s| yaml_str(s)),
            Some(alt) => {
                o.push_str("    addresses:\n");
                for a in [&n.address, alt] {
                    let _ = write!(o, "      - {}", yaml_str(&a.value));
                    if let Some(note) = &a.note {
                        let _ = write!(o, "  # {}", comment_text(note));
                    }
                    o.push('\n');
                }
            }
        }
        if n.witness {
            line(&mut o, 4, "role", "witness", None);
        }
    }
    emit_resources(&mut o, plan);
    emit_fencing(&mut o, plan);
    o
}

fn emit_resources(o: &mut String, plan: &Plan) {
    let r = &plan.resources;
    o.push('\n');
    for c in &r.comments {
        comment(o, 0, c);
    }
    o.push_str("resources:\n");
    if let Some(v) = &r.autostart {
        noted(o, 2, "autostart", v, bool::to_string);
    }
    if let Some(v) = &r.recovery {
        noted(o, 2, "recovery", v, |s| yaml_str(s));
    }
    if let Some(v) = &r.max_restarts {
        noted(o, 2, "max_restarts", v, u32::to_string);
    }
    if let Some(v) = &r.restart_expire_time {
        noted(o, 2, "restart_expire_time", v, dur);
    }
    if let Some(d) = &r.domain {
        comment(o, 2, &d.comment);
        o.push_str("  failover_domain:\n");
        let names: Vec<String> = d.nodes.iter().map(|n| yaml_str(n)).collect();
        line(o, 4, "nodes", &format!("[{}]", names.join(", ")), None);
        line(o, 4, "failback", &d.failback.to_string(), None);
        line(o, 4, "restricted", &d.restricted.to_string(), None);
    }
    match &r.group {
        None => comment(
            o,
            2,
            "group: not set, so oneha's default applies (the opennebula and \
             opennebula-sunstone units)",
        ),
        Some(g) if g.is_empty() => line(o, 2, "group", "[]", None),
        Some(g) => {
            o.push_str("  group:\n");
            for res in g {
                emit_resource(o, res);
            }
        }
    }
}

fn emit_resource(o: &mut String, r: &PlanResource) {
    if let Some(c) = &r.comment {
        comment(o, 4, c);
    }
    let _ = writeln!(o, "    - name: {}", yaml_str(&r.name));
    match &r.kind {
        PlanKind::Ip { address, interface } => {
            line(o, 6, "type", "ip", None);
            noted(o, 6, "address", address, |s| yaml_str(s));
            noted(o, 6, "interface", interface, |s| yaml_str(s));
        }
        PlanKind::Systemd { unit } => {
            line(o, 6, "type", "systemd", None);
            line(o, 6, "unit", &yaml_str(unit), None);
        }
        PlanKind::Lsb { script } => {
            line(o, 6, "type", "lsb", None);
            line(o, 6, "script", &yaml_str(script), None);
        }
        PlanKind::Filesystem {
            device,
            mountpoint,
            fstype,
            options,
            fsck,
            force_unmount,
        } => {
            line(o, 6, "type", "filesystem", None);
            line(o, 6, "device", &yaml_str(device), None);
            line(o, 6, "mountpoint", &yaml_str(mountpoint), None);
            for (key, v) in [("fstype", fstype), ("options", options)] {
                if let Some(v) = v {
                    line(o, 6, key, &yaml_str(v), None);
                }
            }
            if let Some(v) = fsck {
                noted(o, 6, "fsck", v, bool::to_string);
            }
            noted(o, 6, "force_unmount", force_unmount, bool::to_string);
        }
    }
    for (key, v) in [
        ("monitor_interval", r.monitor_interval),
        ("monitor_timeout", r.monitor_timeout),
        ("start_timeout", r.start_timeout),
        ("stop_timeout", r.stop_timeout),
    ] {
        if let Some(d) = v {
            line(o, 6, key, &dur(&d), None);
        }
    }
}

fn emit_fencing(o: &mut String, plan: &Plan) {
    o.push('\n');
    o.push_str("fencing:\n");
    if plan.devices.is_empty() {
        o.push_str("  devices: {}\n");
    } else {
        o.push_str("  devices:\n");
    }
    for (name, d) in &plan.devices {
        match d {
            PlanDevice::Xvm {
                comment: c,
                multicast_address,
                port,
                key_file,
                hash,
                auth,
                timeout,
                retransmit,
            } => {
                if let Some(c) = c {
                    comment(o, 4, c);
                }
                let _ = writeln!(o, "    {}:", yaml_str(name));
                line(o, 6, "type", "xvm", None);
                let strings = [
                    ("multicast_address", multicast_address),
                    ("key_file", key_file),
                    ("hash", hash),
                    ("auth", auth),
                ];
                for (k, v) in strings {
                    if let Some(v) = v {
                        line(o, 6, k, &yaml_str(v), None);
                    }
                }
                if let Some(p) = port {
                    line(o, 6, "port", &p.to_string(), None);
                }
                for (k, v) in [("timeout", timeout), ("retransmit", retransmit)] {
                    if let Some(v) = v {
                        line(o, 6, k, &dur(v), None);
                    }
                }
            }
            PlanDevice::Agent {
                comment: c,
                agent,
                options,
            } => {
                if let Some(c) = c {
                    comment(o, 4, c);
                }
                let _ = writeln!(o, "    {}:", yaml_str(name));
                line(o, 6, "type", "agent", None);
                line(o, 6, "agent", &yaml_str(agent), None);
                if options.is_empty() {
                    continue;
                }
                o.push_str("      options:\n");
                for (k, v) in options {
                    line(o, 8, &yaml_str(k), &yaml_str(v), None);
                }
            }
        }
    }
    if plan.fence_nodes.is_empty() {
        o.push_str("  nodes: {}\n");
        return;
    }
    o.push_str("  nodes:\n");
    for (node, f) in &plan.fence_nodes {
        let _ = writeln!(o, "    {}:", yaml_str(node));
        if let Some(d) = &f.delay {
            noted(o, 6, "delay", d, dur);
        }
        if f.levels.is_empty() {
            o.push_str("      levels: []\n");
            continue;
        }
        o.push_str("      levels:\n");
        for l in &f.levels {
            let mut parts = vec![format!("device: {}", yaml_str(&l.device))];
            if let Some(p) = &l.plug {
                parts.push(format!("plug: {}", yaml_str(p)));
            }
            if l.uuid {
                parts.push("uuid: true".into());
            }
            let _ = writeln!(o, "        - {{{}}}", parts.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_yaml_would_misread() {
        for plain in [
            "one-server1",
            "/etc/init.d/opennebula",
            "10.10.11.12/24",
            "eth0",
        ] {
            assert_eq!(yaml_str(plain), plain);
        }
        assert_eq!(yaml_str("192.0.2.1:7400"), "\"192.0.2.1:7400\"");
        assert_eq!(yaml_str("yes"), "\"yes\"");
        assert_eq!(yaml_str("1"), "\"1\"");
        assert_eq!(yaml_str("1.5"), "\"1.5\"");
        assert_eq!(yaml_str(""), "\"\"");
        assert_eq!(yaml_str("a \"b\"\\"), "\"a \\\"b\\\"\\\\\"");
        assert_eq!(yaml_str("-x"), "\"-x\"");
        assert_eq!(yaml_str("p#w d"), "\"p#w d\"");
        // Whatever we quote reads back as the same string.
        for s in [
            "a\nb",
            "x: y",
            "# c",
            "[1]",
            "{a}",
            "*ref",
            "&anchor",
            "tab\there",
            "\u{1}",
            "a\rb: c",
            "a\u{85}b: c",
            "a\u{2028}b: c",
            "a\u{2029}b: c",
            "\u{feff}bom",
        ] {
            let y = format!("k: {}\n", yaml_str(s));
            let v: std::collections::BTreeMap<String, String> = serde_norway::from_str(&y).unwrap();
            assert_eq!(v["k"], s, "{y}");
        }
    }

    #[test]
    fn comments_cannot_end_early() {
        let mut o = String::new();
        comment(&mut o, 2, "one\ntwo\rkey: x\u{2028}k2: y\u{85}k3: z");
        assert_eq!(o, "  # one\n  # two\\u000dkey: x\\u2028k2: y\\u0085k3: z\n");
        let v: serde_norway::Value = serde_norway::from_str(&format!("a: 1\n{o}")).unwrap();
        assert_eq!(v.as_mapping().unwrap().len(), 1, "{o}");
    }
}
