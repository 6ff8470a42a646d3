//! The `fencing:` section: fence devices and per-node fence levels.
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

use crate::config::{Config, Dur, Problems};
use crate::fence::xvm::{DEFAULT_GROUP_V4, DEFAULT_PORT, DOMAIN_MAX, HashType};
use crate::resources::ResourceKind;

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

impl FencingConfig {
    pub(crate) fn validate(&self, c: &Config, p: &mut Problems) {
        let floating: Vec<IpAddr> = c
            .resources
            .group
            .iter()
            .filter_map(|r| match r.spec() {
                Ok(ResourceKind::Ip(ip)) => Some(ip.address),
                _ => None,
            })
            .collect();
        for (name, dev) in &self.devices {
            let at = format!("fencing.devices.{name}");
            match dev {
                DeviceConfig::Xvm(x) => validate_xvm(c, x, &at, &floating, p),
                DeviceConfig::Agent(a) => validate_agent(a, &at, p),
                DeviceConfig::Ssh(s) => {
                    if s.user.is_empty() || s.user.starts_with('-') {
                        p.push(format!("{at}.user"), "expected a user name such as root");
                    }
                    if s.address.as_deref().is_some_and(bad_host) {
                        p.push(format!("{at}.address"), "expected a host name or address");
                    }
                    if s.timeout.get().is_zero() {
                        p.push(format!("{at}.timeout"), "expected a timeout longer than 0");
                    }
                }
            }
        }
        for (node, nf) in &self.nodes {
            let at = format!("fencing.nodes.{node}");
            if c.node(node).is_none() {
                p.push(
                    at.clone(),
                    format!(
                        "`{node}` is not a member; fencing.nodes keys must be names from \
                         nodes[].name ({})",
                        names(c)
                    ),
                );
            }
            for (i, l) in nf.levels.iter().enumerate() {
                self.validate_level(node, l, &format!("{at}.levels[{i}]"), p);
            }
        }
    }

