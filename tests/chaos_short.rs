//! The fault campaign's short run for CI: a few dozen seeded faults per topology (see
//! tests/chaos and `make chaos` for the full campaign). Zero invariant violations, a single
//! owner serving after every fault within the bound, and no agent exiting by itself.
//! `ONEHA_SEED=N` replays another schedule; `ONEHA_CHAOS_FAULTS=N` runs N faults instead.

mod chaos;
mod e2e;
mod harness;

use std::time::Duration;

use chaos::Campaign;
use chaos::schedule::{Fault, Target, draw, draw_links};
use e2e::Kind;

/// Faults per topology.
const FAULTS: usize = 24;

fn faults() -> usize {
    std::env::var("ONEHA_CHAOS_FAULTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(FAULTS)
}

fn seed(default: u64) -> u64 {
    std::env::var("ONEHA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn campaign(kind: Kind, links: u8, name: &'static str, default_seed: u64) {
    let faults = faults();
    let camp = Campaign {
        seed: seed(default_seed),
        faults,
        kind,
        links,
        profile: "default",
        bound: Duration::from_secs(30),
        name,
    };
    eprintln!("chaos_short: {kind:?}, seed {}", camp.seed);
    let out = chaos::run(&camp, &|| false, &mut |l| eprintln!("{l}"));
    let text = out.render();
    eprintln!("{text}");
    assert_eq!(out.injected, faults, "{text}");
    assert!(out.samples > 0, "the sampler took no sample");
    assert!(out.clean(), "{text}");
}

#[test]
fn witness_topology_survives_a_short_random_fault_schedule() {
    campaign(Kind::Witness, 1, "chaos_witness", 1);
}

#[test]
fn two_node_topology_survives_a_short_random_fault_schedule() {
    campaign(Kind::TwoNode, 1, "chaos_two_node", 2);
}

#[test]
fn two_node_topology_on_two_networks_survives_a_short_random_fault_schedule() {
    campaign(Kind::TwoNode, 2, "chaos_two_links", 3);
}

#[test]
fn two_network_schedules_add_the_one_link_faults_and_one_network_ones_do_not_change() {
    let kinds = |v: &[chaos::schedule::Planned]| -> std::collections::BTreeSet<&'static str> {
        v.iter().map(|p| p.fault.kind()).collect()
    };
    let two = draw_links(7, 300, false, 2);
    let k = kinds(&two);
    for t in ["one link down", "one link flap", "one link lossy"] {
        assert!(k.contains(t), "{t} never drawn: {k:?}");
    }
    assert!(!kinds(&draw(7, 300, false)).contains("one link down"));
    let key = |v: Vec<chaos::schedule::Planned>| {
        v.into_iter()
            .map(|p| (p.fault, p.hold, p.pause))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(draw_links(9, 50, false, 1)), key(draw(9, 50, false)));
}

#[test]
fn the_same_seed_draws_the_same_schedule() {
    let key = |seed, n, w| {
        draw(seed, n, w)
            .into_iter()
            .map(|p| (p.fault, p.hold, p.pause))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(42, 50, true), key(42, 50, true));
    assert_ne!(key(42, 50, true), key(43, 50, true));
}

#[test]
fn schedules_cover_every_fault_type_and_two_node_ones_never_target_a_witness() {
    let witness = draw(7, 300, true);
    let kinds: std::collections::BTreeSet<&str> = witness.iter().map(|p| p.fault.kind()).collect();
    assert_eq!(kinds.len(), 11, "{kinds:?}");
    for p in draw(7, 300, false) {
        let targets: Vec<Target> = match &p.fault {
            Fault::AgentKill(t) | Fault::AgentHang(t) | Fault::AgentRestart(t) => vec![*t],
            Fault::PowerCycle(t) | Fault::Loss(t, _) | Fault::LinkFlap(t, _) => vec![*t],
            Fault::Partition(a, b) | Fault::OneWay(a, b) => vec![*a, *b],
            Fault::WitnessDown => panic!("witness fault in a two-node schedule"),
            Fault::FenceDown(_) => vec![],
            Fault::OneLinkDown(..) | Fault::OneLinkFlap(..) | Fault::OneLinkLossy(..) => {
                panic!("one-link fault in a one-network schedule")
            }
        };
        assert!(!targets.contains(&Target::Witness), "{p:?}");
    }
}
