//! The `type: filesystem` keys: validation of one entry ([`FsSpec`]) and of the group as a
//! whole (a mountpoint or device used twice, a mountpoint hidden by a later mount, storage
//! started after the units).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::Problems;
use super::resources::{ResourceConfig, ResourceType};

/// Filesystem types mounted over the network: no fsck, no block device.
pub const NETWORK_TYPES: &[&str] = &["nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs"];

/// A filesystem's settings, validated, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct FsSpec {
    /// As written: a path, `UUID=...`, `LABEL=...` or `host:/export`.
    pub device: String,
    /// Absolute, normalized (no `.`, `..` or trailing slash).
    pub mountpoint: PathBuf,
    /// Filesystem type; `None`: detected on the device.
    pub fstype: Option<String>,
    /// Mount options (`-o`).
    pub options: Option<String>,
    /// Check before mounting.
    pub fsck: bool,
    /// TERM, KILL, then unmount when the mount is busy at stop.
    pub force_unmount: bool,
    /// Write/read probe in the monitor.
    pub monitor_io: bool,
    /// How long the I/O probe may take before the monitor reports the storage hung (three
    /// quarters of `monitor_timeout`, so the report names the probe, not a timeout).
    pub io_timeout: Duration,
}

impl FsSpec {
    /// The settings of a `type: filesystem` entry; `Err` says which key is wrong and how.
    pub fn from_config(c: &ResourceConfig) -> Result<FsSpec, String> {
        let device = c.device.clone().ok_or(
            "type filesystem needs `device` (a device path, UUID=..., LABEL=... or host:/export)",
        )?;
        if device.trim().is_empty() || device.chars().any(char::is_whitespace) {
            return Err(format!(
                "`device` must be a device path, UUID=..., LABEL=... or host:/export without \
                 spaces, found `{device}`"
            ));
        }
        let mp = c
            .mountpoint
            .as_deref()
            .ok_or("type filesystem needs `mountpoint` (an absolute path)")?;
        let mountpoint = normalize(mp).ok_or_else(|| {
            format!(
                "`mountpoint` must be an absolute path other than / without `.` or `..`, \
                 found `{mp}`"
            )
        })?;
        if let Some(t) = &c.fstype
            && (t.is_empty()
                || !t
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch)))
        {
            return Err(format!(
                "`fstype` must be a filesystem type such as ext4, xfs or nfs4, found `{t}`"
            ));
        }
        if let Some(o) = &c.options
            && (o.is_empty() || o.chars().any(char::is_whitespace))
        {
            return Err(format!(
                "`options` must be comma-separated mount options without spaces (as in \
                 fstab, e.g. noatime,nodev), found `{o}`"
            ));
        }
        let network_type = c.fstype.as_deref().is_some_and(is_network_type);
        let network_device = looks_remote(&device);
        if network_device && !network_type {
            return Err(format!(
                "`device` {device} is a network export: set `fstype` to nfs or nfs4 (cifs for \
                 //server/share)"
            ));
        }
        if network_type && !network_device {
            return Err(format!(
                "`fstype` {} is a network filesystem: `device` must be host:/export (or \
                 //server/share for cifs), found `{device}`",
                c.fstype.as_deref().unwrap_or_default()
            ));
        }
        if network_type && c.fsck == Some(true) {
            return Err(
                "`fsck` does not apply to a network filesystem (the server checks its own \
                 disks): remove it"
                    .to_string(),
            );
        }
        Ok(FsSpec {
            device,
            mountpoint,
            fstype: c.fstype.clone(),
            options: c.options.clone(),
            fsck: c.fsck.unwrap_or(!network_type),
            force_unmount: c.force_unmount.unwrap_or(true),
            monitor_io: c.monitor_io.unwrap_or(false),
            io_timeout: c.monitor_timeout.get() * 3 / 4,
        })
    }

    /// True for NFS and the other network filesystems.
    pub fn is_network(&self) -> bool {
        self.fstype.as_deref().is_some_and(is_network_type)
    }

    /// True when the mount options make it read-only.
    pub fn read_only(&self) -> bool {
        self.options
            .as_deref()
            .is_some_and(|o| o.split(',').any(|x| x == "ro"))
    }
}

