//! `oneha vm-ha`: the cluster's VM-HA cases, in progress and past, with each VM's outcome.

use std::path::Path;
use std::time::Duration;

use super::cli::admin_socket;
use crate::admin::{self, AdminRequest};
use crate::config;
use crate::vmha::case::{Case, Plan};
use crate::vmha::cases::VmHaRequest;
use crate::vmha::sanitize;

/// Arguments of `oneha vm-ha`.
#[derive(Debug, Clone, clap::Args)]
pub struct VmHaArgs {
    /// Machine-readable output (every case with every VM).
    #[arg(long)]
    pub json: bool,
    /// Show this case with each VM's plan and outcome.
    #[arg(long, value_name = "ID")]
    pub case: Option<u64>,
}

/// One line per case: id, host, flags, state.
pub fn render_cases(cases: &[Case]) -> String {
    if cases.is_empty() {
        return "no VM-HA cases\n".into();
    }
    let mut out = format!(
        "{:<8} {:<20} {:<10} {:<20} {}\n",
        "CASE", "HOST", "FLAGS", "OPENED (UTC)", "STATE"
    );
    for c in cases {
        let flags = format!(
            "{}{}{} -p{}",
            c.flags.mode.flag(),
            if c.flags.force { " -f" } else { "" },
            if c.flags.fencing { "" } else { " -u" },
            c.flags.pause
        );
        let opened = crate::vmha::log::stamp((c.opened_at / 1000) as i64);
        out.push_str(&format!(
            "{:<8} {:<20} {:<10} {:<20} {}\n",
            c.id,
            sanitize(&c.host_name, 20),
            flags,
            opened.trim_end_matches(" +0000"),
            c.state_line()
        ));
    }
    out
}

/// One case with its VMs.
pub fn render_case(c: &Case) -> String {
    let mut out = render_cases(std::slice::from_ref(c));
    for (id, e) in &c.vms {
        let what = match &e.plan {
            Plan::Act { op, .. } => op.command(*id),
            Plan::Skip { reason } => format!("skip: {reason}"),
        };
        let outcome = match &e.outcome {
            None if matches!(e.plan, Plan::Skip { .. }) => String::new(),
            None if e.intent_at.is_some() => "sent, no answer yet".into(),
            None => "pending".into(),
            Some(o) => serde_json::to_string(o).unwrap_or_default(),
        };
        out.push_str(&format!(
            "  VM {id:<7} {:<24} {what:<40} {outcome}\n",
            sanitize(&e.name, 24)
        ));
    }
    out
}

/// Runs `oneha vm-ha`.
pub async fn run_vm_ha(args: &VmHaArgs, config_path: &Path) -> i32 {
    let socket = match config::load(config_path) {
        Ok(c) => admin_socket(&c),
        Err(_) => {
            eprintln!(
                "oneha vm-ha: cases are kept by the oneha agents of a cluster; without one \
                 (standalone), see {}",
                crate::vmha::config::DEFAULT_LOG
            );
            return 2;
        }
    };
    let req = AdminRequest::VmHa(VmHaRequest::List);
    let cases: Vec<Case> = match admin::call(&socket, &req, Duration::from_secs(10)).await {
        Ok(r) if r.ok => match r.result.map(serde_json::from_value) {
            Some(Ok(v)) => v,
            _ => {
                eprintln!("oneha vm-ha: bad answer from the agent");
                return 2;
            }
        },
        Ok(r) => {
            eprintln!("oneha vm-ha: {}", r.error.unwrap_or_default());
            return 2;
        }
        Err(e) => {
            eprintln!("oneha vm-ha: {e}");
            return 2;
        }
    };
    let text = match (args.json, args.case) {
        (true, None) => serde_json::to_string_pretty(&cases).unwrap_or_default() + "\n",
        (json, Some(id)) => match cases.iter().find(|c| c.id == id) {
            Some(c) if json => serde_json::to_string_pretty(c).unwrap_or_default() + "\n",
            Some(c) => render_case(c),
            None => {
                eprintln!("oneha vm-ha: no case {id}");
                return 1;
            }
        },
        (false, None) => render_cases(&cases),
    };
    print!("{text}");
    0
}
