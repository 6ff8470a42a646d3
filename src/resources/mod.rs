//! Resources the group is made of: a floating IP, systemd units, LSB init scripts.

mod config;

pub use config::{
    FailoverDomain, IpSpec, Recovery, ResourceConfig, ResourceKind, ResourceType, ResourcesConfig,
    parse_cidr,
};
