//! systemd units driven over D-Bus (zbus on the system bus), as Pacemaker's systemd class
//! does: `StartUnit`/`StopUnit` in mode `replace`, then wait for that job's `JobRemoved`.
//!
//! Before a start, a runtime drop-in makes systemd leave the unit to oneha: `Restart=no`
//! (no restarts behind oneha's back) and `Before=oneha.service` (at shutdown systemd stops
//! the unit before oneha, so oneha sees it stop). It is removed after a stop.
//!
//! A daemon-reload costs about 50 ms on a nearly empty systemd and far more on a real
//! front-end, so none is on the path of a failover when it can be avoided: the reload after
//! a stop runs in the background (see [`SystemdUnit::settle`]), and a node expected to take
//! over can load the drop-in ahead of time with [`SystemdUnit::prepare`].

use std::path::PathBuf;

use futures::StreamExt;
use tokio::task::JoinHandle;
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

/// The drop-in once the agent itself is stopping: without the ordering, so that the stop
/// jobs oneha queues for its units do not wait for oneha's own stop job (which waits for
/// the agent, which waits for them: a deadlock until the stop timeout).
pub const DROPIN_LEAVING: &str = "# Written by oneha while it manages this unit; removed when it stops it.\n\
[Service]\nRestart=no\n";

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
    #[zbus(property)]
    fn drop_in_paths(&self) -> zbus::Result<Vec<String>>;
}

/// A systemd unit resource.
pub struct SystemdUnit {
    unit: String,
    /// The daemon-reload that follows a stop, running in the background.
    reload_after_stop: tokio::sync::Mutex<Option<JoinHandle<Result<(), Fault>>>>,
    /// The monitor's proxy for the unit, kept between monitors: connecting to the bus
    /// (authentication, `Hello`, loading the unit) costs far more than the two property
    /// reads of a monitor. Dropped on any error and made again by the next monitor.
    monitor_proxy: tokio::sync::Mutex<Option<UnitProxy<'static>>>,
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
        SystemdUnit {
            unit,
            reload_after_stop: tokio::sync::Mutex::new(None),
            monitor_proxy: tokio::sync::Mutex::new(None),
        }
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

    /// Makes sure systemd has loaded the drop-in (writing it and reloading only if
    /// needed), so that a start needs no reload. Idempotent; does not start anything.
    pub async fn prepare(&self) -> Result<(), Fault> {
        self.finish_reload().await;
        let bus = Bus::connect().await?;
        self.load_dropin(&bus).await
    }

