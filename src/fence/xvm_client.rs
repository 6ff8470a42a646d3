//! The fence_xvm client: multicast a signed request from one chosen address, wait for
//! fence_virtd to call back on TCP, run the mutual challenge-response (client first), read the
//! answer.
//!
//! Only one request per callback port runs at a time in this process (two would collide on
//! the listener), enforced by a process-wide async mutex per port.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::config::Config;
use crate::fence::xvm::{
    self, CHALLENGE_LEN, HashType, HostEntry, LIST_RECORD_LEN, RESP_FAIL, RESP_HOSTLIST, RESP_OFF,
    RESP_SUCCESS, Request,
};
use crate::fence::{Action, Answer, FenceError, XvmDevice, xvm_source};

/// TTL of the request datagrams (as the stock client).
pub const MULTICAST_TTL: u32 = 2;
/// Longest host list accepted.
const MAX_HOSTS: usize = 4096;
/// Least time given to the exchange once fence_virtd has called back.
const MIN_EXCHANGE: Duration = Duration::from_secs(2);

/// Where and how to reach fence_virtd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XvmParams {
    /// Multicast group.
    pub group: IpAddr,
    /// UDP request port and TCP callback port.
    pub port: u16,
    /// The shared key (read at each request; never logged).
    pub key_file: PathBuf,
    /// Request signature hash.
    pub hash: HashType,
    /// Challenge-response hash.
    pub auth: HashType,
    /// Local address to send from and to be called back on.
    pub source: IpAddr,
    /// Overall limit.
    pub timeout: Duration,
    /// Resend interval.
    pub retransmit: Duration,
}

impl XvmParams {
    /// The parameters `local_node` uses for device `dev`.
    pub fn from_device(
        cfg: &Config,
        dev: &XvmDevice,
        local_node: &str,
    ) -> Result<XvmParams, FenceError> {
        let source = xvm_source(cfg, dev, local_node).ok_or_else(|| {
            FenceError::Config(format!(
                "no xvm source address for node `{local_node}`: it is not in nodes[] and not \
                 in source_addresses"
            ))
        })?;
        Ok(XvmParams {
            group: dev.multicast_address,
            port: dev.port,
            key_file: dev.key_file.clone(),
            hash: dev.hash,
            auth: dev.auth,
            source,
            timeout: dev.timeout.get(),
            retransmit: dev.retransmit.get(),
        })
    }
}

fn port_lock(port: u16) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<StdMutex<HashMap<u16, Arc<Mutex<()>>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(Default::default);
    let mut m = match map.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    m.entry(port).or_default().clone()
}

/// Waits until no other request of this process uses `port`.
pub async fn lock_port(port: u16) -> OwnedMutexGuard<()> {
    port_lock(port).lock_owned().await
}

/// Runs one operation against fence_virtd. `domain` is a libvirt name, or a UUID when
/// `uuid`; it is ignored for `list` and `monitor`.
pub async fn request(
    p: &XvmParams,
    action: Action,
    domain: &str,
    uuid: bool,
) -> Result<Answer, FenceError> {
    let op = action.op();
    let domain = if matches!(action, Action::List | Action::Monitor) {
        ""
    } else {
        domain
    };
    let key = xvm::read_key(&p.key_file).map_err(FenceError::Config)?;
    let source = match p.source {
        IpAddr::V4(a) if !a.is_loopback() && !a.is_unspecified() => a,
        other => {
            return Err(FenceError::Config(format!(
                "cannot send fence_xvm requests from {other}: use this node's own IPv4 cluster \
                 address (never loopback)"
            )));
        }
    };
    let seqno: u32 = rand::random();
    let packet = Request::signed(op, p.hash, &key, domain, uuid, p.source, p.port, seqno)
        .map_err(|e| FenceError::Config(format!("cannot build the request: {e}")))?
        .encode();

    let _guard = lock_port(p.port).await;
    let listener = listen(SocketAddr::new(p.source, p.port))?;
    let udp = multicast_sender(source).await?;
    let group = SocketAddr::new(p.group, p.port);
    let deadline = Instant::now() + p.timeout;
    let mut sends = 0u32;
    let (stream, peer) = loop {
        udp.send_to(&packet, group).await.map_err(|e| {
            FenceError::Io(format!(
                "cannot send the fence request to {group} from {source}: {e}; check the \
                 interface holding {source} is up and has a multicast route"
            ))
        })?;
        sends += 1;
        tracing::debug!(op = op.name(), domain, %group, %source, seqno, sends, "fence_xvm request sent");
        let wake = (Instant::now() + p.retransmit).min(deadline);
        match tokio::time::timeout_at(wake, listener.accept()).await {
            Ok(Ok(conn)) => break conn,
            Ok(Err(e)) => {
                return Err(FenceError::Io(format!(
                    "accepting fence_virtd's callback: {e}"
                )));
            }
            Err(_) if Instant::now() >= deadline => {
                return Err(FenceError::NoCallback {
                    op: op.name(),
                    domain: domain.to_string(),
                    group,
                    source_addr: p.source,
                    hash: p.hash,
                    port: p.port,
                    timeout: p.timeout,
                    sends,
                });
            }
            Err(_) => {}
        }
    };
    drop(listener);
    tracing::debug!(%peer, "fence_virtd called back");
    let limit = deadline.max(Instant::now() + MIN_EXCHANGE);
    match tokio::time::timeout_at(limit, exchange(stream, peer, p.auth, &key, action, domain)).await
    {
        Ok(r) => r,
        Err(_) if p.auth == HashType::None => Err(FenceError::Auth {
            peer,
            auth: p.auth,
            detail: "it called back but sent no answer; it probably waits for a challenge \
                     because its `auth` is not none"
                .into(),
        }),
        Err(_) => Err(FenceError::Timeout {
            what: format!("fence_virtd at {peer} ({} `{domain}`)", op.name()),
            timeout: p.timeout,
        }),
    }
}

