//! The agent: wires config, transport, the Raft node, the admin API and the control loop,
//! and owns shutdown. `status.rs` builds the status report.

mod status;
mod vm_ha;

pub use status::topology_name;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::control::{self, ControlMsg, SharedLocal};

use crate::admin::{self, AdminHandler, AdminRequest, AdminResponse};
use crate::cluster::keyring::{KeyFiles, KeyRing};
use crate::cluster::node::{self, Event, NodeHandle, NodeSettings, RaftRole};
use crate::cluster::state::{Command, NodeId};
use crate::cluster::transport::{
    self, ClientTiming, LinkTable, PeerLink, TransportIdentity, TransportStats,
};
use crate::config::resources::ResourceType;
use crate::config::{Config, Role};

/// Everything the agent's tasks share.
pub struct Agent {
    /// The loaded config.
    pub cfg: Arc<Config>,
    /// This node's id.
    pub me: NodeId,
    /// This node's name.
    pub name: String,
    /// The Raft node.
    pub node: NodeHandle,
    /// Transport counters.
    pub stats: Arc<TransportStats>,
    /// When each peer was last heard on each link.
    pub links: Arc<LinkTable>,
    /// Requests for the control loop.
    pub control: mpsc::Sender<ControlMsg>,
    /// What the control loop reports about this node.
    pub local: SharedLocal,
    /// Event counters for the metrics endpoint.
    pub counters: Arc<crate::metrics::Counters>,
    /// The cluster keys the transport uses (`reload_keys`).
    pub keys: Arc<KeyRing>,
    /// When this agent started (liveness counts a member never heard as heard then).
    pub started: std::time::Instant,
}

/// Finds which configured node this machine is: `--node`, then `$ONEHA_NODE`, then the
/// host name, then a node whose peer address is configured on a local interface.
pub fn resolve_node(cfg: &Config, explicit: Option<&str>) -> Result<String, String> {
    if let Some(n) = explicit
        .map(str::to_string)
        .or_else(|| std::env::var("ONEHA_NODE").ok())
    {
        return match cfg.node(&n) {
            Some(_) => Ok(n),
            None => Err(format!(
                "node `{n}` is not in the config's `nodes` ({}): pass --node with one of them",
                names(cfg)
            )),
        };
    }
    if let Ok(host) = nix::unistd::gethostname() {
        let host = host.to_string_lossy().to_string();
        let short = host.split('.').next().unwrap_or(&host).to_string();
        if let Some(n) = cfg.nodes.iter().find(|n| n.name == host || n.name == short) {
            return Ok(n.name.clone());
        }
    }
    for n in &cfg.nodes {
        if n.addresses
            .iter()
            .any(|a| std::net::TcpListener::bind((a.ip(), 0)).is_ok() && !a.ip().is_loopback())
        {
            return Ok(n.name.clone());
        }
    }
    Err(format!(
        "cannot tell which node this is: the host name matches none of {} and no node \
         address is local; pass --node NAME or set ONEHA_NODE",
        names(cfg)
    ))
}

/// Each other node's links as this node shares them: link `k` joins the `k`-th address of
/// both (a node with fewer links shares fewer), with this node's own `k`-th address as the
/// source.
fn peer_links(cfg: &Config, me: &crate::config::NodeConfig) -> Vec<(NodeId, Vec<PeerLink>)> {
    cfg.nodes
        .iter()
        .filter(|n| n.id != me.id)
        .map(|n| {
            let links = n
                .addresses
                .iter()
                .zip(&me.addresses)
                .map(|(addr, own)| PeerLink {
                    addr: *addr,
                    source: Some(own.ip()).filter(|ip| !ip.is_unspecified()),
                })
                .collect();
            (n.id, links)
        })
        .collect()
}

