//! Two front-ends on two networks (`two_node: true`, `addresses: [LAN, crossover]`): the
//! LAN through the switch and a back-to-back cable with IPv6 documentation addresses. One
//! link down, or flapping, costs nothing: no fence, no move, the status and the metrics
//! show the link; both links down is a split, settled by fencing as with one link.

mod e2e;
mod harness;

use std::time::{Duration, Instant};

use e2e::{Cluster, Kind, Opts};
use harness::wait_until;
use oneha::status::StatusReport;

const T: Duration = Duration::from_secs(40);
/// How long a fault is held: many times the default loss timeout (1 s).
const HOLD: Duration = Duration::from_secs(8);

fn opts() -> Opts {
    Opts {
        kind: Kind::TwoNode,
        links: 2,
        extra: "metrics: {listen: \"127.0.0.1:9464\"}".into(),
        ..Opts::default()
    }
}

fn other(n: &str) -> &'static str {
    if n == "node1" { "node2" } else { "node1" }
}

/// `(up, link states)` of member `peer` in `node`'s status.
fn peer_links(s: &StatusReport, peer: &str) -> (bool, Vec<bool>) {
    let m = s
        .members
        .iter()
        .find(|m| m.name == peer)
        .unwrap_or_else(|| panic!("no member {peer}"));
    (m.up, m.links.iter().map(|l| l.up).collect())
}

/// `node`'s metrics text (the endpoint listens on the node's own loopback).
fn metrics(c: &Cluster, node: &str) -> String {
    c.node(node)
        .run(&["curl", "-sf", "http://127.0.0.1:9464/metrics"])
        .stdout
}

/// Nothing happened to the cluster: both nodes on, nobody fenced, the owner unchanged and
/// serving.
fn assert_undisturbed(c: &Cluster, owner: &str) {
    c.assert_nobody_fenced(&["node1", "node2"]);
    assert_eq!(c.one_owner_serves(T), owner, "the group moved");
}

/// A command from each node commits (needs both voters: each way, some link carries Raft).
fn commands_commit_both_ways(c: &Cluster, owner: &str) {
    let peer = other(owner);
    for (node, cmd) in [(peer, "freeze"), (owner, "unfreeze")] {
        let (code, out, err) = c.oneha(node, &[cmd]);
        assert_eq!(
            code,
            0,
            "{cmd} on {node}: {out}{err}\n{}",
            c.agent_log(node)
        );
    }
    assert!(
        wait_until(T, || c.status(peer).is_some_and(|s| !s.group.frozen)),
        "the unfreeze did not reach {peer}"
    );
}

