//! `oneha stuck-vms`: the report on demand, on any front-end.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::OnedError;
use super::OpennebulaConfig;
use super::auth::{self, Env};
use super::report;
use super::terminal::sanitize;
use super::xmlrpc::Retry;
use crate::config::parse_duration;

/// Exit code: no VM stuck.
pub const EXIT_NONE_STUCK: i32 = 0;
/// Exit code: some VMs stuck (listed).
pub const EXIT_SOME_STUCK: i32 = 1;
/// Exit code: the report could not be made (message on stderr).
pub const EXIT_ERROR: i32 = 2;

/// Where oned is and who calls it: shared by the commands that talk to oned.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OnedArgs {
    /// oned's XML-RPC endpoint (default: opennebula.endpoint, $ONE_XMLRPC, one_endpoint files,
    /// http://localhost:2633/RPC2).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// File holding the session `user:password` (default: opennebula.auth_file, $ONE_AUTH,
    /// ~/.one/one_auth, /var/lib/one/.one/one_auth).
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
}

/// Arguments of `oneha stuck-vms`.
#[derive(Debug, Clone, clap::Args)]
pub struct StuckVmsArgs {
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// oned's endpoint and session.
    #[command(flatten)]
    pub oned: OnedArgs,
    /// Time allowed for the whole report, e.g. `30s`; each request gets at most this too.
    /// Unset: each request gets opennebula.timeout, and the report as long as paging takes.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Keep retrying this long while oned starts or elects a leader, e.g. `1m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub wait: Duration,
    /// VMs per request (default: opennebula.page_size).
    #[arg(long, value_name = "N")]
    pub page_size: Option<u32>,
}

/// Runs the command: prints the report, returns 0 (none stuck), 1 (some stuck) or 2 (error,
/// with a message on stderr). `cfg` is the config's `opennebula:` section when a config file
/// was read; without one, OpenNebula's own conventions apply.
pub async fn run(args: &StuckVmsArgs, cfg: Option<&OpennebulaConfig>) -> i32 {
    let defaults = OpennebulaConfig::default();
    let cfg = cfg.unwrap_or(&defaults);
    let page_size = args.page_size.unwrap_or(cfg.page_size);
    if page_size == 0 || page_size > super::MAX_PAGE_SIZE {
        eprintln!(
            "oneha stuck-vms: --page-size must be between 1 and {}, found {page_size}",
            super::MAX_PAGE_SIZE
        );
        return EXIT_ERROR;
    }
    let timeout = args.timeout.unwrap_or(cfg.timeout.get());
    if timeout.is_zero() {
        eprintln!("oneha stuck-vms: --timeout must be longer than 0, e.g. `30s`");
        return EXIT_ERROR;
    }
    let client = match auth::client_for(
        cfg,
        args.oned.endpoint.as_deref(),
        args.oned.auth_file.as_deref(),
        timeout,
        &Env::from_process(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oneha stuck-vms: {e}");
            return EXIT_ERROR;
        }
    };
    let mut cancel = None;
    let build = report::build(&client, page_size, Retry::within(args.wait), &mut cancel);
    let result = match args.timeout {
        None => build.await,
        Some(limit) => tokio::time::timeout(limit, build)
            .await
            .unwrap_or_else(|_| {
                Err(OnedError::Config(format!(
                    "the report did not complete within --timeout {}; oned may be slow or \
                     the pool large: raise --timeout",
                    crate::config::Dur(limit)
                )))
            }),
    };
    match result {
        Ok(r) => {
            let text = if args.json {
                format!("{}\n", r.to_json())
            } else {
                r.to_table()
            };
            // A closed pipe (`| head`) is not an error worth a panic.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            if r.counts.stuck == 0 {
                EXIT_NONE_STUCK
            } else {
                EXIT_SOME_STUCK
            }
        }
        Err(e) => {
            eprintln!("oneha stuck-vms: {}", sanitize(&e.to_string()));
            EXIT_ERROR
        }
    }
}
