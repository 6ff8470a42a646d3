//! The `vm_ha:` section: how hosts are fenced, the guard, limits, and where the hook logs.
//! The policy's rules made from it are `vmha::config`'s.
//!
//! ```yaml
//! vm_ha:
//!   hosts:                        # by OpenNebula host NAME; devices from fencing.devices
//!     kvm1: {levels: [{device: ipmi-kvm1}]}
//!   host_template:                # hosts not listed: `{ATTR}` filled from the host's template
//!     levels: [{device: ipmi-any}]   # e.g. options: {ip: "{FENCE_IP}", ...}
//!   guard: {max_failed_hosts: 2}
//!   max_parallel: 8
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Dur;
use super::fencing::NodeFencing;

/// Where the stock hook logs, and so does this one.
pub const DEFAULT_LOG: &str = "/var/log/one/host_error.log";
/// monitord's config, for `MONITORING_INTERVAL_HOST`.
pub const DEFAULT_MONITORD_CONF: &str = "/etc/one/monitord.conf";
/// monitord's default `MONITORING_INTERVAL_HOST`.
pub const DEFAULT_MONITORING_INTERVAL: Duration = Duration::from_secs(180);

/// The `vm_ha:` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmHaConfig {
    /// Fence levels per OpenNebula host name.
    #[serde(default)]
    pub hosts: BTreeMap<String, NodeFencing>,
    /// Fence levels for hosts not in `hosts`: `{ATTR}` in a level's `plug` and in an agent
    /// device's option values is replaced by the host template's attribute `ATTR`
    /// (e.g. `{FENCE_IP}`, the attribute OpenNebula's docs tell operators to add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_template: Option<NodeFencing>,
    /// One monitoring interval (`-p N` waits N of them). Default: `MONITORING_INTERVAL_HOST`
    /// from `monitord_conf`, else 180s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_interval: Option<Dur>,
    /// monitord's config file.
    #[serde(default = "default_monitord_conf")]
    pub monitord_conf: PathBuf,
    /// How often the host is read while waiting and while fencing fails.
    #[serde(default = "default_poll")]
    pub poll_interval: Dur,
    /// The mass-failure guard.
    #[serde(default)]
    pub guard: GuardConfig,
    /// VM actions in flight at once.
    #[serde(default = "default_parallel")]
    pub max_parallel: usize,
    /// First pause after a failed fence round; it doubles up to `fence_backoff_max`.
    #[serde(default = "default_backoff")]
    pub fence_backoff: Dur,
    /// Longest pause between fence rounds.
    #[serde(default = "default_backoff_max")]
    pub fence_backoff_max: Dur,
    /// User-template attribute that opts a VM out (`HA = "no"`).
    #[serde(default = "default_ha_attribute")]
    pub ha_attribute: String,
    /// User-template attribute with the VM's priority (higher first).
    #[serde(default = "default_priority_attribute")]
    pub priority_attribute: String,
    /// The hook's log, in the stock hook's format.
    #[serde(default = "default_log")]
    pub log_file: PathBuf,
    /// The agent's socket for the hook (VM-HA requests only): OpenNebula's hook manager runs
    /// the hook as oneadmin, who may not use the admin socket. Default: `vm-ha.sock` beside
    /// the admin socket (`/run/oneha/vm-ha.sock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_socket: Option<PathBuf>,
    /// The group that may use `hook_socket` (mode 0660); none: root only.
    #[serde(default = "default_hook_group")]
    pub hook_group: Option<String>,
}

/// Where the agent serves the hook.
pub const DEFAULT_HOOK_SOCKET: &str = "/run/oneha/vm-ha.sock";

/// The mass-failure guard: when more hosts than `max_failed_hosts` fail within `window`
/// (a front-end cut off from the hypervisor network sees every host fail), nothing is
/// fenced and no VM is touched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Failing hosts tolerated (the host of the case included).
    #[serde(default = "default_guard")]
    pub max_failed_hosts: u32,
    /// Cases opened this recently count as failing hosts too.
    #[serde(default = "default_window")]
    pub window: Dur,
}

