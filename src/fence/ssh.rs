//! Fencing over SSH: `ssh -l USER ADDRESS "poweroff -f"` (the seed's lab method).
//!
//! Weaker than a power switch: it needs the target's OS and sshd to answer, so it cannot fence
//! a hung or partitioned node. Success requires proof that the remote command started (a
//! marker echoed before `poweroff -f`) and then either a clean exit or the connection dropping
//! (exit 255) as the machine went down. A timeout is never success (S5).

use tokio::process::Command;

use crate::fence::agent::{run_process, tail};
use crate::fence::{Action, Answer, FenceError, SshDevice};

/// Printed by the remote shell right before powering off.
pub const MARKER: &str = "oneha-fence-started";

/// The remote command for `action`, or `None` when ssh cannot do it.
pub fn remote_command(action: Action) -> Option<String> {
    match action {
        Action::Off => Some(format!("echo {MARKER} && poweroff -f")),
        Action::Reboot => Some(format!("echo {MARKER} && reboot -f")),
        Action::Status | Action::Monitor => Some("true".to_string()),
        Action::On | Action::List => None,
    }
}

/// The `ssh` argument list (without the program name).
pub fn ssh_args(dev: &SshDevice, host: &str, command: &str) -> Vec<String> {
    let secs = dev.connect_timeout.get().as_secs().max(1);
    let mut a: Vec<String> = vec![
        "-l".into(),
        dev.user.clone(),
        "-p".into(),
        dev.port.to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!("ConnectTimeout={secs}"),
        "-o".into(),
        format!(
            "StrictHostKeyChecking={}",
            if dev.strict_host_key_checking {
                "yes"
            } else {
                "no"
            }
        ),
        "-o".into(),
        "ServerAliveInterval=2".into(),
        "-o".into(),
        "ServerAliveCountMax=2".into(),
    ];
    if let Some(id) = &dev.identity_file {
        a.push("-i".into());
        a.push(id.display().to_string());
    }
    a.push("--".into());
    a.push(host.to_string());
    a.push(command.to_string());
    a
}

/// Runs `action` on `host` over ssh.
pub async fn run_ssh(dev: &SshDevice, host: &str, action: Action) -> Result<Answer, FenceError> {
    let Some(command) = remote_command(action) else {
        return Err(FenceError::Unsupported {
            method: "ssh",
            action: action.name(),
        });
    };
    if host.is_empty() || host.starts_with('-') {
        return Err(FenceError::Config(format!("bad ssh host `{host}`")));
    }
    let what = format!("ssh {}@{host} ({})", dev.user, action.name());
    tracing::info!(host, user = %dev.user, action = action.name(), "fencing over ssh");
    let mut cmd = Command::new("ssh");
    cmd.args(ssh_args(dev, host, &command));
    let out = run_process(cmd, b"", dev.timeout.get(), &what).await?;
    judge(action, out.code, &out.stdout, &out.stderr, what)
}

/// Decides an ssh run's outcome from its exit code and output.
pub fn judge(
    action: Action,
    code: Option<i32>,
    stdout: &str,
    stderr: &str,
    what: String,
) -> Result<Answer, FenceError> {
    let started = stdout.lines().any(|l| l.trim() == MARKER);
    let ok = match action {
        Action::Off | Action::Reboot => started && matches!(code, Some(0) | Some(255) | None),
        _ => code == Some(0),
    };
    if ok {
        return Ok(match action {
            Action::Status => Answer::PowerOn,
            _ => Answer::Done,
        });
    }
    let why = if action.fences() && !started {
        "the remote command never started"
    } else {
        "the remote command failed"
    };
    Err(FenceError::Failed {
        what,
        code: code.map(|c| format!(" (exit {c})")).unwrap_or_default(),
        detail: format!("{why}: {}", tail(stderr, 3)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn dev() -> SshDevice {
        SshDevice {
            user: "root".into(),
            address: None,
            port: 22,
            identity_file: None,
            strict_host_key_checking: true,
            connect_timeout: Dur::ms(1500),
            timeout: Dur::secs(30),
        }
    }

    #[test]
    fn builds_batch_mode_arguments_with_the_host_last() {
        let a = ssh_args(&dev(), "192.0.2.12", "echo x && poweroff -f");
        let s = a.join(" ");
        assert!(
            s.starts_with("-l root -p 22 -o BatchMode=yes -o ConnectTimeout=1 "),
            "{s}"
        );
        assert!(s.contains("StrictHostKeyChecking=yes"));
        assert_eq!(
            &a[a.len() - 3..],
            ["--", "192.0.2.12", "echo x && poweroff -f"]
        );
        let mut d = dev();
        d.strict_host_key_checking = false;
        d.identity_file = Some("/etc/oneha/id_ed25519".into());
        d.user = "admin".into();
        d.port = 2222;
        let s = ssh_args(&d, "h", "true").join(" ");
        assert!(s.contains("-l admin -p 2222"), "{s}");
        assert!(s.contains("StrictHostKeyChecking=no"));
        assert!(s.contains("-i /etc/oneha/id_ed25519 -- h true"), "{s}");
    }

    #[test]
    fn off_needs_the_marker_and_never_succeeds_without_it() {
        let out = format!("{MARKER}\n");
        let w = || "ssh".to_string();
        assert_eq!(
            judge(Action::Off, Some(255), &out, "", w()),
            Ok(Answer::Done)
        );
        assert_eq!(judge(Action::Off, Some(0), &out, "", w()), Ok(Answer::Done));
        // Connection refused before anything ran: 255 without the marker.
        let e = judge(Action::Off, Some(255), "", "Connection refused", w()).unwrap_err();
        assert!(e.to_string().contains("never started"), "{e}");
        assert!(e.to_string().contains("Connection refused"));
        // poweroff itself failed.
        assert!(judge(Action::Off, Some(1), &out, "poweroff: not permitted", w()).is_err());
        assert_eq!(
            judge(Action::Status, Some(0), "", "", w()),
            Ok(Answer::PowerOn)
        );
        assert!(judge(Action::Status, Some(255), "", "", w()).is_err());
    }

    #[test]
    fn refuses_on_and_dash_hosts() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt.block_on(run_ssh(&dev(), "h", Action::On)).unwrap_err();
        assert!(matches!(e, FenceError::Unsupported { .. }));
        let e = rt
            .block_on(run_ssh(&dev(), "-oProxyCommand=x", Action::Off))
            .unwrap_err();
        assert!(matches!(e, FenceError::Config(_)));
    }
}
