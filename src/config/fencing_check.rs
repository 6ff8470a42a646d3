//! Checks of the `fencing:` section: devices (xvm multicast group, key file, source
//! addresses; agent found, options one line each), and each node's levels.

use std::net::IpAddr;
use std::path::Path;

use super::fence_xvm::DOMAIN_MAX;
use super::fencing::{
    AgentDevice, DeviceConfig, FencingConfig, LevelConfig, XvmDevice, find_agent, xvm_source,
};
use super::resources::ResourceKind;
use super::{Config, Problems};

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
/// `MAX_KEY_LEN` (4096) bytes, see `fence::xvm`).
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
