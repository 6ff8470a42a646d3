//! Operator commands: `oneha fence-check [NODE]` and the standalone `oneha fence-xvm` debug
//! client (options like the stock `fence_xvm`). Exit codes follow fence agents: 0 success,
//! 1 failure, 2 off (status).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::Config;
use crate::fence::xvm::{DEFAULT_GROUP_V4, DEFAULT_PORT, HashType, HostEntry, PowerState};
use crate::fence::xvm_client::{self, XvmParams};
use crate::fence::{Action, Answer, FenceError, Fencer};

/// `oneha fence-check [NODE]`: proves each fence level works, without fencing anyone.
#[derive(Debug, Clone, Args)]
pub struct FenceCheckArgs {
    /// Only this node's levels (default: every node with fence levels).
    pub node: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `fence-check` directly from this node (no agent needed). Exit 0 when every check
/// passed, 1 otherwise.
pub async fn run_fence_check(cfg: &Config, local_node: &str, args: &FenceCheckArgs) -> i32 {
    let fencer = match Fencer::new(cfg, local_node) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("oneha fence-check: {e}");
            return 1;
        }
    };
    let results = fencer.check(args.node.as_deref()).await;
    if args.json {
        match serde_json::to_string_pretty(&results) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("oneha fence-check: cannot print JSON: {e}");
                return 1;
            }
        }
    } else {
        for r in &results {
            println!(
                "{} {} level {} {} ({}) {}: {}",
                if r.ok { "OK  " } else { "FAIL" },
                r.target,
                r.level + 1,
                r.device,
                r.method,
                r.action,
                r.detail
            );
        }
        if results.is_empty() {
            println!("no fence levels configured (fencing.nodes is empty)");
        }
    }
    if !results.is_empty() && results.iter().all(|r| r.ok) {
        0
    } else {
        1
    }
}

fn parse_action(s: &str) -> Result<Action, String> {
    s.parse()
}

/// `oneha fence-xvm`: one fence_xvm request, like the stock client but sent only from one
/// address (`--source`).
#[derive(Debug, Clone, Args)]
pub struct FenceXvmArgs {
    /// off, on, reboot, status, monitor or list.
    #[arg(short = 'o', long = "action", default_value = "status", value_parser = parse_action)]
    pub action: Action,
    /// Domain name (or UUID with -u).
    #[arg(
        short = 'H',
        long = "domain",
        visible_short_alias = 'n',
        default_value = ""
    )]
    pub domain: String,
    /// The domain is a UUID.
    #[arg(short = 'u', long = "use-uuid")]
    pub uuid: bool,
    /// Key file shared with fence_virtd.
    #[arg(
        short = 'k',
        long = "key-file",
        default_value = "/etc/cluster/fence_xvm.key"
    )]
    pub key_file: PathBuf,
    /// Multicast group.
    #[arg(short = 'a', long = "address", default_value_t = IpAddr::V4(DEFAULT_GROUP_V4))]
    pub group: IpAddr,
    /// UDP request and TCP callback port.
    #[arg(short = 'p', long = "port", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Packet hash (as stock fence_xvm's -c).
    #[arg(short = 'c', long = "hash", default_value = "sha256")]
    pub hash: HashType,
    /// Challenge-response hash (as stock fence_xvm's -C).
    #[arg(short = 'C', long = "auth", default_value = "sha256")]
    pub auth: HashType,
    /// Local IPv4 address to send from and be called back on (default: the first
    /// non-loopback IPv4 address of an up interface).
    #[arg(long = "source")]
    pub source: Option<IpAddr>,
    /// Timeout in seconds.
    #[arg(short = 't', long = "timeout", default_value_t = 30.0)]
    pub timeout: f64,
    /// Retransmit interval in tenths of a second (as stock fence_xvm's -r).
    #[arg(short = 'r', long = "retrans", default_value_t = 20)]
    pub retrans: u32,
}

/// Runs one request and prints the answer like the stock client. Exit 0 success (status:
/// on), 2 status off, 1 failure.
pub async fn run_fence_xvm(args: &FenceXvmArgs) -> i32 {
    let source = match args.source.or_else(first_local_ipv4) {
        Some(s) => s,
        None => {
            eprintln!("oneha fence-xvm: no non-loopback IPv4 address found; pass --source");
            return 1;
        }
    };
    if !(args.timeout.is_finite() && args.timeout > 0.0) || args.retrans == 0 {
        eprintln!("oneha fence-xvm: timeout and retransmit must be positive");
        return 1;
    }
    let needs_domain = !matches!(args.action, Action::List | Action::Monitor);
    if needs_domain && args.domain.is_empty() {
        eprintln!(
            "oneha fence-xvm: -o {} needs a domain: -H NAME",
            args.action
        );
        return 1;
    }
    let params = XvmParams {
        group: args.group,
        port: args.port,
        key_file: args.key_file.clone(),
        hash: args.hash,
        auth: args.auth,
        source,
        timeout: Duration::from_secs_f64(args.timeout.min(1.0e6)),
        retransmit: Duration::from_millis(u64::from(args.retrans) * 100),
    };
    let r = xvm_client::request(&params, args.action, &args.domain, args.uuid).await;
    print_answer(r)
}

/// Prints an answer or error and returns the fence-agent exit code.
pub fn print_answer(r: Result<Answer, FenceError>) -> i32 {
    match r {
        Ok(Answer::PowerOn) => {
            println!("Status: ON");
            0
        }
        Ok(Answer::PowerOff) => {
            println!("Status: OFF");
            2
        }
        Ok(Answer::Hosts(hosts)) => {
            for h in &hosts {
                println!("{}", host_line(h));
            }
            0
        }
        Ok(Answer::Done) => 0,
        Err(e) => {
            eprintln!("oneha fence-xvm: {e}");
            1
        }
    }
}

/// The first non-loopback IPv4 address of an interface that is up.
pub fn first_local_ipv4() -> Option<IpAddr> {
    use nix::net::if_::InterfaceFlags;
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        if !ifa.flags.contains(InterfaceFlags::IFF_UP)
            || ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK)
        {
            return None;
        }
        let sin = ifa.address?.as_sockaddr_in().copied()?;
        Some(IpAddr::V4(sin.ip()))
    })
}

/// One line of `fence-xvm -o list`: domain, UUID, state. The names come from the network
/// (fence_virtd), so control characters are shown escaped, never sent to the terminal.
pub(crate) fn host_line(h: &HostEntry) -> String {
    use crate::opennebula::terminal::sanitize;
    let st = match h.state {
        PowerState::On => "on",
        PowerState::Off => "off",
    };
    format!("{:<32} {:<36} {st}", sanitize(&h.domain), sanitize(&h.uuid))
}