fn is_network_type(t: &str) -> bool {
    NETWORK_TYPES.contains(&t)
}

/// `host:/export` or `//server/share`.
fn looks_remote(device: &str) -> bool {
    device.starts_with("//")
        || device
            .split_once(":/")
            .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/') && !host.contains('='))
}

/// `/a/./b/` -> `/a/b`; `None` for relative paths, `/` and paths with `..`.
fn normalize(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (out != Path::new("/")).then_some(out)
}

/// The key an error of [`FsSpec::from_config`] is about (for its file:line).
pub fn key_of(error: &str) -> &'static str {
    ["device", "mountpoint", "fstype", "options", "fsck"]
        .into_iter()
        .map(|k| (error.find(&format!("`{k}`")), k))
        .filter_map(|(at, k)| Some((at?, k)))
        .min()
        .map_or("type", |(_, k)| k)
}

/// Checks across the group: each mountpoint and device once; no mountpoint inside one
/// that is mounted later (the later mount would hide it).
pub fn validate_group(group: &[ResourceConfig], p: &mut Problems) {
    let fs: Vec<(usize, &ResourceConfig, FsSpec)> = group
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == ResourceType::Filesystem)
        .filter_map(|(i, r)| Some((i, r, FsSpec::from_config(r).ok()?)))
        .collect();
    for (n, (j, rj, sj)) in fs.iter().enumerate() {
        for (i, ri, si) in &fs[..n] {
            if si.mountpoint == sj.mountpoint {
                p.push(
                    format!("resources.group[{j}].mountpoint"),
                    format!(
                        "mountpoint {} is also used by resource `{}` (group[{i}]); each \
                         filesystem needs a mountpoint of its own",
                        sj.mountpoint.display(),
                        ri.name
                    ),
                );
            }
            if si.device == sj.device {
                p.push(
                    format!("resources.group[{j}].device"),
                    format!(
                        "device {} is also mounted by resource `{}` (group[{i}]); a filesystem \
                         mounted twice is corrupted: give each resource its own device",
                        sj.device, ri.name
                    ),
                );
            }
            if si.mountpoint != sj.mountpoint && si.mountpoint.starts_with(&sj.mountpoint) {
                p.push(
                    format!("resources.group[{i}].mountpoint"),
                    format!(
                        "mountpoint {} lies inside {}, which resource `{}` (group[{j}]) mounts \
                         later and would hide it: move `{}` before `{}`",
                        si.mountpoint.display(),
                        sj.mountpoint.display(),
                        rj.name,
                        rj.name,
                        ri.name
                    ),
                );
            }
        }
    }
}

/// A filesystem after a systemd unit or init script: the units may start without their data.
pub fn warnings(group: &[ResourceConfig]) -> Vec<String> {
    let mut out = Vec::new();
    let first_unit = group
        .iter()
        .position(|r| matches!(r.kind, ResourceType::Systemd | ResourceType::Lsb));
    let Some(u) = first_unit else {
        return out;
    };
    for (j, r) in group.iter().enumerate().skip(u + 1) {
        if r.kind == ResourceType::Filesystem {
            out.push(format!(
                "resources.group[{j}]: filesystem `{}` starts after `{}` (group[{u}]), which \
                 then starts without it (and it cannot be unmounted while that still runs): \
                 put storage first, as rgmanager did (lvm, fs, ip, database, scripts); see \
                 docs/storage.md",
                r.name, group[u].name
            ));
        }
    }
    out
}

#[cfg(test)]
#[path = "filesystem_tests.rs"]
mod tests;
