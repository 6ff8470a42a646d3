//! The `resources:` section: the resource group, its recovery policy and failover domain.

use serde::{Deserialize, Serialize};

use super::filesystem::{self, FsSpec};
use super::{Config, Dur, Problems, Role};

/// The resource group: an ordered list started in order and stopped in reverse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesConfig {
    /// Start the group when the cluster first forms (rgmanager's `autostart`).
    #[serde(default = "yes")]
    pub autostart: bool,
    /// What to do when a resource fails its monitor.
    #[serde(default)]
    pub recovery: Recovery,
    /// `restart` recovery: restarts in place allowed within `restart_expire_time` before the
    /// group relocates.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// Window over which restarts are counted.
    #[serde(default = "default_restart_expire")]
    pub restart_expire_time: Dur,
    /// Which nodes may run the group, in what order.
    #[serde(default)]
    pub failover_domain: FailoverDomain,
    /// The resources, in start order. Empty: the `opennebula` and `opennebula-sunstone`
    /// systemd units (no floating IP: its address must be configured).
    #[serde(default)]
    pub group: Vec<ResourceConfig>,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        ResourcesConfig {
            autostart: true,
            recovery: Recovery::default(),
            max_restarts: default_max_restarts(),
            restart_expire_time: default_restart_expire(),
            failover_domain: FailoverDomain::default(),
            group: Vec::new(),
        }
    }
}

impl Default for FailoverDomain {
    fn default() -> Self {
        FailoverDomain {
            nodes: Vec::new(),
            failback: false,
            restricted: true,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_max_restarts() -> u32 {
    3
}
fn default_restart_expire() -> Dur {
    Dur::secs(600)
}

/// Recovery policy after a failed monitor (rgmanager's service `recovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Recovery {
    /// Restart in place up to `max_restarts`, then relocate.
    #[default]
    Restart,
    /// Move the group to the next node at once.
    Relocate,
    /// Stop the group and leave it disabled for an operator.
    Disable,
}

/// Failover domain (rgmanager semantics). Node preference comes from `nodes[].priority`
/// unless `nodes` lists them here in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverDomain {
    /// Names in order of preference; empty: every front-end by priority.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Fail back to a more preferred node when it returns (rgmanager `ordered` without
    /// `nofailback`). Default false: the group stays where it runs.
    #[serde(default)]
    pub failback: bool,
    /// Only the listed nodes may run the group; none up: it stays stopped.
    #[serde(default = "yes")]
    pub restricted: bool,
}

/// One resource of the group. `type` says which of the type-specific keys apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// Name shown in status and logs.
    pub name: String,
    /// `ip`, `systemd`, `lsb` or `filesystem`.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    /// ip: `ADDRESS/PREFIX`, e.g. `192.0.2.100/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// ip: interface to add it to, e.g. `eth0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// ip: gratuitous ARP frames per burst (each burst sends requests and replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_count: Option<u32>,
    /// ip: delay before the second burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_repeat_after: Option<Dur>,
    /// ip: resend gratuitous ARP this often while held (default 10s, so a client whose
    /// cache points elsewhere is repaired soon); `0s` disables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_refresh: Option<Dur>,
    /// ip: probe for another holder (ARP duplicate address detection) before adding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_check: Option<bool>,
    /// ip: how long to wait for an answer to the duplicate address probe (default `20ms`:
    /// an ARP reply on a LAN takes well under a millisecond).
    /// Every takeover waits this long before adding the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_wait: Option<Dur>,
    /// systemd: unit name, e.g. `opennebula.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// lsb: path of the init script, e.g. `/etc/init.d/opennebula`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// filesystem: what to mount: a device path, `UUID=...`, `LABEL=...`, or `host:/export`
    /// for NFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// filesystem: where to mount it (an absolute path; created if missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// filesystem: `ext4`, `xfs`, `nfs4`...; absent: detected on the device by `blkid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    /// filesystem: mount options, comma-separated as in fstab (`noatime,nodev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// filesystem: check (and repair what is safe to repair) before mounting; default true
    /// for block devices, false (and not allowed) for network filesystems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsck: Option<bool>,
    /// filesystem: on stop, processes using the mount get TERM, then KILL, then it is
    /// unmounted (default true); false: a busy mount fails the stop (the node is fenced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_unmount: Option<bool>,
    /// filesystem: the monitor also writes, syncs and reads back a small file, so a hung NFS
    /// server or a dead LUN is noticed (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_io: Option<bool>,
    /// How often to check it while it runs.
    #[serde(default = "default_monitor")]
    pub monitor_interval: Dur,
    /// How long a start may take before it counts as failed.
    #[serde(default = "default_op_timeout")]
    pub start_timeout: Dur,
    /// How long a stop may take before it counts as failed (and the node must be fenced).
    #[serde(default = "default_op_timeout")]
    pub stop_timeout: Dur,
    /// How long a monitor may take.
    #[serde(default = "default_monitor_timeout")]
    pub monitor_timeout: Dur,
}

