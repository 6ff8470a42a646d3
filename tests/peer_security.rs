//! The peer transport's security on real agent processes (loopback): forged, tampered,
//! replayed and wrong-key frames refused, counted and logged once; captured peer traffic
//! carries no readable names; a flood of unauthenticated connections leaves the agent
//! serving and small; key rotation on a live cluster without failover; an old-key-only node
//! refused with a clear log line.

mod local;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use local::{LocalCluster, bin, rss_kb, wait_for};
use oneha::admin::AdminRequest;
use oneha::cluster::auth::ClusterKey;
use oneha::cluster::frames;
use oneha::cluster::keyring::derive_psk;
use oneha::cluster::secure::{Psk, Session};
use oneha::cluster::transport::raw::{ClientFrame, Content, PeerClient, ServerFrame};

const LONG: Duration = Duration::from_secs(20);

fn peer_address(c: &LocalCluster, i: usize) -> SocketAddr {
    let cfg = oneha::config::load(&c.agents[i].config).expect("config");
    cfg.node(&c.agents[i].name).expect("node").address
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A hand-driven client stream to `target`.
struct RawStream {
    tx: tokio::sync::mpsc::Sender<ClientFrame>,
    inbound: tonic::Streaming<ServerFrame>,
}

impl RawStream {
    async fn open(target: SocketAddr, first: ClientFrame) -> RawStream {
        let mut client = PeerClient::connect(format!("http://{target}"))
            .await
            .expect("connect");
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(first).await.expect("queue");
        let resp = client
            .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("stream");
        let mut inbound = resp.into_inner();
        let hello = inbound.message().await.expect("hello").expect("hello");
        assert_eq!(hello.version, 2, "{hello:?}");
        assert!(hello.challenge.is_empty(), "no v1 challenge");
        RawStream { tx, inbound }
    }

    async fn next(&mut self) -> Option<ServerFrame> {
        match tokio::time::timeout(Duration::from_secs(10), self.inbound.message()).await {
            Ok(Ok(f)) => f,
            _ => None,
        }
    }
}

/// Handshakes with node 1 as node `from`; returns the stream and session.
async fn handshake(
    target: SocketAddr,
    psk: &Psk,
    from: u64,
) -> Result<(RawStream, Session), String> {
    let (init, first) = frames::initiate("test", from, 1, psk).expect("initiate");
    let mut s = RawStream::open(target, first).await;
    let answer = s.next().await.ok_or("no answer")?;
    if !answer.error.is_empty() {
        return Err(answer.error);
    }
    let session = frames::finish("test", from, 1, init, &answer.handshake)?;
    Ok((s, session))
}

fn content(from: u64, seq: u64) -> Content {
    Content {
        cluster: "test".into(),
        from,
        to: 1,
        seq,
        ..Content::default()
    }
}

/// Sends `frames` and returns the server's (sealed) error.
async fn rejection(mut s: RawStream, mut session: Session, sealed: Vec<Vec<Vec<u8>>>) -> String {
    for f in sealed {
        let _ =
            s.tx.send(ClientFrame {
                sealed: f,
                ..ClientFrame::default()
            })
            .await;
    }
    match s.next().await {
        Some(f) => frames::open(&mut session, &f.sealed)
            .map(|c| c.error)
            .unwrap_or_else(|e| format!("unreadable rejection: {e}")),
        None => "no rejection".into(),
    }
}

fn lines_with(log: &str, what: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(what))
        .map(str::to_string)
        .collect()
}

