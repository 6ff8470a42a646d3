//! oneha: a cluster manager that keeps an OpenNebula front-end alive.
//!
//! Modules and what they import (`use crate::…`), from the top:
//! - `cli` -> `agent`, `admin`, `import`, `vmha_ops` and the tools' modules;
//! - `vmha_ops` (`oneha host-error`, `oneha vm-ha`) -> `admin`, `agent`, `vmha`;
//! - `agent` -> `control`, `admin`, `cluster`, `metrics`, `status`, `vmha` (its VM-HA service);
//! - `control` (sees the agent only through `control::Context`) -> `policy`, `executor`,
//!   `cluster`, `fence`, `resources`, `opennebula`, `metrics`;
//! - `policy` (pure) -> `cluster` (state types), `resources` (`Recovery`);
//! - `executor` -> `resources`, `fence`; `metrics` -> `status` -> `opennebula`, `vmha`;
//! - `vmha` (the host-failure hook's logic; its policy `vmha::decide` is pure) -> `config`,
//!   `fence`, `opennebula`;
//! - `cluster` and `admin` -> `vmha` (the case types kept in the replicated state and asked
//!   for over the admin API); `logging`, `notify` import nothing of the crate; most others
//!   use `config`; `own_job` (asks systemd what it does to our unit) imports nothing of it.
//!
//! One cycle remains, through `config`: it takes its `fencing`, `opennebula`, `resources` and
//! `vm_ha` sections from those modules, which import `config` back, and checks the key with
//! `cluster::auth`; so {config, cluster, fence, opennebula, resources, vmha} is one strongly
//! connected set until the schema types move into `config/`. The test kit is a separate
//! package (`testkit/`). See `docs/architecture.md`.

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
