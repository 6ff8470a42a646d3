//! Resources the group is made of: a floating IP, systemd units, LSB init scripts,
//! filesystems.
//!
//! [`Resource`] wraps one driver ([`vip`], [`systemd`], [`lsb`], [`filesystem`]) and bounds every operation
//! by the configured timeouts; [`Group`] starts an ordered list and stops it in reverse.
//! Nothing here knows about the cluster: callers decide when to start and stop.

pub mod arp;
pub mod cli;
mod error;
pub mod filesystem;
mod fs_commands;
mod group;
pub mod lsb;
mod mount_users;
mod mountinfo;
pub mod ndp;
pub mod systemd;
pub mod unit_files;
pub mod vip;

use std::future::Future;
use std::time::Duration;

pub use crate::config::filesystem::FsSpec;
pub use crate::config::resources::{
    FailoverDomain, IpSpec, Recovery, ResourceConfig, ResourceKind, ResourceType, ResourcesConfig,
    parse_cidr,
};
pub use error::{Fault, Op, ResourceError};
pub use group::{Group, GroupError, Probe};

/// What a monitor saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceState {
    /// Running as it should.
    Running,
    /// Cleanly stopped (or never started).
    Stopped,
    /// Neither: dead with leftovers, failed unit, no interface...
    Failed(String),
    /// In place, but its network link has no carrier (the floating IP on an interface whose
    /// cable is out): no restart can fix that, so the policy gives the link a grace to come
    /// back before it treats this as a failure.
    LinkDown(String),
}

impl std::fmt::Display for ResourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceState::Running => f.write_str("running"),
            ResourceState::Stopped => f.write_str("stopped"),
            ResourceState::Failed(why) => write!(f, "failed: {why}"),
            ResourceState::LinkDown(why) => write!(f, "link down: {why}"),
        }
    }
}

/// `$call` with `$d` bound to whichever driver `$driver` holds.
macro_rules! each_driver {
    ($driver:expr, $d:ident => $call:expr) => {
        match $driver {
            Driver::Ip($d) => $call,
            Driver::Systemd($d) => $call,
            Driver::Lsb($d) => $call,
            Driver::Filesystem($d) => $call,
        }
    };
}

/// The driver behind a resource.
enum Driver {
    Ip(vip::Vip),
    Systemd(systemd::SystemdUnit),
    Lsb(lsb::LsbScript),
    Filesystem(filesystem::Filesystem),
}

/// One resource of the group, ready to start, stop and monitor.
pub struct Resource {
    name: String,
    driver: Driver,
    start_timeout: Duration,
    stop_timeout: Duration,
    monitor_timeout: Duration,
    monitor_interval: Duration,
}

impl Resource {
    /// Builds the resource a config entry describes.
    pub fn from_config(c: &ResourceConfig) -> Result<Resource, ResourceError> {
        let kind = c.spec().map_err(|reason| ResourceError::Config {
            resource: c.name.clone(),
            reason,
        })?;
        let driver = match kind {
            ResourceKind::Ip(spec) => Driver::Ip(vip::Vip::new(spec)),
            ResourceKind::Systemd(unit) => Driver::Systemd(systemd::SystemdUnit::new(unit)),
            ResourceKind::Lsb(script) => Driver::Lsb(lsb::LsbScript::new(script)),
            ResourceKind::Filesystem(spec) => Driver::Filesystem(filesystem::Filesystem::new(spec)),
        };
        Ok(Resource {
            name: c.name.clone(),
            driver,
            start_timeout: c.start_timeout.get(),
            stop_timeout: c.stop_timeout.get(),
            monitor_timeout: c.monitor_timeout.get(),
            monitor_interval: c.monitor_interval.get(),
        })
    }

    /// Name from the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How often the resource should be monitored while it runs.
    pub fn monitor_interval(&self) -> Duration {
        self.monitor_interval
    }

    /// Starts it, within `start_timeout`. Starting a running resource succeeds.
    pub async fn start(&self) -> Result<(), ResourceError> {
        let run = async { each_driver!(&self.driver, d => d.start().await) };
        self.bounded(Op::Start, self.start_timeout, run).await
    }

