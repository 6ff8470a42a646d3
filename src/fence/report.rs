//! What a fencing run did: every attempt, for the Raft journal and `oneha status --json`.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fence::xvm::{HostEntry, Op};

/// A fencing or checking action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Power off. Success proves the node is off (S5).
    Off,
    /// Power on.
    On,
    /// Power cycle. Success proves the node was reset (S5).
    Reboot,
    /// Ask the power state (never proof of anything).
    Status,
    /// Check the device itself works.
    Monitor,
    /// List what the device controls.
    List,
}

impl Action {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::On => "on",
            Action::Reboot => "reboot",
            Action::Status => "status",
            Action::Monitor => "monitor",
            Action::List => "list",
        }
    }
    /// True for the actions whose success counts as fencing (S5): `off` and `reboot`.
    pub fn fences(self) -> bool {
        matches!(self, Action::Off | Action::Reboot)
    }
    /// The fence_xvm request code.
    pub fn op(self) -> Op {
        match self {
            Action::Off => Op::Off,
            Action::On => Op::On,
            Action::Reboot => Op::Reboot,
            Action::Status => Op::Status,
            Action::Monitor => Op::Monitor,
            Action::List => Op::List,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Action, String> {
        match s {
            "off" => Ok(Action::Off),
            "on" => Ok(Action::On),
            "reboot" => Ok(Action::Reboot),
            "status" => Ok(Action::Status),
            "monitor" => Ok(Action::Monitor),
            "list" => Ok(Action::List),
            other => Err(format!(
                "unknown action `{other}`; use off, on, reboot, status, monitor or list"
            )),
        }
    }
}

/// What a device answered to one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "answer", content = "hosts")]
pub enum Answer {
    /// off/on/reboot/monitor succeeded.
    Done,
    /// status: the target runs.
    PowerOn,
    /// status: the target is off (never proof of fencing).
    PowerOff,
    /// list: what the device controls.
    Hosts(Vec<HostEntry>),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Done => f.write_str("success"),
            Answer::PowerOn => f.write_str("status ON"),
            Answer::PowerOff => f.write_str("status OFF"),
            Answer::Hosts(h) => {
                write!(f, "{} domain(s)", h.len())?;
                for e in h {
                    let st = match e.state {
                        crate::fence::xvm::PowerState::On => "on",
                        crate::fence::xvm::PowerState::Off => "off",
                    };
                    write!(f, "; {} {} {st}", e.domain, e.uuid)?;
                }
                Ok(())
            }
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptResult {
    /// The device reported success.
    Success,
    /// The device answered with a failure.
    Failed,
    /// No answer in time (never success, S5).
    Timeout,
}

/// One try of one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 0-based level index in `fencing.nodes.<target>.levels`.
    pub level: usize,
    /// 1-based try number within the level.
    pub try_number: u32,
    /// Device name.
    pub device: String,
    /// `xvm`, `agent` or `ssh`.
    pub method: String,
    /// What was asked.
    pub action: Action,
    /// How it ended.
    pub result: AttemptResult,
    /// The device's answer when it answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub answer: Option<Answer>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// When it started.
    pub started: SystemTime,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// Everything one `Fencer::fence` call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceReport {
    /// The node fenced.
    pub target: String,
    /// The node that fenced.
    pub by: String,
    /// What was asked.
    pub action: Action,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

impl FenceReport {
    /// True only when an `off` or `reboot` attempt reported success (S5): never from
    /// `status`, never from a timeout.
    pub fn success(&self) -> bool {
        self.attempts
            .iter()
            .any(|a| a.action.fences() && a.result == AttemptResult::Success)
    }
    /// The attempt that succeeded, if any.
    pub fn succeeded_by(&self) -> Option<&Attempt> {
        self.attempts
            .iter()
            .find(|a| a.result == AttemptResult::Success)
    }
    /// The last error text, for status displays.
    pub fn last_error(&self) -> Option<&str> {
        self.attempts.iter().rev().find_map(|a| a.error.as_deref())
    }
    /// Why a failed fence failed, naming each device: for every level tried, in order,
    /// `device NAME (method): ` and the error of its last try, joined by `; then `. `None`
    /// when the report succeeded or holds no error.
    pub fn failure(&self) -> Option<String> {
        if self.success() {
            return None;
        }
        let mut parts: Vec<(usize, String)> = Vec::new();
        for a in &self.attempts {
            let Some(e) = &a.error else { continue };
            let text = if a.device.is_empty() {
                e.clone()
            } else {
                format!("device {} ({}): {e}", a.device, a.method)
            };
            match parts.last_mut() {
                Some((level, last)) if *level == a.level => *last = text,
                _ => parts.push((a.level, text)),
            }
        }
        let parts: Vec<String> = parts.into_iter().map(|(_, t)| t).collect();
        (!parts.is_empty()).then(|| parts.join("; then "))
    }
}

impl fmt::Display for FenceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.success() {
            "succeeded"
        } else {
            "FAILED"
        };
        write!(
            f,
            "fence {} {} by {}: {verdict}",
            self.action, self.target, self.by
        )?;
        for a in &self.attempts {
            write!(
                f,
                "\n  level {} try {} {} ({}) {}: {:?} in {} ms",
                a.level + 1,
                a.try_number,
                a.device,
                a.method,
                a.action,
                a.result,
                a.duration_ms
            )?;
            if let Some(ans) = &a.answer {
                write!(f, " [{ans}]")?;
            }
            if let Some(e) = &a.error {
                write!(f, ": {e}")?;
            }
        }
        Ok(())
    }
}

