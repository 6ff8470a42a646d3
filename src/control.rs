//! The control loop: turns the replicated state and local observations into actions, on
//! every Raft view change and at least every tick.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::agent::Agent;
use crate::cluster::state::{Command, NodeId, Phase};
use crate::config::Role;

/// Runs until shutdown.
pub async fn run(agent: Arc<Agent>, mut shutdown: watch::Receiver<bool>) {
    let tick = agent.cfg.timers().tick;
    let mut views = agent.node.watch();
    loop {
        tokio::select! {
            _ = views.changed() => {}
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        publish_gossip(&agent);
        if let Some(cmd) = leader_decision(&agent)
            && let Err(e) = agent
                .node
                .propose_idempotent(cmd, Duration::from_secs(5))
                .await
        {
            tracing::debug!("proposal failed: {e}");
        }
    }
}

fn publish_gossip(agent: &Agent) {
    let g = serde_json::json!({ "name": agent.name, "resources": [] });
    let bytes = serde_json::to_vec(&g).unwrap_or_default();
    agent.gossip.send_if_modified(|cur| {
        if *cur != bytes {
            *cur = bytes;
            true
        } else {
            false
        }
    });
}

/// The leader places an ownerless enabled group on the best live front-end.
fn leader_decision(agent: &Agent) -> Option<Command> {
    let v = agent.node.view();
    if v.role != "leader" {
        return None;
    }
    let g = &v.state.group;
    if !g.enabled || g.frozen || g.owner.is_some() || g.phase == Phase::Failed {
        return None;
    }
    let timeout = agent.peer_timeout().as_millis() as u64;
    let members = agent.node.members();
    let live = |id: NodeId| {
        id == agent.me
            || members
                .iter()
                .any(|m| m.id == id && m.last_contact_ms.is_some_and(|ms| ms <= timeout))
    };
    let best = agent
        .cfg
        .frontends()
        .into_iter()
        .filter(|n| n.role == Role::Frontend && live(n.id))
        .map(|n| n.id)
        .next()?;
    Some(Command::Assign {
        owner: Some(best),
        expected_generation: g.generation,
        reason: "initial placement".into(),
    })
}
