//! A test fence daemon speaking the fence_xvm protocol server side, like fence_virtd: it joins
//! the multicast group on one interface address, drops requests whose hash is weaker than its
//! minimum or does not verify, calls the client back, runs the challenge-response (answering
//! the client's challenge first), and answers. Domains are a list with on/off state; `off`,
//! `on` and `reboot` run a hook (`HOOK ACTION DOMAIN`, success iff it exits 0) so a test can
//! make `off` really power a node off.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use oneha::fence::xvm::{
    self, CHALLENGE_LEN, DEFAULT_GROUP_V4, DEFAULT_PORT, HashType, HostEntry, Op, PowerState,
    REQUEST_LEN, RESP_FAIL, RESP_HOSTLIST, RESP_OFF, RESP_SUCCESS, Request,
};
use oneha::fence::xvm_client::read_full;

/// `oneha-testkit fence-daemon` options.
#[derive(Debug, Clone, Parser)]
#[command(name = "fence-daemon")]
pub struct FenceDaemonArgs {
    /// Interface address to join the group on (the daemon's host address).
    #[arg(long)]
    pub listen: Ipv4Addr,
    /// Multicast group.
    #[arg(long, default_value_t = DEFAULT_GROUP_V4)]
    pub group: Ipv4Addr,
    /// UDP port.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Shared key file.
    #[arg(long)]
    pub key_file: PathBuf,
    /// Weakest request hash accepted.
    #[arg(long, default_value = "sha256")]
    pub hash: HashType,
    /// Challenge-response hash.
    #[arg(long, default_value = "sha256")]
    pub auth: HashType,
    /// A domain: `NAME[:UUID][:off]` (repeatable). Domains start on unless `:off`.
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// Program run as `HOOK ACTION DOMAIN` for off, on and reboot; success iff it exits 0.
    #[arg(long)]
    pub hook: Option<PathBuf>,
    /// The hook knows the real power state (as fence_virtd asks libvirt): `status` asks it
    /// (`HOOK status DOMAIN` exits 0 for on, 2 for off, as fence agents report), and `off`
    /// and `reboot` run it even for a domain this daemon powered off before, which a test
    /// may have booted again since.
    #[arg(long)]
    pub always_run_hook: bool,
}

/// One guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Name.
    pub name: String,
    /// UUID.
    pub uuid: String,
    /// Running.
    pub on: bool,
}

/// Parses `NAME[:UUID][:off]`.
pub fn parse_domain(spec: &str, index: usize) -> Result<Domain, String> {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default().to_string();
    if name.is_empty() || name.len() > xvm::DOMAIN_MAX {
        return Err(format!("bad domain `{spec}`: expected NAME[:UUID][:off]"));
    }
    let mut d = Domain {
        name,
        uuid: format!("00000000-0000-4000-8000-{index:012x}"),
        on: true,
    };
    for p in parts {
        match p {
            "off" => d.on = false,
            "on" => d.on = true,
            u if u.len() == 36 => d.uuid = u.to_string(),
            other => return Err(format!("bad domain part `{other}` in `{spec}`")),
        }
    }
    Ok(d)
}

/// The daemon's state.
pub struct FenceServer {
    args: FenceDaemonArgs,
    key: Vec<u8>,
    domains: Vec<Domain>,
    seen: HashMap<(u8, u32, String), Instant>,
}