    /// Stops it, within `stop_timeout`. Stopping a stopped resource succeeds. An error here
    /// means the resource may still run: the node must be fenced before it runs elsewhere.
    pub async fn stop(&self) -> Result<(), ResourceError> {
        let run = async { each_driver!(&self.driver, d => d.stop().await) };
        self.bounded(Op::Stop, self.stop_timeout, run).await
    }

    /// Checks it, within `monitor_timeout`.
    pub async fn monitor(&self) -> Result<ResourceState, ResourceError> {
        let run = async { each_driver!(&self.driver, d => d.monitor().await) };
        self.bounded(Op::Monitor, self.monitor_timeout, run).await
    }

    /// Before the agent stops this resource during its own shutdown (systemd: the unit's
    /// stop must not wait for `oneha.service`'s stop). Bounded by `stop_timeout`.
    pub async fn release_ordering(&self) -> Result<(), ResourceError> {
        let run = async {
            match &self.driver {
                Driver::Systemd(d) => d.release_ordering().await,
                Driver::Ip(_) | Driver::Lsb(_) | Driver::Filesystem(_) => Ok(()),
            }
        };
        self.bounded(Op::Stop, self.stop_timeout, run).await
    }

    /// Readies a later start where that saves time then (systemd: loads the drop-in, so
    /// the start needs no daemon-reload); nothing is started. Bounded by `start_timeout`.
    pub async fn prepare(&self) -> Result<(), ResourceError> {
        let run = async {
            match &self.driver {
                Driver::Systemd(d) => d.prepare().await,
                Driver::Ip(_) | Driver::Lsb(_) | Driver::Filesystem(_) => Ok(()),
            }
        };
        self.bounded(Op::Prepare, self.start_timeout, run).await
    }

    /// Finishes what the last operation left running in the background: the follow-up
    /// gratuitous ARP burst after a start (floating IP without periodic refresh), the
    /// daemon-reload after a stop (systemd). One-shot commands call it before exiting;
    /// the agent need not. Bounded by `stop_timeout`.
    pub async fn settle(&self) -> Result<(), ResourceError> {
        let run = async {
            match &self.driver {
                Driver::Ip(d) => {
                    d.wait_announced().await;
                    Ok(())
                }
                Driver::Systemd(d) => d.settle().await,
                Driver::Lsb(_) | Driver::Filesystem(_) => Ok(()),
            }
        };
        self.bounded(Op::Settle, self.stop_timeout, run).await
    }

    async fn bounded<T>(
        &self,
        op: Op,
        limit: Duration,
        run: impl Future<Output = Result<T, Fault>>,
    ) -> Result<T, ResourceError> {
        match tokio::time::timeout(limit, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(fault)) => Err(fault.into_error(&self.name, op)),
            Err(_) => Err(ResourceError::Timeout {
                resource: self.name.clone(),
                op,
                after: limit,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}

    /// The agent runs these on tokio tasks: they must be Send (never polled here).
    #[test]
    fn resources_and_their_operations_can_move_between_threads() {
        assert_send_sync::<Resource>();
        assert_send_sync::<Group>();
        let cfg = ResourceConfig::systemd("oned", "opennebula.service");
        let Ok(r) = Resource::from_config(&cfg) else {
            panic!("a systemd resource builds");
        };
        assert_send(&r.start());
        assert_send(&r.stop());
        assert_send(&r.monitor());
        let g = Group::new(vec![r]);
        assert_send(&g.start());
        assert_send(&g.stop());
        assert_send(&g.probe());
    }

    #[test]
    fn a_config_entry_missing_its_key_is_a_config_error() {
        let mut cfg = ResourceConfig::systemd("oned", "opennebula.service");
        cfg.unit = None;
        match Resource::from_config(&cfg) {
            Err(ResourceError::Config { resource, reason }) => {
                assert_eq!(resource, "oned");
                assert!(reason.contains("needs `unit`"), "{reason}");
            }
            _ => panic!("expected a config error"),
        }
    }
}
