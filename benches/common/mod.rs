//! Shared by the benchmarks: run counts and summary lines.

#![allow(dead_code)]

/// Runs per configuration: `ONEHA_BENCH_RUNS`, default 20.
pub fn runs() -> usize {
    std::env::var("ONEHA_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Prints `name n=.. min .. median .. p90 .. max ..` (milliseconds); returns the median.
pub fn stats(name: &str, mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        println!("{name}: no samples");
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<44} n={:<3} min {:>7.1} ms  median {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms",
        v.len(),
        quantile(&v, 0.0),
        quantile(&v, 0.5),
        quantile(&v, 0.9),
        quantile(&v, 1.0)
    );
    Some(quantile(&v, 0.5))
}
