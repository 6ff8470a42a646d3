//! What the importer found in cluster.conf, shaped like oneha.yaml: only what was set there
//! (anything left `None` keeps oneha's default), with a comment where the mapping needs one.

use std::collections::BTreeMap;

use crate::config::Dur;

/// A value and an optional end-of-line comment explaining where it came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Noted<T> {
    /// The value.
    pub value: T,
    /// Comment written after it (`# ...`), if any.
    pub note: Option<String>,
}

impl<T> Noted<T> {
    /// A value without comment.
    pub fn plain(value: T) -> Noted<T> {
        Noted { value, note: None }
    }
    /// A value with a comment.
    pub fn with(value: T, note: impl Into<String>) -> Noted<T> {
        Noted {
            value,
            note: Some(note.into()),
        }
    }
}

/// The whole translated configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Cluster name.
    pub cluster: String,
    /// Header lines (without `# `).
    pub header: Vec<String>,
    /// `two_node`.
    pub two_node: Option<Noted<bool>>,
    /// The cluster key path.
    pub key_file: Noted<String>,
    /// Members.
    pub nodes: Vec<PlanNode>,
    /// `resources:`.
    pub resources: PlanResources,
    /// `fencing.devices`, by name.
    pub devices: BTreeMap<String, PlanDevice>,
    /// `fencing.nodes`, by node name.
    pub fence_nodes: BTreeMap<String, PlanNodeFencing>,
}

/// One member.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanNode {
    /// Name.
    pub name: String,
    /// Raft id (cman nodeid).
    pub id: u64,
    /// `IP:PORT`, resolved or a placeholder.
    pub address: Noted<String>,
    /// The second link's `IP:PORT` (CMAN `<altname>`), resolved or a placeholder.
    pub alt: Option<Noted<String>>,
    /// A witness (added for a quorum disk).
    pub witness: bool,
}

/// The `resources:` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanResources {
    /// Lines written above the section.
    pub comments: Vec<String>,
    /// `autostart`.
    pub autostart: Option<Noted<bool>>,
    /// `recovery`.
    pub recovery: Option<Noted<String>>,
    /// `max_restarts`.
    pub max_restarts: Option<Noted<u32>>,
    /// `restart_expire_time`.
    pub restart_expire_time: Option<Noted<Dur>>,
    /// `failover_domain`.
    pub domain: Option<PlanDomain>,
    /// `group`, in start order; `None`: oneha's default group.
    pub group: Option<Vec<PlanResource>>,
}

/// `resources.failover_domain`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanDomain {
    /// Comment above it.
    pub comment: String,
    /// Node names, most preferred first.
    pub nodes: Vec<String>,
    /// Fail back to a more preferred node.
    pub failback: bool,
    /// Only these nodes.
    pub restricted: bool,
}

/// One resource of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanResource {
    /// Name.
    pub name: String,
    /// Comment above it (where it came from).
    pub comment: Option<String>,
    /// Type-specific settings.
    pub kind: PlanKind,
    /// `monitor_interval`.
    pub monitor_interval: Option<Dur>,
    /// `monitor_timeout`.
    pub monitor_timeout: Option<Dur>,
    /// `start_timeout`.
    pub start_timeout: Option<Dur>,
    /// `stop_timeout`.
    pub stop_timeout: Option<Dur>,
}

/// The type-specific part of a resource.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanKind {
    /// A floating IP.
    Ip {
        /// `ADDRESS/PREFIX`.
        address: Noted<String>,
        /// Interface.
        interface: Noted<String>,
    },
    /// A systemd unit.
    Systemd {
        /// Unit name.
        unit: String,
    },
    /// An init script.
    Lsb {
        /// Script path.
        script: String,
    },
    /// A filesystem.
    Filesystem {
        /// Device, `UUID=`/`LABEL=`, or `host:/export`.
        device: String,
        /// Mountpoint.
        mountpoint: String,
        /// Filesystem type, if given.
        fstype: Option<String>,
        /// Mount options, if given.
        options: Option<String>,
        /// `fsck`, when cluster.conf said (`force_fsck`).
        fsck: Option<Noted<bool>>,
        /// `force_unmount`, always written (rgmanager's default differs from oneha's).
        force_unmount: Noted<bool>,
    },
}

/// One fence device.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanDevice {
    /// fence_virtd over multicast.
    Xvm {
        /// Comment above it.
        comment: Option<String>,
        /// `multicast_address`.
        multicast_address: Option<String>,
        /// `port` (cluster.conf `ipport`).
        port: Option<u16>,
        /// `key_file`.
        key_file: Option<String>,
        /// `hash`.
        hash: Option<String>,
        /// `auth`.
        auth: Option<String>,
        /// `timeout`.
        timeout: Option<Dur>,
        /// `retransmit` (cluster.conf `retrans`).
        retransmit: Option<Dur>,
    },
    /// A fence agent with its options.
    Agent {
        /// Comment above it.
        comment: Option<String>,
        /// Agent name.
        agent: String,
        /// Options, as cluster.conf gave them (the agent's stdin names).
        options: BTreeMap<String, String>,
    },
}

/// How one node is fenced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanNodeFencing {
    /// `delay`.
    pub delay: Option<Noted<Dur>>,
    /// Levels in order.
    pub levels: Vec<PlanLevel>,
}

/// One fence level.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanLevel {
    /// Device name.
    pub device: String,
    /// `plug`.
    pub plug: Option<String>,
    /// `uuid`.
    pub uuid: bool,
}

/// Things to tell the operator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Notes {
    /// What cluster.conf says that the output does not carry over, each with its line.
    pub untranslated: Vec<String>,
    /// Values in the output that are placeholders or need checking.
    pub fill_in: Vec<String>,
    /// Choices the import made that the operator should know of (e.g. the units used).
    pub info: Vec<String>,
}

impl Notes {
    /// Records something not translated, found on `line` of cluster.conf.
    pub fn skip(&mut self, line: usize, what: impl std::fmt::Display) {
        self.untranslated.push(format!("line {line}: {what}"));
    }
    /// Records a choice the import made.
    pub fn info(&mut self, what: impl Into<String>) {
        self.info.push(what.into());
    }
    /// Records a value the operator must fill in or check.
    pub fn fill(&mut self, what: impl Into<String>) {
        self.fill_in.push(what.into());
    }
}
