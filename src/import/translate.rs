//! cluster.conf -> [`Plan`]: the cluster, its members, cman's quorum settings and the quorum
//! disk. Fencing and the resource manager section are in `fencing.rs` and `service.rs`.

use std::collections::HashSet;
use std::net::IpAddr;

use super::host::Host;
use super::links::{CLUSTER, altname, link_address, placeholder};
use super::plan::{Noted, Notes, Plan, PlanNode};
use super::xml::Element;
use super::{ImportError, Options};
use crate::config::Dur;

/// Reads a cluster.conf boolean (`1`/`0`, also yes/no, true/false, on/off).
pub(super) fn flag(el: &Element, key: &str, notes: &mut Notes) -> Option<bool> {
    let v = el.attr(key)?;
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" | "" => Some(false),
        _ => {
            notes.skip(
                el.line,
                format!("<{}> {key}=\"{v}\" is not 0 or 1; ignored", el.name),
            );
            None
        }
    }
}

/// A time as rgmanager and fence agents write it: seconds, or a number with `s`, `m`, `h`
/// or `d`.
pub(super) fn seconds(text: &str) -> Option<Dur> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    let ms = n * scale * 1000.0;
    (ms.is_finite() && (0.0..1.0e12).contains(&ms))
        .then(|| Dur(std::time::Duration::from_millis(ms.round() as u64)))
}

/// Notes every attribute of `el` not in `known`.
pub(super) fn other_attrs(el: &Element, known: &[&str], why: &str, notes: &mut Notes) {
    for (k, v) in &el.attrs {
        if !known.contains(&k.as_str()) {
            notes.skip(
                el.line,
                format!("<{} {k}=\"{v}\"> not translated{why}", el.name),
            );
        }
    }
}

/// Top-level elements and what oneha does instead.
fn top_level_note(name: &str) -> &'static str {
    match name {
        "totem" => {
            ": oneha's own timers apply (timers.profile default: a member is lost after 1s; \
             fast: 150ms)"
        }
        "logging" => ": oneha logs to the journal (RUST_LOG sets the level)",
        "fence_daemon" => {
            ": oneha waits for every member at start (wait_for_all) instead of \
             post_join_delay, and fences as soon as a member is lost (no post_fail_delay)"
        }
        "dlm" | "gfs_controld" => ": oneha has no lock manager",
        _ => "",
    }
}

/// The whole file: members, quorum, then fencing and services.
pub(super) fn translate(
    root: &Element,
    opts: &Options,
    host: &dyn Host,
) -> Result<(Plan, Notes), ImportError> {
    if root.name != "cluster" {
        return Err(ImportError::invalid(
            root.line,
            format!(
                "the root element is <{}>, expected <cluster>: is this an rgmanager/CMAN \
                 cluster.conf?",
                root.name
            ),
        ));
    }
    let mut notes = Notes::default();
    let cluster = match root.attr("name").map(str::trim) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            return Err(ImportError::invalid(
                root.line,
                "<cluster> has no name attribute; cman requires one",
            ));
        }
    };
    other_attrs(root, &["name", "config_version", "alias"], "", &mut notes);
    let mut plan = Plan {
        cluster: cluster.clone(),
        ..Plan::default()
    };
    let version = root.attr("config_version").unwrap_or("?");
    plan.header = vec![
        format!(
            "oneha configuration imported from {} by `oneha import-cluster-conf`",
            opts.source
        ),
        format!("(rgmanager/CMAN cluster \"{cluster}\", config_version {version})."),
        String::new(),
        "Check every value marked FILL IN, copy the file to /etc/oneha/oneha.yaml on every"
            .to_string(),
        "node, then validate it there with: oneha check-config".to_string(),
    ];
    plan.key_file = Noted::with(
        opts.key_file.clone(),
        "FILL IN: create it once with `oneha keygen`, copy it to every node (mode 0600)",
    );
    notes.fill(format!(
        "key_file: create the cluster key with `oneha keygen {}` and copy it to every node",
        opts.key_file
    ));
    let names = members(root, opts, host, &mut plan, &mut notes)?;
    quorum(root, &names, opts, &mut plan, &mut notes);
    for el in &root.children {
        match el.name.as_str() {
            "clusternodes" | "cman" | "fencedevices" | "rm" | "quorumd" => {}
            "fence_daemon" | "totem" | "logging" | "dlm" | "gfs_controld"
                if el.attrs.is_empty() && el.children.is_empty() => {}
            other => notes.skip(
                el.line,
                format!("<{other}> not translated{}", top_level_note(other)),
            ),
        }
    }
    super::fencing::translate(root, &mut plan, &mut notes);
    super::service::translate(root, opts, host, &names, &mut plan, &mut notes);
    Ok((plan, notes))
}

