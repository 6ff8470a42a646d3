//! The peer transport: a tonic server that accepts authenticated frames from the other
//! agents, and one reconnecting client per peer with a bounded queue. Each stream starts
//! with a Noise handshake and every frame after it is sealed (`secure.rs`, `frames.rs`);
//! connections that have not authenticated yet are limited (`limits.rs`).
//!
//! Nothing here blocks the Raft loop: it hands messages over with `try_send` and a full
//! queue drops them (Raft retransmits), so a slow or dead peer costs a bounded amount of
//! memory. Idle clients still send an empty frame every heartbeat so that every node knows
//! when it last heard from every other node, and each frame carries the sender's gossip.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raft::eraftpb::Message as RaftMessage;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::frames::{self, LogLimiter, Refusal};
use super::keyring::KeyRing;
use super::limits::{self, ConnLimits, HANDSHAKE_DEADLINE};
use super::secure::{PROTOCOL_VERSION, Session};
use super::state::NodeId;

#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub(super) mod pb {
    tonic::include_proto!("oneha.peer.v1");
}
use pb::peer_client::PeerClient;
use pb::peer_server::{Peer, PeerServer};
use pb::{ClientFrame, Content, ServerFrame};

/// Raft messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 256;
/// Raft messages per frame at most.
const BATCH: usize = 64;

/// Counters shared by the server and the clients.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Frames accepted.
    pub frames_in: AtomicU64,
    /// Frames sent.
    pub frames_out: AtomicU64,
    /// Frames rejected (did not open, wrong cluster or node, bad sequence, undecodable).
    pub rejected: AtomicU64,
    /// Handshakes refused (wrong or old key, older agent, garbage, unknown node).
    pub handshakes_refused: AtomicU64,
    /// Unauthenticated connections closed: over the limit at accept, or no handshake
    /// before the deadline.
    pub unauth_refused: AtomicU64,
    /// Raft messages dropped because a peer queue was full or the peer was unreachable.
    pub dropped: AtomicU64,
}

/// What the server hands to the node for each accepted frame.
#[derive(Debug)]
pub struct Inbound {
    /// Sender.
    pub from: NodeId,
    /// Its raft messages (possibly none: a keep-alive).
    pub msgs: Vec<RaftMessage>,
    /// Its gossip bytes.
    pub gossip: Vec<u8>,
}

/// Identity and secrets shared by server and clients.
#[derive(Clone)]
pub struct TransportIdentity {
    /// Cluster name.
    pub cluster: String,
    /// This node's id.
    pub me: NodeId,
    /// The cluster keys (current, and next during a rotation).
    pub keys: Arc<KeyRing>,
    /// Source address of outgoing peer connections: this node's own peer address, so
    /// that peers (and firewalls) always see it, never a floating IP that the kernel
    /// might otherwise pick (the primary address of the subnet). `None`: the kernel's
    /// choice (own address configured as unspecified).
    pub source: Option<std::net::IpAddr>,
}

/// What every inbound stream of the server shares.
struct PeerService {
    id: TransportIdentity,
    known: Vec<NodeId>,
    deliver: Arc<dyn Fn(Inbound) + Send + Sync>,
    stats: Arc<TransportStats>,
    limits: Arc<ConnLimits>,
    log: LogLimiter,
}

/// The tonic service: hands each stream to an `InboundStream` task.
struct StreamService(Arc<PeerService>);

/// How often a refusal is logged per peer address at most.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(600);

