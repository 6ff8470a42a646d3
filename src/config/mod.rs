//! The YAML configuration: schema, defaults, loading and validation.
//!
//! Every error names the file, the line, the key, what was expected and what was found.
//! Unknown keys are errors (a misspelt key silently ignored is a failover that does not
//! happen). `oneha check-config` prints the effective config with defaults filled in.

pub mod alerts;
mod duration;
pub mod fence_xvm;
pub mod fencing;
pub mod fencing_check;
pub mod filesystem;
pub mod key_file;
mod links;
mod locate;
pub mod opennebula;
mod redact;
pub mod resources;
mod timers;
pub mod vm_ha;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use alerts::AlertConfig;
pub use duration::{Dur, parse_duration};
use fencing::FencingConfig;
pub use links::MAX_LINKS;
use links::NodeSpec;
pub use locate::{Locator, locate};
use opennebula::OpennebulaConfig;
use redact::Redactor;
use resources::ResourcesConfig;
pub use timers::{Profile, Timers, TimersConfig};
use vm_ha::VmHaConfig;

/// Where the agent and the CLI look for the config unless `--config` or `ONEHA_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/oneha/oneha.yaml";

/// The whole configuration file, as written (defaults filled in by [`load`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cluster name; peers of another cluster are refused.
    pub cluster: String,
    /// Every member: front-ends and witnesses. The same list on every node.
    pub nodes: Vec<NodeConfig>,
    /// Two front-ends and no witness: fencing is the tie-breaker (see docs/topologies.md).
    #[serde(default)]
    pub two_node: bool,
    /// A node that has not seen every member since it started never fences and never takes
    /// over (safety rule S6) unless an operator overrides it.
    #[serde(default = "yes")]
    pub wait_for_all: bool,
    /// Raft timing.
    #[serde(default)]
    pub timers: TimersConfig,
    /// Durable Raft state and reports.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The cluster key (`oneha keygen`), mode 0600, identical on every node.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// The next cluster key during a rotation (`oneha keygen --next`), accepted alongside
    /// `key_file`; default: `key_file` with `.next` appended. A missing file is normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key_file: Option<PathBuf>,
    /// The admin API's unix socket (root only).
    #[serde(default = "default_admin_socket")]
    pub admin_socket: PathBuf,
    /// The resource group: floating IP and units.
    #[serde(default)]
    pub resources: ResourcesConfig,
    /// Fence devices and per-node fence levels.
    #[serde(default)]
    pub fencing: FencingConfig,
    /// The OpenNebula API, for the stuck-VM report.
    #[serde(default)]
    pub opennebula: OpennebulaConfig,
    /// The Prometheus metrics endpoint (off unless `listen` is set).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// VM HA (`oneha host-error`): how hypervisor hosts are fenced, the guard, limits.
    #[serde(default)]
    pub vm_ha: VmHaConfig,
    /// Scripts run on events (failover, fencing, quorum...): docs/alerts.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertConfig>,
}

/// The `metrics:` section.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:PORT` to serve Prometheus text on (`GET /metrics`); unset: no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

fn yes() -> bool {
    true
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/oneha")
}
fn default_key_file() -> PathBuf {
    PathBuf::from("/etc/oneha/cluster.key")
}
fn default_admin_socket() -> PathBuf {
    PathBuf::from("/run/oneha/admin.sock")
}

/// One cluster member (written as a [`NodeSpec`]: `address` or `addresses`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "NodeSpec", into = "NodeSpec")]
pub struct NodeConfig {
    /// Name, as operators type it (`oneha relocate --to NAME`).
    pub name: String,
    /// Raft id: a positive number, unique, never reused for another machine.
    pub id: u64,
    /// Peer address `IP:PORT` of the first link (`addresses[0]`).
    pub address: SocketAddr,
    /// Every link's peer address `IP:PORT`, the first link first (one entry when the file
    /// gives `address`): the other agents connect to each.
    pub addresses: Vec<SocketAddr>,
    /// `frontend` (may run the group) or `witness` (votes only).
    pub role: Role,
    /// Lower runs the group first (rgmanager's failover domain priority). Default: list order.
    pub priority: Option<u32>,
}

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes, stores state and may run the group.
    #[default]
    Frontend,
    /// Votes and stores state; never runs the group.
    Witness,
}

