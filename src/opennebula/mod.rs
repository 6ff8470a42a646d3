//! OpenNebula's XML-RPC API and the stuck-VM report.
//!
//! After a takeover, VMs whose driver operation was in flight on the dead front-end stay in
//! transient states forever. This module lists them with the `onevm recover` command that fits
//! each: [`report_after_takeover`] for the agent, [`cli::run`] for `oneha stuck-vms`.
//!
//! Layers: [`auth`] (endpoint and session) -> [`xmlrpc`] (calls) -> [`pool`] (paging and
//! streaming VM_POOL parse) -> [`states`] + [`advice`] (classification, commands) ->
//! [`report`] (the report) -> [`takeover`] (the agent's hook).

pub mod advice;
pub mod auth;
pub mod cli;
mod config;
pub mod error;
pub mod pool;
mod reply;
pub mod report;
pub mod states;
pub mod takeover;
pub mod xmlrpc;

pub use cli::{StuckVmsArgs, run};
pub use config::{MAX_PAGE_SIZE, OpennebulaConfig};
pub use error::{ErrorCode, OnedError};
pub use report::{Report, rfc3339};
pub use takeover::{load_last_report, report_after_takeover};
