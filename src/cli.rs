//! The command line: parse arguments, talk to the agent over the admin API, print.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::admin::{self, AdminRequest};
use crate::config;
use crate::status::StatusReport;

/// oneha keeps an OpenNebula front-end alive: Raft membership, a floating IP, the
/// opennebula units, fencing of lost nodes, and the stuck-VM report after a failover.
#[derive(Parser, Debug)]
#[command(name = "oneha", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: $ONEHA_CONFIG, then /etc/oneha/oneha.yaml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the agent on this node (normally started by systemd: oneha.service).
    Agent {
        /// This node's name in `nodes` (default: $ONEHA_NODE, the host name, or the node
        /// whose address is local).
        #[arg(long)]
        node: Option<String>,
    },
    /// Show members, quorum, Raft state, the group and fencing (like clustat).
    Status {
        /// Machine-readable output (every error whole).
        #[arg(long)]
        json: bool,
        /// Every error whole, and each member's resources one per line.
        #[arg(long, short = 'v', conflicts_with = "json")]
        verbose: bool,
    },
    /// Validate a config file and print it with defaults filled in (exit 2 on errors); warn on
    /// stderr about a front-end without fencing and a group unit not installed on this node.
    CheckConfig {
        /// The file (default: --config, $ONEHA_CONFIG, /etc/oneha/oneha.yaml).
        file: Option<PathBuf>,
    },
    /// Write a new random cluster key (mode 0600); copy it to every node. Key rotation
    /// (docs/runbook.md): `--next`, copy, `reload-keys` everywhere; then `--promote` and
    /// `reload-keys` on every node; then remove the next key file and `reload-keys`.
    Keygen {
        /// Where (default: the config's key_file, else /etc/oneha/cluster.key; with
        /// --next: the config's next_key_file, else key_file + `.next`).
        file: Option<PathBuf>,
        /// Write the next key of a rotation instead of the current one.
        #[arg(long, conflicts_with = "promote")]
        next: bool,
        /// Swap the current and the next key files (atomically): the new key becomes
        /// current, the old one stays accepted as next until removed.
        #[arg(long, conflicts_with = "file")]
        promote: bool,
    },
    /// Make the agent re-read its cluster key files (as SIGHUP does); prints the key
    /// fingerprints it now uses. A bad file keeps the old keys and is reported.
    ReloadKeys,
    /// Let the group run (clusvcadm -e), optionally on a given node.
    Enable {
        /// Preferred node.
        #[arg(long)]
        on: Option<String>,
    },
    /// Stop the group everywhere and keep it stopped (clusvcadm -d).
    Disable,
    /// Move the group to another node (clusvcadm -r).
    Relocate {
        /// Target node (default: the next one in the failover domain).
        #[arg(long)]
        to: Option<String>,
    },
    /// Restart the group in place (clusvcadm -R).
    Restart,
    /// Maintenance mode: no monitoring, no recovery, no failover (clusvcadm -Z).
    Freeze,
    /// Leave maintenance mode (clusvcadm -U).
    Unfreeze,
    /// List the VMs stuck in transient states with the `onevm recover` command that fits
    /// each (exit 0: none stuck, 1: some stuck, 2: error). Works on any front-end.
    StuckVms(crate::opennebula::StuckVmsArgs),
    /// Fence a node now through its configured fence levels (journaled in the cluster).
    Fence {
        /// Node to fence.
        node: String,
        /// off, reboot or on.
        #[arg(long, default_value = "off")]
        action: String,
    },
    /// Record that NODE has been verified powered off by hand (like fence_ack_manual),
    /// so a takeover blocked on fencing it can proceed. A name that is not a cluster member
    /// is taken as an OpenNebula host whose VM-HA case is blocked on fencing.
    FenceAck {
        /// Node that is off.
        node: String,
        /// Confirm that you checked: a node acknowledged wrongly can corrupt OpenNebula's
        /// database when two oned run at once.
        #[arg(long)]
        yes: bool,
    },
    /// Check the fence devices (list/status/monitor; nothing is powered off).
    FenceCheck(crate::fence::cli::FenceCheckArgs),
    /// A fence_xvm client, compatible with the stock `fence_xvm` (for operators).
    FenceXvm(crate::fence::cli::FenceXvmArgs),
    /// Drive resources on this node directly, bypassing the cluster (like
    /// crm_resource --force-*): for debugging only.
    Resource(crate::resources::cli::ResourceArgs),
    /// OpenNebula's host-failure hook (drop-in for ft/host_error.rb): wait for the host to
    /// come back, fence it, then migrate, recreate or delete its VMs (docs/vm-ha.md).
    HostError(crate::vmha_ops::cli::HostErrorArgs),
    /// VM-HA cases (host failures) in progress and past, each VM's outcome.
    VmHa(crate::vmha_ops::cases_cli::VmHaArgs),
    /// Translate an rgmanager/CMAN cluster.conf into oneha.yaml (see
    /// docs/migrating-from-rgmanager.md); what cannot be translated is listed on stderr.
    ImportClusterConf(crate::import::ImportArgs),
    /// Let this node act without having seen every member since it started (wait-for-all).
    /// Only when you are sure the missing node is off: otherwise both may run OpenNebula.
    OverrideWaitForAll {
        /// Required: you accept the risk above.
        #[arg(long)]
        force: bool,
    },
}