/// The outcome of checking one device for one node (`oneha fence-check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The node whose level was checked.
    pub target: String,
    /// 0-based level index.
    pub level: usize,
    /// Device name.
    pub device: String,
    /// `xvm`, `agent` or `ssh`.
    pub method: String,
    /// The check that ran (`status`, `list` or `monitor`).
    pub action: Action,
    /// True when the device answered and, for xvm, knows the node's domain.
    pub ok: bool,
    /// What it answered, or why it failed.
    pub detail: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(level: usize, try_number: u32, device: &str, error: Option<&str>) -> Attempt {
        Attempt {
            level,
            try_number,
            device: device.into(),
            method: if device.starts_with("kvm") {
                "xvm".into()
            } else {
                "agent".into()
            },
            action: Action::Off,
            result: if error.is_some() {
                AttemptResult::Failed
            } else {
                AttemptResult::Success
            },
            answer: None,
            error: error.map(str::to_string),
            started: SystemTime::UNIX_EPOCH,
            duration_ms: 1,
        }
    }

    #[test]
    fn a_failure_names_the_device_of_each_level_tried() {
        let cases: Vec<(Vec<Attempt>, Option<&str>)> = vec![
            (
                vec![attempt(0, 1, "kvm-host", Some("no fence_virtd answered"))],
                Some("device kvm-host (xvm): no fence_virtd answered"),
            ),
            // The last try of each level, levels in order.
            (
                vec![
                    attempt(0, 1, "kvm-host", Some("timeout")),
                    attempt(0, 2, "kvm-host", Some("refused")),
                    attempt(1, 1, "ipmi1", Some("exit 1")),
                ],
                Some("device kvm-host (xvm): refused; then device ipmi1 (agent): exit 1"),
            ),
            // No levels at all: the fencer's own explanation.
            (
                vec![attempt(0, 0, "", Some("no fence levels configured"))],
                Some("no fence levels configured"),
            ),
            // Success (after a failed level) is no failure.
            (
                vec![
                    attempt(0, 1, "kvm-host", Some("timeout")),
                    attempt(1, 1, "ipmi1", None),
                ],
                None,
            ),
            (vec![], None),
        ];
        for (attempts, want) in cases {
            let r = FenceReport {
                target: "kvm1".into(),
                by: "fe1".into(),
                action: Action::Off,
                attempts,
            };
            assert_eq!(r.failure().as_deref(), want, "{r}");
        }
    }
}