#[tonic::async_trait]
impl Peer for StreamService {
    type StreamStream = ReceiverStream<Result<ServerFrame, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<ClientFrame>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let remote = request.remote_addr();
        let frames = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        // The version announcement (an older client reads `node`, then sends an HMAC frame
        // that `frames::accept` recognises).
        let hello = ServerFrame {
            node: self.0.id.me,
            version: PROTOCOL_VERSION,
            ..ServerFrame::default()
        };
        tx.send(Ok(hello))
            .await
            .map_err(|_| Status::internal("stream closed"))?;
        let conn = InboundStream {
            svc: self.0.clone(),
            remote,
            tx,
        };
        tokio::spawn(conn.run(frames));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// One inbound stream: handshake, then sealed frames.
struct InboundStream {
    svc: Arc<PeerService>,
    remote: Option<SocketAddr>,
    tx: mpsc::Sender<Result<ServerFrame, Status>>,
}

impl InboundStream {
    async fn run(self, mut frames: Streaming<ClientFrame>) {
        let first = match tokio::time::timeout(HANDSHAKE_DEADLINE, frames.message()).await {
            Ok(Ok(Some(f))) => f,
            Ok(_) => return,
            Err(_) => {
                self.svc
                    .stats
                    .unauth_refused
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let psks = self.svc.id.keys.psks();
        let accepted = frames::accept(
            &self.svc.id.cluster,
            self.svc.id.me,
            &self.svc.known,
            &psks,
            &first,
        );
        let (mut session, peer, reply) = match accepted {
            Ok((session, peer, _key_index, reply)) => (session, peer, reply),
            Err(why) => return self.refuse(why).await,
        };
        if self.tx.send(Ok(reply)).await.is_err() {
            return;
        }
        self.svc.limits.authenticated(self.remote);
        let mut last_seq = 0u64;
        loop {
            let frame = match frames.message().await {
                Ok(Some(f)) => f,
                Ok(None) | Err(_) => return,
            };
            let checked = frames::open(&mut session, &frame.sealed).and_then(|c| {
                let msgs = frames::check_content(
                    &self.svc.id.cluster,
                    self.svc.id.me,
                    peer,
                    last_seq,
                    &c,
                )?;
                Ok((c, msgs))
            });
            match checked {
                Ok((c, msgs)) => {
                    last_seq = c.seq;
                    self.svc.stats.frames_in.fetch_add(1, Ordering::Relaxed);
                    (self.svc.deliver)(Inbound {
                        from: peer,
                        msgs,
                        gossip: c.gossip,
                    });
                }
                Err(why) => {
                    self.svc.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %self.shown(), node = peer, "rejected peer frame: {why}");
                    let error = Content {
                        error: why,
                        ..Content::default()
                    };
                    if let Ok(sealed) = frames::seal(&mut session, &error) {
                        let _ = self
                            .tx
                            .send(Ok(ServerFrame {
                                sealed,
                                ..ServerFrame::default()
                            }))
                            .await;
                    }
                    return;
                }
            }
        }
    }

    fn shown(&self) -> String {
        self.remote.map_or("unknown".to_string(), |a| a.to_string())
    }

    /// Refuses an unauthenticated stream: one log line per address and kind per
    /// `REFUSAL_LOG_EVERY`, and the reason in clear (it only closes the stream).
    async fn refuse(self, why: Refusal) {
        self.svc
            .stats
            .handshakes_refused
            .fetch_add(1, Ordering::Relaxed);
        let kind = match why {
            Refusal::OldPeer => 0,
            Refusal::WrongKey => 1,
            Refusal::Bad(_) => 2,
        };
        let ip = self.remote.map(|a| a.ip());
        if ip.is_none_or(|ip| self.svc.log.allow(ip, kind)) {
            tracing::warn!(peer = %self.shown(), "refused peer connection from {}: {why}", self.shown());
        }
        let _ = self
            .tx
            .send(Ok(ServerFrame {
                error: why.to_string(),
                ..ServerFrame::default()
            }))
            .await;
    }
}

/// Binds the peer port and serves until `shutdown` flips to true.
pub async fn serve(
    addr: SocketAddr,
    id: TransportIdentity,
    known: Vec<NodeId>,
    deliver: Arc<dyn Fn(Inbound) + Send + Sync>,
    stats: Arc<TransportStats>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {addr}: {e}; is this node's address right in `nodes`, \
                 and is another agent already running?"
            ),
        )
    })?;
    let limits = Arc::new(ConnLimits::default());
    let svc = StreamService(Arc::new(PeerService {
        id,
        known,
        deliver,
        stats: stats.clone(),
        limits: limits.clone(),
        log: LogLimiter::new(REFUSAL_LOG_EVERY),
    }));
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(Duration::from_secs(3)))
        // One stream per peer connection is the protocol; a few spare for reconnects.
        .max_concurrent_streams(Some(8))
        .concurrency_limit_per_connection(8)
        .http2_max_header_list_size(Some(16 * 1024))
        .http2_max_pending_accept_reset_streams(Some(16))
        .add_service(PeerServer::new(svc))
        .serve_with_incoming_shutdown(limits::incoming(listener, limits, stats), async move {
            let _ = shutdown.wait_for(|s| *s).await;
        });
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("peer server stopped: {e}");
        }
    }))
}

