//! `<rm>`: the service (-> `resources`), its failover domain and its resources, flattened in
//! rgmanager's start order: within a parent, lvm, fs, clusterfs, netfs, ip, then scripts
//! (service.sh's child ordering), then resources of other types (mysql, postgres-8), siblings
//! of one type in document order, children after their parent.

use std::collections::{HashMap, HashSet};

use super::Options;
use super::host::{Host, interface_for};
use super::plan::{Noted, Notes, Plan, PlanDomain, PlanKind, PlanResource};
use super::storage;
use super::translate::{flag, other_attrs, seconds};
use super::xml::Element;
use crate::resources::parse_cidr;

/// rgmanager's start level of a resource type under a service (service.sh `<child>` list).
fn start_level(kind: &str) -> u32 {
    match kind {
        "lvm" => 1,
        "fs" => 2,
        "clusterfs" => 3,
        "netfs" => 4,
        "nfsexport" => 5,
        "nfsclient" => 6,
        "ip" => 7,
        "smb" => 8,
        "script" => 9,
        _ => 100,
    }
}

struct Ctx<'a> {
    opts: &'a Options,
    host: &'a dyn Host,
    globals: Vec<&'a Element>,
    group: Vec<PlanResource>,
    /// Names in `group`.
    taken: HashSet<String>,
    /// The next number to try after each base name.
    next_suffix: HashMap<String, u64>,
    service: String,
}

/// Translates the `<rm>` section into `plan.resources`.
pub(super) fn translate(
    root: &Element,
    opts: &Options,
    host: &dyn Host,
    names: &[String],
    plan: &mut Plan,
    notes: &mut Notes,
) {
    let Some(rm) = root.child("rm") else {
        notes.skip(root.line, "no <rm> section: no service to translate");
        return;
    };
    other_attrs(rm, &[], "", notes);
    let services: Vec<&Element> = rm.children_named("service").collect();
    for el in &rm.children {
        match el.name.as_str() {
            "service" | "failoverdomains" | "resources" => {}
            "vm" => notes.skip(
                el.line,
                format!(
                    "<vm name=\"{}\">: oneha does not manage virtual machines as resources",
                    el.attr("name").unwrap_or("?")
                ),
            ),
            other => notes.skip(el.line, format!("<rm><{other}> not translated")),
        }
    }
    let Some(svc) = pick(&services) else {
        notes.skip(
            rm.line,
            "<rm> has no <service>: oneha's default group applies",
        );
        return;
    };
    for s in &services {
        if !std::ptr::eq(*s, svc) {
            notes.skip(
                s.line,
                format!(
                    "service \"{}\": oneha manages one resource group; only \"{}\" is imported",
                    s.attr("name").unwrap_or("?"),
                    svc.attr("name").unwrap_or("?")
                ),
            );
        }
    }
    let name = svc.attr("name").unwrap_or("service").to_string();
    service_settings(svc, &name, plan, notes);
    domain(rm, svc, &name, names, plan, notes);
    let mut ctx = Ctx {
        opts,
        host,
        globals: rm
            .child("resources")
            .map(|r| r.children.iter().collect())
            .unwrap_or_default(),
        group: Vec::new(),
        taken: HashSet::new(),
        next_suffix: HashMap::new(),
        service: name,
    };
    walk(&mut ctx, svc, notes);
    plan.resources.group = Some(ctx.group);
}

/// The service to import: the one running an opennebula script, else the first.
fn pick<'a>(services: &[&'a Element]) -> Option<&'a Element> {
    fn runs_opennebula(e: &Element) -> bool {
        e.attr("file").is_some_and(|f| f.contains("opennebula"))
            || e.attr("ref").is_some_and(|f| f.contains("opennebula"))
            || e.children.iter().any(runs_opennebula)
    }
    services
        .iter()
        .find(|s| runs_opennebula(s))
        .or(services.first())
        .copied()
}

