//! The agent's VM-HA service: the cluster side of `oneha host-error`.
//!
//! Cases live in the replicated state ([`crate::vmha::cases`]). The group's owner, where
//! oned runs, works every open case with [`crate::vmha::run::work`] and a journal that
//! replicates each event before it takes effect; when the owner changes, the new owner
//! resumes the open cases from the journal (a VM with an intent and no outcome is read from
//! oned before anything is sent again). Any node answers `oneha vm-ha` and opens cases.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::cluster::node::NodeHandle;
use crate::cluster::state::{Applied, Command, NodeId};
use crate::config::Config;
use crate::vmha::case::{Case, Event, Fenced};
use crate::vmha::cases::{CaseCommand, VmHaRequest};
use crate::vmha::journal::{Journal, JournalError};
use crate::vmha::log::HookLog;
use crate::vmha::run::{self, Ctx};

/// How long one journal write may take before it is retried.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The journal of one case in the replicated state.
pub struct ClusterJournal {
    node: NodeHandle,
    id: u64,
    host_id: i64,
}

impl ClusterJournal {
    fn view_case(&self) -> Option<Case> {
        self.node.view().state.vm_ha.by_id.get(&self.id).cloned()
    }
}

impl Journal for ClusterJournal {
    async fn record(&self, ev: Event) -> Result<Case, JournalError> {
        let before = self.view_case();
        let cmd = Command::VmHa(CaseCommand::Event {
            case: self.id,
            event: ev.clone(),
        });
        match self.node.propose(cmd, PROPOSE_TIMEOUT).await {
            Ok(Applied::Done) => {}
            Ok(Applied::Ignored(why)) => return Err(JournalError::Refused(why)),
            Err(e) => return Err(JournalError::Unavailable(e)),
        }
        // The answer comes when the entry is applied; the view follows within the turn.
        let expected = before.and_then(|mut c| c.apply(&ev).ok().map(|()| c));
        let mut w = self.node.watch();
        let id = self.id;
        let want = expected.clone();
        let seen = tokio::time::timeout(
            Duration::from_secs(2),
            w.wait_for(|v| {
                let c = v.state.vm_ha.by_id.get(&id);
                want.as_ref().is_none_or(|e| c == Some(e))
            }),
        )
        .await;
        let case = match (seen, expected) {
            (Ok(Ok(_)), _) | (_, None) => self
                .view_case()
                .ok_or_else(|| JournalError::Refused(format!("case {id} is gone"))),
            (_, Some(e)) => Ok(e),
        };
        if let Ok(c) = &case {
            crate::events::case_event(c, &ev);
        }
        case
    }

    async fn current(&self) -> Option<Case> {
        self.view_case()
    }

    async fn recent_hosts(&self, since: u64) -> Vec<String> {
        self.node
            .view()
            .state
            .vm_ha
            .hosts_since(since, self.host_id)
    }

    async fn acked(&self) -> bool {
        // Acknowledgements are journaled directly by the admin API.
        false
    }

    fn durable(&self) -> bool {
        true
    }
}

/// Answers a VM-HA admin request.
pub async fn handle(node: &NodeHandle, req: VmHaRequest) -> Result<serde_json::Value, String> {
    match req {
        VmHaRequest::Open { event } => {
            let Event::Opened { host_id, .. } = &event else {
                return Err("a case opens with an Opened event".into());
            };
            let host_id = *host_id;
            let event_copy = event.clone();
            let cmd = Command::VmHa(CaseCommand::Open { event });
            match node.propose(cmd, PROPOSE_TIMEOUT).await? {
                Applied::Done | Applied::Ignored(_) => {}
            }
            // Opened now, or already open (a second ERROR transition): follow that one.
            let mut w = node.watch();
            let found = tokio::time::timeout(
                Duration::from_secs(2),
                w.wait_for(|v| v.state.vm_ha.open_for(host_id).is_some()),
            )
            .await;
            match found {
                Ok(Ok(v)) => {
                    if let Some(c) = v.state.vm_ha.open_for(host_id) {
                        crate::events::case_opened(c, &event_copy);
                    }
                    let id = v.state.vm_ha.open_for(host_id).map(|c| c.id);
                    Ok(serde_json::json!(id))
                }
                _ => Err("the case was not opened (it closed at once, or the view lags)".into()),
            }
        }
        VmHaRequest::Get { id } => {
            let v = node.view();
            let c = v
                .state
                .vm_ha
                .by_id
                .get(&id)
                .ok_or(format!("no case {id}"))?;
            serde_json::to_value(c).map_err(|e| e.to_string())
        }
        VmHaRequest::List => {
            let v = node.view();
            let cases: Vec<&Case> = v.state.vm_ha.by_id.values().collect();
            serde_json::to_value(cases).map_err(|e| e.to_string())
        }
        VmHaRequest::Ack { host } => {
            let id = node
                .view()
                .state
                .vm_ha
                .open()
                .find(|c| c.host_name == host && c.fence.done.is_none())
                .map(|c| c.id)
                .ok_or_else(|| format!("no case waiting to fence host {host}"))?;
            let ev = Event::FenceResult {
                at: run::now_ms(),
                fenced: Some(Fenced::Acked),
                error: None,
            };
            let cmd = Command::VmHa(CaseCommand::Event {
                case: id,
                event: ev,
            });
            match node.propose(cmd, PROPOSE_TIMEOUT).await? {
                Applied::Done => Ok(serde_json::json!(format!(
                    "acknowledged: host {host} is off; case {id} goes on"
                ))),
                Applied::Ignored(why) => Err(why),
            }
        }
    }
}

