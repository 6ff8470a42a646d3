//! A node's links: `address: IP:PORT` (one link) or `addresses: [IP:PORT, ...]` (up to
//! [`MAX_LINKS`], e.g. the LAN and a back-to-back cable), as written and as checked.
//!
//! Link `k` (1-based, as shown by `oneha status`) joins the `k`-th address of every node
//! that lists one: the agents connect link to link, never across. A node with fewer links
//! than another simply has no share in the extra ones (`oneha check-config` warns).

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Config, NodeConfig, Problems, Role};

/// Most links a node may list (corosync's knet allows as many).
pub const MAX_LINKS: usize = 8;

/// A node as written in the file: `address` or `addresses`, not both.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    name: String,
    id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addresses: Option<Vec<SocketAddr>>,
    #[serde(default)]
    role: Role,
    #[serde(default)]
    priority: Option<u32>,
}

impl TryFrom<NodeSpec> for NodeConfig {
    type Error = String;

    fn try_from(s: NodeSpec) -> Result<NodeConfig, String> {
        let addresses = match (s.address, s.addresses) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "node `{}` has both `address` and `addresses`: give `address: IP:PORT` \
                     for one link or `addresses: [IP:PORT, ...]` for several, not both",
                    s.name
                ));
            }
            (None, None) => {
                return Err(format!(
                    "node `{}` has no peer address: add `address: IP:PORT` (or `addresses: \
                     [IP:PORT, ...]` for redundant links)",
                    s.name
                ));
            }
            (Some(a), None) => vec![a],
            (None, Some(v)) => v,
        };
        let Some(&address) = addresses.first() else {
            return Err(format!(
                "node `{}` has an empty `addresses` list: list at least one IP:PORT",
                s.name
            ));
        };
        Ok(NodeConfig {
            name: s.name,
            id: s.id,
            address,
            addresses,
            role: s.role,
            priority: s.priority,
        })
    }
}

impl From<NodeConfig> for NodeSpec {
    /// One link prints as `address`, several as `addresses`.
    fn from(n: NodeConfig) -> NodeSpec {
        let (address, addresses) = match n.addresses.as_slice() {
            [one] => (Some(*one), None),
            _ => (None, Some(n.addresses)),
        };
        NodeSpec {
            name: n.name,
            id: n.id,
            address,
            addresses,
            role: n.role,
            priority: n.priority,
        }
    }
}

/// The key path of node `i`'s link `k` (0-based) as the operator wrote it.
fn key(n: &NodeConfig, i: usize, k: usize) -> String {
    if n.addresses.len() == 1 {
        format!("nodes[{i}].address")
    } else {
        format!("nodes[{i}].addresses[{k}]")
    }
}

/// Checks every node's links: at most [`MAX_LINKS`], port not 0, no address used twice
/// (in one node or across nodes).
pub(super) fn validate(c: &Config, p: &mut Problems) {
    let mut seen: HashMap<SocketAddr, (usize, usize)> = HashMap::new();
    for (i, n) in c.nodes.iter().enumerate() {
        if n.addresses.len() > MAX_LINKS {
            p.push(
                format!("nodes[{i}].addresses"),
                format!(
                    "expected at most {MAX_LINKS} links, found {}; drop the extra addresses",
                    n.addresses.len()
                ),
            );
        }
        for (k, a) in n.addresses.iter().enumerate() {
            if let Some((j, l)) = seen.insert(*a, (i, k)) {
                let other = if j == i {
                    format!("also link {} of this node", l + 1)
                } else {
                    format!("also nodes[{j}]")
                };
                p.push(
                    key(n, i, k),
                    format!(
                        "duplicate address {a} ({other}); each link of each node needs its own"
                    ),
                );
            }
            if a.port() == 0 {
                p.push(key(n, i, k), "expected a port other than 0");
            }
        }
    }
}

/// A note when nodes list different numbers of links (allowed: link `k` then joins only
/// the nodes that have a `k`-th address).
pub(super) fn warnings(c: &Config) -> Vec<String> {
    let counts: Vec<usize> = c.nodes.iter().map(|n| n.addresses.len()).collect();
    let (Some(min), Some(max)) = (counts.iter().min(), counts.iter().max()) else {
        return Vec::new();
    };
    if min == max {
        return Vec::new();
    }
    let list: Vec<String> = c
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.name, n.addresses.len()))
        .collect();
    vec![format!(
        "nodes: the nodes list different numbers of links ({}); link k joins only the nodes \
         that have a k-th address, so a node with fewer links is lost as soon as those fail: \
         give every node the same number of addresses (see docs/topologies.md)",
        list.join(", ")
    )]
}
