//! The fault campaign's short run for CI: a few dozen seeded faults per topology (see
//! tests/chaos and `make chaos` for the full campaign). Zero invariant violations, a single
//! owner serving after every fault within the bound, and no agent exiting by itself.
//! `ONEHA_SEED=N` replays another schedule.

mod chaos;
mod e2e;
mod harness;

use std::time::Duration;

use chaos::Campaign;
use chaos::schedule::{Fault, Target, draw};
use e2e::Kind;

/// Faults per topology.
const FAULTS: usize = 24;

fn seed(default: u64) -> u64 {
    std::env::var("ONEHA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn campaign(kind: Kind, name: &'static str, default_seed: u64) {
    let camp = Campaign {
        seed: seed(default_seed),
        faults: FAULTS,
        kind,
        profile: "default",
        bound: Duration::from_secs(30),
        name,
    };
    eprintln!("chaos_short: {kind:?}, seed {}", camp.seed);
    let out = chaos::run(&camp, &|| false, &mut |l| eprintln!("{l}"));
    let text = out.render();
    eprintln!("{text}");
    assert_eq!(out.injected, FAULTS, "{text}");
    assert!(out.samples > 0, "the sampler took no sample");
    assert!(out.clean(), "{text}");
}

#[test]
fn witness_topology_survives_a_short_random_fault_schedule() {
    campaign(Kind::Witness, "chaos_witness", 1);
}

#[test]
fn two_node_topology_survives_a_short_random_fault_schedule() {
    campaign(Kind::TwoNode, "chaos_two_node", 2);
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
        };
        assert!(!targets.contains(&Target::Witness), "{p:?}");
    }
}
