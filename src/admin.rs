//! The admin API: JSON lines over a unix socket under /run/oneha (mode 0600, root only).
//!
//! One request per connection: the client writes one JSON object and a newline, the agent
//! answers with one JSON object and a newline, then closes. Easy to script
//! (`echo '{"op":"status"}' | socat - UNIX:/run/oneha/admin.sock`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// A request to the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum AdminRequest {
    /// The cluster as this node sees it.
    Status,
    /// Let the group run (optionally on a node).
    Enable {
        /// Node name.
        on: Option<String>,
    },
    /// Stop the group and keep it stopped.
    Disable,
    /// Maintenance mode on.
    Freeze,
    /// Maintenance mode off.
    Unfreeze,
    /// Move the group.
    Relocate {
        /// Node name.
        to: Option<String>,
    },
    /// Restart the group in place.
    Restart,
    /// Fence a node now.
    Fence {
        /// Node name.
        node: String,
        /// `off`, `reboot` or `on`.
        action: String,
    },
    /// An operator confirms a node is powered off (like fence_ack_manual).
    FenceAck {
        /// Node name.
        node: String,
    },
    /// Override wait-for-all (S6) on this node: act without having seen every member.
    ForceWaitForAll,
    /// Re-read the cluster key files (key rotation).
    ReloadKeys,
    /// VM HA: open, show or acknowledge host-failure cases.
    VmHa(crate::vmha::cases::VmHaRequest),
}

/// The agent's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminResponse {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result (status report, message...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AdminResponse {
    /// A success carrying a value.
    pub fn ok(v: serde_json::Value) -> AdminResponse {
        AdminResponse {
            ok: true,
            result: Some(v),
            error: None,
        }
    }
    /// A failure with a message.
    pub fn err(e: impl Into<String>) -> AdminResponse {
        AdminResponse {
            ok: false,
            result: None,
            error: Some(e.into()),
        }
    }
}

/// What serves requests (the agent).
pub trait AdminHandler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        &self,
        req: AdminRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = AdminResponse> + Send + '_>>;
}

/// Longest accepted request line.
const MAX_REQUEST: usize = 64 * 1024;

/// Binds the socket (replacing a stale one, mode 0600) and serves until shutdown.
pub async fn serve(
    path: &Path,
    handler: Arc<dyn AdminHandler>,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    serve_with(path, handler, shutdown, 0o600, None).await
}

/// [`serve`] with the socket's mode and group (e.g. 0660 and oneadmin's group for the
/// VM-HA hook's socket).
pub async fn serve_with(
    path: &Path,
    handler: Arc<dyn AdminHandler>,
    mut shutdown: watch::Receiver<bool>,
    mode: u32,
    group: Option<nix::unistd::Gid>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        // A live agent answers; a stale socket from a crash does not.
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "another agent is already serving {}; stop it first",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(gid))
            .map_err(|e| format!("cannot chgrp {}: {e}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    let path: PathBuf = path.to_path_buf();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let h = handler.clone();
                    tokio::spawn(async move { serve_one(stream, h).await });
                }
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn serve_one(stream: UnixStream, handler: Arc<dyn AdminHandler>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    let mut line = String::new();
    let resp = match tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await
    {
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => match serde_json::from_str::<AdminRequest>(line.trim()) {
            Ok(req) => handler.handle(req).await,
            Err(e) => AdminResponse::err(format!("bad request: {e}")),
        },
        Ok(Err(e)) => AdminResponse::err(format!("cannot read request: {e}")),
        Err(_) => AdminResponse::err("request not received within 5s"),
    };
    let mut out = serde_json::to_vec(&resp).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    out.push(b'\n');
    let _ = write.write_all(&out).await;
}

/// Sends one request to the agent at `path` and returns its answer.
pub async fn call(
    path: &Path,
    req: &AdminRequest,
    timeout: Duration,
) -> Result<AdminResponse, String> {
    let fut = async {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) {
                format!(
                    "the oneha agent is not running on this node (no answer on {}): start it \
                     with `systemctl start oneha` or `oneha agent`",
                    path.display()
                )
            } else {
                format!("cannot reach the agent at {}: {e}", path.display())
            }
        })?;
        let (read, mut write) = stream.into_split();
        let mut body = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        body.push(b'\n');
        write
            .write_all(&body)
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        let mut line = String::new();
        BufReader::new(read)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        serde_json::from_str::<AdminResponse>(line.trim())
            .map_err(|e| format!("bad answer from the agent: {e}"))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("the agent did not answer within {timeout:?}"))?
}
