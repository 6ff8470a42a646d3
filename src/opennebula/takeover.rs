//! The report after a takeover: wait for oned, wait a monitoring cycle, report, keep it on disk.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::OpennebulaConfig;
use super::auth::{self, Env};
use super::error::OnedError;
use super::report::{self, Report};
use super::terminal::sanitize;
use super::xmlrpc::{Cancel, Retry, cancelled};

/// Name of the last report under the data directory.
pub const REPORT_FILE: &str = "stuck-vms.json";

/// Where the last report lives for `data_dir`.
pub fn report_path(data_dir: &Path) -> PathBuf {
    data_dir.join(REPORT_FILE)
}

/// Called by the agent once the `opennebula` unit is active on this node after a takeover.
///
/// Waits until oned answers (retrying within `cfg.wait_for_oned` while it starts or its own
/// Raft elects), waits `cfg.report_delay` so monitoring can settle what it settles by itself,
/// reads the pool, logs a summary and each stuck VM, and writes the report atomically to
/// `data_dir/stuck-vms.json`. `cancel` (value `true`, or its sender dropped) stops it at any
/// point with [`OnedError::Cancelled`].
pub async fn report_after_takeover(
    cfg: &OpennebulaConfig,
    data_dir: &Path,
    cancel: Cancel,
) -> Result<Report, OnedError> {
    let mut cancel = Some(cancel);
    let client = auth::client_for(cfg, None, None, cfg.timeout.get(), &Env::from_process())?;
    let retry = Retry::within(cfg.wait_for_oned.get());
    let version = report::oned_version(&client, retry, &mut cancel).await?;
    tracing::info!(
        endpoint = %client.endpoint(),
        version = %sanitize(&version),
        delay_s = cfg.report_delay.get().as_secs(),
        "oned answers; stuck-VM report after the monitoring delay"
    );
    tokio::select! {
        _ = tokio::time::sleep(cfg.report_delay.get()) => {}
        _ = cancelled(&mut cancel) => return Err(OnedError::Cancelled),
    }
    let report = report::build(&client, cfg.page_size, retry, &mut cancel).await?;
    log_report(&report);
    write_report(data_dir, &report)?;
    Ok(report)
}

/// Logs the summary, then one line per stuck VM with its first suggested command.
pub fn log_report(report: &Report) {
    if report.counts.stuck == 0 {
        tracing::info!("stuck-VM report: {}", report.summary());
        return;
    }
    tracing::warn!("stuck-VM report: {}", report.summary());
    for v in &report.vms {
        let state = v.lcm_state.as_deref().unwrap_or(&v.state);
        let first = v
            .suggestions
            .first()
            .map_or("(by hand)", |s| s.command.as_str());
        tracing::warn!(
            vm = v.id,
            name = %sanitize(&v.name),
            host = %sanitize(v.host.as_deref().unwrap_or("-")),
            state = %sanitize(state),
            "stuck VM: check: {}; first choice: {}",
            sanitize(&v.check),
            sanitize(first)
        );
    }
}

/// Writes the report as JSON to `data_dir/stuck-vms.json`: a temporary file, fsync, rename,
/// fsync of the directory. A reader sees the old report or the new one, never a mix.
pub fn write_report(data_dir: &Path, report: &Report) -> Result<(), OnedError> {
    let path = report_path(data_dir);
    let err = |detail: String| OnedError::ReportFile {
        path: path.display().to_string(),
        detail,
    };
    std::fs::create_dir_all(data_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", data_dir.display())))?;
    let tmp = data_dir.join(format!(".{REPORT_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| err(format!("cannot create {}: {e}", tmp.display())))?;
    f.write_all(report.to_json().as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| err(format!("cannot write {}: {e}", tmp.display())))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| err(format!("cannot rename into place: {e}")))?;
    if let Ok(d) = std::fs::File::open(data_dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The last report written under `data_dir`, for `oneha status`; `None` when there is none or
/// it cannot be read (a warning is logged for a damaged file).
pub fn load_last_report(data_dir: &Path) -> Option<Report> {
    let path = report_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("cannot read {}: {e}", path.display());
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("{} is not a stuck-VM report: {e}", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_load() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_last_report(dir.path()).is_none());
        let r = report::from_records(vec![], 4, "http://x:1/RPC2", None, 10);
        let nested = dir.path().join("a/b");
        write_report(&nested, &r).unwrap();
        assert_eq!(load_last_report(&nested), Some(r));
        std::fs::write(report_path(&nested), "{not json").unwrap();
        assert!(load_last_report(&nested).is_none());
    }
}