fn default_monitor() -> Dur {
    Dur::secs(10)
}
fn default_op_timeout() -> Dur {
    Dur::secs(120)
}
fn default_monitor_timeout() -> Dur {
    Dur::secs(20)
}

/// The resource types.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    /// A floating IP address with gratuitous ARP.
    Ip,
    /// A systemd unit driven over D-Bus.
    Systemd,
    /// An LSB init script (`start`, `stop`, `status`).
    Lsb,
    /// A filesystem mounted on the node that runs the group.
    Filesystem,
}

impl ResourceType {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Ip => "ip",
            ResourceType::Systemd => "systemd",
            ResourceType::Lsb => "lsb",
            ResourceType::Filesystem => "filesystem",
        }
    }
}

/// A validated resource, by type, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceKind {
    /// A floating IP.
    Ip(IpSpec),
    /// A systemd unit name.
    Systemd(String),
    /// An init script path.
    Lsb(String),
    /// A filesystem.
    Filesystem(FsSpec),
}

/// A floating IP's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IpSpec {
    /// The address.
    pub address: std::net::IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// Interface to hold it on.
    pub interface: String,
    /// Frames per gratuitous ARP burst.
    pub garp_count: u32,
    /// Delay before the second burst.
    pub garp_repeat_after: std::time::Duration,
    /// Periodic refresh; zero: none.
    pub garp_refresh: std::time::Duration,
    /// Duplicate address detection before adding.
    pub conflict_check: bool,
    /// How long the duplicate address probe waits for an answer.
    pub conflict_wait: std::time::Duration,
}

impl ResourceConfig {
    /// A systemd unit resource with default timings.
    pub fn systemd(name: &str, unit: &str) -> ResourceConfig {
        ResourceConfig {
            name: name.to_string(),
            kind: ResourceType::Systemd,
            address: None,
            interface: None,
            garp_count: None,
            garp_repeat_after: None,
            garp_refresh: None,
            conflict_check: None,
            conflict_wait: None,
            unit: Some(unit.to_string()),
            script: None,
            device: None,
            mountpoint: None,
            fstype: None,
            options: None,
            fsck: None,
            force_unmount: None,
            monitor_io: None,
            monitor_interval: default_monitor(),
            start_timeout: default_op_timeout(),
            stop_timeout: default_op_timeout(),
            monitor_timeout: default_monitor_timeout(),
        }
    }

    /// The type-specific settings; `Err` names the missing or misplaced key (validation
    /// has already reported it for loaded configs).
    pub fn spec(&self) -> Result<ResourceKind, String> {
        match self.kind {
            ResourceType::Ip => {
                let text = self.address.as_deref().ok_or("type ip needs `address`")?;
                let (address, prefix) = parse_cidr(text).ok_or_else(|| {
                    format!("expected ADDRESS/PREFIX such as 192.0.2.100/24, found `{text}`")
                })?;
                Ok(ResourceKind::Ip(IpSpec {
                    address,
                    prefix,
                    interface: self.interface.clone().ok_or("type ip needs `interface`")?,
                    garp_count: self.garp_count.unwrap_or(5),
                    garp_repeat_after: self.garp_repeat_after.unwrap_or(Dur::secs(5)).get(),
                    garp_refresh: self.garp_refresh.unwrap_or(Dur::secs(10)).get(),
                    conflict_check: self.conflict_check.unwrap_or(true),
                    conflict_wait: self.conflict_wait.unwrap_or(Dur::ms(20)).get(),
                }))
            }
            ResourceType::Systemd => Ok(ResourceKind::Systemd(
                self.unit.clone().ok_or("type systemd needs `unit`")?,
            )),
            ResourceType::Lsb => Ok(ResourceKind::Lsb(
                self.script.clone().ok_or("type lsb needs `script`")?,
            )),
            ResourceType::Filesystem => Ok(ResourceKind::Filesystem(FsSpec::from_config(self)?)),
        }
    }