#[test]
fn forged_tampered_replayed_and_wrong_key_frames_are_refused_counted_and_logged_once() {
    let c = LocalCluster::start("secforged", &["frontend", "frontend", "witness"], "");
    c.wait_leader(LONG).expect("leader");
    let target = peer_address(&c, 0);
    let cfg = oneha::config::load(&c.agents[0].config).expect("config");
    let good = derive_psk(&ClusterKey::load(&cfg.key_file).expect("key"), "test");
    let bad = derive_psk(
        &ClusterKey::from_bytes(b"not the cluster key at all".to_vec()),
        "test",
    );
    let rt = rt();
    rt.block_on(async {
        // Wrong key, three times: refused each time.
        for _ in 0..3 {
            let e = handshake(target, &bad, 2).await.err().expect("refused");
            assert!(e.contains("wrong or old cluster key"), "{e}");
        }
        // A version-1 (HMAC) frame: recognised as an older agent.
        let old = ClientFrame {
            cluster: "test".into(),
            from: 2,
            to: 1,
            seq: 1,
            mac: vec![0; 32],
            ..ClientFrame::default()
        };
        let mut s = RawStream::open(target, old).await;
        let e = s.next().await.expect("answer").error;
        assert!(e.contains("older oneha"), "{e}");

        // Tampered.
        let (s, mut session) = handshake(target, &good, 2).await.expect("handshake");
        let mut f = frames::seal(&mut session, &content(2, 1)).expect("seal");
        f[0][5] ^= 0x40;
        let e = rejection(s, session, vec![f]).await;
        assert!(e.contains("did not open"), "{e}");
        // Replayed bytes (the same sealed frame twice).
        let (s, mut session) = handshake(target, &good, 2).await.expect("handshake");
        let f = frames::seal(&mut session, &content(2, 1)).expect("seal");
        let e = rejection(s, session, vec![f.clone(), f]).await;
        assert!(e.contains("did not open"), "{e}");
        // A repeated sequence number in a fresh seal.
        let (s, mut session) = handshake(target, &good, 2).await.expect("handshake");
        let f1 = frames::seal(&mut session, &content(2, 1)).expect("seal");
        let f2 = frames::seal(&mut session, &content(2, 1)).expect("seal");
        let e = rejection(s, session, vec![f1, f2]).await;
        assert!(e.contains("replay"), "{e}");
        // Node 2's session speaking as node 3.
        let (s, mut session) = handshake(target, &good, 2).await.expect("handshake");
        let f = frames::seal(&mut session, &content(3, 1)).expect("seal");
        let e = rejection(s, session, vec![f]).await;
        assert!(e.contains("authenticated as node 2"), "{e}");
    });
    let s = c.status(0).expect("status");
    assert_eq!(s.transport.rejected, 4, "{:?}", s.transport);
    assert_eq!(s.transport.handshakes_refused, 4, "{:?}", s.transport);
    assert!(c.wait_leader(LONG).is_some());
    let log = c.log(0);
    let wrong = lines_with(&log, "wrong or old cluster key");
    assert_eq!(wrong.len(), 1, "three attempts, one line: {wrong:#?}");
    assert!(
        wrong[0].contains("127.0.0.1"),
        "names the peer: {}",
        wrong[0]
    );
    assert_eq!(lines_with(&log, "older oneha").len(), 1, "{log}");
    assert_eq!(lines_with(&log, "rejected peer frame").len(), 4, "{log}");
    // Nothing of the key in the log.
    let key = std::fs::read(&cfg.key_file).expect("key");
    assert!(!log.contains(&hex::encode(&key[..8])));
}

