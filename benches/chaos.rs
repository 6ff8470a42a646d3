//! `make chaos`: the fault campaign (see tests/chaos). A seeded random schedule of faults
//! per topology against a oneha cluster of real hosts, the invariant sampler throughout, and
//! after each fault a check that exactly one owner serves within a bound.
//!
//! `ONEHA_SEED=N` (decimal or 0x-hex) replays a schedule (default: a new seed, printed);
//! `ONEHA_CHAOS_FAULTS` (default 200 per topology); `ONEHA_CHAOS_TOPOLOGY` = `witness`,
//! `two-node` or `both` (default); `ONEHA_CHAOS_PROFILE` = `default` or `fast`;
//! `ONEHA_CHAOS_BOUND` seconds (default 30); `ONEHA_CHAOS_LINKS=2` runs the two-node
//! topology on two networks (the LAN and a back-to-back cable) with the one-link faults
//! (default 1; the witness topology always has one). The report is printed and written to
//! `target/chaos-report.md`; the exit code is 1 if anything went wrong.

#[path = "../tests/chaos/mod.rs"]
mod chaos;
#[path = "../tests/e2e/mod.rs"]
mod e2e;
#[path = "../tests/harness/mod.rs"]
mod harness;
mod support;

use std::time::Duration;

use chaos::Campaign;
use e2e::Kind;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Seed, faults, topologies, profile, bound, links.
type Settings = (u64, usize, Vec<Kind>, &'static str, Duration, u8);

fn settings() -> Result<Settings, String> {
    let seed = match env("ONEHA_SEED") {
        Some(s) => {
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed
                .map_err(|e| format!("ONEHA_SEED={s}: {e}; give a number, e.g. 12345 or 0x3039"))?
        }
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
            .unwrap_or(1),
    };
    let faults = match env("ONEHA_CHAOS_FAULTS") {
        Some(s) => s
            .parse()
            .map_err(|e| format!("ONEHA_CHAOS_FAULTS={s}: {e}; give a count, e.g. 200"))?,
        None => 200,
    };
    let kinds = match env("ONEHA_CHAOS_TOPOLOGY").as_deref() {
        None | Some("both") => vec![Kind::Witness, Kind::TwoNode],
        Some("witness") => vec![Kind::Witness],
        Some("two-node") => vec![Kind::TwoNode],
        Some(other) => {
            return Err(format!(
                "ONEHA_CHAOS_TOPOLOGY={other}: use witness, two-node or both"
            ));
        }
    };
    let profile = match env("ONEHA_CHAOS_PROFILE").as_deref() {
        None | Some("default") => "default",
        Some("fast") => "fast",
        Some(other) => return Err(format!("ONEHA_CHAOS_PROFILE={other}: use default or fast")),
    };
    let bound = match env("ONEHA_CHAOS_BOUND") {
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|e| format!("ONEHA_CHAOS_BOUND={s}: {e}; give seconds, e.g. 30"))?,
        ),
        None => Duration::from_secs(30),
    };
    let links = match env("ONEHA_CHAOS_LINKS").as_deref() {
        None | Some("1") => 1,
        Some("2") => 2,
        Some(other) => return Err(format!("ONEHA_CHAOS_LINKS={other}: use 1 or 2")),
    };
    Ok((seed, faults, kinds, profile, bound, links))
}

fn main() {
    support::install_interrupt_handler();
    let (seed, faults, kinds, profile, bound, links) = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chaos: {e}");
            std::process::exit(2);
        }
    };
    let machine = support::machine();
    println!(
        "chaos: seed {seed} (replay with ONEHA_SEED={seed}), {faults} faults per topology, {machine}"
    );
    let mut md = format!(
        "Command: `ONEHA_SEED={seed} ONEHA_CHAOS_LINKS={links} make chaos` ({faults} faults per topology, profile {profile})  \nMachine: {machine}\n\n"
    );
    let mut clean = true;
    for kind in kinds {
        let camp = Campaign {
            seed,
            faults,
            kind,
            links: if kind == Kind::TwoNode { links } else { 1 },
            profile,
            bound,
            name: "chaos",
        };
        println!("== {kind:?} topology ==");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            chaos::run(&camp, &support::interrupted, &mut |l| println!("{l}"))
        }));
        match outcome {
            Ok(o) => {
                clean &= o.clean();
                let text = o.render();
                println!("\n{text}");
                md.push_str(&format!("### {kind:?} topology\n\n{text}\n"));
            }
            Err(_) if support::interrupted() => break,
            Err(_) => {
                clean = false;
                println!("the campaign stopped on a harness error (above); seed {seed}");
                md.push_str(&format!(
                    "### {kind:?} topology\n\nstopped on a harness error\n"
                ));
            }
        }
        if support::interrupted() {
            break;
        }
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chaos-report.md");
    if let Err(e) = std::fs::write(&out, &md) {
        eprintln!("cannot write {}: {e}", out.display());
    } else {
        println!("report written to {}", out.display());
    }
    println!("seed {seed}");
    clean &= support::check_nothing_left(&harness::prefixes_claimed());
    if support::interrupted() {
        println!("interrupted: torn down");
        std::process::exit(130);
    }
    std::process::exit(if clean { 0 } else { 1 });
}
