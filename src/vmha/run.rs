//! The interpreter of a case: gathers the facts [`decide`] asks for, carries its steps out,
//! journals every change. It makes no decision of its own.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use tokio::task::JoinSet;

use super::case::{Case, Closed, Event, Fenced, Plan, VmOp, VmOutcome};
use super::decide::{self, Facts, HostFacts, Rules, Step, VmRead};
use super::host::{HostInfo, state as host_state};
use super::journal::{Journal, JournalError};
use super::log::HookLog;
use super::oned;
use crate::fence::{Action, Fencer};
use crate::opennebula::OnedError;
use crate::opennebula::xmlrpc::Client;

/// VM reads in flight at once.
const READ_PARALLEL: usize = 16;

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a case runs with.
pub struct Ctx<'a, J> {
    /// oned.
    pub client: Arc<Client>,
    /// The journal.
    pub journal: &'a J,
    /// The fencer for this host, or why there is none (then fencing fails, retried).
    pub fencer: Result<Arc<Fencer>, String>,
    /// The policy's rules.
    pub rules: Rules,
    /// The guard's window.
    pub guard_window: Duration,
    /// The log.
    pub log: &'a HookLog,
}

enum Done {
    Fence(Result<String, String>),
    Act(i64, VmOp, Result<VmOutcome, OnedError>),
}

