//! Two front-ends and a witness (ordinary quorum). Every scenario runs with the invariant
//! sampler (S1, S2) and ends with exactly one owner serving.

mod e2e;
mod harness;

use std::time::Duration;

use e2e::{Cluster, Opts};
use harness::wait_until;

const T: Duration = Duration::from_secs(40);

fn other(n: &str) -> &'static str {
    if n == "node1" { "node2" } else { "node1" }
}

#[test]
fn split_between_front_ends_that_both_reach_the_witness_moves_nothing() {
    let c = Cluster::start("wt_split", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    c.topo.partition(c.node("node1"), c.node("node2"));
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        c.node("node1").is_on() && c.node("node2").is_on(),
        "someone was fenced"
    );
    assert!(c.client_reaches(&owner, T));
    // One-way: the owner's frames no longer reach the other front-end.
    c.topo.heal_all();
    c.topo
        .partition_one_way(c.node(&owner), c.node(other(&owner)));
    std::thread::sleep(Duration::from_secs(6));
    c.topo.heal_all();
    c.one_owner_serves(T);
    sampler.stop().assert_clean();
}

#[test]
fn isolated_owner_stops_within_its_lease_and_is_fenced() {
    let c = Cluster::start("wt_isolated", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let survivor = other(&owner);
    // The owner loses everyone but keeps running its processes: it must drop the group
    // by itself (S4), and the majority fences it before taking over.
    c.topo.partition(c.node(&owner), c.node(survivor));
    c.topo.partition(c.node(&owner), c.node("node3"));
    assert!(
        c.client_reaches(survivor, T),
        "no takeover:\n{}",
        c.agent_log(survivor)
    );
    assert!(
        c.agent_log(&owner).contains("lost quorum") || !c.node(&owner).is_on(),
        "the isolated owner neither stopped by itself nor was fenced"
    );
    c.topo.heal_all();
    if !c.node(&owner).is_on() {
        c.node(&owner).boot();
    }
    assert_eq!(c.one_owner_serves(T), survivor);
    sampler.stop().assert_clean();
}

#[test]
fn hung_then_resumed_owner_agent_never_doubles_the_group() {
    let c = Cluster::start("wt_sigstop", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let survivor = other(&owner);
    c.node(&owner).hang_unit("oneha.service");
    assert!(
        c.client_reaches(survivor, T),
        "no takeover from a hung owner"
    );
    if c.node(&owner).is_on() {
        c.node(&owner).resume_unit("oneha.service");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.one_owner_serves(T), survivor);
    sampler.stop().assert_clean();
}

#[test]
fn agent_kill9_on_the_owner_witness_death_and_passive_death() {
    let c = Cluster::start("wt_kills", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    // The witness dies: the front-ends keep working.
    c.node("node3").power_off();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.one_owner_serves(T), owner);
    c.node("node3").boot();
    // kill -9 of the owner's agent: it is fenced and the group moves.
    c.node(&owner).kill_unit("oneha.service");
    let survivor = other(&owner);
    assert!(
        c.client_reaches(survivor, T),
        "no takeover after the agent's kill -9"
    );
    assert!(
        !c.node(&owner).is_on(),
        "the owner with a dead agent was not fenced"
    );
    // The fenced node boots again and rejoins without taking anything.
    c.node(&owner).boot();
    assert!(wait_until(T, || c
        .status(&owner)
        .is_some_and(|s| s.raft.leader.is_some())));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.one_owner_serves(T), survivor);
    // The passive node dies: nothing moves, nobody is fenced for it.
    let fences = c.status(survivor).expect("status").fencing.journal.len();
    c.node(&owner).power_off();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.one_owner_serves(T), survivor);
    assert_eq!(
        c.status(survivor).expect("status").fencing.journal.len(),
        fences
    );
    sampler.stop().assert_clean();
}

#[test]
fn fence_device_down_with_the_owner_lost_blocks_takeover_until_it_returns() {
    let mut c = Cluster::start("wt_nofence", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    let survivor = other(&owner);
    c.stop_fence_daemon();
    c.node(&owner).link_down();
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !c.node(survivor).unit_has_processes("opennebula.service"),
        "took over without a fence"
    );
    c.start_fence_daemon();
    // The fence device is back: the survivor fences the owner and takes over.
    assert!(
        c.client_reaches(survivor, T),
        "no takeover once fencing works again"
    );
    sampler.stop().assert_clean();
}

#[test]
fn packet_loss_on_the_owner() {
    let c = Cluster::start("wt_loss", Opts::default());
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("started");
    c.node(&owner).set_loss(30);
    std::thread::sleep(Duration::from_secs(8));
    c.node(&owner).heal();
    if !c.node(&owner).is_on() {
        c.node(&owner).boot();
    }
    c.one_owner_serves(T);
    sampler.stop().assert_clean();
}