fn listen(at: SocketAddr) -> Result<TcpListener, FenceError> {
    let bind = || -> std::io::Result<TcpListener> {
        let s = TcpSocket::new_v4()?;
        s.set_reuseaddr(true)?;
        s.bind(at)?;
        s.listen(8)
    };
    bind().map_err(|e| {
        FenceError::Io(format!(
            "cannot listen on {at} for fence_virtd's callback: {e}; is {} an address of this \
             node (see source_addresses), and is no other fence_xvm using port {}?",
            at.ip(),
            at.port()
        ))
    })
}

async fn multicast_sender(source: Ipv4Addr) -> Result<UdpSocket, FenceError> {
    let make = async {
        let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(source), 0)).await?;
        s.set_multicast_ttl_v4(MULTICAST_TTL)?;
        set_multicast_if(&s, source)?;
        Ok::<_, std::io::Error>(s)
    };
    make.await.map_err(|e| {
        FenceError::Io(format!(
            "cannot open a multicast socket on {source}: {e}; is {source} an address of this \
             node?"
        ))
    })
}

/// `IP_MULTICAST_IF`: send multicast out of the interface holding `addr`.
pub fn set_multicast_if(sock: &impl AsRawFd, addr: Ipv4Addr) -> std::io::Result<()> {
    let ina = libc::in_addr {
        s_addr: u32::from_ne_bytes(addr.octets()),
    };
    // SAFETY: a valid socket fd and a pointer to an in_addr of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&ina as *const libc::in_addr).cast(),
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads until `buf` is full; on EOF returns how many bytes came.
pub async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return Err(got),
            Ok(n) => got += n,
        }
    }
    Ok(())
}

async fn exchange(
    mut s: TcpStream,
    peer: SocketAddr,
    auth: HashType,
    key: &[u8],
    action: Action,
    domain: &str,
) -> Result<Answer, FenceError> {
    let auth_err = |detail: String| FenceError::Auth { peer, auth, detail };
    if auth != HashType::None {
        let ours = xvm::new_challenge();
        s.write_all(&ours)
            .await
            .map_err(|e| auth_err(format!("sending our challenge failed: {e}")))?;
        let mut answer = [0u8; CHALLENGE_LEN];
        read_full(&mut s, &mut answer).await.map_err(|got| {
            auth_err(format!(
                "it closed the connection instead of answering our challenge ({got} of 64 \
                 bytes); a host with auth none answers at once"
            ))
        })?;
        if !xvm::check_response(auth, key, &ours, &answer) {
            return Err(auth_err("its answer to our challenge is wrong".into()));
        }
        let mut theirs = [0u8; CHALLENGE_LEN];
        read_full(&mut s, &mut theirs).await.map_err(|got| {
            auth_err(format!(
                "it closed the connection before challenging us ({got} of 64 bytes)"
            ))
        })?;
        s.write_all(&xvm::challenge_response(auth, key, &theirs))
            .await
            .map_err(|e| auth_err(format!("sending our answer failed: {e}")))?;
    }
    let mut code = [0u8; 1];
    read_full(&mut s, &mut code).await.map_err(|_| {
        auth_err(if auth == HashType::None {
            "it closed the connection without an answer; it probably expects a \
             challenge-response (its auth is not none)"
                .into()
        } else {
            "it closed the connection without an answer: it rejected our answer to its \
             challenge"
                .into()
        })
    })?;
    let code = code[0];
    tracing::debug!(%peer, code, "fence_virtd answered");
    let refused = |hint: &'static str| FenceError::Refused {
        peer,
        op: action.op().name(),
        domain: domain.to_string(),
        code,
        meaning: xvm::response_meaning(code),
        hint,
    };
    match (action, code) {
        (Action::Status, RESP_SUCCESS) => Ok(Answer::PowerOn),
        (Action::Status, RESP_OFF) => Ok(Answer::PowerOff),
        (Action::List, RESP_HOSTLIST) => read_hosts(&mut s, peer).await.map(Answer::Hosts),
        (Action::List, RESP_SUCCESS) => Ok(Answer::Hosts(Vec::new())),
        (_, RESP_SUCCESS) => Ok(Answer::Done),
        (_, RESP_FAIL) => Err(refused(
            "; check that plug is the domain's libvirt name (or UUID with uuid: true) on \
             this host: `oneha fence-xvm -o list`",
        )),
        _ => Err(refused("")),
    }
}

async fn read_hosts(s: &mut TcpStream, peer: SocketAddr) -> Result<Vec<HostEntry>, FenceError> {
    let broken = |detail: String| FenceError::Protocol { peer, detail };
    let mut hosts = Vec::new();
    loop {
        let mut rec = [0u8; LIST_RECORD_LEN];
        read_full(s, &mut rec).await.map_err(|got| {
            broken(format!(
                "the host list ended in the middle of a record ({got} of {LIST_RECORD_LEN} \
                 bytes)"
            ))
        })?;
        match xvm::decode_host_record(&rec).map_err(|e| broken(format!("bad host record: {e}")))? {
            Some(h) if hosts.len() < MAX_HOSTS => hosts.push(h),
            Some(_) => return Err(broken(format!("more than {MAX_HOSTS} domains listed"))),
            None => break,
        }
    }
    let mut code = [0u8; 1];
    read_full(s, &mut code)
        .await
        .map_err(|_| broken("the host list has no final response byte".into()))?;
    if code[0] != RESP_SUCCESS {
        return Err(broken(format!(
            "the host list ended with {} ({})",
            code[0],
            xvm::response_meaning(code[0])
        )));
    }
    Ok(hosts)
}
