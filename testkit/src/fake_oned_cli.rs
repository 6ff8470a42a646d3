//! `oneha-testkit fake-oned`: the fake oned as a program (pyone check, benchmark, demos).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fake_oned::{FakeOned, Faults, Order, Vms};
use super::vm_xml::{self, FakeVm};
use oneha::config::parse_duration;

/// Stuck LCM states `--stuck-every` cycles through (a mix of transient and failure states).
const STUCK_CYCLE: [i64; 8] = [1, 2, 17, 12, 39, 4, 16, 36];

/// Arguments of `oneha-testkit fake-oned`.
#[derive(Debug, Clone, clap::Args)]
pub struct FakeOnedArgs {
    /// Address to listen on (loopback only); port 0 picks one. The chosen address is printed
    /// on stdout as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// A VM_POOL fixture file (extended bodies) to serve.
    #[arg(long, conflicts_with = "generate")]
    pub vms: Option<PathBuf>,
    /// Generate N VMs (mostly RUNNING, some POWEROFF, PENDING, STOPPED, UNDEPLOYED, DONE).
    #[arg(long)]
    pub generate: Option<i64>,
    /// Put VM ID in STATE/LCM_STATE with history ACTION: `ID:STATE:LCM[:ACTION]`.
    #[arg(long, value_parser = parse_stuck)]
    pub stuck: Vec<(i64, i64, i64, i64)>,
    /// With --generate: every K-th VM is stuck (PROLOG, BOOT, HOTPLUG, SHUTDOWN, ...).
    #[arg(long)]
    pub stuck_every: Option<i64>,
    /// The accepted session.
    #[arg(long, default_value = "oneadmin:opennebula")]
    pub session: String,
    /// List order (oned's API_LIST_ORDER).
    #[arg(long, default_value = "desc", value_parser = ["asc", "desc"])]
    pub order: String,
    /// Inject a fault: auth, election:K, malformed-pool, malformed-reply, wrong-type-pool,
    /// wrong-type-reply, slow:DURATION, close. Repeatable.
    #[arg(long)]
    pub fail: Vec<String>,
    /// Start listening only after this long (clients see connection refused until then).
    #[arg(long, value_parser = parse_duration)]
    pub listen_after: Option<Duration>,
    /// A stateful world instead of a static pool.
    #[command(flatten)]
    pub world: Box<super::world_cli::WorldArgs>,
}

fn parse_stuck(s: &str) -> Result<(i64, i64, i64, i64), String> {
    let nums: Result<Vec<i64>, _> = s.split(':').map(str::parse::<i64>).collect();
    match nums.map_err(|e| format!("`{s}`: {e}"))?.as_slice() {
        [id, st, lcm] => Ok((*id, *st, *lcm, 0)),
        [id, st, lcm, action] => Ok((*id, *st, *lcm, *action)),
        _ => Err(format!("`{s}`: expected ID:STATE:LCM_STATE[:ACTION]")),
    }
}

fn parse_faults(list: &[String]) -> Result<Faults, String> {
    let mut f = Faults::default();
    for item in list {
        let (name, arg) = item.split_once(':').unwrap_or((item.as_str(), ""));
        match name {
            "auth" => f.auth_error = true,
            "election" => {
                f.election_calls = arg
                    .parse()
                    .map_err(|_| format!("--fail election:K needs a count, found `{arg}`"))?;
            }
            "malformed-pool" => f.malformed_pool = true,
            "malformed-reply" => f.malformed_reply = true,
            "wrong-type-pool" => f.wrong_type_pool = true,
            "wrong-type-reply" => f.wrong_type_reply = true,
            "slow" => f.delay = parse_duration(arg)?,
            "close" => f.close = true,
            other => return Err(format!("unknown --fail mode `{other}`")),
        }
    }
    Ok(f)
}

/// Builds the fake's settings from the arguments.
pub fn settings(args: &FakeOnedArgs) -> Result<FakeOned, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let stuck_rec = |id, st, lcm, action| vm_xml::with_state(id, st, lcm, action, now);
    let vms = match (&args.vms, args.generate) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut list = vm_xml::load_fixture(&text)?;
            for &(id, st, lcm, action) in &args.stuck {
                list.retain(|v| v.rec.id != id);
                list.push(FakeVm {
                    rec: stuck_rec(id, st, lcm, action),
                    raw: None,
                });
            }
            Vms::List(list)
        }
        (None, Some(n)) => {
            let mut overrides = BTreeMap::new();
            if let Some(k) = args.stuck_every.filter(|k| *k > 0) {
                for (i, id) in (0..n).step_by(k as usize).enumerate() {
                    let lcm = STUCK_CYCLE[i % STUCK_CYCLE.len()];
                    overrides.insert(id, stuck_rec(id, 3, lcm, 0));
                }
            }
            for &(id, st, lcm, action) in &args.stuck {
                overrides.insert(id, stuck_rec(id, st, lcm, action));
            }
            Vms::Generated { n, overrides }
        }
        (None, None) => match super::world_cli::world(&args.world)? {
            Some(w) => Vms::World(w),
            None => return Err("give --vms FILE, --generate N, or --world/--state FILE".into()),
        },
    };
    Ok(FakeOned {
        session: args.session.clone(),
        order: if args.order == "asc" {
            Order::Asc
        } else {
            Order::Desc
        },
        faults: parse_faults(&args.fail)?,
        vms,
        now,
    })
}

/// Runs the fake until killed; returns an exit code.
pub async fn run(args: &FakeOnedArgs) -> i32 {
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "fake-oned: --listen must be a loopback address, found {}",
            args.listen
        );
        return 2;
    }
    let fake = match settings(args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-oned: {e}");
            return 2;
        }
    };
    if let Some(d) = args.listen_after {
        tokio::time::sleep(d).await;
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-oned: cannot listen on {}: {e}", args.listen);
            return 2;
        }
    };
    let running = match fake.spawn(listener) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fake-oned: {e}");
            return 2;
        }
    };
    println!("listening on {}", running.addr);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    0
}
