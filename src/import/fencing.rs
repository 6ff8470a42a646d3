//! `<fencedevices>` and each node's `<fence><method><device>` -> `fencing.devices` and
//! `fencing.nodes`. cman passes a device's attributes merged with the instance's to the
//! agent; oneha's levels carry only `plug`, so an instance with further options becomes a
//! device of its own (`DEVICE-NODE`).

use std::collections::BTreeMap;

use super::plan::{Noted, Notes, Plan, PlanDevice, PlanLevel, PlanNodeFencing};
use super::translate::{flag, other_attrs, seconds};
use super::xml::Element;
use crate::config::Dur;
use crate::fence::is_secret_option;

/// Attributes that address the node on a device (oneha's `plug`).
const PLUG_KEYS: [&str; 4] = ["port", "plug", "domain", "nodename"];

/// xvm device attributes oneha understands.
const XVM_KEYS: [&str; 13] = [
    "name",
    "agent",
    "key_file",
    "multicast_address",
    "ipport",
    "hash",
    "auth",
    "timeout",
    "retrans",
    "delay",
    "use_uuid",
    "ip_family",
    "port",
];

struct Device<'a> {
    el: &'a Element,
    agent: String,
}

fn is_xvm(agent: &str) -> bool {
    agent.rsplit('/').next() == Some("fence_xvm")
}

/// Translates every device and every node's methods.
pub(super) fn translate(root: &Element, plan: &mut Plan, notes: &mut Notes) {
    let mut devices: BTreeMap<String, Device> = BTreeMap::new();
    if let Some(list) = root.child("fencedevices") {
        for d in &list.children {
            let (Some(name), Some(agent)) = (d.attr("name"), d.attr("agent")) else {
                notes.skip(
                    d.line,
                    format!("<{}> without name or agent: not translated", d.name),
                );
                continue;
            };
            devices.insert(
                name.to_string(),
                Device {
                    el: d,
                    agent: agent.to_string(),
                },
            );
            let dev = if is_xvm(agent) {
                xvm_device(d, notes)
            } else {
                agent_device(d, agent, &[], notes)
            };
            plan.devices.insert(name.to_string(), dev);
        }
    }
    let Some(list) = root.child("clusternodes") else {
        return;
    };
    let mut derived_from: Vec<String> = Vec::new();
    for n in list.children_named("clusternode") {
        let Some(node) = n.attr("name").map(str::trim) else {
            continue;
        };
        let mut nf = PlanNodeFencing::default();
        let mut delays: Vec<(Dur, String)> = Vec::new();
        for m in n
            .child("fence")
            .into_iter()
            .flat_map(|f| f.children_named("method"))
        {
            if let Some(level) = level(
                node,
                m,
                &devices,
                plan,
                notes,
                &mut delays,
                &mut derived_from,
            ) {
                nf.levels.push(level);
            }
        }
        if let Some((d, dev)) = delays.first() {
            if delays.iter().any(|(x, _)| x != d) {
                notes.skip(
                    n.line,
                    format!(
                        "{node}'s fence methods have different delays; oneha has one delay per \
                         node and takes the first method's ({d})"
                    ),
                );
            }
            if !d.get().is_zero() {
                nf.delay = Some(Noted::with(
                    *d,
                    format!("delay on {dev}: fencing {node} waits, so {node} wins a fence race"),
                ));
            }
        }
        if nf.levels.is_empty() {
            notes.fill(format!(
                "fencing.nodes.{node}: no fence method for {node} in cluster.conf; without one, \
                 taking over from it needs `oneha fence-ack {node}` after powering it off by hand"
            ));
        } else {
            plan.fence_nodes.insert(node.to_string(), nf);
        }
    }
    // A device only ever used with per-node options exists only as its per-node copies.
    for base in derived_from {
        let used = plan
            .fence_nodes
            .values()
            .any(|f| f.levels.iter().any(|l| l.device == base));
        if !used {
            plan.devices.remove(&base);
        }
    }
}

