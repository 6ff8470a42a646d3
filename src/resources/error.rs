//! Errors of resource operations.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::Dur;

/// A resource operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Monitor (status check).
    Monitor,
    /// Readying a later start.
    Prepare,
    /// Finishing background work of the last operation.
    Settle,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Monitor => "monitor",
            Op::Prepare => "prepare",
            Op::Settle => "settle",
        })
    }
}

/// Why a resource operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Another host answers for the floating IP: it was not added (split-brain alarm).
    #[error(
        "{resource}: split-brain alarm: MAC {mac} answers for VIP {address}; the address was \
         not added. Find the host with that MAC and remove the address there"
    )]
    Conflict {
        /// Resource name.
        resource: String,
        /// The floating IP.
        address: IpAddr,
        /// Hardware address of the host that answered.
        mac: String,
    },
    /// The operation did not finish in time.
    #[error("{resource}: {op} did not finish within {}", Dur(*after))]
    Timeout {
        /// Resource name.
        resource: String,
        /// What was attempted.
        op: Op,
        /// The configured timeout.
        after: Duration,
    },
    /// The operation failed.
    #[error("{resource}: {op} failed: {reason}")]
    Failed {
        /// Resource name.
        resource: String,
        /// What was attempted.
        op: Op,
        /// What went wrong and, where known, what to do.
        reason: String,
    },
    /// The resource's config entry is unusable.
    #[error("{resource}: {reason}")]
    Config {
        /// Resource name.
        resource: String,
        /// What is wrong.
        reason: String,
    },
}

impl ResourceError {
    /// True for the split-brain alarm (another host holds the floating IP).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ResourceError::Conflict { .. })
    }
}

/// A driver's failure, before the resource name and operation are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Another host answers for the address.
    Conflict {
        /// The floating IP.
        address: IpAddr,
        /// Who answered.
        mac: String,
    },
    /// Anything else.
    Failed(String),
}

impl Fault {
    /// Attaches the resource name and operation.
    pub fn into_error(self, resource: &str, op: Op) -> ResourceError {
        let resource = resource.to_string();
        match self {
            Fault::Conflict { address, mac } => ResourceError::Conflict {
                resource,
                address,
                mac,
            },
            Fault::Failed(reason) => ResourceError::Failed {
                resource,
                op,
                reason,
            },
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Conflict { address, mac } => write!(f, "MAC {mac} answers for {address}"),
            Fault::Failed(reason) => f.write_str(reason),
        }
    }
}

impl From<String> for Fault {
    fn from(reason: String) -> Fault {
        Fault::Failed(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_message_names_mac_and_vip() {
        let e = Fault::Conflict {
            address: "192.0.2.100".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            mac: "02:00:00:00:00:01".into(),
        }
        .into_error("vip", Op::Start);
        assert!(e.is_conflict());
        let text = e.to_string();
        assert!(
            text.contains("split-brain alarm: MAC 02:00:00:00:00:01 answers for VIP 192.0.2.100"),
            "{text}"
        );
    }

    #[test]
    fn timeout_message_uses_config_units() {
        let e = ResourceError::Timeout {
            resource: "opennebula".into(),
            op: Op::Stop,
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            "opennebula: stop did not finish within 1500ms"
        );
        assert!(!e.is_conflict());
    }
}