fn service_settings(svc: &Element, name: &str, plan: &mut Plan, notes: &mut Notes) {
    let r = &mut plan.resources;
    r.comments.push(format!(
        "The group is rgmanager service \"{name}\" (cluster.conf line {}).",
        svc.line
    ));
    if let Some(a) = flag(svc, "autostart", notes) {
        r.autostart = Some(Noted::with(a, format!("autostart=\"{}\"", u8::from(a))));
    }
    match svc.attr("recovery").map(str::trim) {
        None => {}
        Some(v @ ("restart" | "relocate" | "disable")) => {
            r.recovery = Some(Noted::plain(v.to_string()));
        }
        Some("restart-disable") => {
            r.recovery = Some(Noted::with(
                "restart".to_string(),
                "was restart-disable: oneha relocates, not disables, past max_restarts",
            ));
            notes.skip(
                svc.line,
                "recovery=\"restart-disable\": translated as restart (oneha relocates after \
                 max_restarts instead of disabling)",
            );
        }
        Some(other) => notes.skip(
            svc.line,
            format!("recovery=\"{other}\" unknown; oneha's default (restart) applies"),
        ),
    }
    match svc
        .attr("max_restarts")
        .map(|v| (v, v.trim().parse::<u32>()))
    {
        Some((_, Ok(n))) if n > 0 => r.max_restarts = Some(Noted::plain(n)),
        Some((v, _)) => notes.skip(
            svc.line,
            format!(
                "max_restarts=\"{v}\" (no limit in rgmanager): oneha allows max_restarts \
                 (default 3) restarts within restart_expire_time, then relocates"
            ),
        ),
        None => r.comments.push(
            "max_restarts and restart_expire_time: oneha's defaults (3 restarts within 10m, \
             then relocate); rgmanager's default restarted in place without limit."
                .into(),
        ),
    }
    if let Some(v) = svc.attr("restart_expire_time") {
        match seconds(v) {
            Some(d) if !d.get().is_zero() => r.restart_expire_time = Some(Noted::plain(d)),
            _ => notes.skip(
                svc.line,
                format!("restart_expire_time=\"{v}\": not translated (oneha default 10m)"),
            ),
        }
    }
    if flag(svc, "exclusive", notes) == Some(true) {
        notes.skip(
            svc.line,
            "exclusive=\"1\": oneha runs one group, nothing else to exclude",
        );
    }
    for key in ["depend", "depend_mode"] {
        if let Some(v) = svc.attr(key) {
            notes.skip(
                svc.line,
                format!("{key}=\"{v}\": service dependencies are not translated"),
            );
        }
    }
    let known = [
        "name",
        "domain",
        "autostart",
        "recovery",
        "max_restarts",
        "restart_expire_time",
        "exclusive",
        "depend",
        "depend_mode",
    ];
    other_attrs(svc, &known, "", notes);
}

