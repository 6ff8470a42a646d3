//! systemd units driven over D-Bus (zbus on the system bus), as Pacemaker's systemd class
//! does: `StartUnit`/`StopUnit` in mode `replace`, then wait for that job's `JobRemoved`.
//!
//! Before a start, a runtime drop-in makes systemd leave the unit to oneha: `Restart=no`
//! (no restarts behind oneha's back) and `Before=oneha.service` (at shutdown systemd stops
//! the unit before oneha, so oneha sees it stop). It is removed after a stop.

use std::path::PathBuf;

use futures::StreamExt;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

use super::{Fault, ResourceState};

/// Where runtime drop-ins live (`/run`: gone after a reboot).
pub const RUNTIME_UNIT_DIR: &str = "/run/systemd/system";
/// File name of oneha's drop-in inside `UNIT.d/`.
pub const DROPIN_NAME: &str = "50-oneha.conf";
/// Contents of the drop-in.
pub const DROPIN: &str = "# Written by oneha while it manages this unit; removed when it stops it.\n\
[Unit]\nBefore=oneha.service\n\n[Service]\nRestart=no\n";

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    fn subscribe(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
}

/// A systemd unit resource.
pub struct SystemdUnit {
    unit: String,
}

impl SystemdUnit {
    /// The unit named `unit` (e.g. `opennebula.service`); a name without a unit type
    /// gets `.service`, as `systemctl` does.
    pub fn new(unit: String) -> SystemdUnit {
        const TYPES: &[&str] = &[
            ".service",
            ".socket",
            ".target",
            ".mount",
            ".timer",
            ".path",
            ".scope",
            ".slice",
            ".swap",
            ".device",
            ".automount",
        ];
        let unit = if TYPES.iter().any(|t| unit.ends_with(t)) {
            unit
        } else {
            format!("{unit}.service")
        };
        SystemdUnit { unit }
    }

    /// The full unit name.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// Path of oneha's runtime drop-in for this unit.
    pub fn dropin_path(&self) -> PathBuf {
        PathBuf::from(RUNTIME_UNIT_DIR)
            .join(format!("{}.d", self.unit))
            .join(DROPIN_NAME)
    }

    /// Writes the drop-in (reloading systemd if it changed), starts the unit and waits for
    /// the start job to finish with result `done`.
    pub async fn start(&self) -> Result<(), Fault> {
        let mut bus = Bus::connect().await?;
        if self.write_dropin()? {
            bus.reload().await?;
        }
        let job = bus.start_unit(&self.unit).await?;
        let result = bus.job_result(job).await?;
        if result == "done" {
            return Ok(());
        }
        let state = bus.state(&self.unit).await.unwrap_or_default();
        Err(format!(
            "start job of {} ended with result `{result}`; the unit is {state}; see \
             `journalctl -u {}` or `systemctl status {}`",
            self.unit, self.unit, self.unit
        )
        .into())
    }

    /// Stops the unit, waits for the stop job, clears a `failed` state, then removes the
    /// drop-in (and reloads).
    pub async fn stop(&self) -> Result<(), Fault> {
        let mut bus = Bus::connect().await?;
        if let Some(job) = bus.stop_unit(&self.unit).await? {
            let result = bus.job_result(job).await?;
            let (active, sub) = bus.active_sub(&self.unit).await?;
            if result != "done" || !matches!(active.as_str(), "inactive" | "failed") {
                return Err(format!(
                    "stop job of {} ended with result `{result}`; the unit is {active} ({sub})",
                    self.unit
                )
                .into());
            }
            if active == "failed" {
                // Stopped, but systemd keeps "failed" until told: clear it, so a monitor
                // (and the next probe) sees the unit cleanly stopped.
                bus.manager
                    .reset_failed_unit(&self.unit)
                    .await
                    .map_err(bus_error)?;
            }
        }
        if self.remove_dropin()? {
            bus.reload().await?;
        }
        Ok(())
    }

    /// `active` (also `activating`, `deactivating`, `reloading`: processes exist) is
    /// running, `inactive` is stopped, `failed` is failed.
    pub async fn monitor(&self) -> Result<ResourceState, Fault> {
        let bus = Bus::connect().await?;
        let (active, sub) = bus.active_sub(&self.unit).await?;
        Ok(match active.as_str() {
            "active" | "activating" | "deactivating" | "reloading" => ResourceState::Running,
            "inactive" => ResourceState::Stopped,
            _ => ResourceState::Failed(format!("{} is {active} ({sub})", self.unit)),
        })
    }

