//! What the peer transport's frames contain (protocol version 2): the handshake payloads
//! that bind the cluster name and both node ids, and the sealed content of each frame with
//! its checks. The cryptography is in `secure.rs`, the streams in `transport.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;

use super::secure::{self, Initiator, PROTOCOL_VERSION, Psk, SecureError, Session};
use super::state::NodeId;
use super::transport::pb::{ClientFrame, Content, Hello, ServerFrame};

/// Largest plaintext of one sealed frame (tonic refuses gRPC messages above 4 MiB anyway).
pub const MAX_FRAME: usize = 4 << 20;

/// Why the server refuses a stream before it is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The first frame is a version-1 (HMAC) frame.
    OldPeer,
    /// Message 1 opened under none of our keys.
    WrongKey,
    /// Anything else (garbage, wrong cluster, unknown node): the text says what.
    Bad(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::OldPeer => f.write_str(
                "peer runs an older oneha (plain HMAC transport): upgrade it \
                 (docs/runbook.md, rolling upgrade)",
            ),
            Refusal::WrongKey => f.write_str(
                "handshake refused: wrong or old cluster key (compare `oneha reload-keys` \
                 fingerprints on both nodes)",
            ),
            Refusal::Bad(why) => f.write_str(why),
        }
    }
}

/// The server side of the handshake: checks message 1 and its hello against this node;
/// returns the session, the authenticated peer id, which key opened it, and the reply frame.
pub fn accept(
    cluster: &str,
    me: NodeId,
    known: &[NodeId],
    psks: &[Psk],
    first: &ClientFrame,
) -> Result<(Session, NodeId, usize, ServerFrame), Refusal> {
    if first.handshake.is_empty() {
        return Err(if first.mac.is_empty() {
            Refusal::Bad("first frame carries no handshake".into())
        } else {
            Refusal::OldPeer
        });
    }
    let (responder, payload) = secure::respond(psks, &first.handshake).map_err(|e| match e {
        SecureError::WrongKey => Refusal::WrongKey,
        other => Refusal::Bad(other.to_string()),
    })?;
    let key_index = responder.key_index;
    let hello = Hello::decode(payload.as_slice())
        .map_err(|e| Refusal::Bad(format!("undecodable hello: {e}")))?;
    if hello.cluster != cluster {
        return Err(Refusal::Bad(format!(
            "hello for cluster `{}`, this is `{cluster}`",
            hello.cluster
        )));
    }
    if hello.to != me {
        return Err(Refusal::Bad(format!(
            "hello for node {}, this is node {me}: check `nodes` addresses",
            hello.to
        )));
    }
    if !known.contains(&hello.from) || hello.from == me {
        return Err(Refusal::Bad(format!(
            "node {} is not a member of this cluster",
            hello.from
        )));
    }
    let reply = Hello {
        version: PROTOCOL_VERSION,
        cluster: cluster.to_string(),
        from: me,
        to: hello.from,
    };
    let (session, msg2) = responder
        .reply(&reply.encode_to_vec())
        .map_err(|e| Refusal::Bad(e.to_string()))?;
    let frame = ServerFrame {
        handshake: msg2,
        ..ServerFrame::default()
    };
    Ok((session, hello.from, key_index, frame))
}

/// The client side: message 1 for `peer` under `psk`.
pub fn initiate(
    cluster: &str,
    me: NodeId,
    peer: NodeId,
    psk: &Psk,
) -> Result<(Initiator, ClientFrame), String> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster: cluster.to_string(),
        from: me,
        to: peer,
    };
    let (init, msg1) = secure::initiate(psk, &hello.encode_to_vec()).map_err(|e| e.to_string())?;
    let frame = ClientFrame {
        handshake: msg1,
        ..ClientFrame::default()
    };
    Ok((init, frame))
}

/// The client side: checks the server's message 2 and its hello.
pub fn finish(
    cluster: &str,
    me: NodeId,
    peer: NodeId,
    init: Initiator,
    msg2: &[u8],
) -> Result<Session, String> {
    let (session, payload) = init.finish(msg2).map_err(|e| e.to_string())?;
    let hello = Hello::decode(payload.as_slice()).map_err(|e| format!("undecodable hello: {e}"))?;
    if hello.cluster != cluster || hello.from != peer || hello.to != me {
        return Err(format!(
            "the peer answers as node {} of cluster `{}` to node {}, expected node {peer} of \
             `{cluster}`: check `nodes` addresses",
            hello.from, hello.cluster, hello.to
        ));
    }
    Ok(session)
}

/// Seals a frame's content.
pub fn seal(session: &mut Session, content: &Content) -> Result<Vec<Vec<u8>>, String> {
    session
        .seal(&content.encode_to_vec())
        .map_err(|e| e.to_string())
}

/// Opens a sealed content.
pub fn open(session: &mut Session, sealed: &[Vec<u8>]) -> Result<Content, String> {
    let plain = session.open(sealed, MAX_FRAME).map_err(|e| e.to_string())?;
    Content::decode(plain.as_slice()).map_err(|e| format!("undecodable frame: {e}"))
}