fn names(cfg: &Config) -> String {
    cfg.nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the agent until SIGTERM/SIGINT.
pub async fn run(cfg: Config, name: String) -> Result<(), String> {
    let keys = Arc::new(KeyRing::load(
        &cfg.cluster,
        KeyFiles {
            current: cfg.key_file.clone(),
            next: cfg.next_key_file(),
        },
    )?);
    tracing::info!("cluster keys: {}", keys.summary());
    let me_cfg = cfg
        .node(&name)
        .ok_or_else(|| format!("node `{name}` is not configured"))?
        .clone();
    let me = me_cfg.id;
    let timers = cfg.timers();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (gossip_tx, gossip_rx) = watch::channel(Vec::new());
    let stats = Arc::new(TransportStats::default());
    let ident = TransportIdentity {
        cluster: cfg.cluster.clone(),
        me,
        keys: keys.clone(),
    };
    let peers = peer_links(&cfg, &me_cfg);
    let election = timers.election();
    let keepalive = timers.keepalive();
    let timing = ClientTiming {
        keepalive,
        connect_timeout: election.max(Duration::from_millis(200)),
        // A LAN connects in a millisecond; a second WAN-ish round trip still fits.
        syn_timeout: Duration::from_millis(200),
        max_backoff: election.clamp(Duration::from_millis(100), Duration::from_millis(500)),
        // Keep-alives arrive on every healthy link at least every `keepalive`.
        link_silent_after: keepalive * 3 / 2,
    };
    let links = Arc::new(LinkTable::new(
        peers.iter().map(|(id, l)| (*id, l.len())),
        timing.link_silent_after,
    ));
    // The clients' side: the interfaces of the group's floating IPs (a witness runs none).
    let client_links: Vec<String> = if me_cfg.role == Role::Witness {
        Vec::new()
    } else {
        let mut names: Vec<String> = cfg
            .resources
            .group
            .iter()
            .filter(|r| r.kind == ResourceType::Ip)
            .filter_map(|r| r.interface.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let carrier = transport::watch_carrier(
        me_cfg
            .addresses
            .iter()
            .map(|a| Some(a.ip()).filter(|ip| !ip.is_unspecified()))
            .collect(),
        client_links,
        links.clone(),
    );
    let senders = transport::start_clients(
        &ident,
        &peers,
        timing,
        gossip_rx,
        stats.clone(),
        links.clone(),
        shutdown.clone(),
    );
    // /run is emptied at boot: the marker tells an agent restart (keep a single-voter
    // configuration forced in this boot) from a reboot (undo it).
    let survivor_marker = control::survivor_marker(&cfg);
    let settings = NodeSettings {
        me,
        members: cfg.nodes.iter().map(|n| n.id).collect(),
        dir: cfg.data_dir.join("raft"),
        tick: timers.tick,
        heartbeat_ticks: timers.heartbeat_ticks,
        election_ticks: timers.election_ticks,
        autostart: cfg.resources.autostart,
        restore_voters: cfg.two_node && !survivor_marker.exists(),
        relearn_commit: cfg.two_node,
    };
    let (handle, raft_thread) = node::start(settings, senders)?;
    let known: Vec<NodeId> = cfg.nodes.iter().map(|n| n.id).collect();
    let server = transport::serve(
        &me_cfg.addresses,
        ident,
        known,
        handle.inbound_sink(),
        stats.clone(),
        links.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let (control_tx, control_rx) = mpsc::channel(16);
    let local: SharedLocal = Arc::default();
    let cfg = Arc::new(cfg);
    let counters = Arc::new(crate::metrics::Counters::new());
    crate::alerts::start(
        &cfg.alerts,
        crate::alerts::Origin {
            cluster: cfg.cluster.clone(),
            node: name.clone(),
        },
    );
    let ctx = control::Context::new(
        cfg.clone(),
        me,
        name.clone(),
        handle.clone(),
        counters.clone(),
        gossip_tx,
        carrier,
    );
    let agent = Arc::new(Agent {
        cfg,
        me,
        name,
        node: handle.clone(),
        stats,
        links,
        control: control_tx,
        local: local.clone(),
        counters,
        keys,
        started: std::time::Instant::now(),
    });
    let admin_task = admin::serve(
        &agent.cfg.admin_socket,
        agent.clone() as Arc<dyn AdminHandler>,
        shutdown.clone(),
    )
    .await?;
    let hook_task = vm_ha::serve_hook_socket(
        &agent.cfg,
        agent.clone() as Arc<dyn AdminHandler>,
        shutdown.clone(),
    )
    .await?;
    tracing::info!(
        id = me,
        addresses = ?me_cfg.addresses,
        "agent started ({} members, tick {:?}, election {:?})",
        agent.cfg.nodes.len(),
        timers.tick,
        election
    );
    // The control loop stops first (handing the group over while the transport still
    // runs), then Raft leadership moves, then everything else stops.
    let (leave_tx, leave) = watch::channel(false);
    let vm_ha = tokio::spawn(vm_ha::serve(
        handle.clone(),
        me,
        agent.name.clone(),
        agent.cfg.clone(),
        leave.clone(),
    ));
    let control = tokio::spawn(control::run(ctx, control_rx, local, leave));

    let metrics_task = match agent.cfg.metrics.listen {
        Some(addr) => {
            let a = agent.clone();
            let source = Arc::new(move || crate::metrics::render(&a.status(), &a.counters));
            Some(crate::metrics::serve(addr, source, shutdown.clone()).await?)
        }
        None => None,
    };
    // systemd (Type=notify): ready once this node knows a leader, or after a bound, so a
    // node booting alone (wait-for-all) does not fail its unit.
    let mut w = handle.watch();
    let _ = tokio::time::timeout(election * 10, w.wait_for(|v| v.leader.is_some())).await;
    let joined = handle.view().leader.is_some();
    let _ = crate::notify::notify(if joined {
        "READY=1\nSTATUS=member of the cluster"
    } else {
        "READY=1\nSTATUS=waiting for peers (no leader yet)"
    });

    wait_for_signal(&agent).await;
    tracing::info!("shutting down");
    let _ = crate::notify::notify("STOPPING=1");
    let _ = leave_tx.send(true);
    let _ = control.await;
    let _ = vm_ha.await;
    graceful_leave(&agent, election).await;
    let _ = shutdown_tx.send(true);
    let _ = handle.send(Event::Shutdown);
    let _ = tokio::task::spawn_blocking(move || raft_thread.join()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(server)).await;
    let _ = admin_task.await;
    let _ = hook_task.await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    Ok(())
}

/// Waits for SIGTERM/SIGINT; SIGHUP re-reads the cluster key files meanwhile.
async fn wait_for_signal(agent: &Agent) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        // Without signal handlers we can only wait forever; the process is killed.
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                let _ = agent.reload_keys();
            }
        }
    }
}

