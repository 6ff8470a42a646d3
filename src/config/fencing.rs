//! The `fencing:` section: fence devices and per-node fence levels (checked by
//! `fencing_check`).
//!
//! ```yaml
//! fencing:
//!   devices:
//!     kvm-host: {type: xvm, key_file: /etc/cluster/fence_xvm.key}
//!     ipmi1: {type: agent, agent: fence_ipmilan, options: {ip: 192.0.2.50, username: admin,
//!             password_script: /etc/oneha/ipmipw}}
//!   nodes:
//!     one-server1:
//!       delay: 15s
//!       levels:
//!         - {device: kvm-host, plug: one1}
//!         - {device: ipmi1}
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

use super::fence_xvm::{DEFAULT_GROUP_V4, DEFAULT_PORT, HashType};
use super::{Config, Dur};

/// Fence devices and how each node is fenced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FencingConfig {
    /// Devices by name.
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceConfig>,
    /// How each node is fenced, by node name (from `nodes[].name`).
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeFencing>,
    /// Two-node mode: when the nodes lose each other, the one running the group fences at
    /// once and the other waits this long (plus the target's `delay`) first, so that in a
    /// clean split the active side wins (Pacemaker's priority-fencing-delay). It must exceed
    /// the time the active side needs to fence the passive one (xvm: well under a second;
    /// IPMI: raise it to 15s or more).
    #[serde(default = "default_passive_delay")]
    pub passive_delay: Dur,
    /// Two-node: when the peer is lost, ask its first fence device for its power state; if
    /// the device says it is already off, the passive side fences at once instead of waiting
    /// `passive_delay` (a dead active node fails over without the handicap). The state is a
    /// hint, never proof: the takeover still needs an `off` that succeeds (S5). Turn it off
    /// when several hypervisors share one fence_xvm multicast group (the first to answer may
    /// not know the peer and say "off").
    #[serde(default = "yes")]
    pub check_peer_power: bool,
}

fn default_passive_delay() -> Dur {
    Dur::secs(2)
}

impl Default for FencingConfig {
    fn default() -> Self {
        FencingConfig {
            devices: BTreeMap::new(),
            nodes: BTreeMap::new(),
            passive_delay: default_passive_delay(),
            check_peer_power: true,
        }
    }
}

/// One fence device. `type` selects the method.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DeviceConfig {
    /// fence_virtd on a hypervisor, over the fence_xvm multicast protocol.
    Xvm(XvmDevice),
    /// An installed fence agent (`fence_ipmilan`, `fence_ilo5`, `fence_xvm`...).
    Agent(AgentDevice),
    /// `ssh USER@NODE poweroff -f`: weak, needs the target's OS to answer (labs only).
    Ssh(SshDevice),
}

impl DeviceConfig {
    /// `xvm`, `agent` or `ssh`.
    pub fn method(&self) -> &'static str {
        match self {
            DeviceConfig::Xvm(_) => "xvm",
            DeviceConfig::Agent(_) => "agent",
            DeviceConfig::Ssh(_) => "ssh",
        }
    }
}

/// A fence_virtd reached over multicast.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XvmDevice {
    /// The group fence_virtd listens on.
    #[serde(default = "default_group")]
    pub multicast_address: IpAddr,
    /// UDP request port, also the local TCP callback port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The key shared with fence_virtd (its `key_file`).
    #[serde(default = "default_xvm_key")]
    pub key_file: PathBuf,
    /// Request signature; must be at least the host's `hash`.
    #[serde(default = "default_hash")]
    pub hash: HashType,
    /// Challenge-response hash; must equal the host's `auth`.
    #[serde(default = "default_hash")]
    pub auth: HashType,
    /// The address each node sends from, by node name. A node not listed sends from the IP of
    /// its `nodes[].address`. Never the floating IP or loopback.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_addresses: BTreeMap<String, IpAddr>,
    /// Give up when no answer came within this time.
    #[serde(default = "default_xvm_timeout")]
    pub timeout: Dur,
    /// Resend the request this often until fence_virtd calls back.
    #[serde(default = "default_retransmit")]
    pub retransmit: Dur,
}

/// An installed fence agent, run with its options on stdin. `Debug` redacts secrets.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDevice {
    /// Agent name (found in /usr/sbin, /sbin, /usr/bin, /bin) or absolute path.
    pub agent: String,
    /// Options passed as `key=value` lines (`ip`, `username`, `password`,
    /// `password_script`...). `action` and `plug` are set by oneha. Secret values are never
    /// printed or logged.
    #[serde(default, serialize_with = "serialize_redacted")]
    pub options: BTreeMap<String, String>,
    /// Kill the agent (its whole process group) after this long.
    #[serde(default = "default_agent_timeout")]
    pub timeout: Dur,
}

