//! The peer transport: a tonic server on each link's address that accepts authenticated
//! frames from the other agents, and one reconnecting client per peer and link with a
//! bounded queue (`client.rs`). Each stream starts with a Noise handshake and every frame
//! after it is sealed (`secure.rs`, `frames.rs`); connections that have not authenticated
//! yet are limited (`limits.rs`).
//!
//! Nothing here blocks the Raft loop: it hands messages over with `try_send` and a full
//! queue drops them (Raft retransmits), so a slow or dead peer costs a bounded amount of
//! memory. Idle clients still send an empty frame every heartbeat so that every node knows
//! when it last heard from every other node, and each frame carries the sender's gossip.
//! With several links (`addresses`), every link carries keep-alives and gossip, and the
//! Raft messages go over one healthy link (see [`links`]).

mod carrier;
mod client;
mod links;

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
use super::secure::PROTOCOL_VERSION;
use super::state::NodeId;

pub use carrier::{CarrierView, watch_carrier};
pub use client::{ClientTiming, PeerLink, PeerSender, start_clients};
pub use links::{LinkId, LinkState, LinkTable, Route, route};

#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub(super) mod pb {
    tonic::include_proto!("oneha.peer.v1");
}
use pb::peer_server::{Peer, PeerServer};
use pb::{ClientFrame, Content, ServerFrame};

/// Raft messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 256;

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
    /// The cluster keys (current, and next during a rotation).
    pub keys: Arc<KeyRing>,
}

/// What every inbound stream of the server shares.
struct PeerService {
    id: TransportIdentity,
    link: LinkId,
    links: Arc<LinkTable>,
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

/// HTTP/2 pings of the server side of peer connections: a connection left half open by a
/// peer that vanished is closed within this plus the 3 s ping timeout.
const SERVER_PING_INTERVAL: Duration = Duration::from_secs(5);

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
        if self.svc.links.peer_reconnected(peer, self.svc.link) {
            tracing::debug!(
                node = peer,
                link = self.svc.link + 1,
                "peer reconnected after a silence: reopening this node's connection to it"
            );
        }
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
                    self.svc.links.heard(peer, self.svc.link);
                    (self.svc.deliver)(Inbound {
                        from: peer,
                        link: self.svc.link,
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
    let mut tasks = Vec::new();
    for (link, &addr) in addrs.iter().enumerate() {
        let svc = PeerService {
            id: id.clone(),
            link,
            links: links.clone(),
            known: known.clone(),
            deliver: deliver.clone(),
            stats: stats.clone(),
            limits: Arc::new(ConnLimits::default()),
            log: LogLimiter::new(REFUSAL_LOG_EVERY),
        };
        tasks.push(serve_link(addr, svc, shutdown.clone()).await?);
    }
    Ok(tasks)
}

/// Serves one link's address; unauthenticated connections are limited per address.
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
    let (limits, stats) = (svc.limits.clone(), svc.stats.clone());
    let svc = StreamService(Arc::new(svc));
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // Only to close the connections of peers that vanished (a reboot leaves its old
        // connections half open here): liveness is the frames' business, not this. hyper
        // wakes once per interval per connection even while frames flow, so it is long.
        .http2_keepalive_interval(Some(SERVER_PING_INTERVAL))
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
            tracing::error!(%addr, "peer server stopped: {e}");
        }
    }))
}
/// Test support: a raw client that sends hand-made frames (used by the forged-frame tests).
#[doc(hidden)]
pub mod raw {
    pub use super::pb::peer_client::PeerClient;
    pub use super::pb::{ClientFrame, Content, Hello, ServerFrame};
}