/// On shutdown, hand Raft leadership to the most up-to-date follower so the cluster does
/// not wait an election timeout.
async fn graceful_leave(agent: &Agent, election: Duration) {
    let view = agent.node.view();
    if view.role != RaftRole::Leader {
        return;
    }
    let members = agent.node.members();
    let best = members
        .iter()
        .filter(|m| view.state.voters.contains(&m.id))
        .filter(|m| {
            m.last_contact_ms
                .is_some_and(|ms| ms < election.as_millis() as u64)
        })
        .max_by_key(|m| m.matched.unwrap_or(0))
        .map(|m| m.id);
    let Some(to) = best else { return };
    tracing::info!(to, "transferring Raft leadership");
    let _ = agent.node.send(Event::TransferLeader(to));
    let mut w = agent.node.watch();
    let _ = tokio::time::timeout(election * 2, w.wait_for(|v| v.leader != Some(agent.me))).await;
}

impl Agent {
    /// Re-reads the cluster key files (SIGHUP, `oneha reload-keys`); on error the keys in
    /// use stay. Logs the outcome (fingerprints only).
    pub fn reload_keys(&self) -> Result<String, String> {
        let r = self.keys.reload();
        match &r {
            Ok(s) => tracing::info!("cluster keys reloaded: {s}"),
            Err(e) => tracing::error!("cluster keys NOT reloaded: {e}"),
        }
        r
    }

    /// Name of a node id.
    pub fn node_name(&self, id: NodeId) -> String {
        self.cfg.node_name(id)
    }

    /// Id of a node name, with an error that lists the choices.
    pub fn node_id(&self, name: &str) -> Result<NodeId, String> {
        self.cfg.node(name).map(|n| n.id).ok_or_else(|| {
            format!(
                "`{name}` is not a node of this cluster ({})",
                names(&self.cfg)
            )
        })
    }

    /// How long since last contact before a member counts as down.
    pub fn peer_timeout(&self) -> Duration {
        self.cfg.timers().lost_after()
    }

    async fn operator(&self, cmd: Command) -> AdminResponse {
        // Every operator command but Restart is idempotent: retry through leader changes.
        let timeout = Duration::from_secs(10);
        let r = if cmd == Command::Restart {
            self.node.propose(cmd, timeout).await
        } else {
            self.node.propose_idempotent(cmd, timeout).await
        };
        match r {
            Ok(crate::cluster::state::Applied::Done) => {
                AdminResponse::ok(serde_json::json!("done"))
            }
            Ok(crate::cluster::state::Applied::Ignored(why)) => AdminResponse::err(why),
            Err(e) => AdminResponse::err(e),
        }
    }

