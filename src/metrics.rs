//! Prometheus metrics: the text exposition format (version 0.0.4) rendered from the status
//! report (`oneha status`) and a few counters of events the status does not keep (leader
//! changes, failovers and their durations, fence attempts, stuck VMs found). Served by
//! [`serve`] on `metrics.listen` (off unless set).

mod http;
mod links;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

#[cfg(test)]
use http::route;
pub use http::serve;

use crate::status::StatusReport;

/// Upper bounds (seconds) of the failover duration histogram's buckets.
pub const FAILOVER_BUCKETS: [f64; 11] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Group states `oneha status` reports; each is a series of `oneha_group_state`.
pub const GROUP_STATES: [&str; 8] = [
    "started",
    "starting",
    "stopping",
    "stopped",
    "disabled",
    "frozen",
    "recovering",
    "failed",
];

/// Raft roles; each is a series of `oneha_raft_role`.
pub const RAFT_ROLES: [&str; 4] = ["leader", "follower", "candidate", "pre-candidate"];

/// Events counted since the agent started. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Counters {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    leader: Option<String>,
    leader_seen: bool,
    leader_changes: u64,
    failovers: u64,
    failover_buckets: [u64; FAILOVER_BUCKETS.len()],
    failover_sum: f64,
    last_failover: Option<f64>,
    fences: BTreeMap<FenceKey, u64>,
    stuck_reports: u64,
    stuck_found: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FenceKey {
    target: String,
    method: String,
    action: String,
    success: bool,
}

