//! rgmanager's storage and database resources: `<fs>`, `<netfs>`, `<clusterfs>` become
//! `type: filesystem`; `<mysql>` and `<postgres-8>` the database's systemd unit; `<lvm>` an
//! init script the operator writes from docs/storage.md (oneha has no LVM driver).

use super::plan::{Noted, Notes, PlanKind};
use super::translate::flag;
use super::xml::Element;

/// What one resource becomes: base name, kind, comment above it.
pub(super) type Translated = (String, PlanKind, Option<String>);

/// `<fs>`, `<netfs>` or `<clusterfs>` as a filesystem; `None` (with a note) when it lacks
/// what a mount needs.
pub(super) fn filesystem(el: &Element, service: &str, notes: &mut Notes) -> Option<Translated> {
    let kind = el.name.as_str();
    let name = el.attr("name").unwrap_or(kind).to_string();
    let what = format!("<{kind} name=\"{name}\"> in service \"{service}\"");
    let Some(mountpoint) = el
        .attr("mountpoint")
        .map(str::trim)
        .filter(|m| !m.is_empty())
    else {
        notes.skip(el.line, format!("{what} has no mountpoint: not translated"));
        return None;
    };
    let mut known = vec![
        "name",
        "mountpoint",
        "fstype",
        "options",
        "force_unmount",
        "ref",
    ];
    let mut comment = vec![format!("was <{kind}> (cluster.conf line {})", el.line)];
    let (device, fstype) = if kind == "netfs" {
        known.extend(["host", "export"]);
        let (Some(host), Some(export)) = (el.attr("host"), el.attr("export")) else {
            notes.skip(
                el.line,
                format!("{what} needs host and export: not translated"),
            );
            return None;
        };
        let fstype = el.attr("fstype").unwrap_or("nfs").to_string();
        (format!("{host}:{export}"), Some(fstype))
    } else {
        known.push("device");
        let Some(device) = el.attr("device").map(str::trim).filter(|d| !d.is_empty()) else {
            notes.skip(el.line, format!("{what} has no device: not translated"));
            return None;
        };
        (device.to_string(), el.attr("fstype").map(str::to_string))
    };
    if kind == "clusterfs" {
        comment.push(
            "a cluster filesystem (GFS2) may be mounted on every node at once; oneha \
             mounts it on the owner only, and its lock manager (dlm) is not oneha's"
                .to_string(),
        );
        notes.fill(format!(
            "resources.group: {name} was a <clusterfs>: GFS2 needs dlm running on the node \
             (or lockproto=lock_nolock when only one node ever mounts it); check before use"
        ));
    }
    let fsck = if kind == "netfs" {
        None
    } else {
        known.push("force_fsck");
        flag(el, "force_fsck", notes).map(|v| {
            Noted::with(
                v,
                if v {
                    "force_fsck in cluster.conf; oneha's check (e2fsck -p) only repairs an \
                     unclean filesystem"
                } else {
                    "force_fsck=\"0\" in cluster.conf"
                },
            )
        })
    };
    let force_unmount = match flag(el, "force_unmount", notes) {
        Some(v) => Noted::with(v, "force_unmount in cluster.conf"),
        None => Noted::with(
            false,
            "rgmanager's default; true kills the processes that keep it busy at stop",
        ),
    };
    known.push("self_fence");
    if flag(el, "self_fence", notes) == Some(true) {
        comment.push(
            "self_fence: oneha always fences a node whose stop fails, before the group \
             starts elsewhere"
                .to_string(),
        );
    }
    for (k, v) in &el.attrs {
        if !known.contains(&k.as_str()) && !k.starts_with("__") {
            notes.skip(el.line, format!("{what} {k}=\"{v}\" not translated"));
        }
    }
    let kind = PlanKind::Filesystem {
        device,
        mountpoint: mountpoint.to_string(),
        fstype,
        options: el.attr("options").map(str::to_string),
        fsck,
        force_unmount,
    };
    Some((name, kind, Some(comment.join("; "))))
}

/// `<mysql>` and `<postgres-8>`: the database's own systemd unit, its settings noted.
pub(super) fn database(el: &Element, service: &str, notes: &mut Notes) -> Translated {
    let kind = el.name.as_str();
    let (unit, which) = if kind == "mysql" {
        (
            "mariadb.service",
            "MariaDB's unit (mysql.service for MySQL: change it if so)",
        )
    } else {
        ("postgresql.service", "PostgreSQL's unit")
    };
    let name = el.attr("name").unwrap_or(kind).to_string();
    let settings: Vec<String> = el
        .attrs
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "name" | "ref") && !k.starts_with("__"))
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    if !settings.is_empty() {
        notes.fill(format!(
            "resources.group: {name} was <{kind}> in service \"{service}\" with {}: set these \
             in the database's own configuration (the unit reads it), oneha only starts and \
             stops {unit}",
            settings.join(" ")
        ));
    }
    let comment = format!(
        "was <{kind}> (cluster.conf line {}): {which}; config_file, listen_address and the \
         like belong in the database's own configuration",
        el.line
    );
    (
        name,
        PlanKind::Systemd {
            unit: unit.to_string(),
        },
        Some(comment),
    )
}

/// `<lvm>`: an init script the operator installs (docs/storage.md has one) that activates
/// the volume group exclusively on start and deactivates it on stop.
pub(super) fn lvm(el: &Element, service: &str, notes: &mut Notes) -> Option<Translated> {
    let Some(vg) = el.attr("vg_name").map(str::trim).filter(|v| !v.is_empty()) else {
        notes.skip(
            el.line,
            format!("<lvm> in service \"{service}\" has no vg_name: not translated"),
        );
        return None;
    };
    let name = el.attr("name").unwrap_or(vg).to_string();
    let script = format!("/etc/init.d/oneha-lvm-{vg}");
    for (k, v) in &el.attrs {
        if !matches!(
            k.as_str(),
            "name" | "vg_name" | "lv_name" | "self_fence" | "ref"
        ) && !k.starts_with("__")
        {
            notes.skip(
                el.line,
                format!("<lvm name=\"{name}\"> {k}=\"{v}\" not translated"),
            );
        }
    }
    let lv = el
        .attr("lv_name")
        .map(|l| format!(" (lv_name=\"{l}\": the script activates the whole group)"))
        .unwrap_or_default();
    notes.fill(format!(
        "resources.group: {name} was <lvm vg_name=\"{vg}\">{lv}: install {script} from the \
         template in docs/storage.md (vgchange -a ey {vg} on start, -a n on stop)"
    ));
    let comment = format!(
        "was <lvm vg_name=\"{vg}\"> (cluster.conf line {}): exclusive activation by an init \
         script, see docs/storage.md",
        el.line
    );
    Some((name, PlanKind::Lsb { script }, Some(comment)))
}
