//! What operators are told about: failovers, fencing, quorum, failed groups, stuck VMs and
//! VM-HA cases. Each event is one journal entry with a stable `MESSAGE_ID` per kind
//! (`journalctl MESSAGE_ID=...`) and the fields `EVENT`, `GROUP`, `FENCE_TARGET` or
//! `TARGET`, and is handed to the operator's alert scripts ([`crate::alerts`]) without
//! waiting for them.
//!
//! The places where these things happen call [`emit`] (or one of the helpers below) in one
//! line; with no alert runner installed (the CLI, unit tests) an event is only logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::vmha::case::{Case, Event as CaseEvent, Fenced};

/// The kinds of event, each with its name (`ONEHA_EVENT`) and journal `MESSAGE_ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// This node started the group after its previous owner was lost.
    Failover,
    /// This node started the group for another reason (first start, relocation, failback).
    GroupStarted,
    /// A fence operation confirmed its target off.
    FenceSucceeded,
    /// A fence operation failed (it is retried).
    FenceFailed,
    /// This node lost touch with a majority of the voters.
    QuorumLost,
    /// This node is in touch with a majority again.
    QuorumRegained,
    /// The group failed to start, stop or restart on this node.
    GroupFailed,
    /// The stuck-VM report after a takeover found VMs to look at.
    StuckVms,
    /// The host-error hook opened a VM-HA case for a hypervisor.
    CaseOpened,
    /// A VM-HA case fenced its hypervisor.
    CaseFenced,
    /// A fence round of a VM-HA case failed.
    CaseFenceFailed,
    /// A VM-HA case ended.
    CaseClosed,
}

/// Every kind, in the order of their names in `config::alerts::EVENT_NAMES` (what
/// `check-config` accepts in `events:`).
pub const ALL: [Kind; 12] = [
    Kind::Failover,
    Kind::GroupStarted,
    Kind::FenceSucceeded,
    Kind::FenceFailed,
    Kind::QuorumLost,
    Kind::QuorumRegained,
    Kind::GroupFailed,
    Kind::StuckVms,
    Kind::CaseOpened,
    Kind::CaseFenced,
    Kind::CaseFenceFailed,
    Kind::CaseClosed,
];

impl Kind {
    /// The name scripts see in `ONEHA_EVENT` and configs use in `events:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Failover => "failover",
            Kind::GroupStarted => "group-started",
            Kind::FenceSucceeded => "fence-succeeded",
            Kind::FenceFailed => "fence-failed",
            Kind::QuorumLost => "quorum-lost",
            Kind::QuorumRegained => "quorum-regained",
            Kind::GroupFailed => "group-failed",
            Kind::StuckVms => "stuck-vms",
            Kind::CaseOpened => "vm-ha-case-opened",
            Kind::CaseFenced => "vm-ha-host-fenced",
            Kind::CaseFenceFailed => "vm-ha-fence-failed",
            Kind::CaseClosed => "vm-ha-case-closed",
        }
    }

    /// The journal's `MESSAGE_ID` (sd-id128, 32 hex digits): fixed forever per kind.
    pub fn message_id(self) -> &'static str {
        match self {
            Kind::Failover => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e01",
            Kind::GroupStarted => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e02",
            Kind::FenceSucceeded => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e03",
            Kind::FenceFailed => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e04",
            Kind::QuorumLost => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e05",
            Kind::QuorumRegained => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e06",
            Kind::GroupFailed => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e07",
            Kind::StuckVms => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e08",
            Kind::CaseOpened => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e09",
            Kind::CaseFenced => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e0a",
            Kind::CaseFenceFailed => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e0b",
            Kind::CaseClosed => "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e0c",
        }
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == name)
    }

    /// Journal priority: failures are errors, losses warnings, the rest notices (info).
    fn level(self) -> tracing::Level {
        match self {
            Kind::FenceFailed | Kind::GroupFailed | Kind::CaseFenceFailed => tracing::Level::ERROR,
            Kind::QuorumLost | Kind::Failover | Kind::StuckVms | Kind::CaseOpened => {
                tracing::Level::WARN
            }
            _ => tracing::Level::INFO,
        }
    }

    /// Whether `target` names a fenced node (`FENCE_TARGET`) rather than another object.
    fn fences(self) -> bool {
        matches!(
            self,
            Kind::FenceSucceeded | Kind::FenceFailed | Kind::CaseFenced | Kind::CaseFenceFailed
        )
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: Kind,
    /// The group's generation (which ownership period), when the event is about the group.
    pub group: Option<u64>,
    /// The node fenced or lost, the new owner, the hypervisor host of a case.
    pub target: Option<String>,
    /// One line for people.
    pub detail: String,
    /// Seconds since the epoch.
    pub at: u64,
}