fn default_guard() -> u32 {
    2
}
fn default_window() -> Dur {
    Dur::secs(600)
}
fn default_monitord_conf() -> PathBuf {
    PathBuf::from(DEFAULT_MONITORD_CONF)
}
fn default_poll() -> Dur {
    Dur::secs(10)
}
fn default_parallel() -> usize {
    8
}
fn default_backoff() -> Dur {
    Dur::secs(10)
}
fn default_backoff_max() -> Dur {
    Dur::secs(300)
}
fn default_ha_attribute() -> String {
    "HA".into()
}
fn default_priority_attribute() -> String {
    "HA_PRIORITY".into()
}
fn default_log() -> PathBuf {
    PathBuf::from(DEFAULT_LOG)
}
fn default_hook_group() -> Option<String> {
    Some("oneadmin".into())
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_failed_hosts: default_guard(),
            window: default_window(),
        }
    }
}

impl Default for VmHaConfig {
    fn default() -> Self {
        VmHaConfig {
            hosts: BTreeMap::new(),
            host_template: None,
            monitoring_interval: None,
            monitord_conf: default_monitord_conf(),
            poll_interval: default_poll(),
            guard: GuardConfig::default(),
            max_parallel: default_parallel(),
            fence_backoff: default_backoff(),
            fence_backoff_max: default_backoff_max(),
            ha_attribute: default_ha_attribute(),
            priority_attribute: default_priority_attribute(),
            log_file: default_log(),
            hook_socket: None,
            hook_group: default_hook_group(),
        }
    }
}

impl VmHaConfig {
    /// The hook's socket: `hook_socket`, else beside `admin_socket`: `vm-ha.sock` for the
    /// usual `admin.sock`, `NAME.vm-ha` for an admin socket named otherwise (agents that
    /// share a folder each get their own).
    pub fn hook_socket(&self, admin_socket: &Path) -> PathBuf {
        if let Some(p) = &self.hook_socket {
            return p.clone();
        }
        match admin_socket.file_name().and_then(|n| n.to_str()) {
            Some("admin.sock") => admin_socket.with_file_name("vm-ha.sock"),
            Some(name) => admin_socket.with_file_name(format!("{name}.vm-ha")),
            None => PathBuf::from(DEFAULT_HOOK_SOCKET),
        }
    }

    /// One monitoring interval: the config's, else monitord.conf's, else 180s. Says where
    /// it came from.
    pub fn interval(&self) -> (Duration, String) {
        if let Some(d) = self.monitoring_interval {
            return (d.get(), "vm_ha.monitoring_interval".into());
        }
        match read_monitoring_interval(&self.monitord_conf) {
            Some(d) => (
                d,
                format!(
                    "MONITORING_INTERVAL_HOST in {}",
                    self.monitord_conf.display()
                ),
            ),
            None => (
                DEFAULT_MONITORING_INTERVAL,
                format!(
                    "monitord's default ({} not readable or without MONITORING_INTERVAL_HOST)",
                    self.monitord_conf.display()
                ),
            ),
        }
    }

    /// Checks every field; `report(key, message)` for each problem. `devices` are the
    /// names in `fencing.devices`.
    pub fn check(&self, devices: &[&str], report: &mut dyn FnMut(String, String)) {
        let levels = self
            .hosts
            .iter()
            .map(|(h, nf)| (format!("hosts.{h}"), nf))
            .chain(
                self.host_template
                    .iter()
                    .map(|nf| ("host_template".to_string(), nf)),
            );
        for (key, nf) in levels {
            if nf.levels.is_empty() {
                report(
                    format!("{key}.levels"),
                    "expected at least one fence level; without one the host cannot be \
                     fenced and its VMs are never touched"
                        .into(),
                );
            }
            for (i, l) in nf.levels.iter().enumerate() {
                if !devices.contains(&l.device.as_str()) {
                    report(
                        format!("{key}.levels[{i}].device"),
                        format!(
                            "unknown device `{}`; define it under fencing.devices",
                            l.device
                        ),
                    );
                }
            }
        }
        if self.max_parallel == 0 {
            report("max_parallel".into(), "expected at least 1".into());
        }
        if self.poll_interval.get().is_zero() {
            report(
                "poll_interval".into(),
                "expected more than 0, e.g. `10s`".into(),
            );
        }
        if self.fence_backoff.get().is_zero() || self.fence_backoff_max < self.fence_backoff {
            report(
                "fence_backoff".into(),
                "expected 0 < fence_backoff <= fence_backoff_max".into(),
            );
        }
        if self.ha_attribute.is_empty() || self.priority_attribute.is_empty() {
            report(
                "ha_attribute".into(),
                "attribute names must not be empty".into(),
            );
        }
    }
}