/// One `<method>`: a level, or `None` (noted) when oneha cannot express it.
fn level(
    node: &str,
    m: &Element,
    devices: &BTreeMap<String, Device>,
    plan: &mut Plan,
    notes: &mut Notes,
    delays: &mut Vec<(Dur, String)>,
    derived_from: &mut Vec<String>,
) -> Option<PlanLevel> {
    let method = m.attr("name").unwrap_or("?");
    let insts: Vec<&Element> = m.children_named("device").collect();
    if insts.len() != 1 {
        notes.skip(
            m.line,
            format!(
                "fence method \"{method}\" of {node} has {} devices (all must succeed, e.g. two \
                 power supplies); a oneha fence level uses one device: not translated",
                insts.len()
            ),
        );
        return None;
    }
    let inst = insts[0];
    let dev_name = inst.attr("name").unwrap_or("");
    let Some(dev) = devices.get(dev_name) else {
        notes.skip(
            inst.line,
            format!("{node}'s fence method \"{method}\" uses unknown device \"{dev_name}\""),
        );
        return None;
    };
    let get = |k: &str| inst.attr(k).or(dev.el.attr(k));
    let plug = PLUG_KEYS.iter().find_map(|k| get(k)).map(str::to_string);
    if let Some(d) = get("delay") {
        match seconds(d) {
            Some(v) => delays.push((v, dev_name.to_string())),
            None => notes.skip(
                inst.line,
                format!("delay=\"{d}\" is not a number of seconds"),
            ),
        }
    }
    if let Some(a) = inst.attr("action") {
        notes.skip(
            inst.line,
            format!(
                "{node}'s device {dev_name} action=\"{a}\": oneha chooses the action itself \
                 (off to fence, `oneha fence --action`)"
            ),
        );
    }
    let mut handled = vec!["name", "delay", "action"];
    handled.extend(PLUG_KEYS);
    if is_xvm(&dev.agent) {
        let uuid = inst
            .attr("use_uuid")
            .map(|_| flag(inst, "use_uuid", notes).unwrap_or(false))
            .or_else(|| flag(dev.el, "use_uuid", notes))
            .unwrap_or(false);
        handled.push("use_uuid");
        other_attrs(
            inst,
            &handled,
            " (fence_xvm takes it from the device)",
            notes,
        );
        return Some(PlanLevel {
            device: dev_name.to_string(),
            plug,
            uuid,
        });
    }
    let extra: Vec<(String, String)> = inst
        .attrs
        .iter()
        .filter(|(k, _)| !handled.contains(&k.as_str()))
        .cloned()
        .collect();
    let device = if extra.is_empty() {
        dev_name.to_string()
    } else {
        let derived = format!("{dev_name}-{node}");
        let mut d = agent_device(dev.el, &dev.agent, &extra, notes);
        if let PlanDevice::Agent { comment, .. } = &mut d {
            let mut c = format!(
                "{dev_name} with {node}'s own options from cluster.conf (line {})",
                inst.line
            );
            if let Some(secret) = comment.take() {
                c = format!("{c}\n{secret}");
            }
            *comment = Some(c);
        }
        plan.devices.insert(derived.clone(), d);
        derived_from.push(dev_name.to_string());
        derived
    };
    Some(PlanLevel {
        device,
        plug,
        uuid: false,
    })
}

fn xvm_device(d: &Element, notes: &mut Notes) -> PlanDevice {
    other_attrs(d, &XVM_KEYS, "", notes);
    let name = d.attr("name").unwrap_or("?");
    let port = d
        .attr("ipport")
        .and_then(|p| match p.trim().parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) => {
                notes.skip(
                    d.line,
                    format!("fence device {name} ipport=\"{p}\" is not a port"),
                );
                None
            }
        });
    let mut hash_of = |key: &str| {
        let v = d.attr(key)?.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "none" | "sha1" | "sha256" | "sha512") {
            Some(v)
        } else {
            notes.skip(
                d.line,
                format!("fence device {name} {key}=\"{v}\" is not a hash"),
            );
            None
        }
    };
    let (hash, auth) = (hash_of("hash"), hash_of("auth"));
    let mut time_of = |key: &str| {
        let v = d.attr(key)?;
        let t = seconds(v);
        if t.is_none() {
            notes.skip(
                d.line,
                format!("fence device {name} {key}=\"{v}\" is not seconds"),
            );
        }
        t
    };
    let (timeout, retransmit) = (time_of("timeout"), time_of("retrans"));
    if let Some(f) = d.attr("ip_family")
        && !matches!(f, "ipv4" | "auto")
    {
        notes.skip(
            d.line,
            format!("fence device {name} ip_family=\"{f}\": oneha's xvm client speaks IPv4"),
        );
    }
    PlanDevice::Xvm {
        comment: Some(format!(
            "{name}: fence_xvm to fence_virtd on the hypervisor (oneha's built-in client)"
        )),
        multicast_address: d.attr("multicast_address").map(str::to_string),
        port,
        key_file: d.attr("key_file").map(str::to_string),
        hash,
        auth,
        timeout,
        retransmit,
    }
}

/// The longest fence agent option name taken from cluster.conf (fence-agents' longest are
/// about 30 characters).
const OPTION_NAME_MAX: usize = 64;

/// Whether `k` can be a fence agent option name: agents read `name=value` lines, with names
/// of ASCII letters, digits, `_` and `-` (found by `make fuzz`: an attribute name of 1,300
/// NUL characters made the imported YAML unparseable, a key over YAML's 1,024-character limit).
fn is_option_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= OPTION_NAME_MAX
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn agent_device(
    d: &Element,
    agent: &str,
    extra: &[(String, String)],
    notes: &mut Notes,
) -> PlanDevice {
    let name = d.attr("name").unwrap_or("?");
    let mut options = BTreeMap::new();
    for (k, v) in d.attrs.iter().chain(extra) {
        match k.as_str() {
            "name" | "agent" | "delay" => {}
            k if PLUG_KEYS.contains(&k) => {}
            "action" | "option" => notes.skip(
                d.line,
                format!("fence device {name} {k}=\"{v}\": oneha chooses the action itself (off)"),
            ),
            k if !is_option_name(k) => notes.skip(
                d.line,
                format!(
                    "fence device {name}: attribute `{}` is not a fence agent option name \
                     (letters, digits, `_`, `-`, at most {OPTION_NAME_MAX} characters)",
                    k.chars()
                        .take(OPTION_NAME_MAX)
                        .collect::<String>()
                        .escape_debug()
                ),
            ),
            _ => {
                options.insert(k.clone(), v.clone());
            }
        }
    }
    let secret = options.keys().any(|k| is_secret_option(k));
    let comment = secret.then(|| {
        format!(
            "{name} holds a password copied from cluster.conf: keep this file mode 0600, or \
             use passwd_script instead"
        )
    });
    PlanDevice::Agent {
        comment,
        agent: agent.to_string(),
        options,
    }
}