/// `<clusternodes>`: names, ids and peer addresses.
fn members(
    root: &Element,
    opts: &Options,
    host: &dyn Host,
    plan: &mut Plan,
    notes: &mut Notes,
) -> Result<Vec<String>, ImportError> {
    let Some(list) = root.child("clusternodes") else {
        return Err(ImportError::invalid(
            root.line,
            "no <clusternodes> section: the file names no cluster members",
        ));
    };
    let mut names = Vec::new();
    let mut ids: HashSet<u64> = HashSet::new();
    let mut pending: Vec<(String, Option<u64>, &Element)> = Vec::new();
    for n in list.children_named("clusternode") {
        let name = match n.attr("name").map(str::trim) {
            Some(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.to_string(),
            other => {
                return Err(ImportError::invalid(
                    n.line,
                    format!(
                        "<clusternode> needs a name without spaces, found {:?}",
                        other.unwrap_or("nothing")
                    ),
                ));
            }
        };
        if names.contains(&name) {
            return Err(ImportError::invalid(
                n.line,
                format!("clusternode `{name}` is listed twice; names must be unique"),
            ));
        }
        let id = match n.attr("nodeid") {
            None => None,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(id) if id > 0 => Some(id),
                _ => {
                    return Err(ImportError::invalid(
                        n.line,
                        format!(
                            "clusternode `{name}` has nodeid=\"{v}\"; expected a number above 0"
                        ),
                    ));
                }
            },
        };
        if let Some(id) = id
            && !ids.insert(id)
        {
            return Err(ImportError::invalid(
                n.line,
                format!("nodeid {id} of `{name}` is used twice; node ids must be unique"),
            ));
        }
        if let Some(v) = n.attr("votes")
            && v.trim() != "1"
        {
            notes.skip(
                n.line,
                format!("clusternode {name} votes=\"{v}\": every oneha member has one Raft vote"),
            );
        }
        other_attrs(n, &["name", "nodeid", "votes"], "", notes);
        for c in &n.children {
            if c.name != "fence" && c.name != "altname" {
                notes.skip(
                    c.line,
                    format!("<{}> of clusternode {name} not translated", c.name),
                );
            }
        }
        names.push(name.clone());
        pending.push((name, id, n));
    }
    if names.len() < 2 {
        return Err(ImportError::invalid(
            list.line,
            format!(
                "<clusternodes> lists {} node(s); oneha needs at least two front-ends",
                names.len()
            ),
        ));
    }
    let mut used: Vec<IpAddr> = Vec::new();
    let mut next_id = ids.iter().max().copied().unwrap_or(0);
    for (i, (name, id, el)) in pending.into_iter().enumerate() {
        let id = id.unwrap_or_else(|| {
            next_id += 1;
            notes.skip(
                el.line,
                format!("clusternode {name} has no nodeid; oneha gives it id {next_id}"),
            );
            next_id
        });
        let key = format!("nodes[{i}].address");
        let address = link_address(host, &name, CLUSTER, &key, &mut used, opts, notes);
        let alt = altname(el, i, host, &mut used, opts, notes);
        plan.nodes.push(PlanNode {
            name,
            id,
            address,
            alt,
            witness: false,
        });
    }
    Ok(names)
}