fn domain(
    rm: &Element,
    svc: &Element,
    service: &str,
    names: &[String],
    plan: &mut Plan,
    notes: &mut Notes,
) {
    let domains: Vec<&Element> = rm
        .child("failoverdomains")
        .map(|d| d.children_named("failoverdomain").collect())
        .unwrap_or_default();
    let wanted = svc.attr("domain");
    for d in &domains {
        if d.attr("name") != wanted {
            notes.skip(
                d.line,
                format!(
                    "failoverdomain \"{}\" is not used by service \"{service}\"",
                    d.attr("name").unwrap_or("?")
                ),
            );
        }
    }
    let Some(wanted) = wanted else {
        plan.resources
            .comments
            .push("No failover domain in cluster.conf: every front-end may run the group.".into());
        return;
    };
    let Some(d) = domains.iter().find(|d| d.attr("name") == Some(wanted)) else {
        notes.skip(
            svc.line,
            format!(
                "service \"{service}\" uses failover domain \"{wanted}\", which is not defined"
            ),
        );
        return;
    };
    let ordered = flag(d, "ordered", notes).unwrap_or(false);
    let restricted = flag(d, "restricted", notes).unwrap_or(false);
    let nofailback = flag(d, "nofailback", notes).unwrap_or(false);
    other_attrs(
        d,
        &["name", "ordered", "restricted", "nofailback"],
        "",
        notes,
    );
    let mut members: Vec<(u32, String)> = Vec::new();
    for m in d.children_named("failoverdomainnode") {
        let Some(n) = m.attr("name") else { continue };
        if !names.iter().any(|x| x == n) {
            notes.skip(
                m.line,
                format!("failoverdomainnode {n} is not a clusternode"),
            );
            continue;
        }
        let prio = m
            .attr("priority")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(1);
        members.push((if ordered { prio } else { 1 }, n.to_string()));
    }
    members.sort_by_key(|(p, _)| *p);
    let mut comment = format!(
        "failoverdomain \"{wanted}\": ordered=\"{}\" restricted=\"{}\" nofailback=\"{}\"",
        u8::from(ordered),
        u8::from(restricted),
        u8::from(nofailback)
    );
    if !ordered {
        comment
            .push_str("\n(unordered: rgmanager never fails back; oneha places it in this order)");
    }
    plan.resources.domain = Some(PlanDomain {
        comment,
        nodes: members.into_iter().map(|(_, n)| n).collect(),
        failback: ordered && !nofailback,
        restricted,
    });
}

/// Resources under `parent`, in start order, then each one's own children.
fn walk(ctx: &mut Ctx, parent: &Element, notes: &mut Notes) {
    let mut kids: Vec<&Element> = parent
        .children
        .iter()
        .filter(|c| c.name != "action")
        .collect();
    kids.sort_by_key(|c| start_level(&c.name));
    for kid in kids {
        let global = kid.attr("ref").and_then(|r| {
            ctx.globals.iter().copied().find(|g| {
                g.name == kid.name && (g.attr("name") == Some(r) || g.attr("address") == Some(r))
            })
        });
        if kid.attr("ref").is_some() && global.is_none() {
            notes.skip(
                kid.line,
                format!(
                    "<{} ref=\"{}\"> in service \"{}\" names no resource in <resources>",
                    kid.name,
                    kid.attr("ref").unwrap_or(""),
                    ctx.service
                ),
            );
            walk(ctx, kid, notes);
            continue;
        }
        let el = resolved(global.unwrap_or(kid), global.map(|_| kid));
        resource(ctx, &el, global.is_some(), notes);
        walk(ctx, kid, notes);
    }
}

/// What [`resource`] reads of a resource: the definition's attributes and actions (the
/// global one from `<resources>` when `inline` refers to it, with the inline attributes and
/// actions on top), without the nested resources. Never a copy of a subtree: a deep nesting
/// of resources costs one level per resource, not the whole subtree below each.
fn resolved(def: &Element, inline: Option<&Element>) -> Element {
    let shallow = |e: &Element| Element {
        name: e.name.clone(),
        attrs: e.attrs.clone(),
        children: Vec::new(),
        line: e.line,
    };
    let mut el = shallow(def);
    let mut actions: Vec<&Element> = def.children_named("action").collect();
    if let Some(kid) = inline {
        for (k, v) in &kid.attrs {
            if k != "ref" {
                el.attrs.retain(|(x, _)| x != k);
                el.attrs.push((k.clone(), v.clone()));
            }
        }
        actions.extend(kid.children_named("action"));
    }
    el.children = actions.into_iter().map(shallow).collect();
    el
}

/// `base`, or `base2`, `base3`, ... when taken; constant time per name (a service with
/// thousands of `<ip>` resources made the old search cubic).
fn unique_name(ctx: &mut Ctx, base: &str) -> String {
    if ctx.taken.insert(base.to_string()) {
        return base.to_string();
    }
    let next = ctx.next_suffix.entry(base.to_string()).or_insert(2);
    loop {
        let candidate = format!("{base}{next}");
        *next += 1;
        if ctx.taken.insert(candidate.clone()) {
            return candidate;
        }
    }
}

