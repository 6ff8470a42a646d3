//! What the control loop needs from the agent that runs it, and nothing more. The agent
//! builds a [`Context`] and hands it over; the control loop never sees the agent itself, so
//! `agent` depends on `control` and not the other way round.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::cluster::node::NodeHandle;
use crate::cluster::state::NodeId;
use crate::cluster::transport::CarrierView;
use crate::config::Config;
use crate::metrics::Counters;

/// The control loop's handle on its node: config, identity, the Raft node, the gossip it
/// publishes, the counters it feeds, and the stuck-VM report it starts after a takeover.
pub struct Context {
    /// The loaded config.
    pub cfg: Arc<Config>,
    /// This node's id.
    pub me: NodeId,
    /// This node's name.
    pub name: String,
    /// The Raft node.
    pub node: NodeHandle,
    /// Event counters for the metrics endpoint.
    pub counters: Arc<Counters>,
    /// This node's gossip, sent to every peer.
    pub gossip: watch::Sender<Vec<u8>>,
    /// This node's own end of its links (carrier).
    pub carrier: watch::Receiver<CarrierView>,
    /// Cancels the pending stuck-VM report.
    report_cancel: Mutex<Option<watch::Sender<bool>>>,
}

impl Context {
    /// A context for node `name` (id `me`) of `cfg`.
    pub fn new(
        cfg: Arc<Config>,
        me: NodeId,
        name: String,
        node: NodeHandle,
        counters: Arc<Counters>,
        gossip: watch::Sender<Vec<u8>>,
        carrier: watch::Receiver<CarrierView>,
    ) -> Context {
        Context {
            cfg,
            me,
            name,
            node,
            counters,
            gossip,
            carrier,
            report_cancel: Mutex::new(None),
        }
    }

    /// Name of a node id.
    pub fn node_name(&self, id: NodeId) -> String {
        self.cfg.node_name(id)
    }

    /// Called after the group started on this node: once oned answers and a monitoring
    /// cycle has passed, report the VMs the previous front-end left in transient states.
    pub fn after_start(&self) {
        if !self.cfg.opennebula.report_on_takeover {
            return;
        }
        let (tx, rx) = watch::channel(false);
        if let Ok(mut slot) = self.report_cancel.lock()
            && let Some(old) = slot.replace(tx)
        {
            let _ = old.send(true);
        }
        let cfg = self.cfg.clone();
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let r =
                crate::opennebula::report_after_takeover(&cfg.opennebula, &cfg.data_dir, rx).await;
            match r {
                Ok(report) => {
                    counters.record_stuck_vm_report(report.counts.stuck);
                    crate::events::stuck_vms(&report)
                }
                Err(e) => tracing::warn!("stuck-VM report not made: {e}"),
            }
        });
    }

    /// Called before the group stops on this node: a pending report is cancelled.
    pub fn before_stop(&self) {
        if let Ok(mut slot) = self.report_cancel.lock()
            && let Some(old) = slot.take()
        {
            let _ = old.send(true);
        }
    }
}

/// The runtime marker written when this node becomes the single voter of a two-node
/// cluster after fencing its peer (beside the admin socket, under /run: gone at reboot).
pub fn survivor_marker(cfg: &Config) -> PathBuf {
    cfg.admin_socket
        .parent()
        .unwrap_or(std::path::Path::new("/run/oneha"))
        .join("two-node-single-voter")
}
