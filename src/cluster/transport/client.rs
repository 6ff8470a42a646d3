//! The sending side of the peer transport: one reconnecting client per peer and link, each
//! with a bounded queue; it runs the Noise handshake as initiator (current key, then the
//! next one during a rotation) and seals every frame.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::links::{LinkId, LinkTable, Route, route};
use super::pb::peer_client::PeerClient;
use super::pb::{ClientFrame, Content, ServerFrame};
use super::{PEER_QUEUE, TransportIdentity, TransportStats};
use crate::cluster::frames;
use crate::cluster::secure::Session;
use crate::cluster::state::NodeId;

/// Raft messages per frame at most.
const BATCH: usize = 64;

/// Data sent on a connection and not acknowledged for this long breaks it (TCP_USER_TIMEOUT):
/// how long a connection on a dead path (a peer powered off, a cable out) lingers.
const DEAD_PATH_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// How long the handshake's steps (stream open, hello, answer) may take.
    pub connect_timeout: Duration,
    /// How long a TCP connect may take before it is tried again with a new SYN. Short: a SYN
    /// lost while a link comes back (a switch port not yet forwarding) would otherwise be
    /// resent by the kernel only after a second.
    pub syn_timeout: Duration,
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

/// The client of one peer on one link.
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

/// Why a client link failed.
#[derive(Debug, PartialEq, Eq)]
enum LinkError {
    /// The peer refused our key (or we its answer): try the other key if there is one.
    Key(String),
    /// The peer speaks protocol version 1.
    OldPeer(String),
    /// Anything else (unreachable, closed, misaddressed).
    Other(String),
    /// An established connection failed.
    Up(String),
    /// Asked to reconnect now (the link came back: see [`LinkTable::kicks`]).
    Kicked,
}

impl PeerClientTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Vec<u8>>) {
        const FIRST_BACKOFF: Duration = Duration::from_millis(20);
        let mut backoff = FIRST_BACKOFF;
        let mut last_error = String::new();
        let mut key_index = 0usize;
        let mut kicks = self.table.kicks(self.peer, self.link);
        kicks.borrow_and_update();
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let ended = self.session(&mut rx, key_index, &mut kicks).await;
            self.table.set_connected(self.peer, self.link, false);
            let (e, warn) = match ended {
                Ok(()) => return,
                Err(LinkError::Kicked) => {
                    // The link came back: reconnect at once, from the shortest backoff.
                    backoff = FIRST_BACKOFF;
                    self.drop_backlog(&mut rx);
                    continue;
                }
                // It was up: the next failure starts the backoff afresh.
                Err(LinkError::Up(e)) => {
                    backoff = FIRST_BACKOFF;
                    (e, false)
                }
                Err(LinkError::Key(e)) => {
                    // Current key, then next (during a rotation), then current again.
                    key_index = (key_index + 1) % self.id.keys.psks().len().max(1);
                    (e, true)
                }
                Err(LinkError::OldPeer(e)) => (e, true),
                Err(LinkError::Other(e)) => (e, false),
            };
            if e != last_error {
                if warn {
                    tracing::warn!(peer = self.peer, link = self.link + 1, addr = %self.addr, "peer link: {e}");
                } else {
                    tracing::debug!(peer = self.peer, link = self.link + 1, addr = %self.addr, "peer link: {e}");
                }
                last_error = e;
            }
            self.drop_backlog(&mut rx);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = kicks.changed() => {
                    kicks.borrow_and_update();
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                _ = self.shutdown.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(self.timing.max_backoff);
        }
    }

    /// Drops the messages queued while disconnected: they are stale, and Raft resends
    /// what matters.
    fn drop_backlog(&self, rx: &mut mpsc::Receiver<Vec<u8>>) {
        while rx.try_recv().is_ok() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Opens a stream and runs the handshake under key `key_index`.
    async fn handshake(
        &self,
        key_index: usize,
    ) -> Result<(Streaming<ServerFrame>, mpsc::Sender<ClientFrame>, Session), LinkError> {
        let other = LinkError::Other;
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| other(format!("bad address: {e}")))?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(self.timing.syn_timeout));
        tcp.set_local_address(self.source);
        // A connection on a dead path is noticed by TCP itself: this client sends a frame at
        // least every keep-alive interval, and data left unacknowledged this long breaks the
        // connection. No HTTP/2 pings: they cost a wake-up on both nodes every second on a
        // connection that reads nothing (the peer answers on its own connection).
        tcp.set_tcp_user_timeout(Some(DEAD_PATH_TIMEOUT));
        let channel = endpoint
            .connect_with_connector(tcp)
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
        kicks: &mut watch::Receiver<u64>,
    ) -> Result<(), LinkError> {
        // A kick during the handshake starts it again: its SYN may have been lost to the
        // outage, and the kernel would resend it only after a second.
        let (mut inbound, out_tx, mut session) = tokio::select! {
            r = self.handshake(key_index) => r?,
            _ = kicks.changed() => {
                kicks.borrow_and_update();
                return Err(LinkError::Kicked);
            }
        };
        self.table.set_connected(self.peer, self.link, true);
        let opened = tokio::time::Instant::now();
        let other = LinkError::Up;
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
                _ = kicks.changed() => {
                    kicks.borrow_and_update();
                    // A connection opened since the link came back is not stale.
                    if opened.elapsed() > self.timing.link_silent_after {
                        return Err(LinkError::Kicked);
                    }
                    continue;
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