fn resource(ctx: &mut Ctx, el: &Element, global: bool, notes: &mut Notes) {
    for (k, v) in &el.attrs {
        if k.starts_with("__") {
            notes.skip(el.line, format!("<{} {k}=\"{v}\"> not translated", el.name));
        }
    }
    let made: Vec<(String, PlanKind, Option<String>)> = match el.name.as_str() {
        "ip" => match ip(ctx, el, notes) {
            Some(kind) => vec![(unique_name(ctx, "vip"), kind, None)],
            None => return,
        },
        "script" => {
            let made = script(ctx, el, notes);
            made.into_iter()
                .map(|(base, kind, comment)| (unique_name(ctx, &base), kind, comment))
                .collect()
        }
        "fs" | "netfs" | "clusterfs" => match storage::filesystem(el, &ctx.service, notes) {
            Some((base, kind, comment)) => vec![(unique_name(ctx, &base), kind, comment)],
            None => return,
        },
        "lvm" => match storage::lvm(el, &ctx.service, notes) {
            Some((base, kind, comment)) => vec![(unique_name(ctx, &base), kind, comment)],
            None => return,
        },
        "mysql" | "postgres-8" => {
            let (base, kind, comment) = storage::database(el, &ctx.service, notes);
            vec![(unique_name(ctx, &base), kind, comment)]
        }
        other => {
            notes.skip(
                el.line,
                format!(
                    "<{other}{}> in service \"{}\": oneha has ip, systemd, lsb and \
                     filesystem resources; not translated",
                    el.attr("name")
                        .map(|n| format!(" name=\"{n}\""))
                        .unwrap_or_default(),
                    ctx.service
                ),
            );
            return;
        }
    };
    let Some(first) = made.first() else { return };
    let mut r = PlanResource {
        name: first.0.clone(),
        comment: None,
        kind: first.1.clone(),
        monitor_interval: None,
        monitor_timeout: None,
        start_timeout: None,
        stop_timeout: None,
    };
    for a in el.children_named("action") {
        let op = a.attr("name").unwrap_or("");
        let interval = a.attr("interval").and_then(seconds);
        let timeout = a.attr("timeout").and_then(seconds);
        match op {
            "status" | "monitor" => {
                r.monitor_interval = interval
                    .filter(|d| !d.get().is_zero())
                    .or(r.monitor_interval);
                r.monitor_timeout = timeout.or(r.monitor_timeout);
            }
            "start" => r.start_timeout = timeout.or(r.start_timeout),
            "stop" => r.stop_timeout = timeout.or(r.stop_timeout),
            _ => notes.skip(a.line, format!("<action name=\"{op}\"> not translated")),
        }
    }
    for (name, kind, comment) in made {
        ctx.group.push(PlanResource {
            name,
            comment: comment.or_else(|| global.then(|| format!("cluster.conf line {}", el.line))),
            kind,
            ..r.clone()
        });
    }
}