/// `<cman>` and `<quorumd>`: two_node, or a witness in place of the quorum disk.
fn quorum(root: &Element, names: &[String], opts: &Options, plan: &mut Plan, notes: &mut Notes) {
    let cman = root.child("cman");
    let two_node = cman
        .and_then(|c| flag(c, "two_node", notes))
        .unwrap_or(false);
    if let Some(c) = cman {
        other_attrs(
            c,
            &["two_node", "expected_votes"],
            ": oneha's peers talk TCP to nodes[].address",
            notes,
        );
        for el in &c.children {
            notes.skip(el.line, format!("<cman><{}> not translated", el.name));
        }
    }
    let qdisk = root.child("quorumd");
    if let Some(q) = qdisk {
        let label = q.attr("label").or(q.attr("device")).unwrap_or("?");
        let heuristics: Vec<String> = q
            .children_named("heuristic")
            .map(|h| h.attr("program").unwrap_or("?").to_string())
            .collect();
        let detail = if heuristics.is_empty() {
            String::new()
        } else {
            format!(
                "; its heuristics ({}) are not translated",
                heuristics.join("; ")
            )
        };
        if names.len() == 2 {
            notes.skip(
                q.line,
                format!(
                    "<quorumd label=\"{label}\"> (quorum disk): replaced by a witness node, a \
                     third Raft voter that never runs the group{detail}"
                ),
            );
        } else {
            notes.skip(
                q.line,
                format!("<quorumd label=\"{label}\"> (quorum disk) not translated{detail}"),
            );
        }
    }
    if names.len() != 2 {
        if two_node {
            notes.skip(
                cman.map_or(root.line, |c| c.line),
                format!("cman two_node=\"1\" with {} nodes: ignored", names.len()),
            );
        }
        return;
    }
    if qdisk.is_some() && !two_node {
        let id = plan.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        let mut used: Vec<IpAddr> = plan
            .nodes
            .iter()
            .filter_map(|n| n.address.value.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip())
            .collect();
        let index = plan.nodes.len();
        let addr = placeholder(&mut used, opts);
        notes.fill(format!(
            "nodes[{index}]: the witness that replaces the quorum disk: a third machine (e.g. \
             the hypervisor host) running `oneha agent`; set its name and replace the \
             placeholder {addr} with its address"
        ));
        let address = Noted::with(
            addr,
            "FILL IN: a third machine (e.g. the hypervisor host) running `oneha agent` as a \
             witness",
        );
        plan.nodes.push(PlanNode {
            name: "witness".into(),
            id,
            address,
            alt: None,
            witness: true,
        });
        return;
    }
    let note = if two_node {
        let ev = cman.and_then(|c| c.attr("expected_votes")).unwrap_or("1");
        format!("cman two_node=\"1\" expected_votes=\"{ev}\": fencing decides who survives")
    } else {
        notes.skip(
            cman.map_or(root.line, |c| c.line),
            "two nodes without cman two_node=\"1\" or a quorum disk: oneha needs either \
             two_node (written) or a witness node (recommended: see docs/runbook.md)",
        );
        "cluster.conf had no two_node; two nodes need two_node or a witness".into()
    };
    plan.two_node = Some(Noted::with(true, note));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_rgmanager_units() {
        assert_eq!(seconds("600"), Some(Dur::secs(600)));
        assert_eq!(seconds("10s"), Some(Dur::secs(10)));
        assert_eq!(seconds("5m"), Some(Dur::secs(300)));
        assert_eq!(seconds("1h"), Some(Dur::secs(3600)));
        assert_eq!(seconds("1d"), Some(Dur::secs(86_400)));
        assert_eq!(seconds("0.5"), Some(Dur::ms(500)));
        assert_eq!(seconds("ten"), None);
        assert_eq!(seconds("3w"), None);
        assert_eq!(seconds(""), None);
    }

    #[test]
    fn flags_accept_the_usual_spellings_and_note_others() {
        let el = super::super::xml::parse(r#"<x a="1" b="no" c="maybe"/>"#).unwrap();
        let mut notes = Notes::default();
        assert_eq!(flag(&el, "a", &mut notes), Some(true));
        assert_eq!(flag(&el, "b", &mut notes), Some(false));
        assert_eq!(flag(&el, "c", &mut notes), None);
        assert_eq!(flag(&el, "d", &mut notes), None);
        assert_eq!(notes.untranslated.len(), 1);
        assert!(notes.untranslated[0].contains("c=\"maybe\""));
    }
}
