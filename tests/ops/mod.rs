//! Shared by the operations tests (import, deploy): validates config text the way
//! `oneha check-config` does, after making the files it names exist as on a prepared node.

#![allow(dead_code)]

use std::path::Path;

use oneha::config::{self, Config};

/// Fence agents the example and imported configs name (fence-agents is not installed on
/// test machines: stand-in files at absolute paths; validation only checks they exist).
const AGENTS: [&str; 2] = ["fence_ipmilan", "fence_apc"];

/// Replaces the cluster key, the fence_xvm key and the fence agents by files in `dir`, then
/// parses and validates; panics with the errors and the text.
pub fn validate(yaml: &str, dir: &Path) -> Config {
    let cluster_key = dir.join("cluster.key");
    let xvm_key = dir.join("fence_xvm.key");
    std::fs::write(&cluster_key, [7u8; 32]).expect("write key");
    // The agent and check-config refuse a cluster key others can read.
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&cluster_key, private).expect("chmod key");
    std::fs::write(&xvm_key, [9u8; 32]).expect("write key");
    let mut text = yaml
        .replace(
            "/etc/oneha/cluster.key",
            cluster_key.to_str().expect("utf8"),
        )
        .replace(
            "/etc/cluster/fence_xvm.key",
            xvm_key.to_str().expect("utf8"),
        );
    for agent in AGENTS {
        let p = dir.join(agent);
        std::fs::write(&p, "#!/bin/sh\nexit 1\n").expect("write agent");
        text = text.replace(
            &format!("agent: {agent}"),
            &format!("agent: {}", p.display()),
        );
    }
    match config::parse(&dir.join("oneha.yaml"), &text) {
        Ok(c) => c,
        Err(e) => panic!("config does not validate:\n{e}\n---\n{text}"),
    }
}