    /// Type-specific keys present on a resource of another type.
    fn misplaced_keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let ip = self.kind == ResourceType::Ip;
        let present = [
            ("address", self.address.is_some(), ip),
            ("interface", self.interface.is_some(), ip),
            ("garp_count", self.garp_count.is_some(), ip),
            ("garp_repeat_after", self.garp_repeat_after.is_some(), ip),
            ("garp_refresh", self.garp_refresh.is_some(), ip),
            ("conflict_check", self.conflict_check.is_some(), ip),
            ("conflict_wait", self.conflict_wait.is_some(), ip),
            (
                "unit",
                self.unit.is_some(),
                self.kind == ResourceType::Systemd,
            ),
            (
                "script",
                self.script.is_some(),
                self.kind == ResourceType::Lsb,
            ),
        ];
        let fs = self.kind == ResourceType::Filesystem;
        let fs_keys = [
            ("device", self.device.is_some()),
            ("mountpoint", self.mountpoint.is_some()),
            ("fstype", self.fstype.is_some()),
            ("options", self.options.is_some()),
            ("fsck", self.fsck.is_some()),
            ("force_unmount", self.force_unmount.is_some()),
            ("monitor_io", self.monitor_io.is_some()),
        ];
        let present = present
            .into_iter()
            .chain(fs_keys.into_iter().map(|(k, set)| (k, set, fs)));
        for (key, is_set, allowed) in present {
            if is_set && !allowed {
                v.push(key);
            }
        }
        v
    }
}

impl ResourcesConfig {
    pub(crate) fn fill_defaults(&mut self) {
        if self.group.is_empty() {
            self.group = default_group();
        }
    }

    pub(crate) fn validate(&self, c: &Config, p: &mut Problems) {
        for (i, name) in self.failover_domain.nodes.iter().enumerate() {
            let key = format!("resources.failover_domain.nodes[{i}]");
            match c.node(name) {
                None => p.push(
                    key,
                    format!("`{name}` is not one of the nodes; expected a name from `nodes`"),
                ),
                Some(n) if n.role == Role::Witness => p.push(
                    key,
                    format!(
                        "`{name}` is a witness, and a witness never runs resources; \
                         remove it from the failover domain or make it a frontend"
                    ),
                ),
                Some(_) => {}
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.group.iter().enumerate() {
            if !seen.insert(r.name.as_str()) {
                p.push(
                    format!("resources.group[{i}].name"),
                    format!("duplicate resource name `{}`", r.name),
                );
            }
            if r.monitor_interval.get().is_zero() {
                p.push(
                    format!("resources.group[{i}].monitor_interval"),
                    "expected an interval longer than 0s",
                );
            }
            for key in r.misplaced_keys() {
                p.push(
                    format!("resources.group[{i}].{key}"),
                    format!(
                        "`{key}` does not apply to a resource of type {}",
                        r.kind.as_str()
                    ),
                );
            }
            if let Err(e) = r.spec() {
                let key = match r.kind {
                    ResourceType::Ip if r.address.is_some() => "address",
                    ResourceType::Filesystem => filesystem::key_of(&e),
                    _ => "type",
                };
                p.push(format!("resources.group[{i}].{key}"), e);
            }
        }
        filesystem::validate_group(&self.group, p);
    }

    /// What a valid group allows but an operator should know (`oneha check-config` prints
    /// them): a filesystem started after the units that may need it.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = filesystem::warnings(&self.group);
        let default = default_group();
        let same = |a: &ResourceConfig, b: &ResourceConfig| {
            (&a.name, &a.kind, &a.unit, &a.script) == (&b.name, &b.kind, &b.unit, &b.script)
        };
        if self.group.len() == default.len()
            && self.group.iter().zip(&default).all(|(a, b)| same(a, b))
        {
            w.push(
                "resources.group: the group is the built-in default, `opennebula` and \
                 `opennebula-sunstone` (OpenNebula 4.x to 6.x); OpenNebula 7 has no \
                 opennebula-sunstone and needs opennebula-hem (the VM-HA hook runs in it) and \
                 opennebula-fireedge in the group: name the group for your version \
                 (deploy/examples, docs/install.md)"
                    .into(),
            );
        }
        w
    }
}

/// The group when none is configured: the units of OpenNebula 4.x to 6.x, as rgmanager
/// clusters ran them. Kept for configs written for those versions; `check-config` warns
/// that OpenNebula 7 needs another set.
fn default_group() -> Vec<ResourceConfig> {
    vec![
        ResourceConfig::systemd("opennebula", "opennebula.service"),
        ResourceConfig::systemd("opennebula-sunstone", "opennebula-sunstone.service"),
    ]
}

/// Parses `ADDRESS/PREFIX` (IPv4 prefix 1..=32, IPv6 1..=128).
pub fn parse_cidr(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, p) = text.split_once('/')?;
    let addr: std::net::IpAddr = a.trim().parse().ok()?;
    let prefix: u8 = p.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (1..=max).contains(&prefix).then_some((addr, prefix))
}
