//! The peer transport: a tonic server on each link's address that accepts authenticated
//! frames from the other agents, and one reconnecting client per peer and link with a
//! bounded queue.
//!
//! Nothing here blocks the Raft loop: it hands messages over with `try_send` and a full
//! queue drops them (Raft retransmits), so a slow or dead peer costs a bounded amount of
//! memory. Idle clients still send an empty frame every heartbeat so that every node knows
//! when it last heard from every other node, and each frame carries the sender's gossip.
//! With several links (`addresses`), every link carries keep-alives and gossip, and the
//! Raft messages go over one healthy link (see [`links`]).

mod links;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::auth::{ClusterKey, FrameParts, new_challenge};
use super::state::NodeId;

pub use links::{LinkId, LinkState, LinkTable, Route, route};

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod pb {
    tonic::include_proto!("oneha.peer.v1");
}
use pb::peer_client::PeerClient;
use pb::peer_server::{Peer, PeerServer};
use pb::{ClientFrame, ServerFrame};

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
    /// Frames rejected (bad MAC, wrong cluster or node, bad sequence, undecodable).
    pub rejected: AtomicU64,
    /// Raft messages dropped because a peer queue was full or the peer was unreachable.
    pub dropped: AtomicU64,
}

/// What the server hands to the node for each accepted frame.
#[derive(Debug)]
pub struct Inbound {
    /// Sender.
    pub from: NodeId,
    /// The link it came on (the index of the address it was sent to).
    pub link: LinkId,
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
    /// The cluster key.
    pub key: ClusterKey,
}

struct PeerService {
    id: TransportIdentity,
    link: LinkId,
    links: Arc<LinkTable>,
    known: Arc<Vec<NodeId>>,
    deliver: Arc<dyn Fn(Inbound) + Send + Sync>,
    stats: Arc<TransportStats>,
}

#[tonic::async_trait]
impl Peer for PeerService {
    type StreamStream = ReceiverStream<Result<ServerFrame, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<ClientFrame>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let remote = request.remote_addr();
        let mut frames = request.into_inner();
        let challenge = new_challenge();
        let (tx, rx) = mpsc::channel(2);
        let hello = ServerFrame {
            challenge: challenge.clone(),
            node: self.id.me,
            error: String::new(),
        };
        tx.send(Ok(hello))
            .await
            .map_err(|_| Status::internal("stream closed"))?;
        let (id, known, deliver, stats, links, link) = (
            self.id.clone(),
            self.known.clone(),
            self.deliver.clone(),
            self.stats.clone(),
            self.links.clone(),
            self.link,
        );
        tokio::spawn(async move {
            let mut last_seq = 0u64;
            loop {
                let frame = match frames.message().await {
                    Ok(Some(f)) => f,
                    Ok(None) | Err(_) => return,
                };
                match check_frame(&id, &known, &challenge, last_seq, &frame) {
                    Ok(msgs) => {
                        last_seq = frame.seq;
                        stats.frames_in.fetch_add(1, Ordering::Relaxed);
                        links.heard(frame.from, link);
                        deliver(Inbound {
                            from: frame.from,
                            link,
                            msgs,
                            gossip: frame.gossip,
                        });
                    }
                    Err(why) => {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
                        let peer = remote.map_or("unknown".to_string(), |a| a.to_string());
                        tracing::warn!(%peer, claimed = frame.from, "rejected peer frame: {why}");
                        let _ = tx
                            .send(Ok(ServerFrame {
                                challenge: Vec::new(),
                                node: id.me,
                                error: why,
                            }))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Verifies one frame; returns its decoded raft messages or why it is rejected.
fn check_frame(
    id: &TransportIdentity,
    known: &[NodeId],
    challenge: &[u8],
    last_seq: u64,
    f: &ClientFrame,
) -> Result<Vec<RaftMessage>, String> {
    let parts = FrameParts {
        challenge,
        cluster: &f.cluster,
        from: f.from,
        to: f.to,
        seq: f.seq,
        raft: &f.raft,
        gossip: &f.gossip,
    };
    if !id.key.verify(&parts, &f.mac) {
        return Err("bad MAC: the sender does not hold this cluster's key".into());
    }
    if f.cluster != id.cluster {
        return Err(format!(
            "frame for cluster `{}`, this is `{}`",
            f.cluster, id.cluster
        ));
    }
    if f.to != id.me {
        return Err(format!("frame for node {}, this is node {}", f.to, id.me));
    }
    if !known.contains(&f.from) || f.from == id.me {
        return Err(format!("node {} is not a member of this cluster", f.from));
    }
    if f.seq != last_seq + 1 {
        return Err(format!(
            "sequence {} after {last_seq}: replay or reorder",
            f.seq
        ));
    }
    let mut msgs = Vec::with_capacity(f.raft.len());
    for bytes in &f.raft {
        let m = RaftMessage::parse_from_bytes(bytes)
            .map_err(|e| format!("undecodable raft message: {e}"))?;
        if m.from != f.from || m.to != id.me {
            return Err(format!(
                "raft message from {} to {} inside a frame from {} to {}",
                m.from, m.to, f.from, id.me
            ));
        }
        msgs.push(m);
    }
    Ok(msgs)
}

/// Binds each link's address of this node (link `k` = `addrs[k]`) and serves until
/// `shutdown` flips to true; frames are tagged with the link they came on.
pub async fn serve(
    addrs: &[SocketAddr],
    id: TransportIdentity,
    known: Vec<NodeId>,
    deliver: Arc<dyn Fn(Inbound) + Send + Sync>,
    stats: Arc<TransportStats>,
    links: Arc<LinkTable>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, std::io::Error> {
    let known = Arc::new(known);
    let mut tasks = Vec::new();
    for (link, &addr) in addrs.iter().enumerate() {
        let svc = PeerService {
            id: id.clone(),
            link,
            links: links.clone(),
            known: known.clone(),
            deliver: deliver.clone(),
            stats: stats.clone(),
        };
        tasks.push(serve_link(addr, svc, shutdown.clone()).await?);
    }
    Ok(tasks)
}

/// Serves one link's address.
async fn serve_link(
    addr: SocketAddr,
    svc: PeerService,
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
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(Duration::from_secs(3)))
        .add_service(PeerServer::new(svc))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = shutdown.wait_for(|s| *s).await;
        });
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(%addr, "peer server stopped: {e}");
        }
    }))
}