    /// Waits for background work of the last stop (the daemon-reload that unloads the
    /// drop-in) and returns its outcome.
    pub async fn settle(&self) -> Result<(), Fault> {
        let pending = self.reload_after_stop.lock().await.take();
        match pending {
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(format!("daemon-reload task: {e}").into())),
            None => Ok(()),
        }
    }

    /// Waits for a pending background reload; its failure only matters to `settle`'s
    /// caller: the next start checks what systemd has loaded anyway, and a stop must not
    /// fail (and get the node fenced) for it.
    async fn finish_reload(&self) {
        if let Err(e) = self.settle().await {
            tracing::warn!(unit = %self.unit, "daemon-reload after the last stop: {e}");
        }
    }

    /// Loads the drop-in (see [`SystemdUnit::prepare`]), starts the unit and waits for the
    /// start job to finish with result `done`.
    pub async fn start(&self) -> Result<(), Fault> {
        self.finish_reload().await;
        let mut bus = Bus::connect().await?;
        self.load_dropin(&bus).await?;
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

    /// Stops the unit, waits for the stop job, clears a `failed` state and removes the
    /// drop-in; the daemon-reload that unloads it runs in the background (`settle` waits
    /// for it; the next `prepare` or `start` does too).
    pub async fn stop(&self) -> Result<(), Fault> {
        self.finish_reload().await;
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
                // (and the next probe) sees the unit cleanly stopped. The unit is stopped
                // either way, so a refusal is no failed stop.
                if let Err(e) = bus.manager.reset_failed_unit(&self.unit).await {
                    tracing::warn!(unit = %self.unit, "reset-failed: {e}");
                }
            }
        }
        if self.remove_dropin()? {
            let reload = tokio::spawn(async move { bus.reload().await });
            *self.reload_after_stop.lock().await = Some(reload);
        }
        Ok(())
    }

    /// Before the agent stops the unit during its own shutdown: drop the ordering against
    /// `oneha.service` from the drop-in (keeping `Restart=no`) and reload, if the unit has
    /// the drop-in at all.
    pub async fn release_ordering(&self) -> Result<(), Fault> {
        let path = self.dropin_path();
        if std::fs::read_to_string(&path).ok().as_deref() != Some(DROPIN) {
            return Ok(());
        }
        std::fs::write(&path, DROPIN_LEAVING)
            .map_err(|e| Fault::Failed(format!("cannot write {}: {e}", path.display())))?;
        self.finish_reload().await;
        Bus::connect().await?.reload().await
    }

    /// Writes the drop-in unless it is there, and reloads unless systemd already has
    /// this very drop-in loaded.
    async fn load_dropin(&self, bus: &Bus) -> Result<(), Fault> {
        let path = self.dropin_path();
        let changed = self.write_dropin()?;
        let loaded = bus
            .dropin_paths(&self.unit)
            .await?
            .iter()
            .any(|p| std::path::Path::new(p) == path);
        if changed || !loaded {
            bus.reload().await?;
        }
        Ok(())
    }

    /// `active` (also `activating`, `deactivating`, `reloading`: processes exist) is
    /// running, `inactive` is stopped, `failed` is failed.
    pub async fn monitor(&self) -> Result<ResourceState, Fault> {
        let mut kept = self.monitor_proxy.lock().await;
        let read = match kept.as_ref() {
            Some(proxy) => active_sub(proxy).await.ok(),
            None => None,
        };
        let (active, sub) = match read {
            Some(states) => states,
            None => {
                // First monitor, or the kept connection failed (the bus restarted, the
                // unit was unloaded): a fresh one, and its error is the monitor's.
                *kept = None;
                let proxy = Bus::monitor_proxy(&self.unit).await?;
                let states = active_sub(&proxy).await?;
                *kept = Some(proxy);
                states
            }
        };
        Ok(match active.as_str() {
            "active" | "activating" | "deactivating" | "reloading" => ResourceState::Running,
            "inactive" => ResourceState::Stopped,
            _ => ResourceState::Failed(format!("{} is {active} ({sub})", self.unit)),
        })
    }

    /// Writes the drop-in unless it is already there; true if a different version was
    /// there (then a loaded copy is stale).
    fn write_dropin(&self) -> Result<bool, Fault> {
        let path = self.dropin_path();
        let before = std::fs::read_to_string(&path).ok();
        if before.as_deref() == Some(DROPIN) {
            return Ok(false);
        }
        let fail =
            |e: std::io::Error| Fault::Failed(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        std::fs::write(&path, DROPIN).map_err(fail)?;
        Ok(before.is_some())
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
        let conn = system_bus().await?;
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

    /// A proxy for `unit` (loaded if needed), reading properties fresh each time.
    async fn unit_proxy(&self, unit: &str) -> Result<UnitProxy<'static>, Fault> {
        unit_proxy(&self.conn, &self.manager, unit).await
    }

    async fn active_sub(&self, unit: &str) -> Result<(String, String), Fault> {
        active_sub(&self.unit_proxy(unit).await?).await
    }

    /// A proxy for `unit` on a connection of its own without any subscription (so no
    /// signal ever wakes it): what a monitor keeps.
    async fn monitor_proxy(unit: &str) -> Result<UnitProxy<'static>, Fault> {
        let conn = system_bus().await?;
        let manager = ManagerProxy::new(&conn).await.map_err(bus_error)?;
        unit_proxy(&conn, &manager, unit).await
    }

    /// The drop-in files systemd has loaded for `unit`.
    async fn dropin_paths(&self, unit: &str) -> Result<Vec<String>, Fault> {
        self.unit_proxy(unit)
            .await?
            .drop_in_paths()
            .await
            .map_err(bus_error)
    }

    /// `ACTIVE (SUB)` for messages.
    async fn state(&self, unit: &str) -> Result<String, Fault> {
        let (active, sub) = self.active_sub(unit).await?;
        Ok(format!("{active} ({sub})"))
    }
}

/// A new connection to the system bus.
async fn system_bus() -> Result<zbus::Connection, Fault> {
    zbus::Connection::system()
        .await
        .map_err(|e| format!("cannot connect to the system D-Bus (is dbus running?): {e}").into())
}

/// A proxy for `unit` on `conn` (loaded if needed), reading properties fresh each time.
async fn unit_proxy(
    conn: &zbus::Connection,
    manager: &ManagerProxy<'_>,
    unit: &str,
) -> Result<UnitProxy<'static>, Fault> {
    let path = manager.load_unit(unit).await.map_err(bus_error)?;
    UnitProxy::builder(conn)
        .path(path)
        .map_err(bus_error)?
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(bus_error)
}

/// The unit's `ActiveState` and `SubState`, read fresh.
async fn active_sub(proxy: &UnitProxy<'_>) -> Result<(String, String), Fault> {
    let active = proxy.active_state().await.map_err(bus_error)?;
    let sub = proxy.sub_state().await.map_err(bus_error)?;
    Ok((active, sub))
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