    /// Writes the drop-in unless it is already there; true if it was written.
    fn write_dropin(&self) -> Result<bool, Fault> {
        let path = self.dropin_path();
        if std::fs::read_to_string(&path).is_ok_and(|t| t == DROPIN) {
            return Ok(false);
        }
        let fail =
            |e: std::io::Error| Fault::Failed(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        std::fs::write(&path, DROPIN).map_err(fail)?;
        Ok(true)
    }

    /// Removes the drop-in (and its directory if that is then empty); true if it existed.
    fn remove_dropin(&self) -> Result<bool, Fault> {
        let path = self.dropin_path();
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir(dir); // fails if not empty: fine
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display()).into()),
        }
    }
}

/// A connection to the system bus with systemd's manager, subscribed to job signals.
struct Bus {
    conn: zbus::Connection,
    manager: ManagerProxy<'static>,
    removed: JobRemovedStream,
}

impl Bus {
    async fn connect() -> Result<Bus, Fault> {
        let conn = zbus::Connection::system()
            .await
            .map_err(|e| format!("cannot connect to the system D-Bus (is dbus running?): {e}"))?;
        let manager = ManagerProxy::new(&conn).await.map_err(bus_error)?;
        // Listen before any job exists, so its JobRemoved cannot be missed.
        let removed = manager.receive_job_removed().await.map_err(bus_error)?;
        match manager.subscribe().await {
            Ok(()) => {}
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.systemd1.AlreadySubscribed" => {}
            Err(e) => return Err(bus_error(e)),
        }
        Ok(Bus {
            conn,
            manager,
            removed,
        })
    }

    async fn reload(&self) -> Result<(), Fault> {
        self.manager
            .reload()
            .await
            .map_err(|e| format!("systemd daemon-reload failed: {e}").into())
    }

    /// Queues a start job in mode `replace`.
    async fn start_unit(&self, unit: &str) -> Result<OwnedObjectPath, Fault> {
        self.manager
            .start_unit(unit, "replace")
            .await
            .map_err(|e| format!("systemd refused to start {unit}: {e}").into())
    }

    /// Queues a stop job in mode `replace`; `None` when systemd does not know the unit
    /// (nothing to stop).
    async fn stop_unit(&self, unit: &str) -> Result<Option<OwnedObjectPath>, Fault> {
        match self.manager.stop_unit(unit, "replace").await {
            Ok(job) => Ok(Some(job)),
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("systemd refused to stop {unit}: {e}").into()),
        }
    }

    /// Waits for `job`'s JobRemoved signal and returns its result (`done`, `failed`...).
    async fn job_result(&mut self, job: OwnedObjectPath) -> Result<String, Fault> {
        while let Some(signal) = self.removed.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.job == job {
                return Ok(args.result);
            }
        }
        Err("the D-Bus connection closed while waiting for the job"
            .to_string()
            .into())
    }

    async fn active_sub(&self, unit: &str) -> Result<(String, String), Fault> {
        let path = self.manager.load_unit(unit).await.map_err(bus_error)?;
        let proxy = UnitProxy::builder(&self.conn)
            .path(path)
            .map_err(bus_error)?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(bus_error)?;
        let active = proxy.active_state().await.map_err(bus_error)?;
        let sub = proxy.sub_state().await.map_err(bus_error)?;
        Ok((active, sub))
    }

    /// `ACTIVE (SUB)` for messages.
    async fn state(&self, unit: &str) -> Result<String, Fault> {
        let (active, sub) = self.active_sub(unit).await?;
        Ok(format!("{active} ({sub})"))
    }
}

fn bus_error(e: zbus::Error) -> Fault {
    Fault::Failed(format!("D-Bus call to systemd failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_get_service_like_systemctl() {
        assert_eq!(
            SystemdUnit::new("opennebula".into()).unit(),
            "opennebula.service"
        );
        assert_eq!(SystemdUnit::new("x.service".into()).unit(), "x.service");
        assert_eq!(SystemdUnit::new("y.socket".into()).unit(), "y.socket");
        assert_eq!(
            SystemdUnit::new("opennebula".into()).dropin_path(),
            PathBuf::from("/run/systemd/system/opennebula.service.d/50-oneha.conf")
        );
    }
}