/// Parses arguments, runs the command, returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse_from(hook_alias(std::env::args_os().collect()));
    // One worker: the agent's work is light and I/O bound (the Raft loop has its own
    // thread), and a single worker saves the cross-thread wake-ups of an idle cluster.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oneha: cannot start the async runtime: {e}");
            return 2;
        }
    };
    rt.block_on(run(cli))
}

/// Invoked as `oneha-host-error` (a link installed for OpenNebula's hook manager, whose
/// COMMAND is a program path), the arguments are those of `oneha host-error`.
pub fn hook_alias(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let invoked_as_hook = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "oneha-host-error");
    if invoked_as_hook {
        args.insert(1, "host-error".into());
    }
    args
}

async fn run(cli: Cli) -> i32 {
    let config_path = config::resolve_path(cli.config.as_deref());
    match cli.command {
        Cmd::CheckConfig { file } => check_config(file.as_deref().unwrap_or(&config_path)),
        Cmd::Keygen {
            file,
            next,
            promote,
        } => keygen(file, next, promote, &config_path),
        Cmd::ReloadKeys => simple(&config_path, AdminRequest::ReloadKeys).await,
        Cmd::Agent { node } => agent(&config_path, node.as_deref()).await,
        Cmd::Status { json, verbose } => status(&config_path, json, verbose).await,
        Cmd::Enable { on } => simple(&config_path, AdminRequest::Enable { on }).await,
        Cmd::Disable => simple(&config_path, AdminRequest::Disable).await,
        Cmd::Relocate { to } => simple(&config_path, AdminRequest::Relocate { to }).await,
        Cmd::Restart => simple(&config_path, AdminRequest::Restart).await,
        Cmd::Freeze => simple(&config_path, AdminRequest::Freeze).await,
        Cmd::Unfreeze => simple(&config_path, AdminRequest::Unfreeze).await,
        Cmd::Fence { node, action } => {
            simple_with(
                &config_path,
                AdminRequest::Fence { node, action },
                Duration::from_secs(600),
            )
            .await
        }
        Cmd::FenceAck { node, yes } => {
            if !yes {
                eprintln!(
                    "oneha fence-ack: first verify that {node} is powered off (console, PDU, \
                     hypervisor), then run again with --yes. If {node} is in fact running, \
                     two front-ends may run oned at once and corrupt its database."
                );
                return 2;
            }
            // A name that is not a cluster member is a hypervisor host of a VM-HA case.
            let cfg = config::load(&config_path).ok();
            let is_member = cfg.as_ref().is_some_and(|c| c.node(&node).is_some());
            if !is_member && cfg.is_some() {
                let req =
                    AdminRequest::VmHa(crate::vmha::cases::VmHaRequest::Ack { host: node.clone() });
                return simple(&config_path, req).await;
            }
            if !is_member {
                return match crate::vmha_ops::cli::ack_host(&node) {
                    Ok(p) => {
                        println!(
                            "acknowledged: host {node} is off ({}); a VM-HA case blocked on \
                             fencing it goes on",
                            p.display()
                        );
                        0
                    }
                    Err(e) => {
                        eprintln!("oneha fence-ack: {e}");
                        2
                    }
                };
            }
            simple(&config_path, AdminRequest::FenceAck { node }).await
        }
        Cmd::FenceCheck(args) => {
            let cfg = match load_or_report(&config_path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let me = match crate::agent::resolve_node(&cfg, None) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("oneha fence-check: {e}");
                    return 2;
                }
            };
            crate::fence::cli::run_fence_check(&cfg, &me, &args).await
        }
        Cmd::FenceXvm(args) => crate::fence::cli::run_fence_xvm(&args).await,
        Cmd::ImportClusterConf(args) => crate::import::run(args).await,
        Cmd::Resource(args) => crate::resources::cli::run(args, Some(&config_path)).await,
        Cmd::OverrideWaitForAll { force } => {
            if !force {
                eprintln!(
                    "oneha override-wait-for-all: this lets the node fence and take over \
                     without having seen every member since it started. If a missing node is \
                     in fact running, both may run OpenNebula. Run again with --force."
                );
                return 2;
            }
            simple(&config_path, AdminRequest::ForceWaitForAll).await
        }
        Cmd::HostError(args) => crate::vmha_ops::cli::run(&args, &config_path).await,
        Cmd::VmHa(args) => crate::vmha_ops::cases_cli::run_vm_ha(&args, &config_path).await,
        Cmd::StuckVms(args) => {
            // The oneha config is optional here: OpenNebula's own conventions suffice.
            let cfg = config::load(&config_path).ok();
            crate::opennebula::run(&args, cfg.as_ref().map(|c| &c.opennebula)).await
        }
    }
}