impl Config {
    /// The next cluster key's path: `next_key_file`, else `key_file` + `.next`.
    pub fn next_key_file(&self) -> PathBuf {
        self.next_key_file.clone().unwrap_or_else(|| {
            let mut p = self.key_file.clone().into_os_string();
            p.push(".next");
            PathBuf::from(p)
        })
    }
    /// The member with this name.
    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }
    /// The member with this Raft id.
    pub fn node_by_id(&self, id: u64) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }
    /// The name of the member with this Raft id (`nodeN` if there is none).
    pub fn node_name(&self, id: u64) -> String {
        self.node_by_id(id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| format!("node{id}"))
    }
    /// The members that may run the group, in failover-domain order: the domain's nodes
    /// first, then, unless the domain is restricted, every other front-end; every front-end
    /// when the domain is empty. The one place this rule lives: placement and failover
    /// (the policy's `eligible`) and the operator's `enable --on`/`relocate --to` use it.
    pub fn eligible_hosts(&self) -> Vec<u64> {
        let domain = &self.resources.failover_domain;
        let frontends = self.frontends().into_iter().map(|n| n.id);
        if domain.nodes.is_empty() {
            return frontends.collect();
        }
        let mut v: Vec<u64> = domain
            .nodes
            .iter()
            .filter_map(|n| self.node(n).map(|c| c.id))
            .collect();
        if !domain.restricted {
            for id in frontends {
                if !v.contains(&id) {
                    v.push(id);
                }
            }
        }
        v
    }
    /// Members that may run the group, most preferred first.
    pub fn frontends(&self) -> Vec<&NodeConfig> {
        let mut v: Vec<&NodeConfig> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Frontend)
            .collect();
        v.sort_by_key(|n| n.priority.unwrap_or(u32::MAX));
        v
    }
    /// The timer values in effect.
    pub fn timers(&self) -> Timers {
        self.timers.effective()
    }
    /// Effective config as YAML (what `oneha check-config` prints).
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file that was read.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path (`nodes[1].address`); empty for whole-file problems.
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All problems found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Validation findings, by key path, before lines are attached.
#[derive(Debug, Default)]
pub struct Problems {
    items: Vec<(String, String)>,
}

impl Problems {
    /// Records a problem at `path` (e.g. `nodes[1].id`).
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.items.push((path.into(), message.into()));
    }
    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// The problems with their lines, secrets scrubbed; past [`MAX_ERRORS`], one line that
    /// counts the rest (finding the line of each of 20,000 duplicates took minutes).
    fn into_errors(self, file: &Path, text: &str) -> Vec<ConfigError> {
        let locator = Locator::new(text);
        let redactor = Redactor::new(text);
        let total = self.items.len();
        let mut errors: Vec<ConfigError> = self
            .items
            .into_iter()
            .take(MAX_ERRORS)
            .map(|(key, message)| ConfigError {
                file: file.to_path_buf(),
                line: locator.line(&key),
                key: redact::shown_path(&key),
                message: redactor.scrub(&message),
            })
            .collect();
        if total > MAX_ERRORS {
            errors.push(ConfigError {
                file: file.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!(
                    "and {} more problems not listed; fix these and run `oneha check-config` \
                     again",
                    total - MAX_ERRORS
                ),
            });
        }
        errors
    }
}

/// Most problems listed for one file.
pub const MAX_ERRORS: usize = 100;

/// Which config file to read: `--config`, else `$ONEHA_CONFIG`, else [`DEFAULT_PATH`].
pub fn resolve_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os("ONEHA_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// What a valid config allows but an operator should know, one message each (`oneha
/// check-config` prints them): a front-end without a fence level cannot be fenced, so if it
/// is lost while running the group, nobody takes over until an operator confirms it is off.
pub fn warnings(c: &Config) -> Vec<String> {
    let mut w: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| n.role == Role::Frontend)
        .filter(|n| {
            c.fencing
                .nodes
                .get(&n.name)
                .is_none_or(|f| f.levels.is_empty())
        })
        .map(|n| {
            format!(
                "fencing.nodes.{name}: front-end {name} has no fence level; if it is lost while \
                 running the group, the others cannot fence it and do not take over until an \
                 operator checks it is off and runs `oneha fence-ack {name}`: add a level \
                 (see docs/fencing.md)",
                name = n.name
            )
        })
        .collect();
    w.extend(links::warnings(c));
    w.extend(c.resources.warnings());
    w
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!(
                "cannot read the config: {e}; pass another file with --config or set ONEHA_CONFIG"
            ),
        }])
    })?;
    parse(path, &text)
}

/// Parses and validates config text; `path` is only used in messages and to resolve
/// nothing else (relative paths in the file are taken as written).
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let de = serde_norway::Deserializer::from_str(text);
    let mut config: Config = match serde_path_to_error::deserialize(de) {
        Ok(c) => c,
        Err(e) => {
            let key = e.path().to_string();
            let key = if key == "." || key == "?" {
                String::new()
            } else {
                key
            };
            let shown = redact::serde_path(e.path());
            let inner = e.into_inner();
            let line = inner
                .location()
                .map(|l| l.line())
                .or_else(|| locate(text, &key));
            let message = redact::serde_message(&strip_location(&inner.to_string()), &key);
            return Err(ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line,
                key: shown,
                message: Redactor::new(text).scrub(&message),
            }]));
        }
    };
    let mut problems = Problems::default();
    validate(&config, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigErrors(problems.into_errors(path, text)));
    }
    config.timers.fill_defaults();
    for (i, n) in config.nodes.iter_mut().enumerate() {
        n.priority.get_or_insert(i as u32 + 1);
    }
    config.resources.fill_defaults();
    Ok(config)
}

