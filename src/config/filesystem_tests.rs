//! `type: filesystem` config: each rejected case checks its message and its line.

use std::path::Path;

use crate::config::{self, ConfigError, ConfigErrors};

const BASE: &str = "\
cluster: opennebula
key_file: {KEY}
nodes:
  - {name: a, id: 1, address: 192.0.2.11:7400}
  - {name: b, id: 2, address: 192.0.2.12:7400}
  - {name: w, id: 3, address: 192.0.2.13:7400, role: witness}
resources:
  group:
";

fn parse(group: &str) -> Result<config::Config, Vec<ConfigError>> {
    let key = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("temp file: {e}"));
    let text = BASE.replace("{KEY}", &key.path().display().to_string()) + group;
    config::parse(Path::new("/etc/oneha/oneha.yaml"), &text).map_err(|ConfigErrors(v)| v)
}

fn errors(group: &str) -> Vec<ConfigError> {
    match parse(group) {
        Ok(_) => panic!("expected errors for:\n{group}"),
        Err(v) => v,
    }
}

fn one_error(group: &str) -> ConfigError {
    let v = errors(group);
    assert_eq!(v.len(), 1, "expected one error, got {v:#?}");
    v.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn spec(group: &str) -> super::FsSpec {
    let c = parse(group).unwrap_or_else(|e| panic!("valid config expected: {e:#?}"));
    match c.resources.group[0].spec() {
        Ok(crate::config::resources::ResourceKind::Filesystem(s)) => s,
        other => panic!("expected a filesystem, got {other:?}"),
    }
}

#[test]
fn defaults_for_a_block_device_and_for_nfs() {
    let s = spec(
        "    - {name: data, type: filesystem, device: UUID=1234-abcd, mountpoint: /var/lib/one/, fstype: ext4}\n",
    );
    assert_eq!(s.mountpoint, Path::new("/var/lib/one"));
    assert!(s.fsck && s.force_unmount && !s.monitor_io && !s.is_network());
    assert_eq!(s.io_timeout, std::time::Duration::from_secs(15));
    let s = spec(
        "    - {name: data, type: filesystem, device: \"nfs1:/export/one\", mountpoint: /var/lib/one, fstype: nfs4, options: \"soft,timeo=50\", monitor_io: true}\n",
    );
    assert!(s.is_network() && !s.fsck && s.monitor_io);
    assert_eq!(s.options.as_deref(), Some("soft,timeo=50"));
}

#[test]
fn missing_and_bad_keys_name_the_key_and_line() {
    let e = one_error("    - name: data\n      type: filesystem\n      mountpoint: /srv\n");
    assert_eq!(e.key, "resources.group[0].device");
    assert!(e.message.contains("needs `device`"), "{e}");
    let e = one_error(
        "    - name: data\n      type: filesystem\n      device: /dev/sdb1\n      mountpoint: srv/one\n",
    );
    assert_eq!(
        (e.key.as_str(), e.line),
        ("resources.group[0].mountpoint", Some(12))
    );
    assert!(e.message.contains("absolute path"), "{e}");
    let e = one_error(
        "    - {name: data, type: filesystem, device: /dev/sdb1, mountpoint: /, fstype: ext4}\n",
    );
    assert!(e.message.contains("other than /"), "{e}");
    let e =
        one_error("    - {name: data, type: filesystem, device: \"nfs1:/x\", mountpoint: /srv}\n");
    assert_eq!(e.key, "resources.group[0].device");
    assert!(e.message.contains("set `fstype` to nfs or nfs4"), "{e}");
    let e = one_error(
        "    - {name: data, type: filesystem, device: /dev/sdb1, mountpoint: /srv, fstype: nfs}\n",
    );
    assert_eq!(e.key, "resources.group[0].fstype");
    let e = one_error(
        "    - {name: data, type: filesystem, device: \"h:/x\", mountpoint: /srv, fstype: nfs, fsck: true}\n",
    );
    assert_eq!(e.key, "resources.group[0].fsck");
    let e = one_error(
        "    - {name: data, type: filesystem, device: /dev/sdb1, mountpoint: /srv, options: \"ro, noatime\"}\n",
    );
    assert_eq!(e.key, "resources.group[0].options");
    let e = one_error(
        "    - {name: oned, type: systemd, unit: opennebula.service, mountpoint: /srv}\n",
    );
    assert!(
        e.message
            .contains("`mountpoint` does not apply to a resource of type systemd"),
        "{e}"
    );
}

#[test]
fn a_mountpoint_or_device_used_twice_is_an_error() {
    let v = errors(
        "    - {name: a, type: filesystem, device: /dev/sdb1, mountpoint: /srv/one}\n\
         \x20   - {name: b, type: filesystem, device: /dev/sdb1, mountpoint: /srv/one/}\n",
    );
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_eq!(
        (v[0].key.as_str(), v[0].line),
        ("resources.group[1].mountpoint", Some(10))
    );
    assert!(
        v[0].message.contains("also used by resource `a`"),
        "{}",
        v[0]
    );
    assert_eq!(v[1].key, "resources.group[1].device");
    assert!(
        v[1].message.contains("also mounted by resource `a`"),
        "{}",
        v[1]
    );
}

#[test]
fn a_mountpoint_inside_one_mounted_later_is_an_error() {
    let e = one_error(
        "    - {name: images, type: filesystem, device: /dev/sdc1, mountpoint: /var/lib/one/datastores}\n\
         \x20   - {name: one, type: filesystem, device: /dev/sdb1, mountpoint: /var/lib/one}\n",
    );
    assert_eq!(
        (e.key.as_str(), e.line),
        ("resources.group[0].mountpoint", Some(9))
    );
    assert!(
        e.message
            .contains("lies inside /var/lib/one, which resource `one` (group[1]) mounts later"),
        "{e}"
    );
    // The other order is how it should be.
    assert!(parse(
        "    - {name: one, type: filesystem, device: /dev/sdb1, mountpoint: /var/lib/one}\n\
         \x20   - {name: images, type: filesystem, device: /dev/sdc1, mountpoint: /var/lib/one/datastores}\n",
    )
    .is_ok());
}

#[test]
fn a_filesystem_after_the_units_is_warned_about() {
    let c = parse(
        "    - {name: oned, type: systemd, unit: opennebula.service}\n\
         \x20   - {name: one, type: filesystem, device: /dev/sdb1, mountpoint: /var/lib/one}\n",
    )
    .unwrap_or_else(|e| panic!("valid: {e:#?}"));
    let w = config::warnings(&c);
    assert!(
        w.iter()
            .any(|w| w.contains("filesystem `one` starts after `oned`")),
        "{w:#?}"
    );
    let c = parse(
        "    - {name: one, type: filesystem, device: /dev/sdb1, mountpoint: /var/lib/one}\n\
         \x20   - {name: oned, type: systemd, unit: opennebula.service}\n",
    )
    .unwrap_or_else(|e| panic!("valid: {e:#?}"));
    assert!(c.resources.warnings().is_empty());
}