impl Event {
    /// An event of `kind` now.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Event {
        Event {
            kind,
            group: None,
            target: None,
            detail: detail.into(),
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// The same, about `target`.
    pub fn target(mut self, target: impl Into<String>) -> Event {
        self.target = Some(target.into());
        self
    }

    /// The same, about the group in `generation`.
    pub fn group(mut self, generation: u64) -> Event {
        self.group = Some(generation);
        self
    }
}

/// Where events go besides the journal: the alert runner's queue.
pub trait Sink: Send + Sync {
    /// Takes the event without waiting; false when it had to be dropped.
    fn offer(&self, ev: &Event) -> bool;
}

static SINK: OnceLock<Box<dyn Sink>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static QUORATE: Mutex<Option<bool>> = Mutex::new(None);

/// Installs the process's sink (the agent's alert runner); later calls do nothing.
pub fn install(sink: Box<dyn Sink>) {
    let _ = SINK.set(sink);
}

/// Events dropped because the alert queue was full, since the process started.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Logs `ev` (journal entry with its `MESSAGE_ID`) and hands it to the alert scripts.
pub fn emit(ev: Event) {
    log(&ev);
    if let Some(sink) = SINK.get()
        && !sink.offer(&ev)
    {
        let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            event = ev.kind.name(),
            dropped = n,
            "alert queue full: event not delivered to the alert scripts ({n} dropped so far)"
        );
    }
}

fn log(ev: &Event) {
    let k = ev.kind;
    let (fence_target, other) = match k.fences() {
        true => (ev.target.as_deref(), None),
        false => (None, ev.target.as_deref()),
    };
    macro_rules! at {
        ($lvl:ident) => {
            tracing::$lvl!(
                message_id = k.message_id(),
                event = k.name(),
                group = ev.group,
                fence_target,
                target = other,
                "{}: {}",
                k.name(),
                ev.detail
            )
        };
    }
    match k.level() {
        tracing::Level::ERROR => at!(error),
        tracing::Level::WARN => at!(warn),
        _ => at!(info),
    }
}

/// The group started here in `generation`: a failover when this node took it over after
/// its previous owner was lost.
pub fn group_started(me: &str, generation: u64, after_loss: bool) {
    let (kind, how) = match after_loss {
        true => (
            Kind::Failover,
            "took over the group after its owner was lost",
        ),
        false => (Kind::GroupStarted, "started the group"),
    };
    emit(
        Event::new(kind, format!("{me} {how} (generation {generation})"))
            .target(me)
            .group(generation),
    );
}

/// The group failed here (`what` failed: start, stop, restart) with `error`.
pub fn group_failed(generation: Option<u64>, what: &str, error: &str) {
    let ev = Event::new(Kind::GroupFailed, format!("group {what} failed: {error}"));
    emit(match generation {
        Some(g) => ev.group(g),
        None => ev,
    });
}

/// A fence operation on `target` ended (`report`: the fence report's text).
pub fn fence_result(target: &str, success: bool, report: String) {
    let kind = match success {
        true => Kind::FenceSucceeded,
        false => Kind::FenceFailed,
    };
    emit(Event::new(kind, report).target(target));
}

/// The stuck-VM report after a takeover is made: an event when it found stuck VMs.
pub fn stuck_vms(report: &crate::opennebula::Report) {
    if report.counts.stuck > 0 {
        emit(Event::new(Kind::StuckVms, report.summary()));
    }
}

/// What this node sees of its quorum, every turn: emits on each change (not the first look).
/// Two-node clusters have no quorum to lose (fencing decides), so they report nothing.
pub fn quorum_seen(two_node: bool, voters: &[u64], in_touch: impl Fn(&u64) -> bool) {
    if two_node || voters.is_empty() {
        return;
    }
    let up = voters.iter().filter(|v| in_touch(v)).count();
    let quorate = up * 2 > voters.len();
    let Ok(mut last) = QUORATE.lock() else {
        return;
    };
    let before = last.replace(quorate);
    if before.is_none_or(|b| b == quorate) {
        return;
    }
    let (kind, word) = match quorate {
        true => (Kind::QuorumRegained, "in touch with a majority again"),
        false => (Kind::QuorumLost, "lost touch with a majority"),
    };
    emit(Event::new(
        kind,
        format!("{word}: {up} of {} voters within the lease", voters.len()),
    ));
}

/// The hook's `Opened` event of `case` was journaled: an event when it opened that case (a
/// second ERROR of the same host follows the open case and says nothing).
pub fn case_opened(case: &Case, ev: &CaseEvent) {
    if let CaseEvent::Opened { at, .. } = ev
        && *at == case.opened_at
    {
        case_event(case, ev);
    }
}

/// A VM-HA case event was journaled (`case` is the case after it).
pub fn case_event(case: &Case, ev: &CaseEvent) {
    let (kind, detail) = match ev {
        CaseEvent::Opened { .. } => (Kind::CaseOpened, "host-error case opened".to_string()),
        CaseEvent::FenceResult {
            fenced: Some(how), ..
        } => (
            Kind::CaseFenced,
            format!("host fenced: {}", fenced_how(how)),
        ),
        CaseEvent::FenceResult { error, .. } => (
            Kind::CaseFenceFailed,
            format!(
                "fence round failed: {}",
                error.as_deref().unwrap_or("no detail")
            ),
        ),
        CaseEvent::Closed { how, .. } => (Kind::CaseClosed, format!("case closed ({how:?})")),
        _ => return,
    };
    emit(Event::new(kind, format!("case {}: {detail}", case.id)).target(case.host_name.clone()));
}

fn fenced_how(how: &Fenced) -> String {
    match how {
        Fenced::Device { device } => format!("device {device} reported it off"),
        Fenced::Acked => "an operator acknowledged it is off".into(),
        Fenced::Disabled => "fencing disabled for this case (-u)".into(),
    }
}

#[cfg(test)]
mod tests;
