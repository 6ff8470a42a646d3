//! LSB init scripts (`/etc/init.d/NAME start|stop|status`) with LSB exit-code semantics.
//!
//! `status`: 0 running, 1 dead but a pid file remains, 2 dead but a lock file remains,
//! 3 not running, 4 unknown. A script that outlives the operation's timeout is killed with
//! its whole process group (the scripts run in a group of their own).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{Fault, ResourceState};

/// Most of a script's output kept for error messages.
const OUTPUT_LIMIT: usize = 2048;
/// How long to keep reading output after the script exits (a daemon it started may hold
/// the pipe open forever).
const OUTPUT_GRACE: Duration = Duration::from_millis(50);

/// An LSB init script resource.
pub struct LsbScript {
    script: PathBuf,
}

/// How one script run ended.
struct Outcome {
    status: ExitStatus,
    output: String,
}

impl Outcome {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn describe(&self) -> String {
        let how = match self.status.code() {
            Some(c) => format!("exit code {c}"),
            None => format!("{}", self.status),
        };
        if self.output.is_empty() {
            how
        } else {
            format!("{how}: {}", self.output)
        }
    }
}

impl LsbScript {
    /// The script at `script`.
    pub fn new(script: String) -> LsbScript {
        LsbScript {
            script: PathBuf::from(script),
        }
    }

    /// `script start`; exit 0 is success (LSB: also when it already runs).
    pub async fn start(&self) -> Result<(), Fault> {
        if !self.installed() {
            return Err(format!(
                "{} does not exist; install the service or fix `script` in the config",
                self.script.display()
            )
            .into());
        }
        let out = self.run("start").await?;
        if out.code() == Some(0) {
            Ok(())
        } else {
            Err(format!("{} start: {}", self.script.display(), out.describe()).into())
        }
    }

    /// `script stop`; exit 0 is success. A non-zero exit is accepted when `status` then
    /// says the service is not running (3), as some scripts fail to stop a stopped service.
    /// No script: nothing it starts can run, so the stop succeeds.
    pub async fn stop(&self) -> Result<(), Fault> {
        if !self.installed() {
            return Ok(());
        }
        let out = self.run("stop").await?;
        if out.code() == Some(0) {
            return Ok(());
        }
        match self.monitor().await? {
            ResourceState::Stopped => Ok(()),
            state => Err(format!(
                "{} stop: {}; status afterwards: {state}",
                self.script.display(),
                out.describe()
            )
            .into()),
        }
    }

    /// `script status`, mapped by LSB exit codes; no script is stopped (as Pacemaker
    /// treats an agent that is not installed).
    pub async fn monitor(&self) -> Result<ResourceState, Fault> {
        if !self.installed() {
            return Ok(ResourceState::Stopped);
        }
        let out = self.run("status").await?;
        Ok(match out.code() {
            Some(0) => ResourceState::Running,
            Some(3) => ResourceState::Stopped,
            Some(1) => ResourceState::Failed("dead, but its pid file exists".into()),
            Some(2) => ResourceState::Failed("dead, but its lock file exists".into()),
            Some(4) => ResourceState::Failed("status unknown".into()),
            _ => ResourceState::Failed(format!("status: {}", out.describe())),
        })
    }

    fn installed(&self) -> bool {
        self.script.is_file()
    }

    /// Runs `script action` in its own process group, with stdin closed, collecting up to
    /// [`OUTPUT_LIMIT`] bytes of output. If the future is dropped (timeout) before the
    /// script exits, the whole group is killed.
    async fn run(&self, action: &str) -> Result<Outcome, Fault> {
        let mut child = Command::new(&self.script)
            .arg(action)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {} {action}: {e}", self.script.display()))?;
        let guard = GroupGuard(child.id());
        let output = Arc::new(Mutex::new(Vec::new()));
        let readers = [
            child
                .stdout
                .take()
                .map(|s| tokio::spawn(collect(s, output.clone()))),
            child
                .stderr
                .take()
                .map(|s| tokio::spawn(collect(s, output.clone()))),
        ];
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for {} {action}: {e}", self.script.display()))?;
        guard.disarm();
        for mut reader in readers.into_iter().flatten() {
            if tokio::time::timeout(OUTPUT_GRACE, &mut reader)
                .await
                .is_err()
            {
                // A daemon the script started kept the pipe: stop reading. Scripts are
                // expected to detach their daemons' output (start-stop-daemon does).
                reader.abort();
            }
        }
        let bytes = output.lock().map(|b| b.clone()).unwrap_or_default();
        Ok(Outcome {
            status,
            output: String::from_utf8_lossy(&bytes).trim().to_string(),
        })
    }
}

/// Kills a script's process group when dropped while armed.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

async fn collect(mut pipe: impl tokio::io::AsyncRead + Unpin, into: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 512];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            return;
        }
        if let Ok(mut all) = into.lock() {
            let room = OUTPUT_LIMIT.saturating_sub(all.len());
            all.extend_from_slice(&buf[..n.min(room)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &tempfile::TempDir, body: &str) -> LsbScript {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("svc");
        let written = std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)));
        assert!(written.is_ok(), "{written:?}");
        LsbScript::new(path.display().to_string())
    }

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
    }

    #[tokio::test]
    async fn status_codes_map_to_states() {
        let dir = tmp();
        for (code, want) in [
            (0, ResourceState::Running),
            (3, ResourceState::Stopped),
            (
                1,
                ResourceState::Failed("dead, but its pid file exists".into()),
            ),
            (
                2,
                ResourceState::Failed("dead, but its lock file exists".into()),
            ),
            (4, ResourceState::Failed("status unknown".into())),
        ] {
            let s = script(&dir, &format!("exit {code}"));
            assert_eq!(s.monitor().await, Ok(want), "exit {code}");
        }
    }

    #[tokio::test]
    async fn a_failed_start_reports_the_scripts_output() {
        let dir = tmp();
        let s = script(&dir, "echo \"port 2633 in use\" >&2; exit 7");
        let Err(Fault::Failed(msg)) = s.start().await else {
            panic!("start must fail");
        };
        assert!(msg.contains("exit code 7: port 2633 in use"), "{msg}");
    }

    #[tokio::test]
    async fn a_failing_stop_of_a_stopped_service_is_a_stop() {
        let dir = tmp();
        let s = script(&dir, "[ \"$1\" = status ] && exit 3; exit 1");
        assert_eq!(s.stop().await, Ok(()));
        let s = script(&dir, "[ \"$1\" = status ] && exit 0; exit 1");
        assert!(s.stop().await.is_err(), "still running after a failed stop");
    }

    #[tokio::test]
    async fn a_missing_script_is_stopped_and_cannot_start() {
        let s = LsbScript::new("/nonexistent/oneha-test-script".into());
        assert_eq!(s.monitor().await, Ok(ResourceState::Stopped));
        assert_eq!(s.stop().await, Ok(()));
        let Err(Fault::Failed(msg)) = s.start().await else {
            panic!("start must fail");
        };
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[tokio::test]
    async fn a_daemon_keeping_the_output_pipe_does_not_block_the_start() {
        let dir = tmp();
        let pid_file = dir.path().join("daemon.pid");
        let s = script(
            &dir,
            &format!("sleep 30 & echo $! > {}; echo started", pid_file.display()),
        );
        let started = tokio::time::timeout(Duration::from_secs(5), s.start()).await;
        let daemon = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if let Ok(pid) = daemon.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        assert_eq!(started, Ok(Ok(())));
    }
}