/// The sending side towards one peer.
#[derive(Clone)]
pub struct PeerSender {
    tx: mpsc::Sender<Vec<u8>>,
    stats: Arc<TransportStats>,
}

impl PeerSender {
    /// Queues an encoded raft message; drops it when the queue is full.
    pub fn send(&self, msg: Vec<u8>) {
        if self.tx.try_send(msg).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Settings of the per-peer clients.
#[derive(Clone, Copy, Debug)]
pub struct ClientTiming {
    /// Empty frames are sent when idle this often.
    pub keepalive: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

/// Starts one reconnecting client per peer; returns their senders by node id.
pub fn start_clients(
    id: &TransportIdentity,
    peers: &[(NodeId, SocketAddr)],
    timing: ClientTiming,
    gossip: watch::Receiver<Vec<u8>>,
    stats: Arc<TransportStats>,
    shutdown: watch::Receiver<bool>,
) -> HashMap<NodeId, PeerSender> {
    let mut out = HashMap::new();
    for &(peer, addr) in peers {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let client = PeerClientTask {
            id: id.clone(),
            peer,
            addr,
            timing,
            gossip: gossip.clone(),
            stats: stats.clone(),
            shutdown: shutdown.clone(),
        };
        tokio::spawn(client.run(rx));
        out.insert(
            peer,
            PeerSender {
                tx,
                stats: stats.clone(),
            },
        );
    }
    out
}

struct PeerClientTask {
    id: TransportIdentity,
    peer: NodeId,
    addr: SocketAddr,
    timing: ClientTiming,
    gossip: watch::Receiver<Vec<u8>>,
    stats: Arc<TransportStats>,
    shutdown: watch::Receiver<bool>,
}

/// Why a client link failed.
#[derive(Debug, PartialEq, Eq)]
enum LinkError {
    /// The peer refused our key (or we its answer): try the other key if there is one.
    Key(String),
    /// The peer speaks protocol version 1.
    OldPeer(String),
    /// Anything else (unreachable, closed, misaddressed).
    Other(String),
}

impl PeerClientTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Vec<u8>>) {
        let mut backoff = Duration::from_millis(20);
        let mut last_error = String::new();
        let mut key_index = 0usize;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            match self.session(&mut rx, key_index).await {
                Ok(()) => return,
                Err(LinkError::Key(e)) => {
                    // Current key, then next (during a rotation), then current again.
                    key_index = (key_index + 1) % self.id.keys.psks().len().max(1);
                    if e != last_error {
                        tracing::warn!(peer = self.peer, addr = %self.addr, "peer link: {e}");
                        last_error = e;
                    }
                }
                Err(LinkError::OldPeer(e)) => {
                    if e != last_error {
                        tracing::warn!(peer = self.peer, addr = %self.addr, "peer link: {e}");
                        last_error = e;
                    }
                }
                Err(LinkError::Other(e)) => {
                    if e != last_error {
                        tracing::debug!(peer = self.peer, addr = %self.addr, "peer link: {e}");
                        last_error = e;
                    }
                }
            }
            // Messages queued while disconnected are stale: Raft resends what matters.
            while rx.try_recv().is_ok() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(self.timing.max_backoff);
        }
    }

