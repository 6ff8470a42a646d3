//! Two front-ends on two networks (`addresses: [LAN, crossover]`), the clients on the LAN:
//! the owner's LAN cable out leaves it talking to its peer over the crossover but unable to
//! serve anyone. It hands the group over (no fence: the peers still hear each other), and
//! the group does not return while the cable is out. The whole LAN down (both cables: the
//! switch) leaves the group where it is: no node could serve better.

mod e2e;
mod harness;

use std::time::{Duration, Instant};

use e2e::{Cluster, Kind, Opts};
use harness::wait_until;

const T: Duration = Duration::from_secs(40);
/// How long a fault is held: many times the default loss timeout (1 s).
const HOLD: Duration = Duration::from_secs(6);

fn opts() -> Opts {
    Opts {
        kind: Kind::TwoNode,
        links: 2,
        ..Opts::default()
    }
}

fn other(n: &str) -> &'static str {
    if n == "node1" { "node2" } else { "node1" }
}

/// Before: the owner kept the group with its LAN cable out (its monitor saw the cable only
/// at its next run, then waited 2 s, then restarted a group that a restart cannot fix).
#[test]
fn the_owners_lan_cable_out_hands_the_group_to_its_peer_without_fencing() {
    let c = Cluster::start("client_link_out", opts());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let peer = other(&owner);
    let t0 = Instant::now();
    c.node(&owner).link_down();
    assert!(
        wait_until(T, || c.status(peer).is_some_and(|s| s
            .group
            .owner
            .as_deref()
            == Some(peer)
            && s.group.state == "started")),
        "the group never moved to {peer}:\n{}",
        c.agent_log(&owner)
    );
    eprintln!(
        "started on {peer} {:?} after the cable went out",
        t0.elapsed()
    );
    let s = c.status(peer).expect("status");
    assert!(
        s.group.reason.contains("relocation"),
        "reason: {}",
        s.group.reason
    );
    assert!(
        c.agent_log(&owner).contains("no carrier"),
        "the old owner's log does not say why:\n{}",
        c.agent_log(&owner)
    );
    assert_eq!(
        c.one_owner_serves(T),
        peer,
        "clients are not served by {peer}"
    );
    // The cable back: the group stays where it serves.
    std::thread::sleep(HOLD);
    c.node(&owner).link_up();
    std::thread::sleep(HOLD);
    assert_eq!(c.one_owner_serves(T), peer, "the group moved back");
    c.assert_nobody_fenced(&["node1", "node2"]);
    sampler.stop().assert_clean();
}

/// Both LAN cables out (the switch down): each node reports its own link down, so neither
/// is a better place; the group stays and serves again when the LAN returns.
#[test]
fn the_whole_lan_down_moves_nothing() {
    let c = Cluster::start("client_link_lan", opts());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let peer = other(&owner);
    c.node(peer).link_down();
    c.node(&owner).link_down();
    std::thread::sleep(HOLD);
    let s = c.status(&owner).expect("status over the admin socket");
    assert_eq!(
        s.group.owner.as_deref(),
        Some(owner.as_str()),
        "moved: {}\n{}",
        s.group.reason,
        c.agent_log(&owner)
    );
    c.node(&owner).link_up();
    c.node(peer).link_up();
    assert_eq!(c.one_owner_serves(T), owner, "the group moved");
    c.assert_nobody_fenced(&["node1", "node2"]);
    sampler.stop().assert_clean();
}
