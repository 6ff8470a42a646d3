//! The stuck-VM report: building it from oned, and showing it as a table or JSON.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dxr::Value;
use serde::{Deserialize, Serialize};

use super::advice::{self, SinceBasis, Suggestion};
use super::error::OnedError;
use super::pool::{self, VmRecord};
use super::states::{self, ACTIVE, Class};
use super::terminal::sanitize;
use super::xmlrpc::{Cancel, Client, Retry};

/// How many VMs were seen, and how many of each kind are reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// VMs read (every state except DONE).
    pub total: u64,
    /// Reported VMs (all classes below).
    pub stuck: u64,
    /// In a transient state.
    pub transient: u64,
    /// In a `*_FAILURE` state.
    pub failure: u64,
    /// LCM UNKNOWN (monitoring lost them).
    pub lost: u64,
    /// Removed or unknown state numbers.
    pub unknown: u64,
}

/// One reported VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckVm {
    /// VM id.
    pub id: i64,
    /// VM name.
    pub name: String,
    /// Owner (user name).
    pub owner: String,
    /// Host of the last history record, if any.
    pub host: Option<String>,
    /// STATE name (e.g. `ACTIVE`).
    pub state: String,
    /// LCM_STATE name when STATE is ACTIVE (e.g. `PROLOG`).
    pub lcm_state: Option<String>,
    /// STATE number.
    pub state_number: i64,
    /// LCM_STATE number.
    pub lcm_state_number: i64,
    /// transient, failure, lost, removed or unknown.
    pub class: Class,
    /// Unix time the VM entered this state, as far as its history records it.
    pub stuck_since: Option<i64>,
    /// False when only an earlier event is recorded: then the VM has been in this state for
    /// at most `seconds_in_state`.
    pub since_exact: bool,
    /// Seconds from `stuck_since` to the report's time.
    pub seconds_in_state: Option<u64>,
    /// What to check before choosing a command.
    pub check: String,
    /// Suggested commands, most likely first.
    pub suggestions: Vec<Suggestion>,
    /// Extra remark.
    pub note: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// When it was made (RFC 3339, UTC).
    pub generated_at: String,
    /// Unix time of `generated_at`.
    pub generated_unix: i64,
    /// The endpoint asked (never the session).
    pub endpoint: String,
    /// oned's version, when it said.
    pub oned_version: Option<String>,
    /// Counts.
    pub counts: Counts,
    /// Reported VMs, by id.
    pub vms: Vec<StuckVm>,
}

/// True for VMs the report lists.
pub fn is_stuck(vm: &VmRecord) -> bool {
    states::classify(vm.state, vm.lcm_state).is_stuck()
}

/// Asks oned for its version (`one.system.version`), retrying while it starts.
pub async fn oned_version(
    client: &Client,
    retry: Retry,
    cancel: &mut Option<Cancel>,
) -> Result<String, OnedError> {
    match client
        .call_retrying("one.system.version", &[], retry, cancel)
        .await?
    {
        Value::String(s) => Ok(s),
        other => Err(OnedError::Protocol {
            endpoint: client.endpoint().url.clone(),
            method: "one.system.version".into(),
            detail: format!(
                "expected the version as a string, found {}",
                super::xmlrpc::kind(&other)
            ),
        }),
    }
}

/// Reads the whole pool and builds the report.
pub async fn build(
    client: &Client,
    page_size: u32,
    retry: Retry,
    cancel: &mut Option<Cancel>,
) -> Result<Report, OnedError> {
    let version = oned_version(client, retry, cancel).await.ok();
    let scan = pool::scan_pool(client, page_size, retry, cancel, is_stuck).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    Ok(from_records(
        scan.kept,
        scan.total,
        &client.endpoint().url,
        version,
        now,
    ))
}