/// Works `case` until it closes (or `stop` resolves); returns the case as journaled.
pub async fn work<J: Journal>(
    ctx: &Ctx<'_, J>,
    mut case: Case,
    stop: impl std::future::Future<Output = ()>,
) -> Case {
    tokio::pin!(stop);
    let mut facts = Facts::default();
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut pending: Vec<(i64, VmOutcome)> = Vec::new();
    while case.closed.is_none() {
        facts.now = now_ms();
        if let Some(c) = ctx.journal.current().await {
            case = c;
            if case.closed.is_some() {
                break;
            }
        }
        facts.acked = case.fence.done.is_none() && ctx.journal.acked().await;
        let steps = decide::decide(&case, &facts, &ctx.rules);
        let mut wait_until = None;
        let mut sends = Vec::new();
        let mut read_failed = None;
        // Facts gathered or the case changed: decide again at once.
        let mut progressed = false;
        for step in steps {
            progressed |= !matches!(step, Step::WaitUntil(_));
            match step {
                Step::PollHost => {
                    if let Err(e) = poll_host(ctx, &case, &mut facts).await {
                        read_failed = Some(e);
                    }
                }
                Step::Read { vms, datastores } => {
                    if let Err(e) = read_vms(ctx, &mut facts, vms, datastores).await {
                        read_failed = Some(e);
                    }
                }
                Step::Fence => {
                    facts.fencing = true;
                    start_fence(ctx, &case, &mut tasks);
                }
                Step::Record(Event::Progress { outcomes, .. }) => pending.extend(outcomes),
                Step::Record(ev) => {
                    log_event(ctx.log, &case, &ev);
                    case = record(ctx, &case, ev).await;
                }
                Step::Send { vm, op } => sends.push((vm, op)),
                Step::WaitUntil(t) => wait_until = Some(t),
            }
        }
        let failed = read_failed.is_some();
        match read_failed {
            Some(e) => {
                ctx.log.error(&format!("cannot read from oned: {e}"));
                let since = facts.oned_failing.as_ref().map_or(facts.now, |f| f.0);
                facts.oned_failing = Some((since, e.to_string()));
                wait_until = Some(facts.now + 2000);
            }
            None => facts.oned_failing = None,
        }
        if !pending.is_empty() || !sends.is_empty() {
            let ev = Event::Progress {
                at: facts.now,
                outcomes: std::mem::take(&mut pending),
                intents: sends.iter().map(|(vm, _)| *vm).collect(),
            };
            log_event(ctx.log, &case, &ev);
            case = record(ctx, &case, ev).await;
            for (vm, op) in sends {
                facts.in_flight.insert(vm);
                let client = ctx.client.clone();
                tasks.spawn(async move { Done::Act(vm, op, oned::act(&client, vm, op).await) });
            }
            continue;
        }
        if progressed && !failed {
            continue;
        }
        // Nothing to do now: wait for a task, the next deadline, or the stop signal.
        let sleep_ms = wait_until
            .map(|t| t.saturating_sub(facts.now))
            .unwrap_or(1000)
            .min(1000);
        tokio::select! {
            Some(Ok(done)) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Done::Fence(r) => {
                        facts.fencing = false;
                        let ev = match r {
                            Ok(device) => Event::FenceResult { at: now_ms(), fenced: Some(Fenced::Device { device }), error: None },
                            Err(e) => Event::FenceResult { at: now_ms(), fenced: None, error: Some(e) },
                        };
                        log_event(ctx.log, &case, &ev);
                        case = record(ctx, &case, ev).await;
                    }
                    Done::Act(vm, op, r) => {
                        facts.in_flight.remove(&vm);
                        match r {
                            Ok(o) => pending.push((vm, o)),
                            Err(e) => ctx.log.error(&format!(
                                "{}: no answer from oned ({e}); reading the VM again before retrying",
                                op.command(vm)
                            )),
                        }
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            _ = &mut stop => {
                tasks.abort_all();
                return case;
            }
        }
    }
    case
}

async fn record<J: Journal>(ctx: &Ctx<'_, J>, case: &Case, ev: Event) -> Case {
    let mut delay = Duration::from_millis(200);
    loop {
        match ctx.journal.record(ev.clone()).await {
            Ok(c) => return c,
            Err(JournalError::Unavailable(e)) => {
                // The cluster may be electing: nothing proceeds unjournaled.
                ctx.log
                    .error(&format!("cannot journal the case yet: {e}; retrying"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(JournalError::Refused(e)) => {
                tracing::info!(case = case.id, "event not applied: {e}");
                return ctx.journal.current().await.unwrap_or_else(|| case.clone());
            }
        }
    }
}

async fn poll_host<J: Journal>(
    ctx: &Ctx<'_, J>,
    case: &Case,
    facts: &mut Facts,
) -> Result<(), OnedError> {
    let host = oned::host_info(&ctx.client, case.host_id).await?;
    let pool = oned::host_pool(&ctx.client).await?;
    let now = now_ms();
    let since = now.saturating_sub(ctx.guard_window.as_millis() as u64);
    let mut failing: std::collections::BTreeSet<String> = pool
        .iter()
        .filter(|h| decide::host_failed(h.state))
        .map(|h| h.name.clone())
        .collect();
    failing.extend(ctx.journal.recent_hosts(since).await);
    failing.insert(host.name.clone());
    let changed = facts.host.as_ref().is_none_or(|h| h.state != host.state);
    if changed {
        ctx.log.info(&format!(
            "host {} is {}",
            host.name,
            host_state::name(host.state)
        ));
    }
    facts.host = Some(HostFacts {
        state: host.state,
        vms: host.vms,
        failing: failing.len() as u32,
        read_at: now,
    });
    Ok(())
}

async fn read_vms<J: Journal>(
    ctx: &Ctx<'_, J>,
    facts: &mut Facts,
    vms: Vec<i64>,
    datastores: bool,
) -> Result<(), OnedError> {
    if datastores {
        facts.datastores = Some(oned::datastores(&ctx.client).await?);
    }
    let client = &ctx.client;
    let mut reads = futures::stream::iter(vms)
        .map(|id| async move { (id, oned::vm_info(client, id).await) })
        .buffer_unordered(READ_PARALLEL);
    let mut first_err = None;
    while let Some((id, r)) = reads.next().await {
        match r {
            Ok(vm) => {
                facts.vms.insert(
                    id,
                    VmRead {
                        vm,
                        read_at: now_ms(),
                    },
                );
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn start_fence<J: Journal>(ctx: &Ctx<'_, J>, case: &Case, tasks: &mut JoinSet<Done>) {
    let host = case.host_name.clone();
    match &ctx.fencer {
        Ok(f) => {
            ctx.log.info(&format!("Fencing host {host}"));
            let f = f.clone();
            tasks.spawn(async move {
                let report = f.fence(&host, Action::Off).await;
                Done::Fence(match report.succeeded_by() {
                    Some(a) => Ok(a.device.clone()),
                    None => Err(report
                        .failure()
                        .unwrap_or_else(|| "every fence level failed".to_string())),
                })
            });
        }
        Err(e) => {
            let e = e.clone();
            tasks.spawn(async move { Done::Fence(Err(e)) });
        }
    }
}

/// The stock hook's log lines for each event, plus what oneha adds.
fn log_event(log: &HookLog, case: &Case, ev: &Event) {
    match ev {
        Event::Opened { .. } => {}
        Event::FenceResult {
            fenced: Some(Fenced::Device { device }),
            ..
        } => log.info(&format!("Fencing success (device {device})")),
        Event::FenceResult {
            fenced: Some(Fenced::Disabled),
            ..
        } => log.error(
            "WARNING: Fencing disabled (-u): VMs are recovered without proof that the host is \
             off; if it still runs them, they run twice and their disks may be corrupted",
        ),
        Event::FenceResult {
            fenced: Some(Fenced::Acked),
            ..
        } => log.info("Fencing acknowledged by an operator (oneha fence-ack)"),
        Event::FenceResult { error, .. } => log.error(&format!(
            "Fencing error: {}; no VM is touched; retrying with backoff (release with \
             `oneha fence-ack {} --yes` once you have checked it is off)",
            error.as_deref().unwrap_or("failed"),
            case.host_name
        )),
        Event::Planned { vms, .. } => {
            let ids: Vec<String> = vms.keys().map(|i| i.to_string()).collect();
            log.info(&format!("vms: [{}]", ids.join(", ")));
            for (id, (name, plan)) in vms {
                match plan {
                    Plan::Act { op, priority } => log.info(&format!(
                        "plan: {} ({}, priority {priority})",
                        op.command(*id),
                        super::sanitize(name, 60)
                    )),
                    Plan::Skip { reason } => log.info(&format!(
                        "skip VM {id} ({}): {reason}",
                        super::sanitize(name, 60)
                    )),
                }
            }
        }
        Event::Progress {
            outcomes, intents, ..
        } => {
            for vm in intents {
                if let Some(e) = case.vms.get(vm)
                    && let Plan::Act { op, .. } = e.plan
                {
                    log.info(&op.command(*vm));
                }
            }
            for (vm, o) in outcomes {
                match o {
                    VmOutcome::Done { detail } => log.info(&format!("VM {vm}: done ({detail})")),
                    VmOutcome::Gone => log.info(&format!("VM {vm}: no longer exists")),
                    VmOutcome::Locked { detail } => log.error(&format!(
                        "VM {vm}: refused, the VM is locked ({detail}); `onevm unlock {vm}`, \
                         then recover it by hand"
                    )),
                    VmOutcome::WrongState { detail } => {
                        log.error(&format!("VM {vm}: refused in its state ({detail})"))
                    }
                    VmOutcome::Failed { detail } => {
                        log.error(&format!("VM {vm}: failed: {detail}"))
                    }
                }
            }
        }
        Event::Closed { how, .. } => match how {
            Closed::HostBack { state } => log.info(&format!(
                "Exiting. Host came back ({state}): nothing fenced, no VM touched."
            )),
            Closed::Guard { failing, limit } => log.error(&format!(
                "Mass-failure guard: {failing} hosts failing, more than {limit}: nothing fenced, \
                 no VM touched. A front-end cut off from the hypervisors sees every host fail; \
                 check the network, then run the hook by hand for each host that is really down"
            )),
            Closed::Finished => log.info("Hook finished"),
            Closed::Cancelled => log.info("Cancelled by an operator"),
            Closed::Error { detail } => log.error(&format!("Exiting due to error: {detail}")),
        },
    }
}

/// The case for a host and flags, opened now, and its `Opened` event.
pub fn open_case(
    id: u64,
    host: &HostInfo,
    flags: &super::input::Flags,
    interval: Duration,
) -> (Case, Event) {
    let now = now_ms();
    let wait = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::from(flags.pause));
    let case = Case::new(
        id,
        host.id,
        &host.name,
        flags,
        now,
        now.saturating_add(wait),
    );
    (case.clone(), case.opened_event())
}
