//! `oneha import-cluster-conf`: reads an rgmanager/CMAN `cluster.conf` and writes an
//! equivalent oneha.yaml, listing on stderr everything it could not translate and every
//! value the operator must fill in (peer addresses, the cluster key, ...).
//!
//! What maps to what:
//! - `<clusternode name nodeid>` -> `nodes[]` (address resolved from the name, else a
//!   `192.0.2.N:7400` placeholder marked FILL IN); its `<altname name>` (CMAN's redundant
//!   ring) -> a second link (`addresses: [NAME, ALTNAME]`, resolved the same way);
//!   `<cman two_node="1">` -> `two_node: true`;
//!   a quorum disk (`<quorumd>`) -> a witness node to fill in.
//! - `<fencedevice agent="fence_xvm">` -> an `xvm` device (key_file, multicast_address,
//!   ipport, hash, auth, timeout, retrans); other agents -> `type: agent` with their
//!   options; each node's `<method><device port=...>` -> `fencing.nodes.NODE.levels`; a
//!   `delay` -> `fencing.nodes.NODE.delay`.
//! - The service -> `resources` (autostart, recovery, max_restarts, restart_expire_time), its
//!   failover domain -> `resources.failover_domain`, its `ip` and `script` resources ->
//!   `resources.group` in rgmanager's start order. `/etc/init.d/opennebula*` scripts become
//!   systemd units unless `--lsb`: which ones depends on `--opennebula-version` (7 by
//!   default: oned brings `opennebula-hem`, Sunstone becomes `opennebula-fireedge`; see
//!   [`units`]).

mod emit;
mod fencing;
pub mod host;
mod links;
pub mod plan;
mod service;
mod storage;
mod translate;
pub mod units;
pub mod xml;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::opennebula::terminal::sanitize;

pub use emit::{emit, yaml_str};
pub use host::{Host, LocalAddr, SystemHost};
pub use plan::{Notes, Plan};
pub use units::OpenNebulaVersion;

/// The cluster key path written unless `--key-file` says otherwise (oneha's default).
pub const DEFAULT_KEY_FILE: &str = "/etc/oneha/cluster.key";

/// Arguments of `oneha import-cluster-conf`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The rgmanager/CMAN cluster.conf to read.
    #[arg(value_name = "FILE", default_value = "/etc/cluster/cluster.conf")]
    pub file: PathBuf,
    /// Keep init scripts as LSB resources instead of mapping /etc/init.d/opennebula* to the
    /// systemd units of the same name.
    #[arg(long)]
    pub lsb: bool,
    /// The OpenNebula release the front-ends run: it decides which systemd units the
    /// opennebula and sunstone scripts become (7: opennebula, opennebula-hem,
    /// opennebula-fireedge; 6.10: adds opennebula-scheduler, keeps opennebula-sunstone;
    /// 4: the units of the scripts' own names).
    #[arg(long, value_enum, value_name = "VERSION", default_value = "7")]
    pub opennebula_version: OpenNebulaVersion,
    /// Write the YAML to this file (mode 0600; refused if it exists) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Cluster key path to write in the config (create it with `oneha keygen`).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_KEY_FILE)]
    pub key_file: String,
    /// Peer port written in every node's address.
    #[arg(long, default_value_t = 7400)]
    pub port: u16,
}

/// Import settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep scripts as LSB resources.
    pub lsb: bool,
    /// Which OpenNebula release's units the scripts become.
    pub opennebula_version: OpenNebulaVersion,
    /// Cluster key path written as `key_file`.
    pub key_file: String,
    /// Peer port.
    pub port: u16,
    /// Where the cluster.conf came from (shown in the header).
    pub source: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lsb: false,
            opennebula_version: OpenNebulaVersion::default(),
            key_file: DEFAULT_KEY_FILE.to_string(),
            port: 7400,
            source: "cluster.conf".to_string(),
        }
    }
}

/// Why a cluster.conf cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Not well-formed XML.
    #[error("{0}")]
    Xml(#[from] xml::XmlError),
    /// Well-formed, but not a usable cluster.conf.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ImportError {
    fn invalid(line: usize, message: impl Into<String>) -> ImportError {
        ImportError::Invalid {
            line,
            message: message.into(),
        }
    }
}

/// The result of an import: the YAML text and what to tell the operator.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The oneha.yaml text.
    pub yaml: String,
    /// The translated structure the text was written from.
    pub plan: Plan,
    /// Not translated / to fill in.
    pub notes: Notes,
}

/// Translates cluster.conf text.
pub fn import(text: &str, opts: &Options, host: &dyn Host) -> Result<Imported, ImportError> {
    let root = xml::parse(text)?;
    let (plan, notes) = translate::translate(&root, opts, host)?;
    Ok(Imported {
        yaml: emit(&plan),
        plan,
        notes,
    })
}

/// The stderr report: what was not translated and what to fill in, with control characters
/// from cluster.conf escaped (they would reach the terminal).
pub fn report(source: &str, notes: &Notes) -> String {
    let mut o = String::new();
    if !notes.info.is_empty() {
        o.push_str("Notes:\n");
        for n in &notes.info {
            o.push_str(&format!("  - {}\n", sanitize(n)));
        }
    }
    if !notes.untranslated.is_empty() {
        o.push_str(&format!(
            "Not translated from {source} (check these by hand):\n"
        ));
        for n in &notes.untranslated {
            o.push_str(&format!("  - {}\n", sanitize(n)));
        }
    }
    if !notes.fill_in.is_empty() {
        o.push_str("To fill in before use (marked FILL IN in the YAML):\n");
        for n in &notes.fill_in {
            o.push_str(&format!("  - {}\n", sanitize(n)));
        }
    }
    o
}

/// Runs `oneha import-cluster-conf`; returns the exit code (0 written, 2 error).
pub async fn run(args: ImportArgs) -> i32 {
    run_with(&args, &SystemHost)
}

/// [`run`] with a given host (tests use fixed name resolution and interfaces).
pub fn run_with(args: &ImportArgs, host: &dyn Host) -> i32 {
    let source = args.file.display().to_string();
    let text = match std::fs::read(&args.file) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!(
                "oneha import-cluster-conf: cannot read {source}: {e}; pass the path of the \
                 cluster.conf (usually /etc/cluster/cluster.conf)"
            );
            return 2;
        }
    };
    let opts = Options {
        lsb: args.lsb,
        opennebula_version: args.opennebula_version,
        key_file: args.key_file.clone(),
        port: args.port,
        source: source.clone(),
    };
    let imported = match import(&text, &opts, host) {
        Ok(i) => i,
        Err(e) => {
            eprintln!(
                "oneha import-cluster-conf: {source}: {}",
                sanitize(&e.to_string())
            );
            return 2;
        }
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = write_new(path, &imported.yaml) {
                eprintln!("oneha import-cluster-conf: {e}");
                return 2;
            }
            eprintln!("wrote {}", path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(imported.yaml.as_bytes()) {
                eprintln!("oneha import-cluster-conf: cannot write the YAML: {e}");
                return 2;
            }
        }
    }
    eprint!("{}", report(&source, &imported.notes));
    0
}

/// Creates `path` (mode 0600, it may hold fence passwords); refuses to overwrite.
fn write_new(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!(
                    "{} exists; not overwriting it: remove it or pass another --output",
                    path.display()
                )
            } else {
                format!("cannot create {}: {e}", path.display())
            }
        })?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