/// Works open cases while this node owns the running group; stops them when it does not.
pub async fn serve(
    node: NodeHandle,
    me: NodeId,
    name: String,
    cfg: Arc<Config>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut w = node.watch();
    let mut working: BTreeMap<u64, (watch::Sender<bool>, tokio::task::JoinHandle<()>)> =
        BTreeMap::new();
    loop {
        let (owner_running, open): (bool, Vec<Case>) = {
            let v = w.borrow_and_update();
            let running = crate::policy::works_vm_ha_cases(&v.state, me);
            (running, v.state.vm_ha.open().cloned().collect())
        };
        working.retain(|_, (_, task)| !task.is_finished());
        if !owner_running {
            for (_, (stop, _)) in std::mem::take(&mut working) {
                let _ = stop.send(true);
            }
        } else {
            for case in open {
                if working.contains_key(&case.id) {
                    continue;
                }
                let (stop_tx, stop_rx) = watch::channel(false);
                let task = tokio::spawn(work_one(
                    node.clone(),
                    cfg.clone(),
                    name.clone(),
                    case.clone(),
                    stop_rx,
                ));
                working.insert(case.id, (stop_tx, task));
            }
        }
        tokio::select! {
            r = w.changed() => if r.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    for (_, (stop, task)) in working {
        let _ = stop.send(true);
        let _ = task.await;
    }
}

async fn work_one(
    node: NodeHandle,
    cfg: Arc<Config>,
    name: String,
    case: Case,
    mut stop: watch::Receiver<bool>,
) {
    let vmha = &cfg.vm_ha;
    let log = HookLog::open(&vmha.log_file, case.host_id);
    let client = match crate::opennebula::auth::client_for(
        &cfg.opennebula,
        None,
        None,
        cfg.opennebula.timeout.get(),
        &crate::opennebula::auth::Env::from_process(),
    ) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log.error(&format!(
                "case {}: cannot talk to oned: {e}; retrying at the next change",
                case.id
            ));
            return;
        }
    };
    // The host's template fills the fence device (FENCE_IP): read it before anything.
    let host = loop {
        match crate::vmha::oned::host_info(&client, case.host_id).await {
            Ok(h) => break h,
            Err(e) => {
                log.error(&format!(
                    "case {}: cannot read host {}: {e}; retrying",
                    case.id, case.host_id
                ));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    };
    let fencer = crate::vmha::fencing::host_fencer(&cfg, vmha, &name, &host).map(Arc::new);
    log.info(&format!(
        "case {}: worked by {name} (the group's owner); journaled in the cluster",
        case.id
    ));
    let journal = ClusterJournal {
        node: node.clone(),
        id: case.id,
        host_id: case.host_id,
    };
    let ctx = Ctx {
        client,
        journal: &journal,
        fencer,
        rules: vmha.rules(),
        guard_window: vmha.guard.window.get(),
        log: &log,
    };
    let stop = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let end = run::work(&ctx, case, stop).await;
    if end.closed.is_none() {
        log.info(&format!(
            "case {}: handed over (this node no longer owns the group)",
            end.id
        ));
    }
}

/// The hook's socket: only opening and reading cases (`oneha host-error` runs as oneadmin).
pub struct HookOnly(pub std::sync::Arc<dyn crate::admin::AdminHandler>);

impl crate::admin::AdminHandler for HookOnly {
    fn handle(
        &self,
        req: crate::admin::AdminRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::admin::AdminResponse> + Send + '_>>
    {
        use crate::admin::{AdminRequest, AdminResponse};
        Box::pin(async move {
            match req {
                AdminRequest::VmHa(
                    r @ (VmHaRequest::Open { .. } | VmHaRequest::Get { .. } | VmHaRequest::List),
                ) => self.0.handle(AdminRequest::VmHa(r)).await,
                _ => AdminResponse::err(
                    "this socket takes only the VM-HA hook's requests; use the admin socket",
                ),
            }
        })
    }
}

/// Serves the hook's socket (mode 0660, group `vm_ha.hook_group` when it exists).
pub async fn serve_hook_socket(
    cfg: &Config,
    handler: std::sync::Arc<dyn crate::admin::AdminHandler>,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let group = cfg
        .vm_ha
        .hook_group
        .as_deref()
        .and_then(|g| nix::unistd::Group::from_name(g).ok().flatten())
        .map(|g| g.gid);
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    let h: std::sync::Arc<dyn crate::admin::AdminHandler> = std::sync::Arc::new(HookOnly(handler));
    let path = cfg.vm_ha.hook_socket(&cfg.admin_socket);
    crate::admin::serve_with(&path, h, shutdown, mode, group).await
}