fn check_config(path: &Path) -> i32 {
    match config::load(path) {
        Ok(c) => {
            let on_node = crate::resources::unit_files::missing_unit_warnings(
                &c.resources.group,
                Path::new("/"),
            );
            for w in config::warnings(&c).into_iter().chain(on_node) {
                eprintln!("{}: warning: {w}", path.display());
            }
            print!("{}", c.to_yaml());
            0
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

/// The current and next key paths from the config, read loosely: the config may not
/// validate yet (its key file is missing).
fn key_paths(config_path: &Path) -> (PathBuf, PathBuf) {
    let v = std::fs::read_to_string(config_path)
        .ok()
        .and_then(|t| serde_norway::from_str::<serde_norway::Value>(&t).ok());
    let get = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k)?.as_str().map(PathBuf::from))
    };
    let current = get("key_file").unwrap_or_else(|| PathBuf::from("/etc/oneha/cluster.key"));
    let next = get("next_key_file").unwrap_or_else(|| {
        let mut p = current.clone().into_os_string();
        p.push(".next");
        PathBuf::from(p)
    });
    (current, next)
}

fn keygen(file: Option<PathBuf>, next: bool, promote: bool, config_path: &Path) -> i32 {
    let (current, next_path) = key_paths(config_path);
    if promote {
        return match crate::cluster::auth::swap_key_files(&current, &next_path) {
            Ok(()) => {
                println!(
                    "{} is now the new key, {} the old one (still accepted); run `oneha \
                     reload-keys` on this node, then promote on every other node",
                    current.display(),
                    next_path.display()
                );
                0
            }
            Err(e) => {
                eprintln!("oneha keygen --promote: {e}");
                2
            }
        };
    }
    let path = file.unwrap_or(if next { next_path } else { current });
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("oneha keygen: cannot create {}: {e}", dir.display());
        return 2;
    }
    match crate::cluster::auth::ClusterKey::generate(&path) {
        Ok(()) => {
            if next {
                println!(
                    "wrote the next cluster key to {} (mode 0600); copy it to the same path \
                     on every node (witness too), then run `oneha reload-keys` on each",
                    path.display()
                );
            } else {
                println!(
                    "wrote a new cluster key to {} (mode 0600); copy it to every node",
                    path.display()
                );
            }
            0
        }
        Err(e) => {
            eprintln!("oneha keygen: {e}");
            2
        }
    }
}

fn load_or_report(path: &Path) -> Result<config::Config, i32> {
    config::load(path).map_err(|e| {
        eprintln!("{e}");
        2
    })
}

async fn agent(path: &Path, node: Option<&str>) -> i32 {
    let cfg = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let name = match crate::agent::resolve_node(&cfg, node) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("oneha agent: {e}");
            return 2;
        }
    };
    crate::logging::init(Some(&name));
    match crate::agent::run(cfg, name).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("oneha agent: {e}");
            1
        }
    }
}

/// The admin socket: from the config if it loads, else the default.
fn admin_socket(path: &Path) -> PathBuf {
    if let Ok(p) = std::env::var("ONEHA_ADMIN_SOCKET") {
        return PathBuf::from(p);
    }
    match config::load(path) {
        Ok(c) => c.admin_socket,
        Err(_) => PathBuf::from("/run/oneha/admin.sock"),
    }
}

async fn status(path: &Path, json: bool, verbose: bool) -> i32 {
    let socket = admin_socket(path);
    match admin::call(&socket, &AdminRequest::Status, Duration::from_secs(5)).await {
        Ok(r) if r.ok => {
            let v = r.result.unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return 0;
            }
            match serde_json::from_value::<StatusReport>(v) {
                Ok(s) => {
                    if verbose {
                        print!("{}", s.render_verbose());
                    } else {
                        print!("{}", s.render());
                    }
                    0
                }
                Err(e) => {
                    eprintln!("oneha status: unexpected answer from the agent: {e}");
                    2
                }
            }
        }
        Ok(r) => {
            eprintln!("oneha status: {}", r.error.unwrap_or_default());
            1
        }
        Err(e) => {
            eprintln!("oneha status: {e}");
            2
        }
    }
}

async fn simple(path: &Path, req: AdminRequest) -> i32 {
    simple_with(path, req, Duration::from_secs(15)).await
}

async fn simple_with(path: &Path, req: AdminRequest, timeout: Duration) -> i32 {
    let socket = admin_socket(path);
    match admin::call(&socket, &req, timeout).await {
        Ok(r) if r.ok => {
            match r.result {
                Some(serde_json::Value::String(s)) if s != "done" => println!("{s}"),
                _ => println!("done"),
            }
            0
        }
        Ok(r) => {
            eprintln!("oneha: refused: {}", r.error.unwrap_or_default());
            1
        }
        Err(e) => {
            eprintln!("oneha: {e}");
            2
        }
    }
}
