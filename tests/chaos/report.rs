//! What a campaign found: per fault type, the findings with the fault that preceded them,
//! and the report as markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Per fault type.
#[derive(Clone, Debug, Default)]
pub struct TypeStats {
    /// Faults of this type injected.
    pub injected: usize,
    /// Of which the serving node changed.
    pub failovers: usize,
    /// Time the client was not served, from injection to recovery (summed).
    pub unavailable: Duration,
    /// The longest such time for one fault.
    pub worst_unavailable: Duration,
    /// Longest time from healing to "exactly one owner serves".
    pub worst_recovery: Duration,
    /// Nodes found powered off after the fault (fenced by the cluster) and booted again.
    pub fenced_nodes: usize,
    /// Unavailability of each fault after which the serving node changed.
    pub failover_unavailable: Vec<Duration>,
}

impl TypeStats {
    /// Median unavailability over the faults that moved the group, if any did.
    pub fn median_failover(&self) -> Option<Duration> {
        let mut v = self.failover_unavailable.clone();
        v.sort();
        v.get(v.len() / 2).copied()
    }
}

/// One thing that went wrong, with what replays it.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Fault number (0-based) in the schedule.
    pub index: usize,
    /// The fault.
    pub fault: String,
    /// What happened.
    pub what: String,
}

/// What a campaign saw.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Seed.
    pub seed: u64,
    /// Topology and profile, in words.
    pub setup: String,
    /// Faults injected.
    pub injected: usize,
    /// Per fault type.
    pub by_type: BTreeMap<&'static str, TypeStats>,
    /// Invariant samples taken.
    pub samples: usize,
    /// Invariant violations (S1, S2), with the fault active at the time.
    pub violations: Vec<Finding>,
    /// Faults after which no single owner served within the bound.
    pub liveness: Vec<Finding>,
    /// Agents that exited although nobody killed them.
    pub agent_exits: Vec<Finding>,
    /// Faults during which the harness itself failed (the campaign went on, rebuilt).
    pub harness_errors: Vec<Finding>,
    /// Times the serving node changed.
    pub failovers: usize,
    /// Directories holding the nodes' logs saved after a finding.
    pub saved_logs: Vec<String>,
    /// Wall time.
    pub took: Duration,
}

impl Outcome {
    /// True when nothing went wrong.
    pub fn clean(&self) -> bool {
        self.violations.is_empty()
            && self.liveness.is_empty()
            && self.agent_exits.is_empty()
            && self.harness_errors.is_empty()
    }

    /// The report, as markdown.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Seed {} ({}), {} faults in {:.0} s: {} invariant violations in {} samples, {} \
             liveness failures, {} unexpected agent exits, {} harness errors, {} failovers.\n",
            self.seed,
            self.setup,
            self.injected,
            self.took.as_secs_f64(),
            self.violations.len(),
            self.samples,
            self.liveness.len(),
            self.agent_exits.len(),
            self.harness_errors.len(),
            self.failovers
        );
        let _ = writeln!(
            o,
            "| fault | injected | failovers | nodes fenced | unavailable (total) | median unavailable (failovers) | worst unavailable | worst recovery after heal |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        for (kind, s) in &self.by_type {
            let _ = writeln!(
                o,
                "| {kind} | {} | {} | {} | {:.1} s | {} | {:.2} s | {:.2} s |",
                s.injected,
                s.failovers,
                s.fenced_nodes,
                s.unavailable.as_secs_f64(),
                s.median_failover()
                    .map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
                s.worst_unavailable.as_secs_f64(),
                s.worst_recovery.as_secs_f64()
            );
        }
        for (title, list) in [
            ("Invariant violations", &self.violations),
            ("Liveness failures", &self.liveness),
            ("Unexpected agent exits", &self.agent_exits),
            ("Harness errors", &self.harness_errors),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(o, "\n{title} (replay: ONEHA_SEED={}):", self.seed);
            for f in list {
                let _ = writeln!(o, "- fault #{} ({}): {}", f.index, f.fault, f.what);
            }
        }
        if !self.saved_logs.is_empty() {
            let _ = writeln!(o, "\nLogs: {}", self.saved_logs.join(", "));
        }
        o
    }
}
