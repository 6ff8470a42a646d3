//! The fencer: each node's levels in order, retries with a pause, one operation at a time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;

use crate::config::Config;
use crate::fence::xvm_client::{self, XvmParams};
use crate::fence::{
    Action, AgentDevice, Answer, Attempt, AttemptResult, CheckResult, DeviceConfig, FenceError,
    FenceReport, NodeFencing, SshDevice, agent, find_agent, ssh,
};

/// How one device is driven from this node.
#[derive(Debug, Clone)]
enum Method {
    Xvm(XvmParams),
    Agent {
        program: PathBuf,
        /// Its options (Debug redacts secrets).
        device: AgentDevice,
    },
    Ssh(SshDevice),
}

impl Method {
    fn name(&self) -> &'static str {
        match self {
            Method::Xvm(_) => "xvm",
            Method::Agent { .. } => "agent",
            Method::Ssh(_) => "ssh",
        }
    }
}

/// One resolved level of a target node.
#[derive(Debug, Clone)]
struct Level {
    device: String,
    method: Method,
    /// Domain / plug / ssh host.
    plug: Option<String>,
    uuid: bool,
    retries: u32,
    retry_sleep: Duration,
}

impl Level {
    async fn run(&self, action: Action) -> Result<Answer, FenceError> {
        match &self.method {
            Method::Xvm(p) => {
                let domain = self.plug.as_deref().unwrap_or_default();
                xvm_client::request(p, action, domain, self.uuid).await
            }
            Method::Agent { program, device } => {
                let timeout = device.timeout.get();
                agent::run_agent(
                    program,
                    &device.options,
                    action,
                    self.plug.as_deref(),
                    timeout,
                )
                .await
            }
            Method::Ssh(dev) => {
                let host = self.plug.as_deref().unwrap_or_default();
                ssh::run_ssh(dev, host, action).await
            }
        }
    }
}

/// Fences nodes through their configured levels. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Fencer {
    local: String,
    levels: BTreeMap<String, Vec<Level>>,
    delays: BTreeMap<String, Duration>,
    busy: Mutex<()>,
}

impl Fencer {
    /// Resolves the `fencing:` section for `local_node` (the node that will fence: its xvm
    /// source address). Fails when the node is unknown, a device is missing or an agent is not
    /// installed.
    pub fn new(cfg: &Config, local_node: &str) -> Result<Fencer, FenceError> {
        if cfg.node(local_node).is_none() {
            return Err(FenceError::Config(format!(
                "this node `{local_node}` is not in nodes[]; fix the node name"
            )));
        }
        Fencer::for_targets(cfg, local_node, "fencing.nodes", &cfg.fencing.nodes)
    }

    /// A fencer for `targets` (name -> levels, devices from `cfg.fencing.devices`), run from
    /// `local_node` (its xvm source address). `section` names where the levels come from in
    /// messages. Used for cluster nodes and, by VM HA, for hypervisor hosts.
    pub fn for_targets(
        cfg: &Config,
        local_node: &str,
        section: &str,
        targets: &BTreeMap<String, NodeFencing>,
    ) -> Result<Fencer, FenceError> {
        let mut levels = BTreeMap::new();
        let mut delays = BTreeMap::new();
        for (target, nf) in targets {
            delays.insert(target.clone(), nf.delay.get());
            let mut v = Vec::new();
            for (i, l) in nf.levels.iter().enumerate() {
                let dev = cfg.fencing.devices.get(&l.device).ok_or_else(|| {
                    FenceError::Config(format!(
                        "{section}.{target}.levels[{i}]: unknown device `{}`",
                        l.device
                    ))
                })?;
                let (method, plug) = match dev {
                    DeviceConfig::Xvm(x) => (
                        Method::Xvm(XvmParams::from_device(cfg, x, local_node)?),
                        l.plug.clone(),
                    ),
                    DeviceConfig::Agent(a) => {
                        let program = find_agent(&a.agent).ok_or_else(|| {
                            FenceError::Config(format!(
                                "fence agent `{}` (device {}) is not installed",
                                a.agent, l.device
                            ))
                        })?;
                        let m = Method::Agent {
                            program,
                            device: a.clone(),
                        };
                        (m, l.plug.clone())
                    }
                    DeviceConfig::Ssh(s) => {
                        let host = s
                            .address
                            .clone()
                            .or_else(|| l.plug.clone())
                            .or_else(|| cfg.node(target).map(|n| n.address.ip().to_string()));
                        (Method::Ssh(s.clone()), host)
                    }
                };
                v.push(Level {
                    device: l.device.clone(),
                    method,
                    plug,
                    uuid: l.uuid,
                    retries: l.retries,
                    retry_sleep: l.retry_sleep.get(),
                });
            }
            levels.insert(target.clone(), v);
        }
        Ok(Fencer {
            local: local_node.to_string(),
            levels,
            delays,
            busy: Mutex::new(()),
        })
    }

    /// How long to wait before fencing `target` (`fencing.nodes.<target>.delay`; zero when
    /// unset). [`Fencer::fence`] does not wait it: the caller decides (two-node races).
    pub fn delay(&self, target: &str) -> Duration {
        self.delays.get(target).copied().unwrap_or_default()
    }

    /// True when `target` has at least one fence level.
    pub fn can_fence(&self, target: &str) -> bool {
        self.levels.get(target).is_some_and(|l| !l.is_empty())
    }

