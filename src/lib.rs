//! oneha: a cluster manager that keeps an OpenNebula front-end alive.
//!
//! Modules and what they import (`use crate::…`), from the top:
//! - `cli` -> `agent`, `admin`, `import`, `vmha_ops` and the tools' modules;
//! - `vmha_ops` (`oneha host-error`, `oneha vm-ha`) -> `admin`, `agent`, `vmha`, `fence`,
//!   `opennebula`;
//! - `agent` -> `control`, `admin`, `alerts`, `cluster`, `events`, `metrics`, `policy`,
//!   `status`, `vmha` (its VM-HA service);
//! - `control` (sees the agent only through `control::Context`) -> `policy`, `executor`,
//!   `cluster`, `events`, `fence`, `resources`, `opennebula`, `metrics`, `own_job`;
//! - `policy` (pure) -> `cluster` (state types), `resources` (`Recovery`);
//! - `executor` -> `resources`, `fence`; `metrics` -> `status` -> `opennebula`, `vmha`;
//! - `alerts` (the scripts) -> `events` -> `vmha` (case events), `opennebula` (the report);
//! - `vmha` (the host-failure hook's logic; its policy `vmha::decide` is pure) -> `fence`,
//!   `opennebula`; `fence` -> `opennebula` (`terminal::sanitize`);
//! - `cluster` and `admin` -> `vmha` (the case types kept in the replicated state and asked
//!   for over the admin API); `logging`, `notify` and `own_job` (asks systemd what it does
//!   to our unit) import nothing of the crate;
//! - `config` is a leaf: it imports nothing of the crate. It holds the whole schema of
//!   oneha.yaml and its checks (`config::fencing`, `opennebula`, `resources`, `vm_ha`,
//!   `alerts`, `key_file`...); the modules that act on a section import it from there (some
//!   re-export it under their own paths), and most modules use `config`.
//!
//! There is no cycle: the graph is acyclic, with `config` at the bottom. The test kit is a
//! separate package (`testkit/`). See `docs/architecture.md`.

pub mod admin;
pub mod agent;
pub mod alerts;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod events;
pub mod executor;
pub mod fence;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod opennebula;
pub mod own_job;
pub mod policy;
pub mod resources;
pub mod status;
pub mod vmha;
pub mod vmha_ops;
