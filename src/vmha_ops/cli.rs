//! `oneha host-error` (the hook) and `oneha vm-ha` (cases, for operators).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{self, AdminRequest};
use crate::config::{self, Config, parse_duration};
use crate::opennebula::auth::{self, Env};
use crate::opennebula::xmlrpc::Client;
use crate::vmha::case::{Case, Closed, Plan};
use crate::vmha::cases::VmHaRequest;
use crate::vmha::config::VmHaConfig;
use crate::vmha::decide::{self, Facts, HostFacts, VmRead};
use crate::vmha::input::{self, Flags, HookInput};
use crate::vmha::journal::{MemoryJournal, ack_dir};
use crate::vmha::log::HookLog;
use crate::vmha::run::{self, Ctx};
use crate::vmha::{fencing, oned, sanitize};

/// Exit code when the case ended well (as the stock hook: also when the host came back).
pub const EXIT_OK: i32 = 0;
/// Exit code on any error, refused VM or held case (the stock hook's `exit(-1)`).
pub const EXIT_ERROR: i32 = 255;

/// Arguments of `oneha host-error`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Installed as the COMMAND of OpenNebula's HOST hook for STATE=ERROR, \
    in place of ft/host_error.rb: ARGUMENTS=\"$TEMPLATE -m -p 5\", ARGUMENTS_STDIN=yes \
    (deploy/opennebula/host_error.hook). The hook reads `$TEMPLATE -m|-r|-d [-f] [-p N] [-u]` \
    from stdin. Exit 0: done (or the host came back); 255: error, refused VMs, or held by the \
    mass-failure guard. Standalone: without a oneha agent the case is worked in this process \
    and is not resumed if the front-end fails over (journaling in the cluster is not built \
    yet: docs/vm-ha.md)."
)]
pub struct HostErrorArgs {
    /// Print the plan (fence levels, then what each VM gets) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run by hand for this host id (read from oned) instead of a template on stdin; give the
    /// flags as arguments: `oneha host-error --host 4 -m -p 0`.
    #[arg(long, value_name = "ID")]
    pub host: Option<i64>,
    /// oned's endpoint and session.
    #[command(flatten)]
    pub oned: crate::opennebula::cli::OnedArgs,
    /// Time allowed for each request to oned (default: opennebula.timeout).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The hook's own arguments when not on stdin: `$TEMPLATE -m -p 5`, or the flags with
    /// --host.
    #[arg(
        allow_hyphen_values = true,
        trailing_var_arg = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// The config for the hook: a cluster config, or a standalone file with only `fencing:`,
/// `vm_ha:` and `opennebula:`, or nothing (defaults: every host unfenceable until configured).
pub fn load_config(path: &Path) -> Result<(Config, String), String> {
    if !path.exists() {
        return Ok((
            standalone(None)?,
            format!("{} not found: defaults", path.display()),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_cluster = serde_norway::from_str::<serde_norway::Value>(&text)
        .ok()
        .is_some_and(|v| v.get("nodes").is_some());
    if is_cluster {
        let c = config::parse(path, &text).map_err(|e| e.to_string())?;
        return Ok((c, format!("{} (cluster config)", path.display())));
    }
    let c = standalone(Some((path, &text)))?;
    Ok((c, format!("{} (standalone)", path.display())))
}

/// A standalone front-end's config file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StandaloneFile {
    #[serde(default)]
    fencing: crate::fence::FencingConfig,
    #[serde(default)]
    vm_ha: VmHaConfig,
    #[serde(default)]
    opennebula: crate::opennebula::OpennebulaConfig,
}

fn standalone(file: Option<(&Path, &str)>) -> Result<Config, String> {
    let f: StandaloneFile = match file {
        None => StandaloneFile {
            fencing: Default::default(),
            vm_ha: Default::default(),
            opennebula: Default::default(),
        },
        Some((path, text)) => {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let line = e.inner().location().map(|l| l.line());
                let key = e.path().to_string();
                format!(
                    "{}{}: {key}: {}",
                    path.display(),
                    line.map(|l| format!(":{l}")).unwrap_or_default(),
                    without_values(&e.into_inner().to_string())
                )
            })?
        }
    };
    let mut c: Config = serde_norway::from_str("cluster: standalone\nnodes: []\n")
        .map_err(|e| format!("internal: {e}"))?;
    let devices: Vec<&str> = f.fencing.devices.keys().map(String::as_str).collect();
    let mut problems = Vec::new();
    f.vm_ha.check(&devices, &mut |k, m| {
        problems.push(format!("vm_ha.{k}: {m}"))
    });
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    c.fencing = f.fencing;
    c.vm_ha = f.vm_ha;
    c.opennebula = f.opennebula;
    Ok(c)
}

fn this_node(cfg: &Config) -> String {
    crate::agent::resolve_node(cfg, None).unwrap_or_else(|_| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    })
}

