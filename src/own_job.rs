//! What systemd is doing to the agent's own unit when the agent is told to stop: asked
//! over D-Bus, so that `systemctl restart oneha` (an upgrade, a config change) can be told
//! apart from `systemctl stop oneha` or a shutdown. The answer only informs the exit plan
//! (`policy::exit`); when the bus cannot be asked, the agent stops as for a stop.

use std::time::Duration;

use zbus::zvariant::OwnedObjectPath;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    #[zbus(name = "GetUnitByPID")]
    fn get_unit_by_pid(&self, pid: u32) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
trait Unit {
    #[zbus(property)]
    fn id(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn job(&self) -> zbus::Result<(u32, OwnedObjectPath)>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Job",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
trait Job {
    #[zbus(property)]
    fn job_type(&self) -> zbus::Result<String>;
}

/// The job systemd runs on the unit of this process, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnJob {
    /// The unit (e.g. `oneha.service`).
    pub unit: String,
    /// The job type: `stop`, `restart`, `try-restart`, ... (`None`: no job).
    pub job_type: Option<String>,
}

impl OwnJob {
    /// The job restarts the unit (stop, then start again at once).
    pub fn is_restart(&self) -> bool {
        matches!(
            self.job_type.as_deref(),
            Some("restart" | "try-restart" | "reload-or-restart")
        )
    }
}

/// Asks systemd, within `timeout`, which job it runs on the unit of this process. An
/// error when there is no system bus, the process is not in a unit, or the answer is late.
pub async fn own_job(timeout: Duration) -> Result<OwnJob, String> {
    tokio::time::timeout(timeout, ask())
        .await
        .map_err(|_| format!("systemd did not answer within {timeout:?}"))?
}

async fn ask() -> Result<OwnJob, String> {
    let bus = zbus::Connection::system()
        .await
        .map_err(|e| format!("no system bus: {e}"))?;
    let manager = ManagerProxy::new(&bus)
        .await
        .map_err(|e| format!("systemd manager: {e}"))?;
    let path = manager
        .get_unit_by_pid(std::process::id())
        .await
        .map_err(|e| format!("this process is in no unit: {e}"))?;
    let unit = UnitProxy::builder(&bus)
        .path(path)
        .map_err(|e| format!("unit path: {e}"))?
        .build()
        .await
        .map_err(|e| format!("unit: {e}"))?;
    let name = unit.id().await.map_err(|e| format!("unit name: {e}"))?;
    let (id, job_path) = unit.job().await.map_err(|e| format!("unit job: {e}"))?;
    if id == 0 {
        return Ok(OwnJob {
            unit: name,
            job_type: None,
        });
    }
    let job = JobProxy::builder(&bus)
        .path(job_path)
        .map_err(|e| format!("job path: {e}"))?
        .build()
        .await
        .map_err(|e| format!("job: {e}"))?;
    let job_type = job.job_type().await.map_err(|e| format!("job type: {e}"))?;
    Ok(OwnJob {
        unit: name,
        job_type: Some(job_type),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_restart_jobs_count_as_restarts() {
        let job = |t: Option<&str>| OwnJob {
            unit: "oneha.service".into(),
            job_type: t.map(str::to_string),
        };
        for (t, restart) in [
            (Some("restart"), true),
            (Some("try-restart"), true),
            (Some("reload-or-restart"), true),
            (Some("stop"), false),
            (Some("start"), false),
            (Some("reload"), false),
            (None, false),
        ] {
            assert_eq!(job(t).is_restart(), restart, "{t:?}");
        }
    }

    /// Outside a unit (this test process), asking fails or answers "no restart"; it never
    /// hangs beyond the timeout.
    #[tokio::test]
    async fn outside_systemd_it_answers_no_restart_in_time() {
        let t0 = std::time::Instant::now();
        let r = own_job(Duration::from_millis(500)).await;
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(!r.is_ok_and(|j| j.is_restart()));
    }
}