impl Counters {
    /// New counters, all zero.
    pub fn new() -> Counters {
        Counters::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Feeds the current Raft leader (call on every view change); counts a change when a
    /// leader different from the last one known is seen. The first leader is not a change.
    pub fn observe_leader(&self, leader: Option<&str>) {
        let Some(l) = leader else { return };
        self.with(|i| {
            if i.leader.as_deref() != Some(l) {
                if i.leader_seen {
                    i.leader_changes += 1;
                }
                i.leader = Some(l.to_string());
                i.leader_seen = true;
            }
        });
    }

    /// Records a completed failover: from the loss of the previous owner being noticed to
    /// the group started here.
    pub fn record_failover(&self, took: Duration) {
        let s = took.as_secs_f64();
        self.with(|i| {
            i.failovers += 1;
            i.failover_sum += s;
            i.last_failover = Some(s);
            for (b, le) in i.failover_buckets.iter_mut().zip(FAILOVER_BUCKETS) {
                if s <= le {
                    *b += 1;
                }
            }
        });
    }

    /// Records one fence attempt (one device, one try) and its outcome.
    pub fn record_fence(&self, target: &str, method: &str, action: &str, success: bool) {
        let key = FenceKey {
            target: target.to_string(),
            method: method.to_string(),
            action: action.to_string(),
            success,
        };
        self.with(|i| *i.fences.entry(key).or_default() += 1);
    }

    /// Records a stuck-VM report and how many VMs it found stuck.
    pub fn record_stuck_vm_report(&self, stuck: u64) {
        self.with(|i| {
            i.stuck_reports += 1;
            i.stuck_found += stuck;
        });
    }

    fn snapshot(&self) -> Inner {
        self.with(|i| i.clone())
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// Escapes HELP text: backslash and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The exposition text being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Renders the exposition text.
pub fn render(status: &StatusReport, counters: &Counters) -> String {
    let mut o = Out(String::new());
    render_cluster(&mut o, status);
    render_group(&mut o, status);
    render_fencing(&mut o, status);
    render_vm_ha(&mut o, status);
    render_counters(&mut o, &counters.snapshot());
    o.0
}

fn render_vm_ha(o: &mut Out, s: &StatusReport) {
    o.family(
        "oneha_vm_ha_cases_open",
        "gauge",
        "Open VM-HA cases (hypervisor hosts in ERROR being handled by oneha host-error).",
    );
    o.sample("oneha_vm_ha_cases_open", &[], s.vm_ha.len() as f64);
    o.family(
        "oneha_vm_ha_fence_blocked",
        "gauge",
        "Open VM-HA cases whose host could not be fenced yet (its VMs are untouched).",
    );
    let blocked = s.vm_ha.iter().filter(|c| c.fence_failures > 0).count();
    o.sample("oneha_vm_ha_fence_blocked", &[], blocked as f64);
}

fn render_cluster(o: &mut Out, s: &StatusReport) {
    o.family(
        "oneha_info",
        "gauge",
        "Cluster, node and topology of this agent (always 1).",
    );
    o.sample(
        "oneha_info",
        &[
            ("cluster", &s.cluster),
            ("node", &s.node),
            ("topology", &s.topology),
        ],
        1.0,
    );
    o.family(
        "oneha_raft_role",
        "gauge",
        "1 for this node's current Raft role.",
    );
    for role in RAFT_ROLES {
        o.sample(
            "oneha_raft_role",
            &[("role", role)],
            flag(s.raft.role == role),
        );
    }
    if !RAFT_ROLES.contains(&s.raft.role.as_str()) {
        o.sample("oneha_raft_role", &[("role", &s.raft.role)], 1.0);
    }
    let r = &s.raft;
    o.single(
        "oneha_raft_term",
        "gauge",
        "Current Raft term.",
        r.term as f64,
    );
    o.single(
        "oneha_raft_commit_index",
        "gauge",
        "Raft commit index.",
        r.commit as f64,
    );
    o.single(
        "oneha_raft_applied_index",
        "gauge",
        "Raft applied index.",
        r.applied as f64,
    );
    o.single(
        "oneha_raft_last_index",
        "gauge",
        "Last Raft log index.",
        r.last_index as f64,
    );
    o.single(
        "oneha_raft_log_entries",
        "gauge",
        "Raft log entries kept.",
        r.log_entries as f64,
    );
    o.single(
        "oneha_raft_has_leader",
        "gauge",
        "1 when this node knows a Raft leader.",
        flag(r.leader.is_some()),
    );
    if let Some(l) = &r.leader {
        o.family(
            "oneha_raft_leader",
            "gauge",
            "The Raft leader as this node sees it (always 1).",
        );
        o.sample("oneha_raft_leader", &[("leader", l)], 1.0);
    }
    let voters_up = s.members.iter().filter(|m| m.voter && m.up).count();
    o.single(
        "oneha_voters",
        "gauge",
        "Raft voters.",
        r.voters.len() as f64,
    );
    o.single(
        "oneha_voters_up",
        "gauge",
        "Raft voters heard from recently (a majority of oneha_voters keeps quorum).",
        voters_up as f64,
    );
    o.family(
        "oneha_member_up",
        "gauge",
        "1 when the member was heard from recently.",
    );
    for m in &s.members {
        o.sample(
            "oneha_member_up",
            &[("member", &m.name), ("role", &m.role)],
            flag(m.up),
        );
    }
    o.family(
        "oneha_member_voter",
        "gauge",
        "1 when the member votes in Raft now.",
    );
    for m in &s.members {
        o.sample("oneha_member_voter", &[("member", &m.name)], flag(m.voter));
    }
    o.family(
        "oneha_member_last_contact_seconds",
        "gauge",
        "Seconds since the member was last heard from (absent: never since start).",
    );
    for m in s.members.iter().filter(|m| !m.local) {
        if let Some(ms) = m.last_contact_ms {
            o.sample(
                "oneha_member_last_contact_seconds",
                &[("member", &m.name)],
                ms as f64 / 1000.0,
            );
        }
    }
    links::render_links(o, s);
    let t = &s.transport;
    o.single(
        "oneha_peer_frames_received_total",
        "counter",
        "Peer frames accepted.",
        t.frames_in as f64,
    );
    o.single(
        "oneha_peer_frames_sent_total",
        "counter",
        "Peer frames sent.",
        t.frames_out as f64,
    );
    o.single(
        "oneha_peer_frames_rejected_total",
        "counter",
        "Peer frames rejected (wrong key, forged, replayed).",
        t.rejected as f64,
    );
    o.single(
        "oneha_peer_handshakes_refused_total",
        "counter",
        "Peer handshakes refused (wrong or old cluster key, older agent, garbage).",
        t.handshakes_refused as f64,
    );
    o.single(
        "oneha_peer_unauthenticated_closed_total",
        "counter",
        "Unauthenticated peer connections closed (over the limit or no handshake in time).",
        t.unauth_refused as f64,
    );
    o.single(
        "oneha_peer_messages_dropped_total",
        "counter",
        "Raft messages dropped (queue full, peer down).",
        t.dropped as f64,
    );
    o.single(
        "oneha_notices",
        "gauge",
        "Warnings shown by `oneha status`.",
        s.notices.len() as f64,
    );
}

fn render_group(o: &mut Out, s: &StatusReport) {
    let g = &s.group;
    o.family(
        "oneha_group_state",
        "gauge",
        "1 for the resource group's current state.",
    );
    for st in GROUP_STATES {
        o.sample("oneha_group_state", &[("state", st)], flag(g.state == st));
    }
    if !GROUP_STATES.contains(&g.state.as_str()) {
        o.sample("oneha_group_state", &[("state", &g.state)], 1.0);
    }
    o.family(
        "oneha_group_owner",
        "gauge",
        "1 for the front-end that owns the group.",
    );
    for m in s.members.iter().filter(|m| m.role != "witness") {
        o.sample(
            "oneha_group_owner",
            &[("node", &m.name)],
            flag(g.owner.as_deref() == Some(m.name.as_str())),
        );
    }
    o.single(
        "oneha_group_generation",
        "gauge",
        "Owner generation (+1 per owner change).",
        g.generation as f64,
    );
    o.single(
        "oneha_group_enabled",
        "gauge",
        "1 when the group is enabled.",
        flag(g.enabled),
    );
    o.single(
        "oneha_group_frozen",
        "gauge",
        "1 in maintenance mode (freeze).",
        flag(g.frozen),
    );
    o.single(
        "oneha_group_waiting_for",
        "gauge",
        "Nodes that must release or be fenced before the owner may start.",
        g.waiting_for.len() as f64,
    );
    o.single(
        "oneha_group_failures",
        "gauge",
        "Failed starts and stops recorded.",
        g.failures.len() as f64,
    );
    o.single(
        "oneha_group_restart_requests_total",
        "counter",
        "In-place restarts requested (`oneha restart`).",
        g.restarts_requested as f64,
    );
    o.family(
        "oneha_resource_state",
        "gauge",
        "Each node's report of its resources (always 1).",
    );
    for m in &s.members {
        for (res, state) in &m.resources {
            o.sample(
                "oneha_resource_state",
                &[("node", &m.name), ("resource", res), ("state", state)],
                1.0,
            );
        }
    }
    if let Some(n) = s
        .stuck_vms
        .as_ref()
        .and_then(|v| v.get("stuck"))
        .and_then(|v| v.as_u64())
    {
        o.single(
            "oneha_stuck_vms",
            "gauge",
            "VMs stuck in the last stuck-VM report.",
            n as f64,
        );
    }
}

fn render_fencing(o: &mut Out, s: &StatusReport) {
    o.single(
        "oneha_fence_in_progress",
        "gauge",
        "1 while this node is fencing or waiting to fence.",
        flag(s.fencing.in_progress.is_some()),
    );
    let mut last: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for l in &s.fencing.journal {
        let result = if l.success { "success" } else { "failure" };
        let e = last.entry((l.target.as_str(), result)).or_default();
        *e = (*e).max(l.at_ms);
    }
    o.family(
        "oneha_fence_last_timestamp_seconds",
        "gauge",
        "Time of the last journaled fence result per target (Unix seconds).",
    );
    for ((target, result), ms) in last {
        o.sample(
            "oneha_fence_last_timestamp_seconds",
            &[("target", target), ("result", result)],
            ms as f64 / 1000.0,
        );
    }
}

fn render_counters(o: &mut Out, c: &Inner) {
    o.single(
        "oneha_leader_changes_total",
        "counter",
        "Raft leader changes seen by this agent.",
        c.leader_changes as f64,
    );
    o.single(
        "oneha_failovers_total",
        "counter",
        "Takeovers completed by this node.",
        c.failovers as f64,
    );
    o.family(
        "oneha_failover_duration_seconds",
        "histogram",
        "From the loss of the owner noticed to the group started here.",
    );
    for (count, le) in c.failover_buckets.iter().zip(FAILOVER_BUCKETS) {
        o.sample(
            "oneha_failover_duration_seconds_bucket",
            &[("le", &number(le))],
            *count as f64,
        );
    }
    o.sample(
        "oneha_failover_duration_seconds_bucket",
        &[("le", "+Inf")],
        c.failovers as f64,
    );
    o.sample("oneha_failover_duration_seconds_sum", &[], c.failover_sum);
    o.sample(
        "oneha_failover_duration_seconds_count",
        &[],
        c.failovers as f64,
    );
    if let Some(s) = c.last_failover {
        o.single(
            "oneha_last_failover_duration_seconds",
            "gauge",
            "Duration of the last takeover.",
            s,
        );
    }
    o.family(
        "oneha_fence_attempts_total",
        "counter",
        "Fence attempts by this node, by outcome.",
    );
    for (k, n) in &c.fences {
        let result = if k.success { "success" } else { "failure" };
        o.sample(
            "oneha_fence_attempts_total",
            &[
                ("target", &k.target),
                ("method", &k.method),
                ("action", &k.action),
                ("result", result),
            ],
            *n as f64,
        );
    }
    o.single(
        "oneha_stuck_vm_reports_total",
        "counter",
        "Stuck-VM reports made.",
        c.stuck_reports as f64,
    );
    o.single(
        "oneha_stuck_vms_found_total",
        "counter",
        "VMs found stuck, summed over all reports.",
        c.stuck_found as f64,
    );
}

#[cfg(test)]
mod tests;