    /// Runs `action` on `target`: each level in order, each try up to `1 + retries` times with
    /// `retry_sleep` between, until one succeeds. Waits for any other operation of this fencer
    /// first. The report's [`FenceReport::success`] is the only proof of fencing.
    pub async fn fence(&self, target: &str, action: Action) -> FenceReport {
        let _busy = self.busy.lock().await;
        let mut report = FenceReport {
            target: target.to_string(),
            by: self.local.clone(),
            action,
            attempts: Vec::new(),
        };
        let levels = self
            .levels
            .get(target)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if levels.is_empty() {
            tracing::error!(target, "no fence levels configured: cannot fence");
            report.attempts.push(Attempt {
                level: 0,
                try_number: 0,
                device: String::new(),
                method: String::new(),
                action,
                result: AttemptResult::Failed,
                answer: None,
                error: Some(format!(
                    "no fence levels configured for `{target}`: add fencing.nodes.{target}.levels"
                )),
                started: SystemTime::now(),
                duration_ms: 0,
            });
            return report;
        }
        for (li, level) in levels.iter().enumerate() {
            for try_number in 1..=level.retries.saturating_add(1) {
                let attempt = attempt(li, try_number, level, action).await;
                let done = attempt.result == AttemptResult::Success;
                report.attempts.push(attempt);
                if done {
                    return report;
                }
                if try_number <= level.retries {
                    tokio::time::sleep(level.retry_sleep).await;
                }
            }
        }
        report
    }

    /// The target's power state as its first fence device reports it (`status`, one try):
    /// `Some(false)` off, `Some(true)` on, `None` when it cannot tell. A hint only, never
    /// proof of fencing (S5): a device that does not know the target may answer off. Used to
    /// skip the two-node passive delay when the peer is already off; the takeover still needs
    /// a successful `off`.
    pub async fn power_hint(&self, target: &str) -> Option<bool> {
        let level = self.levels.get(target)?.first()?;
        let _busy = self.busy.lock().await;
        match attempt(0, 1, level, Action::Status).await.answer {
            Some(Answer::PowerOff) => Some(false),
            Some(Answer::PowerOn) => Some(true),
            _ => None,
        }
    }

    /// Proves the setup: for each level of `target` (all nodes when `None`), xvm runs `list`
    /// and looks for the node's domain, an agent runs `status` (or `monitor` without a plug),
    /// ssh checks it can log in. Nothing is powered off.
    pub async fn check(&self, target: Option<&str>) -> Vec<CheckResult> {
        let _busy = self.busy.lock().await;
        let mut out = Vec::new();
        let targets: Vec<&String> = match target {
            Some(t) => match self.levels.get_key_value(t) {
                Some((k, _)) => vec![k],
                None => {
                    out.push(CheckResult {
                        target: t.to_string(),
                        level: 0,
                        device: String::new(),
                        method: String::new(),
                        action: Action::Monitor,
                        ok: false,
                        detail: format!("no fence levels configured for `{t}`"),
                        duration_ms: 0,
                    });
                    return out;
                }
            },
            None => self.levels.keys().collect(),
        };
        for t in targets {
            for (li, level) in self.levels.get(t).into_iter().flatten().enumerate() {
                out.push(check_level(t, li, level).await);
            }
        }
        out
    }
}

async fn attempt(li: usize, try_number: u32, level: &Level, action: Action) -> Attempt {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let r = level.run(action).await;
    let duration_ms = t0.elapsed().as_millis() as u64;
    let (result, answer, error) = match r {
        Ok(a) => (AttemptResult::Success, Some(a), None),
        Err(e) if e.is_timeout() => (AttemptResult::Timeout, None, Some(e.to_string())),
        Err(e) => (AttemptResult::Failed, None, Some(e.to_string())),
    };
    match &error {
        None => {
            tracing::info!(device = %level.device, method = level.method.name(), action = action.name(), try_number, duration_ms, "fence attempt succeeded")
        }
        Some(e) => {
            tracing::warn!(device = %level.device, method = level.method.name(), action = action.name(), try_number, duration_ms, error = %e, "fence attempt failed")
        }
    }
    Attempt {
        level: li,
        try_number,
        device: level.device.clone(),
        method: level.method.name().to_string(),
        action,
        result,
        answer,
        error,
        started,
        duration_ms,
    }
}

async fn check_level(target: &str, li: usize, level: &Level) -> CheckResult {
    let action = match (&level.method, &level.plug) {
        (Method::Xvm(_), _) => Action::List,
        (Method::Agent { .. }, Some(_)) => Action::Status,
        (Method::Agent { .. }, None) => Action::Monitor,
        (Method::Ssh(_), _) => Action::Status,
    };
    let t0 = Instant::now();
    let r = level.run(action).await;
    let (ok, detail) = match r {
        Ok(Answer::Hosts(hosts)) if matches!(level.method, Method::Xvm(_)) => {
            let want = level.plug.as_deref().unwrap_or_default();
            let found = hosts.iter().find(|h| {
                if level.uuid {
                    h.uuid == want
                } else {
                    h.domain == want
                }
            });
            match found {
                Some(h) => (
                    true,
                    format!(
                        "fence_virtd answered; domain `{want}` is known ({:?})",
                        h.state
                    ),
                ),
                None => (
                    false,
                    format!(
                        "fence_virtd answered but does not list domain `{want}` (it lists: {}); \
                         fix plug, or the host that answered is not the one running {target}",
                        hosts
                            .iter()
                            .map(|h| crate::opennebula::terminal::sanitize(&h.domain))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        Ok(a) => (true, a.to_string()),
        Err(e) => (false, e.to_string()),
    };
    CheckResult {
        target: target.to_string(),
        level: li,
        device: level.device.clone(),
        method: level.method.name().to_string(),
        action,
        ok,
        detail,
        duration_ms: t0.elapsed().as_millis() as u64,
    }
}

#[cfg(test)]
#[path = "fencer_tests.rs"]
mod tests;