impl FenceServer {
    /// Reads the key and parses the domains.
    pub fn new(args: FenceDaemonArgs) -> Result<FenceServer, String> {
        let key = xvm::read_key(&args.key_file)?;
        let domains = args
            .domains
            .iter()
            .enumerate()
            .map(|(i, s)| parse_domain(s, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FenceServer {
            args,
            key,
            domains,
            seen: HashMap::new(),
        })
    }

    /// Joins the group and serves requests one at a time, forever.
    pub async fn serve(mut self) -> std::io::Result<()> {
        let sock = std::net::UdpSocket::bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            self.args.port,
        ))?;
        sock.join_multicast_v4(&self.args.group, &self.args.listen)?;
        sock.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(sock)?;
        println!("READY");
        eprintln!(
            "fence-daemon: listening on {}:{} via {} (hash >= {}, auth {})",
            self.args.group, self.args.port, self.args.listen, self.args.hash, self.args.auth
        );
        let mut buf = [0u8; 512];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await?;
            let Some(packet) = buf.get(..n) else {
                continue;
            };
            if let Some(req) = self.accept(packet, from) {
                self.handle(req).await;
            }
        }
    }

    /// Decodes, checks the hash and drops repeats; `None` means "ignore silently".
    fn accept(&mut self, packet: &[u8], from: SocketAddr) -> Option<Request> {
        if packet.len() != REQUEST_LEN {
            eprintln!("fence-daemon: {from}: ignored {} bytes", packet.len());
            return None;
        }
        let req = match Request::decode(packet) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("fence-daemon: {from}: ignored: {e}");
                return None;
            }
        };
        if req.hash < self.args.hash || !xvm::verify_request(packet, &self.key) {
            eprintln!(
                "fence-daemon: {from}: dropped: hash {} or key mismatch",
                req.hash
            );
            return None;
        }
        let now = Instant::now();
        self.seen
            .retain(|_, t| now.duration_since(*t) < Duration::from_secs(10));
        let id = (req.op.code(), req.seqno, req.domain.clone());
        if self.seen.insert(id, now).is_some() {
            return None;
        }
        Some(req)
    }

    async fn handle(&mut self, req: Request) {
        let to = SocketAddr::new(req.address, req.port);
        let connect = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to)).await;
        let Ok(Ok(mut s)) = connect else {
            eprintln!("fence-daemon: cannot call back {to}");
            return;
        };
        let exchange = tokio::time::timeout(Duration::from_secs(10), self.authenticate(&mut s));
        if !matches!(exchange.await, Ok(true)) {
            eprintln!("fence-daemon: {to}: challenge-response failed");
            return;
        }
        let code = self.perform(&req).await;
        eprintln!(
            "fence-daemon: {} `{}` from {to}: {code}",
            req.op.name(),
            req.domain
        );
        if code == RESP_HOSTLIST {
            let mut out = vec![RESP_HOSTLIST];
            for d in &self.domains {
                out.extend_from_slice(&xvm::encode_host_record(&HostEntry {
                    domain: d.name.clone(),
                    uuid: d.uuid.clone(),
                    state: if d.on {
                        PowerState::On
                    } else {
                        PowerState::Off
                    },
                }));
            }
            out.extend_from_slice(&[0u8; xvm::LIST_RECORD_LEN]);
            out.push(RESP_SUCCESS);
            let _ = s.write_all(&out).await;
        } else {
            let _ = s.write_all(&[code]).await;
        }
        let _ = s.shutdown().await;
    }

    /// Answers the client's challenge, then challenges it.
    async fn authenticate(&self, s: &mut TcpStream) -> bool {
        let auth = self.args.auth;
        if auth == HashType::None {
            return true;
        }
        let mut theirs = [0u8; CHALLENGE_LEN];
        if read_full(s, &mut theirs).await.is_err() {
            return false;
        }
        let answer = xvm::challenge_response(auth, &self.key, &theirs);
        if s.write_all(&answer).await.is_err() {
            return false;
        }
        let ours = xvm::new_challenge();
        if s.write_all(&ours).await.is_err() {
            return false;
        }
        let mut reply = [0u8; CHALLENGE_LEN];
        read_full(s, &mut reply).await.is_ok()
            && xvm::check_response(auth, &self.key, &ours, &reply)
    }

    async fn perform(&mut self, req: &Request) -> u8 {
        let found = self.domains.iter().position(|d| {
            if req.uuid {
                d.uuid.eq_ignore_ascii_case(&req.domain)
            } else {
                d.name == req.domain
            }
        });
        match (req.op, found) {
            (Op::Null | Op::Monitor, _) => RESP_SUCCESS,
            (Op::List, _) => RESP_HOSTLIST,
            // Like fence_virtd: an unknown domain reads as off. Never proof of fencing.
            (Op::Status, None) => RESP_OFF,
            (Op::Status, Some(i)) if self.args.always_run_hook && self.args.hook.is_some() => {
                let name = self.domains[i].name.clone();
                match self.hook_status(&name).await {
                    Some(on) => {
                        self.domains[i].on = on;
                        if on { RESP_SUCCESS } else { RESP_OFF }
                    }
                    None => RESP_FAIL,
                }
            }
            (Op::Status, Some(i)) => {
                if self.domains[i].on {
                    RESP_SUCCESS
                } else {
                    RESP_OFF
                }
            }
            (_, None) => RESP_FAIL,
            (Op::Off | Op::Reboot, Some(i))
                if !self.domains[i].on && !self.args.always_run_hook =>
            {
                RESP_SUCCESS
            }
            (Op::On, Some(i)) if self.domains[i].on => RESP_SUCCESS,
            (op, Some(i)) => {
                let name = self.domains[i].name.clone();
                if !self.run_hook(op.name(), &name).await {
                    return RESP_FAIL;
                }
                self.domains[i].on = op != Op::Off;
                RESP_SUCCESS
            }
        }
    }

    /// `HOOK status DOMAIN`: `Some(true)` on exit 0, `Some(false)` on exit 2, else `None`.
    async fn hook_status(&self, domain: &str) -> Option<bool> {
        let st = self.hook("status", domain).await?;
        match st.code() {
            Some(0) => Some(true),
            Some(2) => Some(false),
            _ => {
                eprintln!("fence-daemon: hook status {domain}: {st}");
                None
            }
        }
    }

    async fn run_hook(&self, action: &str, domain: &str) -> bool {
        if self.args.hook.is_none() {
            return true;
        }
        self.hook(action, domain)
            .await
            .is_some_and(|st| st.success())
    }

    /// Runs `HOOK ACTION DOMAIN`; `None` if there is no hook or it cannot be run.
    async fn hook(&self, action: &str, domain: &str) -> Option<std::process::ExitStatus> {
        let hook = self.args.hook.as_ref()?;
        match tokio::process::Command::new(hook)
            .arg(action)
            .arg(domain)
            .status()
            .await
        {
            Ok(st) => Some(st),
            Err(e) => {
                eprintln!("fence-daemon: cannot run hook {}: {e}", hook.display());
                None
            }
        }
    }
}

/// `oneha-testkit fence-daemon ...`: returns the exit code.
pub fn main(argv: &[String]) -> i32 {
    let args = match FenceDaemonArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return 2;
        }
    };
    let server = match FenceServer::new(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fence-daemon: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fence-daemon: {e}");
            return 1;
        }
    };
    match rt.block_on(server.serve()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fence-daemon: {e}");
            1
        }
    }
}