fn read_stdin() -> Result<String, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(input::MAX_INPUT as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    String::from_utf8(buf).map_err(|_| "stdin is not UTF-8 text".to_string())
}

/// Runs `oneha host-error`; returns the exit code.
pub async fn run(args: &HostErrorArgs, config_path: &Path) -> i32 {
    match run_inner(args, config_path).await {
        Ok(code) => code,
        Err((host_id, e)) => {
            let log_path = config::load(config_path)
                .map(|c| c.vm_ha.log_file)
                .unwrap_or_else(|_| PathBuf::from(crate::vmha::config::DEFAULT_LOG));
            let log = match host_id {
                Some(id) => HookLog::open(&log_path, id),
                None => HookLog::journal_only(-1),
            };
            log.error(&e);
            log.error("Exiting due to previous error.");
            eprintln!("oneha host-error: {e}");
            EXIT_ERROR
        }
    }
}

type Failure = (Option<i64>, String);

async fn run_inner(args: &HostErrorArgs, config_path: &Path) -> Result<i32, Failure> {
    let (cfg, source) = load_config(config_path).map_err(|e| (None, e))?;
    let timeout = args.timeout.unwrap_or(cfg.opennebula.timeout.get());
    let client = || {
        auth::client_for(
            &cfg.opennebula,
            args.oned.endpoint.as_deref(),
            args.oned.auth_file.as_deref(),
            timeout,
            &Env::from_process(),
        )
        .map_err(|e| e.to_string())
    };
    // The input first: its host id names the log lines of every later error.
    let (input, client) = match args.host {
        Some(id) => {
            let flags = input::parse_flags(args.args.iter().map(String::as_str))
                .map_err(|e| (Some(id), e))?;
            let client = client().map_err(|e| (Some(id), e))?;
            let host = oned::host_info(&client, id)
                .await
                .map_err(|e| (Some(id), e.to_string()))?;
            (HookInput { host, flags }, client)
        }
        None => {
            let text = if args.args.is_empty() {
                read_stdin().map_err(|e| (None, e))?
            } else {
                args.args.join(" ")
            };
            let input = input::parse(&text).map_err(|e| (None, e))?;
            let client = client().map_err(|e| (Some(input.host.id), e))?;
            (input, client)
        }
    };
    let host_id = input.host.id;
    let fail = |e: String| (Some(host_id), e);
    // oned must answer (and accept the session) before anything starts: a hook that cannot
    // read its host does nothing and says why.
    // Its template as oned has it now fills the fence device (FENCE_IP), whatever the hook
    // manager passed.
    let mut input = input;
    if args.host.is_none() {
        let fresh = oned::host_info(&client, host_id)
            .await
            .map_err(|e| fail(e.to_string()))?;
        input.host.template = fresh.template;
    }
    let vmha = &cfg.vm_ha;
    let log = HookLog::open(&vmha.log_file, host_id);
    let (interval, from) = vmha.interval();
    if args.dry_run {
        return dry_run(&cfg, &client, &input).await.map_err(fail);
    }
    log.info("Hook launched");
    log.info(&format!("hostname: {}", input.host.name));
    log.info(&format!(
        "oneha {}: config {source}; monitoring interval {}s ({from})",
        env!("CARGO_PKG_VERSION"),
        interval.as_secs()
    ));
    if input.flags.pause > 0 {
        log.info(&format!(
            "Wait {} cycles ({}s), polling the host every {}s.",
            input.flags.pause,
            interval.as_secs() * u64::from(input.flags.pause),
            vmha.poll_interval.get().as_secs()
        ));
    }
    {
        match follow_in_cluster(&cfg, &input, interval, &log).await {
            Some(code) => return Ok(code),
            None => log.error(
                "no oneha agent answers on this node: working the case here, standalone (not \
                 journaled: a front-end failover ends it)",
            ),
        }
    }
    let local = this_node(&cfg);
    let fencer = fencing::host_fencer(&cfg, vmha, &local, &input.host).map(Arc::new);
    if let Err(e) = &fencer
        && input.flags.fencing
    {
        log.error(&format!("cannot fence {}: {e}", input.host.name));
    }
    let (case, _) = run::open_case(1, &input.host, &input.flags, interval);
    let journal = MemoryJournal::new(case.clone(), ack_dir());
    let ctx = Ctx {
        client: Arc::new(client),
        journal: &journal,
        fencer,
        rules: vmha.rules(),
        guard_window: vmha.guard.window.get(),
        log: &log,
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let end = run::work(&ctx, case, stop).await;
    if end.closed.is_none() {
        log.error("Stopped before the case ended (signal): nothing further is done");
        return Ok(EXIT_ERROR);
    }
    Ok(summary(&log, &end))
}

/// The admin socket: `$ONEHA_ADMIN_SOCKET`, else the config's.
pub fn admin_socket(cfg: &Config) -> PathBuf {
    std::env::var_os("ONEHA_ADMIN_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.admin_socket.clone())
}

/// The agent's hook socket: `$ONEHA_HOOK_SOCKET`, else `vm_ha.hook_socket` (the hook runs
/// as oneadmin and may not read the config: then the default).
pub fn hook_socket(cfg: &Config) -> PathBuf {
    std::env::var_os("ONEHA_HOOK_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.vm_ha.hook_socket(&cfg.admin_socket))
}

/// Opens the case in the cluster and follows it until it closes: the group's owner works
/// it, and a new owner resumes it after a failover. `None` when no agent answers here.
async fn follow_in_cluster(
    cfg: &Config,
    input: &HookInput,
    interval: Duration,
    log: &HookLog,
) -> Option<i32> {
    let socket = hook_socket(cfg);
    let (_, event) = run::open_case(0, &input.host, &input.flags, interval);
    let open = AdminRequest::VmHa(VmHaRequest::Open { event });
    let r = admin::call(&socket, &open, Duration::from_secs(30))
        .await
        .ok()?;
    let id = match (r.ok, r.result.as_ref().and_then(serde_json::Value::as_u64)) {
        (true, Some(id)) => id,
        _ => {
            log.error(&format!(
                "the cluster did not open the case: {}",
                r.error.unwrap_or_default()
            ));
            return Some(EXIT_ERROR);
        }
    };
    log.info(&format!(
        "case {id} is journaled in the cluster; the group's owner works it (a front-end \
         failover resumes it on the new owner)"
    ));
    let mut unreachable = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let get = AdminRequest::VmHa(VmHaRequest::Get { id });
        let case: Option<Case> = match admin::call(&socket, &get, Duration::from_secs(10)).await {
            Ok(r) if r.ok => r.result.and_then(|v| serde_json::from_value(v).ok()),
            _ => None,
        };
        match case {
            Some(c) if c.closed.is_some() => return Some(summary(log, &c)),
            Some(_) => unreachable = 0,
            None => {
                unreachable += 1;
                if unreachable == 30 {
                    log.error(&format!(
                        "the agent has not answered for 30s; case {id} goes on in the cluster \
                         (`oneha vm-ha` on any node shows it)"
                    ));
                    return Some(EXIT_ERROR);
                }
            }
        }
    }
}

fn summary(log: &HookLog, c: &Case) -> i32 {
    let problems = c.problems();
    if problems > 0 {
        log.error(&format!(
            "{problems} VM(s) need an operator: see the lines above (`oneha vm-ha` lists cases \
             where an agent runs)"
        ));
    }
    match &c.closed {
        Some((Closed::Finished, _)) if problems == 0 => EXIT_OK,
        Some((Closed::HostBack { .. }, _)) => EXIT_OK,
        _ => EXIT_ERROR,
    }
}

/// The plan without acting: fence levels, then each VM's action or why it is skipped.
async fn dry_run(cfg: &Config, client: &Client, input: &HookInput) -> Result<i32, String> {
    let vmha = &cfg.vm_ha;
    let host = oned::host_info(client, input.host.id)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    out.push_str(&format!(
        "host {} (id {}) is {}\n",
        sanitize(&host.name, 80),
        host.id,
        crate::vmha::host::state::name(host.state)
    ));
    let f: &Flags = &input.flags;
    out.push_str(&format!(
        "flags: {}{}{} -p {}\n",
        f.mode.flag(),
        if f.force { " -f" } else { "" },
        if f.fencing { "" } else { " -u" },
        f.pause
    ));
    if f.fencing {
        match fencing::describe(vmha, &host) {
            Ok(levels) => out.push_str(&format!("fence: {}\n", levels.join(", then "))),
            Err(e) => out.push_str(&format!("fence: IMPOSSIBLE: {e}; no VM would be touched\n")),
        }
    } else {
        out.push_str("fence: disabled (-u): VMs would be recovered without fencing\n");
    }
    let (case, _) = run::open_case(0, &host, f, Duration::ZERO);
    let mut facts = Facts {
        now: run::now_ms(),
        host: Some(HostFacts {
            state: host.state,
            vms: host.vms.clone(),
            failing: 1,
            read_at: 0,
        }),
        ..Facts::default()
    };
    if f.mode == crate::vmha::input::Mode::Migrate {
        facts.datastores = Some(oned::datastores(client).await.map_err(|e| e.to_string())?);
    }
    for id in &host.vms {
        let vm = oned::vm_info(client, *id)
            .await
            .map_err(|e| e.to_string())?;
        facts.vms.insert(*id, VmRead { vm, read_at: 0 });
    }
    let empty = Default::default();
    let ds = facts.datastores.as_ref().unwrap_or(&empty);
    let rules = vmha.rules();
    let mut plans: Vec<(i64, Plan)> = host
        .vms
        .iter()
        .map(|id| {
            let vm = facts.vms.get(id).and_then(|r| r.vm.as_ref());
            (*id, decide::plan_vm(&case, vm, ds, &rules))
        })
        .collect();
    plans.sort_by_key(|(id, p)| match p {
        Plan::Act { priority, .. } => (0, -priority, *id),
        Plan::Skip { .. } => (1, 0, *id),
    });
    for (id, p) in plans {
        let name = facts
            .vms
            .get(&id)
            .and_then(|r| r.vm.as_ref())
            .map(|v| sanitize(&v.name, 40))
            .unwrap_or_default();
        match p {
            Plan::Act { op, priority } => {
                out.push_str(&format!(
                    "  {:<36} # {name} (priority {priority})\n",
                    op.command(id)
                ));
            }
            Plan::Skip { reason } => out.push_str(&format!("  skip VM {id} # {name}: {reason}\n")),
        }
    }
    if host.vms.is_empty() {
        out.push_str("  no VMs on the host\n");
    }
    print!("{out}");
    Ok(EXIT_OK)
}

/// The standalone `oneha fence-ack HOST`: lets a case blocked on fencing this host go on.
pub fn ack_host(host: &str) -> Result<PathBuf, String> {
    crate::vmha::journal::write_ack(&ack_dir(), host)
}

/// A serde message without the values it quotes (a secret of the wrong type would be
/// echoed): "invalid type: integer `123`" -> "invalid type: integer", and no location.
fn without_values(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or_default();
    let mut out = String::new();
    let mut quoted = false;
    for c in msg.chars() {
        if c == '`' {
            quoted = !quoted;
            if quoted {
                out.push_str("(value hidden)");
            }
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_config_errors_hide_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vm-ha.yaml");
        std::fs::write(
            &p,
            "fencing:\n  devices:\n    ipmi: {type: agent, agent: fence_ipmilan, options: {password: 987654321}}\n",
        )
        .unwrap();
        let e = load_config(&p).unwrap_err();
        assert!(!e.contains("987654321"), "{e}");
        assert!(e.contains("vm-ha.yaml:3"), "{e}");
        std::fs::write(&p, "vm_ha: {hosts: {kvm1: {levels: [{device: nope}]}}}\n").unwrap();
        assert!(
            load_config(&p)
                .unwrap_err()
                .contains("unknown device `nope`")
        );
        std::fs::write(&p, "vm_ha: {max_parallel: 4}\n").unwrap();
        let (c, from) = load_config(&p).unwrap();
        assert_eq!(c.vm_ha.max_parallel, 4);
        assert!(from.contains("standalone"));
        let (c, from) = load_config(&dir.path().join("missing.yaml")).unwrap();
        assert!(c.vm_ha.hosts.is_empty() && from.contains("defaults"));
    }
}
