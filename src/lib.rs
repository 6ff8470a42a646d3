//! oneha: a cluster manager that keeps an OpenNebula front-end alive.
//!
//! Modules and what they import (`use crate::…`), from the top:
//! - `cli` -> `agent`, `admin`, `import` and the tools' modules;
//! - `agent` -> `control`, `admin`, `cluster`, `metrics`, `status`;
//! - `control` (sees the agent only through `control::Context`) -> `policy`, `executor`,
//!   `cluster`, `fence`, `resources`, `opennebula`, `metrics`;
//! - `policy` (pure) -> `cluster` (state types), `resources` (`Recovery`);
//! - `executor` -> `resources`, `fence`; `metrics` -> `status` -> `opennebula`;
//! - `cluster`, `admin`, `logging`, `notify` import nothing of the crate; most others use
//!   `config`.
//!
//! One cycle remains: `config` takes its `fencing`, `opennebula` and `resources` sections
//! from those modules, which import `config` back (and `fence` imports `resources`). The test
//! kit is a separate package (`testkit/`). See `docs/architecture.md`.

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