/// Builds a report from the stuck VMs' records (pure: tests use it directly).
pub fn from_records(
    mut stuck: Vec<VmRecord>,
    total: u64,
    endpoint: &str,
    oned_version: Option<String>,
    now: i64,
) -> Report {
    stuck.sort_by_key(|v| v.id);
    let mut counts = Counts {
        total,
        ..Counts::default()
    };
    let vms: Vec<StuckVm> = stuck
        .iter()
        .map(|vm| {
            let class = states::classify(vm.state, vm.lcm_state);
            counts.stuck += 1;
            match class {
                Class::Transient => counts.transient += 1,
                Class::Failure => counts.failure += 1,
                Class::Lost => counts.lost += 1,
                _ => counts.unknown += 1,
            }
            let a = advice::advise(vm);
            let (since, exact) = match a.since {
                SinceBasis::Exact(t) => (Some(t), true),
                SinceBasis::AtMost(t) => (Some(t), false),
                SinceBasis::None => (None, false),
            };
            StuckVm {
                id: vm.id,
                name: vm.name.clone(),
                owner: vm.owner.clone(),
                host: vm
                    .history
                    .as_ref()
                    .map(|h| h.hostname.clone())
                    .filter(|h| !h.is_empty()),
                state: states::vm_state_name(vm.state),
                lcm_state: (vm.state == ACTIVE).then(|| states::lcm_state_name(vm.lcm_state)),
                state_number: vm.state,
                lcm_state_number: vm.lcm_state,
                class,
                stuck_since: since,
                since_exact: exact,
                seconds_in_state: since.map(|t| now.saturating_sub(t).max(0) as u64),
                check: a.check,
                suggestions: a.suggestions,
                note: a.note,
            }
        })
        .collect();
    Report {
        generated_at: rfc3339(now),
        generated_unix: now,
        endpoint: endpoint.to_string(),
        oned_version,
        counts,
        vms,
    }
}

