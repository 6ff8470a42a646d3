//! oneha: a cluster manager that keeps an OpenNebula front-end alive.
//!
//! Layers, from top to bottom (nothing below imports from above):
//! `cli` -> `agent` -> `cluster` (Raft) -> `policy` (pure) -> `executor` ->
//! `resources`, `fence`, `opennebula`; `config` is shared by all.
//! See `docs/architecture.md`.

pub mod config;
pub mod fence;
pub mod opennebula;
pub mod resources;
#[doc(hidden)]
pub mod testkit;
