//! `oneha-testkit resource-cycle`: prepares, starts, stops and settles resources
//! repeatedly, in process, and prints how long each operation took (the resource benchmark
//! runs it inside a node). A start without a prepare costs about prepare + start.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use oneha::config;
use oneha::resources::Resource;

/// Arguments of `oneha-testkit resource-cycle`.
#[derive(Debug, Clone, Args)]
pub struct CycleArgs {
    /// Config file whose `resources.group` holds the resources.
    #[arg(long)]
    pub config: PathBuf,
    /// Start/stop rounds per resource.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Resources to cycle, by name (each on its own: start, stop, start, stop...).
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Runs the cycles and prints `NAME OP min median p90 max` in milliseconds; returns the
/// exit code.
pub async fn run(args: &CycleArgs) -> i32 {
    let cfg = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    println!(
        "resource op min_ms median_ms p90_ms max_ms (rounds: {})",
        args.rounds
    );
    for name in &args.names {
        let Some(rc) = cfg.resources.group.iter().find(|r| &r.name == name) else {
            eprintln!("no resource `{name}` in {}", args.config.display());
            return 2;
        };
        let r = match Resource::from_config(rc) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        };
        // Per round: prepare, start, stop, settle, each timed on its own.
        let mut times: [Vec<Duration>; 4] = Default::default();
        for _ in 0..args.rounds {
            let ops = [
                timed(r.prepare()).await,
                timed(r.start()).await,
                timed(r.stop()).await,
                timed(r.settle()).await,
            ];
            for (i, (result, took)) in ops.into_iter().enumerate() {
                if let Err(e) = result {
                    eprintln!("{e}");
                    return 1;
                }
                times[i].push(took);
            }
        }
        for (op, t) in ["prepare", "start", "stop", "settle"]
            .iter()
            .zip(&mut times)
        {
            println!("{name} {op} {}", summary(t));
        }
    }
    0
}

async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let t = Instant::now();
    let v = f.await;
    (v, t.elapsed())
}

/// `min median p90 max` in milliseconds with one decimal (p90: nearest rank).
fn summary(d: &mut [Duration]) -> String {
    d.sort();
    let ms = |x: Option<&Duration>| x.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let p90 = (d.len() * 9).div_ceil(10).saturating_sub(1);
    format!(
        "{:.1} {:.1} {:.1} {:.1}",
        ms(d.first()),
        ms(d.get(d.len() / 2)),
        ms(d.get(p90)),
        ms(d.last())
    )
}
