//! Alert scripts, like Pacemaker's alert agents: each [`Event`] runs every configured
//! script whose filter takes it, with the event in `ONEHA_*` environment variables
//! (docs/alerts.md). The control loop never waits: events go into a bounded queue (full:
//! dropped and counted, see [`crate::events::dropped`]) read by one task, which runs the
//! scripts concurrently (at most [`MAX_RUNNING`] at once), kills a script's whole process
//! group when it outlives its timeout, and logs how each run ended.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::{Semaphore, mpsc};

pub use crate::config::alerts::AlertConfig;
use crate::events::{Event, Kind, Sink};

/// Events waiting for the scripts before new ones are dropped.
pub const QUEUE: usize = 64;
/// Script runs at once; more wait (and the queue fills behind them).
pub const MAX_RUNNING: usize = 8;
/// Output kept from a script for the log.
const OUTPUT_LIMIT: usize = 512;
/// How long the output of a script that exited is still read (a child it left behind may
/// hold its pipes open).
const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

// Kept beside the runner (not with the schema in `config::alerts`): it needs `Kind`.
impl AlertConfig {
    /// Whether this script wants `kind`.
    pub fn wants(&self, kind: Kind) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind.name())
    }
}

/// Who is raising the events: goes into every script's environment.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `ONEHA_CLUSTER`.
    pub cluster: String,
    /// `ONEHA_NODE`: this node.
    pub node: String,
}

/// The queue's sending side, installed as the process's [`Sink`].
struct Queue(mpsc::Sender<Event>);

impl Sink for Queue {
    fn offer(&self, ev: &Event) -> bool {
        self.0.try_send(ev.clone()).is_ok()
    }
}

/// Starts the runner on the current tokio runtime and installs it as the event sink. No
/// alerts configured: nothing is started (events are only logged).
pub fn start(alerts: &[AlertConfig], origin: Origin) {
    if alerts.is_empty() {
        return;
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(alerts.to_vec(), origin, rx));
    crate::events::install(Box::new(Queue(tx)));
}

async fn run(alerts: Vec<AlertConfig>, origin: Origin, mut rx: mpsc::Receiver<Event>) {
    let running = Arc::new(Semaphore::new(MAX_RUNNING));
    let seq = AtomicU64::new(0);
    while let Some(ev) = rx.recv().await {
        let n = seq.fetch_add(1, Ordering::Relaxed) + 1;
        let env = Arc::new(environment(&ev, &origin, n));
        for a in alerts.iter().filter(|a| a.wants(ev.kind)) {
            let Ok(permit) = running.clone().acquire_owned().await else {
                return;
            };
            let (a, env) = (a.clone(), env.clone());
            tokio::spawn(async move {
                run_one(&a, &env).await;
                drop(permit);
            });
        }
    }
}

/// The `ONEHA_*` variables a script sees for `ev` (the `n`th event of this agent).
pub fn environment(ev: &Event, origin: &Origin, n: u64) -> Vec<(&'static str, String)> {
    vec![
        ("ONEHA_EVENT", ev.kind.name().to_string()),
        ("ONEHA_MESSAGE_ID", ev.kind.message_id().to_string()),
        ("ONEHA_CLUSTER", origin.cluster.clone()),
        ("ONEHA_NODE", origin.node.clone()),
        (
            "ONEHA_GROUP",
            ev.group.map(|g| g.to_string()).unwrap_or_default(),
        ),
        ("ONEHA_TARGET", ev.target.clone().unwrap_or_default()),
        ("ONEHA_DETAIL", ev.detail.clone()),
        (
            "ONEHA_TIMESTAMP",
            crate::opennebula::rfc3339(i64::try_from(ev.at).unwrap_or(i64::MAX)),
        ),
        ("ONEHA_TIMESTAMP_EPOCH", ev.at.to_string()),
        ("ONEHA_SEQUENCE", n.to_string()),
    ]
}

/// How one run of a script ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited (or was killed by someone else): its status and the start of its output.
    Exited(std::process::ExitStatus, String),
    /// It outlived its timeout and its process group was killed.
    TimedOut,
    /// It could not be started or waited for.
    Failed(String),
}

/// Runs one script for one event and logs how it ended.
async fn run_one(a: &AlertConfig, env: &[(&'static str, String)]) {
    let event = env.first().map_or("", |(_, v)| v.as_str());
    let script = a.path.display().to_string();
    match execute(a, env).await {
        Ended::Exited(status, _) if status.success() => {
            tracing::info!(%script, event, "alert script exited 0");
        }
        Ended::Exited(status, output) => {
            tracing::warn!(%script, event, "alert script failed ({status}): {output}");
        }
        Ended::TimedOut => tracing::warn!(
            %script,
            event,
            "alert script killed after its timeout of {:?}",
            a.timeout.get()
        ),
        Ended::Failed(e) => tracing::error!(%script, event, "alert script: {e}"),
    }
}

/// Runs `a` with `env` in a process group of its own, stdin empty, and waits for it at most
/// its timeout (then kills the whole group).
pub async fn execute(a: &AlertConfig, env: &[(&'static str, String)]) -> Ended {
    let mut cmd = tokio::process::Command::new(&a.path);
    cmd.envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ended::Failed(format!("could not be started: {e}")),
    };
    let pid = child.id();
    // Both pipes are read at once and drained past the limit, so a chatty script never
    // blocks on a full pipe; the run ends when the script exits, even if a process it left
    // in the background still holds the pipes (their output is then cut off).
    let out = tokio::spawn(capture(child.stdout.take()));
    let err = tokio::spawn(capture(child.stderr.take()));
    match tokio::time::timeout(a.timeout.get(), child.wait()).await {
        Ok(Ok(status)) => {
            let (mut buf, err) = tokio::join!(finish(out), finish(err));
            buf.extend(err);
            let text = String::from_utf8_lossy(&buf);
            Ended::Exited(
                status,
                crate::opennebula::terminal::sanitize(text.trim()).into_owned(),
            )
        }
        Ok(Err(e)) => Ended::Failed(e.to_string()),
        Err(_) => {
            out.abort();
            err.abort();
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Ended::TimedOut
        }
    }
}

/// Reads `pipe` to its end, keeping the first [`OUTPUT_LIMIT`] bytes.
async fn capture(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut chunk = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = OUTPUT_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

/// What `reader` kept, waiting at most [`OUTPUT_GRACE`] after the script exited.
async fn finish(reader: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let abort = reader.abort_handle();
    match tokio::time::timeout(OUTPUT_GRACE, reader).await {
        Ok(Ok(buf)) => buf,
        _ => {
            abort.abort();
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
