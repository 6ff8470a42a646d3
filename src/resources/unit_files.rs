//! Whether the systemd units the group names are installed on this node, read from the
//! unit directories (no D-Bus, so `oneha check-config` works before systemd is reachable).
//! A group naming a unit the node lacks fails at the worst moment: on failover, when the
//! node takes over and cannot start it.

use std::path::Path;

use crate::config::resources::{ResourceConfig, ResourceType};

/// Where systemd looks for unit files, most local first (relative to the root `/`).
pub const UNIT_DIRS: [&str; 4] = [
    "etc/systemd/system",
    "run/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
];

/// Whether `unit` has a unit file in one of [`UNIT_DIRS`] under `root`; an instance
/// `name@x.service` also counts when its template `name@.service` is there.
pub fn installed(root: &Path, unit: &str) -> bool {
    let template = unit.split_once('@').and_then(|(prefix, rest)| {
        let suffix = rest.rsplit_once('.').map(|(_, s)| s)?;
        Some(format!("{prefix}@.{suffix}"))
    });
    UNIT_DIRS.iter().any(|dir| {
        let dir = root.join(dir);
        dir.join(unit).exists() || template.as_ref().is_some_and(|t| dir.join(t).exists())
    })
}

/// One warning per `type: systemd` resource of `group` whose unit is not installed under
/// `root` (`/` on a node).
pub fn missing_unit_warnings(group: &[ResourceConfig], root: &Path) -> Vec<String> {
    group
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == ResourceType::Systemd)
        .filter_map(|(i, r)| {
            let unit = r.unit.as_deref()?;
            (!installed(root, unit)).then(|| {
                format!(
                    "resources.group[{i}] ({name}): unit {unit} is not installed on this node \
                     (no unit file in /etc/systemd/system, /run/systemd/system, \
                     /lib/systemd/system or /usr/lib/systemd/system); a group naming a unit \
                     the node lacks fails at the worst moment, on failover: install the \
                     package that ships it or fix the name",
                    name = r.name
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, dir: &str, unit: &str) {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(unit), "[Service]\nExecStart=/bin/true\n").unwrap();
    }

    #[test]
    fn a_unit_in_any_unit_directory_counts_as_installed() {
        for dir in UNIT_DIRS {
            let root = tempfile::tempdir().unwrap();
            assert!(!installed(root.path(), "opennebula.service"));
            write(root.path(), dir, "opennebula.service");
            assert!(installed(root.path(), "opennebula.service"), "{dir}");
            assert!(!installed(root.path(), "opennebula-hem.service"), "{dir}");
        }
    }

    #[test]
    fn an_instance_counts_when_its_template_is_installed() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "lib/systemd/system", "getty@.service");
        assert!(installed(root.path(), "getty@tty1.service"));
        assert!(!installed(root.path(), "other@tty1.service"));
    }

    #[test]
    fn only_missing_systemd_units_are_reported() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "usr/lib/systemd/system", "opennebula.service");
        write(root.path(), "etc/systemd/system", "opennebula-hem.service");
        let mut lsb = ResourceConfig::systemd("legacy", "x");
        lsb.kind = ResourceType::Lsb;
        lsb.unit = None;
        lsb.script = Some("/etc/init.d/legacy".into());
        let group = vec![
            ResourceConfig::systemd("opennebula", "opennebula.service"),
            ResourceConfig::systemd("opennebula-hem", "opennebula-hem.service"),
            lsb,
            ResourceConfig::systemd("sunstone", "opennebula-sunstone.service"),
        ];
        let w = missing_unit_warnings(&group, root.path());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("resources.group[3] (sunstone): unit opennebula-sunstone.service"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("on failover"), "{}", w[0]);
        assert!(w[0].contains("install the package"), "{}", w[0]);
    }
}
