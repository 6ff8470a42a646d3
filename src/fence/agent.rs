//! Runs an installed fence agent (`fence_ipmilan`, `fence_ilo5`, `fence_xvm`...) the way
//! cluster managers do: options as `key=value` lines on stdin, exit code 0 = success.
//!
//! Secrets travel only on stdin: never in argv (visible in `ps`), never in logs or error
//! texts (agent output is scrubbed of every secret value before it is kept).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::fence::xvm::{HostEntry, PowerState};
use crate::fence::{Action, Answer, FenceError, REDACTED, is_secret_option};

/// Exit code of an agent's `status` when the target is off.
pub const EXIT_OFF: i32 = 2;
/// Most output bytes kept from a child.
const MAX_OUTPUT: u64 = 1 << 20;

/// What a finished child printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

/// Runs `cmd` in its own process group with `input` on stdin; kills the whole group when
/// `timeout` passes. `what` names the program in errors.
pub async fn run_process(
    mut cmd: Command,
    input: &[u8],
    timeout: Duration,
    what: &str,
) -> Result<ProcessOutput, FenceError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| FenceError::Io(format!("cannot start {what}: {e}")))?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let work = async {
        let feed = async {
            if let Some(mut s) = stdin.take() {
                // A child that exits without reading its input is not an error here.
                let _ = s.write_all(input).await;
                let _ = s.shutdown().await;
            }
        };
        let read_out = read_limited(out.as_mut());
        let read_err = read_limited(err.as_mut());
        let ((), o, e) = tokio::join!(feed, read_out, read_err);
        let status = child.wait().await;
        (status, o, e)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((Ok(status), stdout, stderr)) => Ok(ProcessOutput {
            code: status.code(),
            stdout,
            stderr,
        }),
        Ok((Err(e), _, _)) => Err(FenceError::Io(format!("waiting for {what}: {e}"))),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            Err(FenceError::Timeout {
                what: what.to_string(),
                timeout,
            })
        }
    }
}

async fn read_limited<R: tokio::io::AsyncRead + Unpin>(r: Option<&mut R>) -> String {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The stdin text for an agent: `action=`, `plug=` (when given), then the options.
pub fn agent_input(
    options: &BTreeMap<String, String>,
    action: Action,
    plug: Option<&str>,
) -> String {
    let mut s = format!("action={}\n", action.name());
    if let Some(p) = plug {
        s.push_str(&format!("plug={p}\n"));
    }
    for (k, v) in options {
        s.push_str(&format!("{k}={v}\n"));
    }
    s
}

/// Replaces every secret option value found in `text` by [`REDACTED`].
pub fn scrub(text: &str, options: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in options {
        if is_secret_option(k) && !v.is_empty() {
            out = out.replace(v.as_str(), REDACTED);
        }
    }
    out
}

/// The last few non-empty lines of `text`, joined with ` | `.
pub fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    v[v.len().saturating_sub(lines)..].join(" | ")
}

/// Runs `program` for `action` on `plug`. Exit 0 is success (for `status`: on; 2: off).
pub async fn run_agent(
    program: &Path,
    options: &BTreeMap<String, String>,
    action: Action,
    plug: Option<&str>,
    timeout: Duration,
) -> Result<Answer, FenceError> {
    let what = format!(
        "fence agent {} (action={}{})",
        program.display(),
        action.name(),
        plug.map(|p| format!(", plug={p}")).unwrap_or_default()
    );
    tracing::info!(agent = %program.display(), action = action.name(), plug, "running fence agent");
    let input = agent_input(options, action, plug);
    let out = run_process(Command::new(program), input.as_bytes(), timeout, &what).await?;
    let detail = || {
        let t = tail(&out.stderr, 3);
        let t = if t.is_empty() {
            tail(&out.stdout, 3)
        } else {
            t
        };
        scrub(&t, options)
    };
    match (action, out.code) {
        (Action::Status, Some(0)) => Ok(Answer::PowerOn),
        (Action::Status, Some(EXIT_OFF)) => Ok(Answer::PowerOff),
        (Action::List, Some(0)) => Ok(Answer::Hosts(parse_list(&out.stdout))),
        (_, Some(0)) => Ok(Answer::Done),
        (_, code) => Err(FenceError::Failed {
            what,
            code: match code {
                Some(c) => format!(" (exit {c})"),
                None => " (killed by a signal)".to_string(),
            },
            detail: detail(),
        }),
    }
}

/// Parses an agent's `list` output: `plug,alias` lines (fence-agents) or
/// `name uuid on|off` lines (fence_xvm).
pub fn parse_list(stdout: &str) -> Vec<HostEntry> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty());
            let domain = parts.next()?.to_string();
            let rest: Vec<&str> = parts.collect();
            let state = if rest.last().is_some_and(|s| s.eq_ignore_ascii_case("off")) {
                PowerState::Off
            } else {
                PowerState::On
            };
            Some(HostEntry {
                domain,
                uuid: rest.first().copied().unwrap_or_default().to_string(),
                state,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "agent_tests.rs"]
pub(crate) mod tests;
