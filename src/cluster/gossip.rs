//! Gossip: what each node tells every peer about itself with every frame (keep-alives
//! included). It is not replicated: it is each node's own word, used for liveness seen
//! through others and for the status of members this node cannot ask directly.

use serde::{Deserialize, Serialize};

use super::state::NodeId;

/// One node's gossip. Serialized as JSON; fields added later must default, so that agents
/// of different versions still read each other's gossip during a rolling upgrade.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Gossip {
    /// The sender's node name.
    #[serde(default)]
    pub name: String,
    /// What the sender's executor holds, as its status shows it (`running (generation 4)`).
    #[serde(default)]
    pub held: String,
    /// Each of the sender's resources and its state there.
    #[serde(default)]
    pub resources: Vec<(String, String)>,
    /// Members the sender hears directly within the peer timeout (itself included).
    #[serde(default)]
    pub live: Vec<NodeId>,
    /// Members the sender heard since it started and has lost now (silent beyond the peer
    /// timeout): what it is about to act on. A node that still hears the sender learns
    /// from this that the split is one-way.
    #[serde(default)]
    pub lost: Vec<NodeId>,
    /// The sender's agent is exiting for a restart in place (`systemctl restart oneha`)
    /// and leaves its group running: the others wait for it (`policy::exit`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarting: bool,
    /// The sender's client interfaces (its floating IPs') that have no carrier: it cannot
    /// serve clients now, so placement avoids it (`policy::client_link`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_carrier: Vec<String>,
}

impl Gossip {
    /// Decodes a peer's gossip bytes; `None` for bytes that are not gossip (never a panic).
    pub fn decode(bytes: &[u8]) -> Option<Gossip> {
        serde_json::from_slice(bytes).ok()
    }

    /// Encodes this gossip for the wire.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_the_earlier_untyped_form() {
        let g = Gossip {
            name: "fe1".into(),
            held: "running (generation 3)".into(),
            resources: vec![("vip".into(), "running".into())],
            live: vec![1, 2],
            lost: vec![3],
            restarting: true,
            no_carrier: vec!["eth0".into()],
        };
        assert_eq!(Gossip::decode(&g.encode()), Some(g));
        // What agents before the typed form sent (serde_json::json! of the same fields).
        let old = br#"{"name":"fe2","held":"stopped","resources":[["vip","stopped"]],"live":[2]}"#;
        let g = Gossip::decode(old).expect("old gossip decodes");
        assert_eq!(g.live, vec![2]);
        assert_eq!(g.resources[0].1, "stopped");
        // Missing fields default; garbage is refused, never a panic.
        assert_eq!(Gossip::decode(b"{}"), Some(Gossip::default()));
        assert_eq!(Gossip::decode(b"\xff\x00garbage"), None);
        assert_eq!(Gossip::decode(br#"{"live":"x"}"#), None);
    }
}