/// Checks an opened client frame against the connection (cluster, the authenticated sender,
/// this node, the sequence); returns its raft messages.
pub fn check_content(
    cluster: &str,
    me: NodeId,
    peer: NodeId,
    last_seq: u64,
    c: &Content,
) -> Result<Vec<RaftMessage>, String> {
    if c.cluster != cluster {
        return Err(format!(
            "frame for cluster `{}`, this is `{cluster}`",
            c.cluster
        ));
    }
    if c.from != peer {
        return Err(format!(
            "frame claims node {} on a connection authenticated as node {peer}",
            c.from
        ));
    }
    if c.to != me {
        return Err(format!("frame for node {}, this is node {me}", c.to));
    }
    if c.seq != last_seq + 1 {
        return Err(format!(
            "sequence {} after {last_seq}: replay or reorder",
            c.seq
        ));
    }
    let mut msgs = Vec::with_capacity(c.raft.len());
    for bytes in &c.raft {
        let m = RaftMessage::parse_from_bytes(bytes)
            .map_err(|e| format!("undecodable raft message: {e}"))?;
        if m.from != peer || m.to != me {
            return Err(format!(
                "raft message from {} to {} inside a frame from {peer} to {me}",
                m.from, m.to
            ));
        }
        msgs.push(m);
    }
    Ok(msgs)
}

/// Logs a line per (peer address, kind) at most once per `every`: a node with the wrong key
/// reconnects several times a second and must not flood the journal.
pub struct LogLimiter {
    every: Duration,
    seen: Mutex<HashMap<(IpAddr, u8), Instant>>,
}

/// Distinct addresses remembered at most (a flood from many addresses cannot grow it).
const LIMITER_CAP: usize = 1024;

impl LogLimiter {
    /// At most one line per address and kind per `every`.
    pub fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether to log now for `addr` and `kind`.
    pub fn allow(&self, addr: IpAddr, kind: u8) -> bool {
        let mut m = match self.seen.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        if m.len() >= LIMITER_CAP {
            m.retain(|_, t| now.duration_since(*t) < self.every);
            if m.len() >= LIMITER_CAP {
                return false;
            }
        }
        match m.get(&(addr, kind)) {
            Some(t) if now.duration_since(*t) < self.every => false,
            _ => {
                m.insert((addr, kind), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::auth::ClusterKey;
    use crate::cluster::keyring::derive_psk;

    fn psk(b: u8) -> Psk {
        derive_psk(&ClusterKey::from_bytes(vec![b; 32]), "one")
    }

    fn handshake(
        client_psk: &Psk,
        from: NodeId,
        to: NodeId,
        server: &[Psk],
    ) -> Result<(Session, Session, NodeId), Refusal> {
        let (init, first) = initiate("one", from, to, client_psk).expect("initiate");
        let (s, peer, _, reply) = accept("one", 2, &[1, 2, 3], server, &first)?;
        let c = finish("one", from, to, init, &reply.handshake).map_err(Refusal::Bad)?;
        Ok((c, s, peer))
    }

    fn content(seq: u64, from: NodeId) -> Content {
        Content {
            cluster: "one".into(),
            from,
            to: 2,
            seq,
            ..Content::default()
        }
    }

    #[test]
    fn sender_is_bound_to_the_handshake() {
        let (mut c, mut s, peer) = handshake(&psk(1), 1, 2, &[psk(1)]).expect("handshake");
        assert_eq!(peer, 1);
        let sealed = seal(&mut c, &content(1, 1)).expect("seal");
        let got = open(&mut s, &sealed).expect("open");
        assert!(check_content("one", 2, peer, 0, &got).is_ok());
        // Node 1 claiming to be node 3 inside its own session: refused.
        let sealed = seal(&mut c, &content(2, 3)).expect("seal");
        let got = open(&mut s, &sealed).expect("open");
        let e = check_content("one", 2, peer, 1, &got).expect_err("impersonation");
        assert!(e.contains("authenticated as node 1"), "{e}");
        // Sequence must grow by one.
        let e = check_content("one", 2, peer, 5, &got).expect_err("seq");
        assert!(e.contains("claims") || e.contains("sequence"), "{e}");
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            handshake(&psk(9), 1, 2, &[psk(1)]).err(),
            Some(Refusal::WrongKey)
        );
        let e = handshake(&psk(1), 1, 3, &[psk(1)])
            .err()
            .expect("misaddressed");
        assert!(e.to_string().contains("this is node 2"), "{e}");
        let e = handshake(&psk(1), 7, 2, &[psk(1)]).err().expect("stranger");
        assert!(e.to_string().contains("not a member"), "{e}");
        // A version-1 frame (MAC set, no handshake) is recognised as an older agent.
        let old = ClientFrame {
            cluster: "one".into(),
            mac: vec![1; 32],
            ..ClientFrame::default()
        };
        let r = accept("one", 2, &[1, 2], &[psk(1)], &old).err();
        assert_eq!(r, Some(Refusal::OldPeer));
        assert!(Refusal::OldPeer.to_string().contains("older oneha"));
        // Another cluster's PSK differs even with the same key file.
        let other = derive_psk(&ClusterKey::from_bytes(vec![1; 32]), "two");
        assert_eq!(
            handshake(&other, 1, 2, &[psk(1)]).err(),
            Some(Refusal::WrongKey)
        );
    }

    #[test]
    fn limiter_logs_once_per_address_and_kind() {
        let l = LogLimiter::new(Duration::from_secs(600));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(l.allow(a, 0));
        assert!(!l.allow(a, 0));
        assert!(l.allow(a, 1));
        assert!(l.allow(b, 0));
        for i in 0..2000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = l.allow(ip, 0);
        }
        assert!(l.seen.lock().expect("lock").len() <= LIMITER_CAP);
    }
}