/// Fencing by `ssh -l USER ADDRESS "poweroff -f"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshDevice {
    /// Remote user.
    #[serde(default = "default_ssh_user")]
    pub user: String,
    /// Host to reach; default: the level's `plug`, else the target's `nodes[].address` IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// SSH port.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Private key to use (`ssh -i`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
    /// Refuse unknown or changed host keys (`StrictHostKeyChecking=yes`). Keep it on.
    #[serde(default = "yes")]
    pub strict_host_key_checking: bool,
    /// `ConnectTimeout`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Kill ssh after this long.
    #[serde(default = "default_ssh_timeout")]
    pub timeout: Dur,
}

/// How one node is fenced.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeFencing {
    /// Wait this long before fencing THIS node (it favours the node in a fence race, like
    /// cman's per-device `delay`). Applied by the caller, see `Fencer::delay`.
    #[serde(default)]
    pub delay: Dur,
    /// Methods tried in order until one powers the node off.
    #[serde(default)]
    pub levels: Vec<LevelConfig>,
}

/// One fence level: a device and how to address this node on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    /// Name from `fencing.devices`.
    pub device: String,
    /// The node's name on the device: libvirt domain (name or UUID) for xvm, `plug=` for an
    /// agent, host for ssh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plug: Option<String>,
    /// xvm: `plug` is a domain UUID.
    #[serde(default, skip_serializing_if = "is_false")]
    pub uuid: bool,
    /// Extra tries after a failed one, before the next level.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Pause between tries.
    #[serde(default = "default_retry_sleep")]
    pub retry_sleep: Dur,
}

fn yes() -> bool {
    true
}
fn is_false(b: &bool) -> bool {
    !b
}
fn default_group() -> IpAddr {
    IpAddr::V4(DEFAULT_GROUP_V4)
}
fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_xvm_key() -> PathBuf {
    PathBuf::from("/etc/cluster/fence_xvm.key")
}
fn default_hash() -> HashType {
    HashType::Sha256
}
fn default_xvm_timeout() -> Dur {
    Dur::secs(30)
}
fn default_retransmit() -> Dur {
    Dur::secs(2)
}
fn default_agent_timeout() -> Dur {
    Dur::secs(60)
}
fn default_ssh_user() -> String {
    "root".to_string()
}
fn default_ssh_port() -> u16 {
    22
}
fn default_connect_timeout() -> Dur {
    Dur::secs(10)
}
fn default_ssh_timeout() -> Dur {
    Dur::secs(30)
}
fn default_retries() -> u32 {
    2
}
fn default_retry_sleep() -> Dur {
    Dur::secs(5)
}

/// Replacement for secret values in printed configs.
pub const REDACTED: &str = "<redacted>";

/// True for agent option names whose values are secrets (`password`, `snmp_priv_passwd`...).
/// `password_script` names a program, not a secret.
pub fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    (k.contains("passw") || k.contains("secret") || k == "community" || k.ends_with("_key"))
        && !k.ends_with("_script")
}

/// The options with secret values replaced by [`REDACTED`], for printing.
pub fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    map.iter()
        .map(|(k, v)| {
            let v = if is_secret_option(k) {
                REDACTED
            } else {
                v.as_str()
            };
            (k.as_str(), v)
        })
        .collect()
}

fn serialize_redacted<S: Serializer>(
    map: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    redacted(map).serialize(s)
}

impl std::fmt::Debug for AgentDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentDevice")
            .field("agent", &self.agent)
            .field("options", &redacted(&self.options))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where `node` sends xvm requests from: its entry in `source_addresses`, else the IP of its
/// `nodes[].address`.
pub fn xvm_source(c: &Config, dev: &XvmDevice, node: &str) -> Option<IpAddr> {
    dev.source_addresses
        .get(node)
        .copied()
        .or_else(|| c.node(node).map(|n| n.address.ip()))
}

/// Finds a fence agent by name: absolute paths as given, else the usual sbin/bin folders.
pub fn find_agent(agent: &str) -> Option<PathBuf> {
    let p = Path::new(agent);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    if agent.contains('/') {
        return None;
    }
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(agent))
        .find(|p| p.is_file())
}

#[cfg(test)]
#[path = "fencing_tests.rs"]
pub(crate) mod tests;