fn ip(ctx: &Ctx, el: &Element, notes: &mut Notes) -> Option<PlanKind> {
    let Some(text) = el.attr("address").map(str::trim) else {
        notes.skip(el.line, "<ip> without address: not translated");
        return None;
    };
    let (addr_text, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let Ok(addr) = addr_text.parse::<std::net::IpAddr>() else {
        notes.skip(
            el.line,
            format!("<ip address=\"{text}\"> is not an IP address"),
        );
        return None;
    };
    let local = interface_for(ctx.host, addr);
    let address = match (prefix, &local) {
        (Some(_), _) if parse_cidr(text).is_some() => Noted::plain(text.to_string()),
        (Some(p), _) => {
            notes.skip(el.line, format!("<ip address=\"{text}\">: bad prefix /{p}"));
            return None;
        }
        (None, Some(l)) => Noted::with(
            format!("{addr}/{}", l.prefix),
            format!("prefix of {} on this machine", l.interface),
        ),
        (None, None) => {
            let p = if addr.is_ipv4() { 24 } else { 64 };
            notes.fill(format!(
                "resources.group: the floating IP {addr} has no prefix in cluster.conf and no \
                 interface here is in its subnet; check the /{p} written"
            ));
            Noted::with(format!("{addr}/{p}"), "FILL IN: check the prefix length")
        }
    };
    let interface = match (el.attr("prefer_interface"), &local) {
        (Some(i), _) => Noted::with(i.to_string(), "prefer_interface in cluster.conf"),
        (None, Some(l)) => Noted::with(
            l.interface.clone(),
            format!("holds {}/{} on this machine", l.address, l.prefix),
        ),
        (None, None) => {
            notes.fill(format!(
                "resources.group: the interface for the floating IP {addr} (rgmanager picked \
                 the one in its subnet; none is here): replace the placeholder eth0"
            ));
            Noted::with(
                "eth0".to_string(),
                "FILL IN: the interface on the cluster network",
            )
        }
    };
    if flag(el, "monitor_link", notes) == Some(false) {
        notes.skip(
            el.line,
            format!("<ip address=\"{text}\"> monitor_link=\"0\": oneha always checks the link"),
        );
    }
    if let Some(s) = el.attr("sleeptime") {
        notes.skip(
            el.line,
            format!(
                "<ip address=\"{text}\"> sleeptime=\"{s}\": oneha does not wait after removing \
                 the address; gratuitous ARP (garp_count, garp_repeat_after) moves clients"
            ),
        );
    }
    let known = [
        "address",
        "prefer_interface",
        "monitor_link",
        "sleeptime",
        "ref",
    ];
    for (k, v) in &el.attrs {
        if !known.contains(&k.as_str()) && !k.starts_with("__") {
            notes.skip(
                el.line,
                format!("<ip address=\"{text}\"> {k}=\"{v}\" not translated"),
            );
        }
    }
    Some(PlanKind::Ip { address, interface })
}

/// The resources a `<script>` becomes: `opennebula*` init scripts -> the systemd units of
/// the chosen OpenNebula release (unless `--lsb`), others -> an `lsb` resource.
fn script(ctx: &Ctx, el: &Element, notes: &mut Notes) -> Vec<(String, PlanKind, Option<String>)> {
    let Some(file) = el.attr("file").map(str::trim).filter(|f| !f.is_empty()) else {
        notes.skip(el.line, "<script> without file: not translated");
        return Vec::new();
    };
    let base = file.rsplit('/').next().unwrap_or(file);
    let base = base.strip_suffix(".sh").unwrap_or(base);
    let name = el.attr("name").unwrap_or(base).to_string();
    for (k, v) in &el.attrs {
        if !matches!(k.as_str(), "file" | "name" | "ref") && !k.starts_with("__") {
            notes.skip(
                el.line,
                format!("<script name=\"{name}\"> {k}=\"{v}\" not translated"),
            );
        }
    }
    if base.starts_with("opennebula") && !ctx.opts.lsb {
        let version = ctx.opts.opennebula_version;
        let note = version.note();
        if !notes.info.contains(&note) {
            notes.info(note);
        }
        let comment = format!(
            "was script {file} (OpenNebula {} units; --lsb keeps the init script)",
            version.label()
        );
        return version
            .units_for(base, &name)
            .into_iter()
            .map(|(n, unit)| (n, PlanKind::Systemd { unit }, Some(comment.clone())))
            .collect();
    }
    let comment = format!("init script {file}");
    vec![(
        name,
        PlanKind::Lsb {
            script: file.to_string(),
        },
        Some(comment),
    )]
}
