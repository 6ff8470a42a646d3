//! Where a case's events go. [`Journal`] is the interpreter's view; [`MemoryJournal`] keeps
//! the case in memory for a front-end without a oneha agent (standalone: nothing survives
//! the process, said in the log), and the agent's journal replicates the events in the
//! cluster.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;

use super::case::{Case, Event};

/// Why an event was not journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalError {
    /// The case refused it (e.g. the host was acknowledged off meanwhile): go on with the
    /// case as journaled.
    Refused(String),
    /// The journal cannot be written now (the cluster is electing, this node is cut off):
    /// retry; nothing proceeds unjournaled.
    Unavailable(String),
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Refused(e) => write!(f, "refused: {e}"),
            JournalError::Unavailable(e) => write!(f, "journal unavailable: {e}"),
        }
    }
}

/// A case's journal.
pub trait Journal: Send + Sync {
    /// Journals `ev` and returns the case after it.
    fn record(&self, ev: Event) -> impl Future<Output = Result<Case, JournalError>> + Send;
    /// The case as journaled now (others, e.g. an operator's acknowledgement, may have
    /// added events).
    fn current(&self) -> impl Future<Output = Option<Case>> + Send;
    /// Hosts (names) other than this case's with a case opened at or after `since` (ms).
    fn recent_hosts(&self, since: u64) -> impl Future<Output = Vec<String>> + Send;
    /// True once an operator has acknowledged that this case's host is off.
    fn acked(&self) -> impl Future<Output = bool> + Send;
    /// True when the case survives this process (replicated).
    fn durable(&self) -> bool;
}

/// The standalone journal: the case in memory; operator acknowledgements are files
/// `ACK_DIR/HOST` written by `oneha fence-ack HOST --yes` after the case opened.
#[derive(Debug)]
pub struct MemoryJournal {
    case: Mutex<Case>,
    ack_dir: PathBuf,
}

/// Where standalone acknowledgements go.
pub const ACK_DIR: &str = "/run/oneha/host-ack";

/// The acknowledgement folder: `$ONEHA_HOST_ACK_DIR` (tests), else [`ACK_DIR`].
pub fn ack_dir() -> PathBuf {
    std::env::var_os("ONEHA_HOST_ACK_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(ACK_DIR), PathBuf::from)
}

impl MemoryJournal {
    /// A journal holding `case`.
    pub fn new(case: Case, ack_dir: PathBuf) -> MemoryJournal {
        MemoryJournal {
            case: Mutex::new(case),
            ack_dir,
        }
    }

    /// The case now.
    pub fn case(&self) -> Option<Case> {
        self.case.lock().ok().map(|c| c.clone())
    }
}

impl Journal for MemoryJournal {
    async fn record(&self, ev: Event) -> Result<Case, JournalError> {
        let mut c = self
            .case
            .lock()
            .map_err(|_| JournalError::Unavailable("journal lock poisoned".into()))?;
        c.apply(&ev).map_err(JournalError::Refused)?;
        Ok(c.clone())
    }

    async fn current(&self) -> Option<Case> {
        self.case()
    }

    async fn recent_hosts(&self, _since: u64) -> Vec<String> {
        Vec::new()
    }

    async fn acked(&self) -> bool {
        let Some(c) = self.case() else { return false };
        let p = self.ack_dir.join(&c.host_name);
        let Ok(meta) = std::fs::metadata(&p) else {
            return false;
        };
        let opened = std::time::UNIX_EPOCH + std::time::Duration::from_millis(c.opened_at);
        meta.modified().is_ok_and(|m| m >= opened)
    }

    fn durable(&self) -> bool {
        false
    }
}

/// Writes the standalone acknowledgement for `host` (what `oneha fence-ack HOST --yes` does
/// when no agent runs here).
pub fn write_ack(dir: &std::path::Path, host: &str) -> Result<PathBuf, String> {
    if host.is_empty() || host.contains(['/', '\0']) || host == "." || host == ".." {
        return Err(format!(
            "`{}` is not a host name",
            super::sanitize(host, 60)
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = dir.join(host);
    std::fs::write(&p, b"acknowledged\n")
        .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(p)
}