/// serde_norway appends " at line L column C"; we print the line ourselves.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn validate(c: &Config, p: &mut Problems) {
    if c.cluster.trim().is_empty() {
        p.push("cluster", "expected a cluster name, found an empty string");
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashMap<u64, usize> = HashMap::new();
    for (i, n) in c.nodes.iter().enumerate() {
        if n.name.is_empty() || n.name.contains(char::is_whitespace) {
            p.push(
                format!("nodes[{i}].name"),
                format!("expected a name without spaces, found `{}`", n.name),
            );
        }
        if let Some(j) = names.insert(&n.name, i) {
            p.push(
                format!("nodes[{i}].name"),
                format!(
                    "duplicate node name `{}` (also nodes[{j}]); names must be unique",
                    n.name
                ),
            );
        }
        if n.id == 0 {
            p.push(format!("nodes[{i}].id"), "expected a positive id, found 0");
        }
        if let Some(j) = ids.insert(n.id, i) {
            p.push(
                format!("nodes[{i}].id"),
                format!(
                    "duplicate node id {} (also nodes[{j}]); ids must be unique",
                    n.id
                ),
            );
        }
    }
    links::validate(c, p);
    let frontends = c.nodes.iter().filter(|n| n.role == Role::Frontend).count();
    if frontends < 2 {
        p.push(
            "nodes",
            format!(
                "expected at least two nodes with role frontend, found {frontends}; \
                 a cluster needs a second front-end to fail over to"
            ),
        );
    }
    let witnesses = c.nodes.len() - frontends;
    if c.two_node && c.nodes.len() != 2 {
        p.push(
            "two_node",
            format!(
                "two_node: true needs exactly two nodes, found {} ({witnesses} witness); \
                 with a witness, set two_node: false (ordinary quorum)",
                c.nodes.len()
            ),
        );
    }
    if !c.two_node && c.nodes.len() == 2 {
        p.push(
            "two_node",
            "two nodes without a witness cannot keep a Raft majority when one fails; \
             set two_node: true (fencing decides) or add a node with role: witness",
        );
    }
    let t = c.timers.effective();
    if t.tick.is_zero() {
        p.push("timers.tick", "expected a tick longer than 0, found 0");
    }
    if t.heartbeat_ticks == 0 {
        p.push(
            "timers.heartbeat_ticks",
            "expected at least 1 tick, found 0",
        );
    }
    if t.election_ticks <= t.heartbeat_ticks {
        p.push(
            "timers.election_ticks",
            format!(
                "expected more election ticks than heartbeat ticks ({}), found {}; \
                 a follower would start elections between heartbeats",
                t.heartbeat_ticks, t.election_ticks
            ),
        );
    }
    if t.lost_ticks <= t.heartbeat_ticks * 2 {
        p.push(
            "timers.lost_ticks",
            format!(
                "expected more than twice the heartbeat ({} ticks), found {}; members \
                 would be declared lost between two heartbeats",
                t.heartbeat_ticks, t.lost_ticks
            ),
        );
    }
    if c.key_file.as_os_str().is_empty() {
        p.push(
            "key_file",
            "expected a path to the cluster key, found nothing",
        );
    } else if !c.key_file.exists() {
        p.push(
            "key_file",
            format!(
                "the key file {} does not exist; create it with `oneha keygen {}` and copy it \
                 to every node",
                c.key_file.display(),
                c.key_file.display()
            ),
        );
    } else if let Err(e) = key_file::check_private(&c.key_file) {
        p.push("key_file", e.to_string());
    }
    let next = c.next_key_file();
    if next.exists()
        && let Err(e) = key_file::check_private(&next)
    {
        p.push("next_key_file", e.to_string());
    }
    c.resources.validate(c, p);
    c.fencing.validate(c, p);
    c.opennebula.validate(c, p);
    let devices: Vec<&str> = c.fencing.devices.keys().map(String::as_str).collect();
    c.vm_ha
        .check(&devices, &mut |k, m| p.push(format!("vm_ha.{k}"), m));
    alerts::check_all(&c.alerts, &mut |k, m| p.push(k, m));
}

#[cfg(test)]
mod roundtrip_tests;
#[cfg(test)]
mod tests;
