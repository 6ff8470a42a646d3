//! oneha: a cluster manager that keeps an OpenNebula front-end alive.
//!
//! Layers, from top to bottom (nothing below imports from above):
//! `cli` -> `agent` / `control` -> `cluster` (Raft) -> `policy` (pure) -> `executor` ->
//! `resources`, `fence`, `opennebula`; `config` is shared by all.
//! See `docs/architecture.md`.

pub mod admin;
pub mod agent;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod executor;
pub mod fence;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod opennebula;
pub mod policy;
pub mod resources;
pub mod status;
pub mod vmha;
pub mod vmha_ops;