/// `2024-05-01T12:00:00Z` for a Unix time.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `3d4h`, `2h05m`, `7m12s`, `40s`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the report: {e}\"}}"))
    }

    /// One line for logs and `oneha status`.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        if c.stuck == 0 {
            format!(
                "no VM stuck among {} (report {})",
                c.total, self.generated_at
            )
        } else {
            format!(
                "{} of {} VMs stuck: {} transient, {} failure, {} lost (UNKNOWN), {} unknown \
                 state (report {})",
                c.stuck, c.total, c.transient, c.failure, c.lost, c.unknown, self.generated_at
            )
        }
    }

    /// A readable table, then per VM what to check and what to run.
    /// Every text from oned in it passes through [`sanitize`].
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let version = sanitize(self.oned_version.as_deref().unwrap_or("?"));
        let _ = writeln!(
            out,
            "Stuck-VM report from {} (oned {version}) at {}",
            sanitize(&self.endpoint),
            self.generated_at
        );
        let _ = writeln!(out, "{}", self.summary());
        if self.vms.is_empty() {
            return out;
        }
        let rows: Vec<[String; 7]> = self
            .vms
            .iter()
            .map(|v| {
                let state = match &v.lcm_state {
                    Some(l) => l.clone(),
                    None => v.state.clone(),
                };
                let age = match (v.seconds_in_state, v.since_exact) {
                    (Some(s), true) => human_duration(s),
                    (Some(s), false) => format!("<={}", human_duration(s)),
                    (None, _) => "?".into(),
                };
                let first = v
                    .suggestions
                    .first()
                    .map_or_else(|| "(by hand)".to_string(), |s| s.command.clone());
                [
                    v.id.to_string(),
                    v.name.clone(),
                    v.owner.clone(),
                    v.host.clone().unwrap_or_else(|| "-".into()),
                    state,
                    age,
                    first,
                ]
                .map(|cell| sanitize(&cell).into_owned())
            })
            .collect();
        let header = [
            "ID",
            "NAME",
            "OWNER",
            "HOST",
            "STATE",
            "IN STATE",
            "FIRST CHOICE",
        ];
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(cell.chars().count()).min(40);
            }
        }
        let line = |cells: &[String]| {
            let mut l = String::new();
            for (i, (c, w)) in cells.iter().zip(widths.iter()).enumerate() {
                let c: String = c.chars().take(*w).collect();
                if i + 1 == cells.len() {
                    l.push_str(&c);
                } else {
                    let _ = write!(l, "{c:<w$}  ");
                }
            }
            l.trim_end().to_string()
        };
        out.push('\n');
        let _ = writeln!(out, "{}", line(&header.map(String::from)));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        for v in &self.vms {
            let _ = writeln!(out);
            let state = match &v.lcm_state {
                Some(l) => format!("{} / {l}", v.state),
                None => v.state.clone(),
            };
            let _ = writeln!(
                out,
                "VM {} ({}) {} [{}]",
                v.id,
                sanitize(&v.name),
                sanitize(&state),
                v.class.as_str()
            );
            let _ = writeln!(out, "  check: {}", sanitize(&v.check));
            for s in &v.suggestions {
                let _ = writeln!(out, "  {}   # {}", sanitize(&s.command), sanitize(&s.why));
            }
            if let Some(n) = &v.note {
                let _ = writeln!(out, "  note: {}", sanitize(n));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opennebula::pool::History;

    fn vm(id: i64, state: i64, lcm: i64) -> VmRecord {
        VmRecord {
            id,
            name: format!("vm-{id}"),
            owner: "oneadmin".into(),
            state,
            lcm_state: lcm,
            deploy_id: String::new(),
            stime: 1_000,
            history: Some(History {
                hostname: "node1".into(),
                pstime: 2_000,
                ..History::default()
            }),
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(human_duration(40), "40s");
        assert_eq!(human_duration(432), "7m12s");
        assert_eq!(human_duration(7500), "2h05m");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600), "3d4h");
    }

    #[test]
    fn report_counts_sorts_and_round_trips() {
        let r = from_records(
            vec![vm(9, 3, 39), vm(2, 3, 1), vm(5, 3, 16), vm(7, 3, 99)],
            100,
            "http://localhost:2633/RPC2",
            Some("7.0.0".into()),
            5_000,
        );
        assert_eq!(r.vms.iter().map(|v| v.id).collect::<Vec<_>>(), [2, 5, 7, 9]);
        assert_eq!(
            (
                r.counts.total,
                r.counts.stuck,
                r.counts.transient,
                r.counts.failure
            ),
            (100, 4, 1, 1)
        );
        assert_eq!((r.counts.lost, r.counts.unknown), (1, 1));
        let prolog = &r.vms[0];
        assert_eq!(prolog.lcm_state.as_deref(), Some("PROLOG"));
        assert_eq!(
            (prolog.stuck_since, prolog.since_exact),
            (Some(2_000), true)
        );
        assert_eq!(prolog.seconds_in_state, Some(3_000));
        let back: Report = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
        let table = r.to_table();
        assert!(table.contains("onevm recover --success 2"), "{table}");
        assert!(table.contains("LCM_STATE_99"), "{table}");
        assert!(table.contains("4 of 100 VMs stuck"), "{table}");
        let none = from_records(vec![], 3, "e", None, 0);
        assert!(none.to_table().contains("no VM stuck among 3"));
    }

    /// Found by fuzzing: VM name, owner, host and oned's version reached the terminal raw,
    /// so a VM named with escape sequences could clear the screen or set the title.
    #[test]
    fn text_from_oned_is_sanitized_in_the_table() {
        let mut v = vm(4, 3, 1);
        v.name = "a\x1b[2Jb\x1b]0;owned\x07".into();
        v.owner = "o\u{9b}31m".into();
        if let Some(h) = v.history.as_mut() {
            h.hostname = "h\rX".into();
        }
        let r = from_records(vec![v], 1, "http://e", Some("7\x1b[8m".into()), 5_000);
        let table = r.to_table();
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert!(table.contains("a\\x1b[2Jb\\x1b]0;owned\\x07"), "{table}");
        assert!(
            table.contains("oned 7\\x1b[8m") && table.contains("h\\x0dX"),
            "{table}"
        );
        assert!(table.contains("o\\x9b31m"), "{table}");
    }
}
