//! Fencing: power off a lost node before anyone takes its resources over.
//!
//! [`Fencer`] tries each node's fence levels in order (xvm, fence agents, ssh) with retries,
//! one operation at a time, and reports every attempt. Success means `off` or `reboot`
//! reported success (safety rule S5).

pub mod agent;
pub mod cli;
mod error;
mod fencer;
mod report;
pub mod ssh;
pub mod xvm;
pub mod xvm_client;

pub use crate::config::fencing::{
    AgentDevice, DeviceConfig, FencingConfig, LevelConfig, NodeFencing, REDACTED, SshDevice,
    XvmDevice, find_agent, is_secret_option, redacted, xvm_source,
};
pub use error::FenceError;
pub use fencer::Fencer;
pub use report::{Action, Answer, Attempt, AttemptResult, CheckResult, FenceReport};