/// `MONITORING_INTERVAL_HOST = 180` from monitord.conf (oned.conf syntax; `#` comments).
pub fn read_monitoring_interval(path: &Path) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_monitoring_interval(&text)
}

/// The value of `MONITORING_INTERVAL_HOST` in monitord.conf text, in seconds.
pub fn parse_monitoring_interval(text: &str) -> Option<Duration> {
    text.lines()
        .rev()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == "MONITORING_INTERVAL_HOST")
        .filter_map(|(_, v)| v.trim().trim_matches('"').parse::<u64>().ok())
        .find(|s| *s > 0)
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_monitord_conf() {
        let text = "# MONITORING_INTERVAL_HOST = 1\nLOG = [ SYSTEM = \"file\" ]\n\
                    MONITORING_INTERVAL_HOST  = 120 # seconds\n";
        assert_eq!(
            parse_monitoring_interval(text),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_monitoring_interval("MONITORING_INTERVAL_HOST = x"),
            None
        );
        assert_eq!(
            parse_monitoring_interval("MONITORING_INTERVAL_HOST = 0"),
            None
        );
        let c = VmHaConfig {
            monitord_conf: "/nonexistent/monitord.conf".into(),
            ..VmHaConfig::default()
        };
        assert_eq!(c.interval().0, DEFAULT_MONITORING_INTERVAL);
        let c = VmHaConfig {
            monitoring_interval: Some(Dur::secs(5)),
            ..c
        };
        assert_eq!(
            c.interval(),
            (Duration::from_secs(5), "vm_ha.monitoring_interval".into())
        );
    }

    #[test]
    fn the_hook_socket_sits_beside_the_admin_socket() {
        let c = VmHaConfig::default();
        let at = |p: &str| c.hook_socket(Path::new(p));
        assert_eq!(at("/run/oneha/admin.sock"), Path::new(DEFAULT_HOOK_SOCKET));
        // Agents sharing a folder (tests, several clusters on one machine) do not collide.
        assert_ne!(at("/tmp/x/admin-n1.sock"), at("/tmp/x/admin-n2.sock"));
        let set = VmHaConfig {
            hook_socket: Some("/run/h.sock".into()),
            ..VmHaConfig::default()
        };
        assert_eq!(
            set.hook_socket(Path::new("/run/oneha/admin.sock")),
            Path::new("/run/h.sock")
        );
    }

    #[test]
    fn check_names_each_problem() {
        let c: VmHaConfig = serde_norway::from_str(
            "hosts: {kvm1: {levels: []}, kvm2: {levels: [{device: nope}]}}\nmax_parallel: 0\n",
        )
        .unwrap();
        let mut got = Vec::new();
        c.check(&["ipmi"], &mut |k, m| got.push(format!("{k}: {m}")));
        let all = got.join("\n");
        assert!(
            all.contains("hosts.kvm1.levels: expected at least one"),
            "{all}"
        );
        assert!(
            all.contains("hosts.kvm2.levels[0].device: unknown device `nope`"),
            "{all}"
        );
        assert!(all.contains("max_parallel"), "{all}");
        assert!(serde_norway::from_str::<VmHaConfig>("bogus: 1").is_err());
    }
}