#[test]
fn lan_between_the_front_ends_down_no_fence_no_move_status_and_metrics_show_it() {
    let c = Cluster::start("links_lan_down", opts());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let peer = other(&owner);
    assert!(
        wait_until(T, || c
            .status(&owner)
            .is_some_and(|s| peer_links(&s, peer) == (true, vec![true, true]))),
        "both links up at start: {:?}",
        c.status(&owner).map(|s| peer_links(&s, peer))
    );
    // The LAN between the two front-ends fails; clients still reach the owner.
    c.topo.partition(c.node("node1"), c.node("node2"));
    let start = Instant::now();
    let mut seen_down = false;
    while start.elapsed() < HOLD {
        if let Some(s) = c.status(&owner) {
            let (up, links) = peer_links(&s, peer);
            assert!(up, "peer lost although the crossover works: {links:?}");
            seen_down |= links == [false, true];
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(seen_down, "status never showed link 1 down");
    let text = c.oneha(&owner, &["status"]).1;
    assert!(text.contains("links 1:DOWN 2:up"), "{text}");
    let m = metrics(&c, &owner);
    assert!(
        m.contains(&format!(
            "oneha_peer_link_up{{peer=\"{peer}\",link=\"1\"}} 0"
        )) && m.contains(&format!(
            "oneha_peer_link_up{{peer=\"{peer}\",link=\"2\"}} 1"
        )),
        "{m}"
    );
    assert!(m.contains("oneha_peer_link_last_heard_seconds{"), "{m}");
    c.topo.heal_all();
    assert!(
        wait_until(T, || c
            .status(&owner)
            .is_some_and(|s| peer_links(&s, peer) == (true, vec![true, true]))),
        "link 1 did not come back"
    );
    assert_undisturbed(&c, &owner);
    sampler.stop().assert_clean();
}

#[test]
fn crossover_pulled_then_lan_flapping_no_fence_no_move() {
    let c = Cluster::start("links_flap", opts());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let peer = other(&owner);
    // The crossover pulled at the owner's end: the LAN carries everything.
    c.node(&owner).set_crossover(false);
    assert!(
        wait_until(T, || c
            .status(&owner)
            .is_some_and(|s| peer_links(&s, peer) == (true, vec![true, false]))),
        "status never showed link 2 down"
    );
    std::thread::sleep(HOLD);
    c.node(&owner).set_crossover(true);
    // Then the LAN between them flaps (down and up in turns, the Raft traffic moving between
    // the links each time) while the crossover holds.
    let start = Instant::now();
    let mut flaps = 0;
    while start.elapsed() < Duration::from_secs(15) {
        c.topo.partition(c.node("node1"), c.node("node2"));
        std::thread::sleep(Duration::from_millis(400 + 300 * (flaps % 4)));
        c.topo.heal_all();
        std::thread::sleep(Duration::from_millis(300 + 200 * (flaps % 3)));
        flaps += 1;
    }
    // The crossover flaps too, while the LAN holds.
    for i in 0..8u64 {
        c.node(peer).set_crossover(false);
        std::thread::sleep(Duration::from_millis(300 + 150 * (i % 3)));
        c.node(peer).set_crossover(true);
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_undisturbed(&c, &owner);
    sampler.stop().assert_clean();
}

/// The LAN broken one way only (the owner's frames no longer reach its peer; the peer's
/// still reach the owner): the owner still hears its peer on link 1 but its connection there
/// fails, so its Raft messages move to the crossover; commands still commit.
#[test]
fn lan_broken_one_way_raft_moves_to_the_crossover_and_commands_commit() {
    let c = Cluster::start("links_one_way", opts());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let peer = other(&owner);
    c.topo.partition_one_way(c.node(&owner), c.node(peer));
    std::thread::sleep(HOLD);
    commands_commit_both_ways(&c, &owner);
    c.topo.heal_all();
    assert_undisturbed(&c, &owner);
    sampler.stop().assert_clean();
}

/// A firewall on the peer refuses the owner's connections on the LAN while the peer's own
/// connection to the owner works: the owner hears its peer on link 1 but cannot send there,
/// so its Raft messages must go over the crossover (before: they went into the LAN client's
/// queue, dropped while it could not connect, and nothing the owner sent reached its peer).
#[test]
fn lan_refused_one_way_by_a_firewall_raft_uses_the_crossover() {
    let c = Cluster::start("links_firewall", opts());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let peer = other(&owner);
    c.node(peer).block_tcp_port_from(c.node(&owner), 7400);
    std::thread::sleep(HOLD);
    let s = c.status(&owner).expect("status");
    assert_eq!(
        peer_links(&s, peer),
        (true, vec![true, true]),
        "the owner still hears its peer on both links"
    );
    commands_commit_both_ways(&c, &owner);
    c.topo.heal_all();
    assert_undisturbed(&c, &owner);
    sampler.stop().assert_clean();
}

#[test]
fn both_links_down_is_a_split_settled_by_fencing() {
    let c = Cluster::start("links_both_down", opts());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let peer = other(&owner);
    c.topo.partition(c.node("node1"), c.node("node2"));
    c.node(&owner).set_crossover(false);
    // The owner fences its peer at once (as with one link) and keeps the group.
    assert!(
        wait_until(T, || !c.node(peer).is_on()),
        "nobody was fenced:\n{}",
        c.agent_log(&owner)
    );
    assert!(
        wait_until(T, || c.status(&owner).is_some_and(|s| s
            .fencing
            .journal
            .iter()
            .any(|l| l.target == peer && l.success))),
        "no successful fence of {peer} in the journal:\n{}",
        c.agent_log(&owner)
    );
    c.topo.heal_all();
    c.node(&owner).set_crossover(true);
    assert_eq!(c.one_owner_serves(T), owner);
    sampler.stop().assert_clean();
}