/// Captures TCP payloads on `lo` (AF_PACKET raw socket; the tests run as root) for the given
/// ports: returns (payloads to/from `peer_ports`, payloads to/from `control_port`).
fn capture(
    peer_ports: &[u16],
    control_port: u16,
    stop: &std::sync::atomic::AtomicBool,
) -> (Vec<u8>, Vec<u8>) {
    use std::sync::atomic::Ordering;
    // SAFETY: plain socket calls with checked results and buffers of the stated sizes.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
    };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let ifindex = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    let r = unsafe {
        libc::bind(
            fd,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let (mut peer, mut control) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 70_000];
    while !stop.load(Ordering::Relaxed) {
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n <= 0 {
            continue;
        }
        let p = &buf[..n as usize];
        // Ethernet (14) + IPv4 + TCP.
        if p.len() < 14 + 20 || p[12..14] != [0x08, 0x00] || p[14] >> 4 != 4 || p[23] != 6 {
            continue;
        }
        let ihl = usize::from(p[14] & 0xf) * 4;
        let total = usize::from(u16::from_be_bytes([p[16], p[17]]));
        let tcp = 14 + ihl;
        if p.len() < tcp + 20 {
            continue;
        }
        let sport = u16::from_be_bytes([p[tcp], p[tcp + 1]]);
        let dport = u16::from_be_bytes([p[tcp + 2], p[tcp + 3]]);
        let off = tcp + usize::from(p[tcp + 12] >> 4) * 4;
        let end = (14 + total).min(p.len());
        if off >= end {
            continue;
        }
        let payload = &p[off..end];
        if peer_ports.contains(&sport) || peer_ports.contains(&dport) {
            peer.extend_from_slice(payload);
        } else if sport == control_port || dport == control_port {
            control.extend_from_slice(payload);
        }
    }
    unsafe { libc::close(fd) };
    (peer, control)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn captured_peer_traffic_carries_no_readable_names() {
    let (cluster, prefix) = ("zebracluster", "hippogriffnode");
    let mut c = LocalCluster::start_named(
        "seccapture",
        &["frontend", "frontend", "witness"],
        "",
        cluster,
        prefix,
    );
    c.wait_leader(LONG).expect("leader");
    // Node 1 also serves metrics (in clear, with the cluster and node names): the positive
    // control that shows the capture would see names if they were sent.
    let peer = peer_address(&c, 0);
    let metrics = SocketAddr::new(peer.ip(), peer.port() + 1000);
    let text = std::fs::read_to_string(&c.agents[0].config).expect("config");
    std::fs::write(
        &c.agents[0].config,
        format!("{text}metrics: {{listen: \"{metrics}\"}}\n"),
    )
    .expect("write config");
    c.term(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ports: Vec<u16> = (0..3).map(|i| peer_address(&c, i).port()).collect();
    let (peer_bytes, control_bytes) = std::thread::scope(|s| {
        let h = s.spawn(|| capture(&ports, metrics.port(), &stop));
        std::thread::sleep(Duration::from_millis(300));
        // Handshakes, elections, commands and gossip all happen while capturing.
        c.start_agent(0);
        let l = c.wait_leader(LONG).expect("leader");
        let r = c.call(l, &AdminRequest::Freeze).expect("call");
        assert!(r.ok, "{:?}", r.error);
        let r = c.call(l, &AdminRequest::Unfreeze).expect("call");
        assert!(r.ok, "{:?}", r.error);
        let body = wait_for(LONG, || {
            let mut s = TcpStream::connect(metrics).ok()?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            out.contains("oneha_raft_has_leader 1").then_some(out)
        })
        .expect("metrics");
        assert!(body.contains(cluster) && body.contains(prefix), "{body}");
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().expect("capture thread")
    });
    assert!(
        peer_bytes.len() > 2000,
        "captured only {} bytes of peer traffic",
        peer_bytes.len()
    );
    assert!(
        contains(&control_bytes, cluster) && contains(&control_bytes, prefix),
        "the positive control (metrics) shows the names: the capture works"
    );
    for needle in [cluster, prefix, "frontend", "witness", "leader"] {
        assert!(
            !contains(&peer_bytes, needle),
            "`{needle}` readable in {} bytes of captured peer traffic",
            peer_bytes.len()
        );
    }
}

#[test]
fn a_flood_of_unauthenticated_connections_leaves_the_agent_serving_and_small() {
    let mut c = LocalCluster::start("secflood", &["frontend", "frontend", "witness"], "");
    let l = c.wait_leader(LONG).expect("leader");
    let target = peer_address(&c, l);
    let pid = c.agents[l].child.as_ref().expect("running").id();
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kb(pid);
    let mut held = Vec::new();
    for round in 0..3 {
        for i in 0..150 {
            let Ok(mut s) = TcpStream::connect(target) else {
                continue;
            };
            match i % 3 {
                // Garbage.
                0 => {
                    let junk: Vec<u8> = (0..2048u32).map(|j| (j * 31 + i) as u8).collect();
                    let _ = s.write_all(&junk);
                }
                // An HTTP/2 preface and then nothing.
                1 => {
                    let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0");
                }
                // Idle.
                _ => {}
            }
            held.push(s);
        }
        // The cluster stays healthy and commits while the connections are held.
        let r = c.call(l, &AdminRequest::Restart).expect("call");
        assert!(r.ok, "round {round}: {:?}", r.error);
        let s = c.status(l).expect("status");
        assert!(
            s.members.iter().all(|m| m.up),
            "round {round}: {:?}",
            s.members
        );
    }
    let s = wait_for(LONG, || {
        let s = c.status(l)?;
        (s.transport.unauth_refused >= 300).then_some(s)
    })
    .expect("connections over the limit refused and counted");
    assert!(s.members.iter().all(|m| m.up), "{:?}", s.members);
    let after = rss_kb(pid);
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} kB to {after} kB under the flood"
    );
    drop(held);
    // An idle unauthenticated connection is closed by the server at the handshake deadline
    // (waited for generously): the read ends (EOF or reset) instead of timing out.
    let refused_before = s.transport.unauth_refused;
    let mut idle = wait_for(LONG, || {
        let s = TcpStream::connect(target).ok()?;
        s.set_read_timeout(Some(LONG)).ok()?;
        Some(s)
    })
    .expect("connect");
    let mut buf = [0u8; 1024];
    let ended = loop {
        match idle.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => {
                break !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    };
    assert!(ended, "idle unauthenticated connection kept open");
    let s = c.status(l).expect("status");
    assert!(
        s.transport.unauth_refused > refused_before,
        "{:?}",
        s.transport
    );
    // New authenticated connections still work: a restarted follower rejoins.
    let f = (0..3).find(|&i| i != l).expect("a follower");
    c.term(f);
    c.start_agent(f);
    let leader_name = c.agents[l].name.clone();
    let s = wait_for(LONG, || {
        let s = c.status(f)?;
        (s.raft.leader.as_deref() == Some(leader_name.as_str()) && s.members.iter().all(|m| m.up))
            .then_some(s)
    });
    assert!(
        s.is_some(),
        "the restarted follower rejoins after the flood"
    );
    assert_eq!(c.wait_leader(LONG), Some(l), "no failover");
}

fn reload(c: &LocalCluster, i: usize, how: usize) {
    match how {
        0 => {
            let r = c.call(i, &AdminRequest::ReloadKeys).expect("call");
            assert!(r.ok, "{:?}", r.error);
        }
        1 => {
            let out = std::process::Command::new(bin())
                .args(["--config", c.agents[i].config.to_str().expect("utf8")])
                .arg("reload-keys")
                .output()
                .expect("reload-keys");
            assert!(out.status.success(), "{out:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("current key"), "{text}");
        }
        _ => {
            let pid = c.agents[i].child.as_ref().expect("running").id();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGHUP,
            )
            .expect("SIGHUP");
            let log = wait_for(LONG, || {
                let log = c.log(i);
                (!lines_with(&log, "cluster keys reloaded").is_empty()).then_some(log)
            });
            assert!(log.is_some(), "SIGHUP reload logged");
        }
    }
}

fn keygen(config: &Path, args: &[&str]) {
    let out = std::process::Command::new(bin())
        .args(["--config", config.to_str().expect("utf8"), "keygen"])
        .args(args)
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn keys_rotate_on_a_live_cluster_without_failover_and_an_old_key_node_is_refused() {
    let mut c = LocalCluster::start("secrotate", &["frontend", "frontend", "frontend"], "");
    let leader = c.wait_leader(LONG).expect("leader");
    std::thread::sleep(Duration::from_secs(1));
    let owner = c.status(leader).expect("status").group.owner;
    // The node restarted mid-rotation: neither leader nor owner.
    let other = (0..3)
        .find(|&i| i != leader && Some(&c.agents[i].name) != owner.as_ref())
        .expect("a third node");
    let cfg = oneha::config::load(&c.agents[0].config).expect("config");
    let old_key = std::fs::read(&cfg.key_file).expect("key");
    let healthy = |c: &LocalCluster, step: &str| {
        for i in 0..3 {
            let s = wait_for(LONG, || {
                let s = c.status(i)?;
                (s.members.iter().all(|m| m.up) && s.raft.leader.is_some()).then_some(s)
            })
            .unwrap_or_else(|| panic!("{step}: node {i} does not see everyone"));
            assert_eq!(
                s.raft.leader.as_deref(),
                Some(c.agents[leader].name.as_str()),
                "{step}: leader changed"
            );
            assert_eq!(s.group.owner, owner, "{step}: owner changed");
            assert_eq!(
                s.transport.handshakes_refused, 0,
                "{step}: {:?}",
                s.transport
            );
        }
    };
    // 1. A next key, on every node, reloaded three ways.
    keygen(&c.agents[0].config, &["--next"]);
    assert!(cfg.next_key_file().exists());
    for i in 0..3 {
        reload(&c, i, i);
    }
    healthy(&c, "next key loaded");
    // 2. Promote (the files are shared here, as if copied), reload one node, and restart
    //    another: connections are made under both keys.
    keygen(&c.agents[0].config, &["--promote"]);
    assert_ne!(std::fs::read(&cfg.key_file).expect("key"), old_key);
    assert_eq!(std::fs::read(cfg.next_key_file()).expect("key"), old_key);
    reload(&c, leader, 0);
    c.term(other);
    c.start_agent(other);
    healthy(&c, "promoted on some nodes");
    for i in 0..3 {
        reload(&c, i, 0);
    }
    healthy(&c, "promoted everywhere");
    // 3. The old key is retired.
    std::fs::remove_file(cfg.next_key_file()).expect("rm next");
    for i in 0..3 {
        reload(&c, i, 0);
    }
    c.term(other);
    c.start_agent(other);
    healthy(&c, "old key retired");
    // A bad next key file: the reload fails and says why, the keys in use stay.
    std::fs::write(cfg.next_key_file(), b"short").expect("write");
    let r = c.call(leader, &AdminRequest::ReloadKeys).expect("call");
    assert!(!r.ok);
    let e = r.error.unwrap_or_default();
    assert!(
        e.contains("next_key_file") && e.contains("still using"),
        "{e}"
    );
    std::fs::remove_file(cfg.next_key_file()).expect("rm next");

    // 4. A node that only has the old key: refused, one clear line per peer.
    let stale = c.dir.path().join("stale.key");
    std::fs::write(&stale, &old_key).expect("write");
    std::fs::set_permissions(&stale, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    c.term(other);
    let text = std::fs::read_to_string(&c.agents[other].config).expect("config");
    let text = text.replace(
        &format!("key_file: {}", cfg.key_file.display()),
        &format!("key_file: {}", stale.display()),
    );
    std::fs::write(&c.agents[other].config, text).expect("write config");
    let stale_ip = peer_address(&c, other).ip().to_string();
    c.start_agent(other);
    wait_for(LONG, || {
        let log = c.log(leader);
        (!lines_with(&log, "wrong or old cluster key").is_empty()).then_some(())
    })
    .expect("the refusal is logged");
    // It keeps retrying for a while: still one line (per direction).
    std::thread::sleep(Duration::from_secs(4));
    let log = c.log(leader);
    let server_side: Vec<String> = lines_with(&log, "refused peer connection")
        .into_iter()
        .filter(|l| l.contains("wrong or old cluster key"))
        .collect();
    assert_eq!(server_side.len(), 1, "{server_side:#?}");
    assert!(server_side[0].contains(&stale_ip), "{}", server_side[0]);
    let stale_log = c.log(other);
    assert!(
        !lines_with(
            &stale_log,
            "refused our handshake: wrong or old cluster key"
        )
        .is_empty(),
        "{stale_log}"
    );
    let s = c.status(leader).expect("status");
    assert!(s.transport.handshakes_refused > 1, "{:?}", s.transport);
    assert!(!log.contains(&hex::encode(&old_key[..8])));
    // The others carry on with the same leader (the stale node knows none).
    let s = c.status(leader).expect("status");
    assert_eq!(s.raft.role, "leader");
    let stale_name = &c.agents[other].name;
    let ups: Vec<(String, bool)> = s.members.iter().map(|m| (m.name.clone(), m.up)).collect();
    assert!(
        ups.iter().all(|(n, up)| *up != (n == stale_name)),
        "only the stale node is down: {ups:?}"
    );
    assert_eq!(c.status(other).expect("status").raft.leader, None);
}