/// The sending side towards one peer: one queue per link.
#[derive(Clone)]
pub struct PeerSender {
    peer: NodeId,
    links: Vec<mpsc::Sender<Vec<u8>>>,
    table: Arc<LinkTable>,
    silent_after: Duration,
    stats: Arc<TransportStats>,
}

impl PeerSender {
    /// Queues an encoded raft message on the link [`route`] picks; drops it when the queue
    /// is full.
    pub fn send(&self, msg: Vec<u8>) {
        let sent = match route(&self.table.states(self.peer), self.silent_after) {
            Route::One(k) => self.links.get(k).is_some_and(|tx| tx.try_send(msg).is_ok()),
            Route::All => {
                self.links
                    .iter()
                    .filter(|tx| tx.try_send(msg.clone()).is_ok())
                    .count()
                    > 0
            }
        };
        if !sent {
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
    /// A link that delivered nothing from a peer for this long no longer carries Raft
    /// messages to it (see [`route`]).
    pub link_silent_after: Duration,
}

/// One link towards a peer: its address there, and the source address here.
#[derive(Clone, Copy, Debug)]
pub struct PeerLink {
    /// The peer's address on this link.
    pub addr: SocketAddr,
    /// Source address of the connection: this node's own address on the same link, so
    /// that peers (and firewalls) always see it, never a floating IP that the kernel might
    /// otherwise pick (the primary address of the subnet). `None`: the kernel's choice
    /// (own address configured as unspecified).
    pub source: Option<std::net::IpAddr>,
}

/// Starts one reconnecting client per peer and link (link `k` = `links[k]`); returns the
/// senders by node id.
pub fn start_clients(
    id: &TransportIdentity,
    peers: &[(NodeId, Vec<PeerLink>)],
    timing: ClientTiming,
    gossip: watch::Receiver<Vec<u8>>,
    stats: Arc<TransportStats>,
    table: Arc<LinkTable>,
    shutdown: watch::Receiver<bool>,
) -> HashMap<NodeId, PeerSender> {
    let mut out = HashMap::new();
    for (peer, links) in peers {
        let mut txs = Vec::new();
        for (link, l) in links.iter().enumerate() {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let client = PeerClientTask {
                id: id.clone(),
                peer: *peer,
                link,
                addr: l.addr,
                source: l.source,
                table: table.clone(),
                timing,
                gossip: gossip.clone(),
                stats: stats.clone(),
                shutdown: shutdown.clone(),
            };
            tokio::spawn(client.run(rx));
            txs.push(tx);
        }
        out.insert(
            *peer,
            PeerSender {
                peer: *peer,
                links: txs,
                table: table.clone(),
                silent_after: timing.link_silent_after,
                stats: stats.clone(),
            },
        );
    }
    out
}

struct PeerClientTask {
    id: TransportIdentity,
    peer: NodeId,
    link: LinkId,
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    table: Arc<LinkTable>,
    timing: ClientTiming,
    gossip: watch::Receiver<Vec<u8>>,
    stats: Arc<TransportStats>,
    shutdown: watch::Receiver<bool>,
}

impl PeerClientTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Vec<u8>>) {
        let mut backoff = Duration::from_millis(20);
        let mut last_error = String::new();
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let ended = self.session(&mut rx).await;
            self.table.set_connected(self.peer, self.link, false);
            match ended {
                Ok(()) => return,
                Err(e) => {
                    if e != last_error {
                        tracing::debug!(
                            peer = self.peer,
                            link = self.link + 1,
                            addr = %self.addr,
                            "peer link: {e}"
                        );
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

    /// One connection: returns Ok on shutdown, Err when the link fails.
    async fn session(&mut self, rx: &mut mpsc::Receiver<Vec<u8>>) -> Result<(), String> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| format!("bad address: {e}"))?
            .connect_timeout(self.timing.connect_timeout)
            .local_address(self.source)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut client = PeerClient::new(channel);
        let (out_tx, out_rx) = mpsc::channel::<ClientFrame>(16);
        let response = tokio::time::timeout(
            self.timing.connect_timeout,
            client.stream(ReceiverStream::new(out_rx)),
        )
        .await
        .map_err(|_| "stream open timed out".to_string())?
        .map_err(|e| format!("stream: {e}"))?;
        let mut inbound = response.into_inner();
        let hello = tokio::time::timeout(self.timing.connect_timeout, inbound.message())
            .await
            .map_err(|_| "no challenge from peer".to_string())?
            .map_err(|e| format!("challenge: {e}"))?
            .ok_or("peer closed before its challenge")?;
        if hello.node != self.peer {
            return Err(format!(
                "{} answers as node {}, expected node {}: check `nodes` addresses",
                self.addr, hello.node, self.peer
            ));
        }
        let challenge = hello.challenge;
        self.table.set_connected(self.peer, self.link, true);
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
                    return Err(match reply {
                        Ok(Some(f)) if !f.error.is_empty() => format!("peer rejected us: {}", f.error),
                        Ok(_) => "peer closed the stream".to_string(),
                        Err(e) => format!("stream: {e}"),
                    });
                }
                _ = self.shutdown.wait_for(|s| *s) => return Ok(()),
            }
            seq += 1;
            let gossip = self.gossip.borrow().clone();
            let mac = self.id.key.frame_mac(&FrameParts {
                challenge: &challenge,
                cluster: &self.id.cluster,
                from: self.id.me,
                to: self.peer,
                seq,
                raft: &batch,
                gossip: &gossip,
            });
            keepalive.reset();
            let frame = ClientFrame {
                cluster: self.id.cluster.clone(),
                from: self.id.me,
                to: self.peer,
                seq,
                raft: batch,
                mac,
                gossip,
            };
            match out_tx.try_send(frame) {
                Ok(()) => {
                    self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(f)) => {
                    // The peer is not reading (hung?). Drop, and keep the sequence dense
                    // by reusing this number for the next frame.
                    seq -= 1;
                    self.stats
                        .dropped
                        .fetch_add(f.raft.len() as u64, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err("stream closed".to_string());
                }
            }
        }
    }
}

/// Test support: a raw client that sends hand-made frames (used by the forged-frame tests).
#[doc(hidden)]
pub mod raw {
    pub use super::pb::peer_client::PeerClient;
    pub use super::pb::{ClientFrame, ServerFrame};
}