    fn validate_level(&self, node: &str, l: &LevelConfig, at: &str, p: &mut Problems) {
        let Some(dev) = self.devices.get(&l.device) else {
            let known: Vec<&str> = self.devices.keys().map(String::as_str).collect();
            p.push(
                format!("{at}.device"),
                format!(
                    "unknown device `{}`; define it under fencing.devices (defined: {})",
                    l.device,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            return;
        };
        if let Some(plug) = &l.plug
            && (plug.is_empty() || plug.len() > DOMAIN_MAX || !is_one_line(plug))
        {
            p.push(
                format!("{at}.plug"),
                format!(
                    "expected a name of 1 to {DOMAIN_MAX} bytes on one line, found {} bytes",
                    plug.len()
                ),
            );
        }
        if l.uuid && !l.plug.as_deref().is_some_and(looks_like_uuid) {
            p.push(
                format!("{at}.plug"),
                "uuid: true needs plug to be a domain UUID such as \
                 6695eb01-f6a4-8304-79aa-97f2502e193f",
            );
        }
        match dev {
            DeviceConfig::Xvm(_) if l.plug.is_none() => p.push(
                format!("{at}.plug"),
                format!(
                    "an xvm level needs `plug`: the libvirt domain name of {node} on the \
                     host (see `oneha fence-xvm -o list`)"
                ),
            ),
            DeviceConfig::Agent(_) | DeviceConfig::Ssh(_) if l.uuid => p.push(
                format!("{at}.uuid"),
                "uuid applies to xvm devices only; remove it",
            ),
            _ => {}
        }
    }
}

fn validate_xvm(c: &Config, x: &XvmDevice, at: &str, floating: &[IpAddr], p: &mut Problems) {
    match x.multicast_address {
        IpAddr::V4(a) if a.is_multicast() => {}
        other => p.push(
            format!("{at}.multicast_address"),
            format!(
                "expected an IPv4 multicast group such as 225.0.0.12 (fence_virtd's \
                 `address`), found {other}"
            ),
        ),
    }
    if x.port == 0 {
        p.push(
            format!("{at}.port"),
            "expected a port other than 0 (fence_virtd uses 1229)",
        );
    }
    if let Err(e) = check_xvm_key_file(&x.key_file) {
        p.push(format!("{at}.key_file"), e);
    }
    if x.timeout.get().is_zero() || x.retransmit.get().is_zero() {
        p.push(
            format!("{at}.timeout"),
            "timeout and retransmit must be longer than 0",
        );
    } else if x.retransmit > x.timeout {
        p.push(
            format!("{at}.retransmit"),
            format!(
                "retransmit ({}) is longer than timeout ({}): the request would be sent once",
                x.retransmit, x.timeout
            ),
        );
    }
    for node in x.source_addresses.keys() {
        if c.node(node).is_none() {
            p.push(
                format!("{at}.source_addresses.{node}"),
                format!("`{node}` is not a member ({})", names(c)),
            );
        }
    }
    for n in &c.nodes {
        let Some(src) = xvm_source(c, x, &n.name) else {
            continue;
        };
        let key = if x.source_addresses.contains_key(&n.name) {
            format!("{at}.source_addresses.{}", n.name)
        } else {
            format!("{at}.source_addresses")
        };
        let why = if src.is_loopback() || src.is_unspecified() {
            Some("a loopback or unspecified address")
        } else if floating.contains(&src) {
            Some("the floating IP (it moves with the group)")
        } else if !src.is_ipv4() {
            Some("not IPv4 (the xvm client sends IPv4 only)")
        } else {
            None
        };
        if let Some(why) = why {
            p.push(
                key,
                format!(
                    "node {} would send fence requests from {src}, which is {why}; set \
                     source_addresses.{} to its own cluster address",
                    n.name, n.name
                ),
            );
        }
    }
}

fn validate_agent(a: &AgentDevice, at: &str, p: &mut Problems) {
    if find_agent(&a.agent).is_none() {
        p.push(
            format!("{at}.agent"),
            format!(
                "fence agent `{}` not found (looked in /usr/sbin, /sbin, /usr/bin, /bin, \
                 /usr/local/sbin); install it (Debian: fence-agents) or give an absolute path",
                a.agent
            ),
        );
    }
    for (k, v) in &a.options {
        if matches!(k.as_str(), "action" | "plug" | "port" | "nodename") {
            p.push(
                format!("{at}.options.{k}"),
                format!("`{k}` is set by oneha for each operation; remove it (use levels[].plug)"),
            );
        }
        if k.is_empty() || k.contains(['=', ' ']) || !is_one_line(k) {
            p.push(
                format!("{at}.options.{k}"),
                "option names must be one word without `=`, spaces or control characters",
            );
        } else if !is_one_line(v) {
            // The value is not shown: it may be a password.
            p.push(
                format!("{at}.options.{k}"),
                format!(
                    "option `{k}` of device `{name}` has a line break, NUL or other control \
                     character in its value; fence agents read options as `key=value` lines on \
                     stdin, so it would pass other options: put the value on one line",
                    name = device_name(at)
                ),
            );
        }
    }
    if a.timeout.get().is_zero() {
        p.push(format!("{at}.timeout"), "expected a timeout longer than 0");
    }
}

/// True when `s` can travel as one `key=value` line on a fence agent's stdin: no line break
/// (LF, CR, NEL, U+2028, U+2029), NUL or other control character.
pub fn is_one_line(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// The device name in a `fencing.devices.NAME` key path.
fn device_name(at: &str) -> &str {
    at.strip_prefix("fencing.devices.").unwrap_or(at)
}

/// Checks that `path` is a usable fence_xvm key file: a regular file (symbolic links
/// followed), not empty (fence_virtd and oneha use its first
/// [`MAX_KEY_LEN`](crate::fence::xvm::MAX_KEY_LEN) bytes).
/// The error says what is wrong with it and what to do; the key itself is never read here.
pub fn check_xvm_key_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let copy = "copy fence_virtd's key_file from the hypervisor to this path on every node";
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("the key file {shown} does not exist; {copy}"));
        }
        Err(e) => return Err(format!("cannot read the key file {shown}: {e}; {copy}")),
    };
    if !meta.is_file() {
        return Err(format!(
            "the key file {shown} is not a regular file (it is {}); {copy}",
            file_kind(&meta.file_type())
        ));
    }
    if meta.len() == 0 {
        return Err(format!("the key file {shown} is empty; {copy}"));
    }
    Ok(())
}

/// What kind of file `t` is, for messages.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn names(c: &Config) -> String {
    let v: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    format!("members: {}", v.join(", "))
}

fn bad_host(h: &str) -> bool {
    h.is_empty() || h.starts_with('-') || h.contains(char::is_whitespace)
}

fn looks_like_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
#[path = "config_tests.rs"]
pub(crate) mod tests;