    async fn ask_control(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<String, String>>) -> ControlMsg,
    ) -> AdminResponse {
        let (reply, rx) = oneshot::channel();
        if self.control.send(make(reply)).await.is_err() {
            return AdminResponse::err("the control loop has stopped");
        }
        match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(Ok(text))) => AdminResponse::ok(serde_json::json!(text)),
            Ok(Ok(Err(e))) => AdminResponse::err(e),
            Ok(Err(_)) => AdminResponse::err("the control loop dropped the request"),
            Err(_) => AdminResponse::err("no answer within 300s; see `oneha status`"),
        }
    }

    /// Checks that `name` may run the group; the error says why not.
    pub fn check_may_host(&self, name: &str) -> Result<NodeId, String> {
        let id = self.node_id(name)?;
        let n = self.cfg.node(name).ok_or("unknown node")?;
        if n.role == Role::Witness {
            return Err(format!("{name} is a witness: it never runs the group"));
        }
        if !self.cfg.eligible_hosts().contains(&id) {
            return Err(format!("{name} is not in the failover domain"));
        }
        Ok(id)
    }
}

impl AdminHandler for Agent {
    fn handle(
        &self,
        req: AdminRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = AdminResponse> + Send + '_>> {
        Box::pin(async move {
            match req {
                AdminRequest::Status => match serde_json::to_value(self.status()) {
                    Ok(v) => AdminResponse::ok(v),
                    Err(e) => AdminResponse::err(e.to_string()),
                },
                AdminRequest::Enable { on } => {
                    let on = match on.as_deref().map(|n| self.check_may_host(n)).transpose() {
                        Ok(on) => on,
                        Err(e) => return AdminResponse::err(e),
                    };
                    self.operator(Command::Enable { on }).await
                }
                AdminRequest::Disable => self.operator(Command::Disable).await,
                AdminRequest::Freeze => self.operator(Command::Freeze).await,
                AdminRequest::Unfreeze => self.operator(Command::Unfreeze).await,
                AdminRequest::Restart => self.operator(Command::Restart).await,
                AdminRequest::Relocate { to } => {
                    let to = match to.as_deref().map(|n| self.check_may_host(n)).transpose() {
                        Ok(to) => to,
                        Err(e) => return AdminResponse::err(e),
                    };
                    let v = self.node.view();
                    if to.is_some() && to == v.state.group.owner {
                        return AdminResponse::err("the group already runs there");
                    }
                    self.operator(Command::Relocate { to }).await
                }
                AdminRequest::Fence { node, action } => {
                    let target = match self.node_id(&node) {
                        Ok(t) if t == self.me => {
                            return AdminResponse::err("refusing to fence this node itself");
                        }
                        Ok(t) => t,
                        Err(e) => return AdminResponse::err(e),
                    };
                    let action = match action.as_str() {
                        "off" => crate::fence::Action::Off,
                        "reboot" => crate::fence::Action::Reboot,
                        "on" => crate::fence::Action::On,
                        other => {
                            return AdminResponse::err(format!(
                                "unknown fence action `{other}`: use off, reboot or on"
                            ));
                        }
                    };
                    self.ask_control(|reply| ControlMsg::Fence {
                        target,
                        action,
                        reply,
                    })
                    .await
                }
                AdminRequest::FenceAck { node } => {
                    let target = match self.node_id(&node) {
                        Ok(t) if t == self.me => {
                            return AdminResponse::err("this node is running: it is not off");
                        }
                        Ok(t) => t,
                        Err(e) => return AdminResponse::err(e),
                    };
                    self.ask_control(|reply| ControlMsg::FenceAck { target, reply })
                        .await
                }
                AdminRequest::ReloadKeys => match self.reload_keys() {
                    Ok(s) => AdminResponse::ok(serde_json::json!(s)),
                    Err(e) => AdminResponse::err(e),
                },
                AdminRequest::ForceWaitForAll => {
                    self.ask_control(|reply| ControlMsg::ForceWaitForAll { reply })
                        .await
                }
                AdminRequest::VmHa(req) => match vm_ha::handle(&self.node, req).await {
                    Ok(v) => AdminResponse::ok(v),
                    Err(e) => AdminResponse::err(e),
                },
            }
        })
    }
}
