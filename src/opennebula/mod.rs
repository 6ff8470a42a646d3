//! OpenNebula's XML-RPC API and the stuck-VM report.
//!
//! After a takeover, VMs whose driver operation was in flight on the dead front-end stay in
//! transient states forever. This module lists them with the `onevm recover` command that fits
//! each: [`report_after_takeover`] for the agent, [`cli::run`] for `oneha stuck-vms`.
//!
//! Layers: [`auth`] (endpoint and session) -> [`xmlrpc`] (calls; `envelope` and `reply`
//! read oned's replies) -> [`pool`] (paging; each page is decoded by `unescape` and read by
//! `parse`, which skips what the report ignores with `skip`, in pieces on several cores by
//! `page`) -> [`states`] + [`advice`] (classification, commands) -> [`report`] (the report)
//! -> [`takeover`] (the agent's hook). Text from oned reaches a terminal or a log only
//! through [`terminal::sanitize`].

pub mod advice;
pub mod auth;
pub mod cli;
mod envelope;
pub mod error;
pub mod page;
pub(crate) mod parse;
pub mod pool;
pub mod reply;
pub mod report;
mod skip;
pub mod states;
pub mod takeover;
pub mod terminal;
mod unescape;
pub mod xmlrpc;

pub use crate::config::opennebula::{MAX_PAGE_SIZE, OpennebulaConfig};
pub use cli::{StuckVmsArgs, run};
pub use error::{ErrorCode, OnedError};
pub use report::{Report, rfc3339};
pub use takeover::{load_last_report, report_after_takeover};