    /// Opens a stream and runs the handshake under key `key_index`.
    async fn handshake(
        &self,
        key_index: usize,
    ) -> Result<(Streaming<ServerFrame>, mpsc::Sender<ClientFrame>, Session), LinkError> {
        let other = LinkError::Other;
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| other(format!("bad address: {e}")))?
            .connect_timeout(self.timing.connect_timeout)
            .local_address(self.id.source)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| other(format!("connect: {e}")))?;
        let mut client = PeerClient::new(channel);
        let psks = self.id.keys.psks();
        let psk = &psks[key_index % psks.len()];
        let (init, first) = frames::initiate(&self.id.cluster, self.id.me, self.peer, psk)
            .map_err(LinkError::Other)?;
        let (out_tx, out_rx) = mpsc::channel::<ClientFrame>(16);
        // Message 1 goes out with the stream; the server's hello arrives meanwhile.
        let _ = out_tx.try_send(first);
        let wait = self.timing.connect_timeout;
        let response = tokio::time::timeout(wait, client.stream(ReceiverStream::new(out_rx)))
            .await
            .map_err(|_| other("stream open timed out".into()))?
            .map_err(|e| other(format!("stream: {e}")))?;
        let mut inbound = response.into_inner();
        let mut next = async |what: &str| {
            tokio::time::timeout(wait, inbound.message())
                .await
                .map_err(|_| other(format!("no {what} from peer")))?
                .map_err(|e| other(format!("{what}: {e}")))?
                .ok_or_else(|| other(format!("peer closed before its {what}")))
        };
        let hello = next("hello").await?;
        if hello.version == 0 {
            return Err(LinkError::OldPeer(format!(
                "peer {} runs an older oneha (plain HMAC transport): upgrade it",
                self.addr
            )));
        }
        if hello.node != self.peer {
            return Err(other(format!(
                "{} answers as node {}, expected node {}: check `nodes` addresses",
                self.addr, hello.node, self.peer
            )));
        }
        let answer = next("handshake answer").await?;
        let key_error = || {
            LinkError::Key(format!(
                "peer {} refused our handshake: wrong or old cluster key (ours or theirs; \
                 compare the key fingerprints that `oneha reload-keys` prints on both nodes)",
                self.addr
            ))
        };
        if !answer.error.is_empty() {
            return Err(if answer.error.contains("wrong or old cluster key") {
                key_error()
            } else {
                other(format!("peer refused us: {}", answer.error))
            });
        }
        let session = frames::finish(
            &self.id.cluster,
            self.id.me,
            self.peer,
            init,
            &answer.handshake,
        )
        .map_err(|e| {
            if e.contains("wrong or old cluster key") {
                key_error()
            } else {
                other(e)
            }
        })?;
        Ok((inbound, out_tx, session))
    }

    /// One connection: returns Ok on shutdown, Err when the link fails.
    async fn session(
        &mut self,
        rx: &mut mpsc::Receiver<Vec<u8>>,
        key_index: usize,
    ) -> Result<(), LinkError> {
        let (mut inbound, out_tx, mut session) = self.handshake(key_index).await?;
        let other = LinkError::Other;
        let mut seq = 0u64;
        let mut keepalive = tokio::time::interval(self.timing.keepalive);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { return Ok(()) };
                    batch.push(m);
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                }
                _ = keepalive.tick() => {}
                reply = inbound.message() => {
                    return Err(other(match reply {
                        Ok(Some(f)) if !f.sealed.is_empty() => match frames::open(&mut session, &f.sealed) {
                            Ok(c) => format!("peer rejected us: {}", c.error),
                            Err(e) => format!("peer sent an invalid frame: {e}"),
                        },
                        Ok(_) => "peer closed the stream".to_string(),
                        Err(e) => format!("stream: {e}"),
                    }));
                }
                _ = self.shutdown.wait_for(|s| *s) => return Ok(()),
            }
            keepalive.reset();
            // Sealing uses a nonce: only seal a frame that will be sent.
            let permit = match out_tx.try_reserve() {
                Ok(p) => p,
                Err(mpsc::error::TrySendError::Full(())) => {
                    // The peer is not reading (hung?): drop the batch.
                    self.stats
                        .dropped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    continue;
                }
                Err(mpsc::error::TrySendError::Closed(())) => {
                    return Err(other("stream closed".to_string()));
                }
            };
            seq += 1;
            let content = Content {
                cluster: self.id.cluster.clone(),
                from: self.id.me,
                to: self.peer,
                seq,
                raft: batch,
                gossip: self.gossip.borrow().clone(),
                error: String::new(),
            };
            let sealed = frames::seal(&mut session, &content).map_err(other)?;
            permit.send(ClientFrame {
                sealed,
                ..ClientFrame::default()
            });
            self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Test support: a raw client that sends hand-made frames (used by the forged-frame tests).
#[doc(hidden)]
pub mod raw {
    pub use super::pb::peer_client::PeerClient;
    pub use super::pb::{ClientFrame, Content, Hello, ServerFrame};
}
