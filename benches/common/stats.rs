//! Latency figures for the benches' reports.

use std::time::Duration;

/// "n N, p50 X ms, p99 Y ms, max Z ms" of `samples` (sorted in place).
pub fn summary(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let at = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples.get(i).copied().unwrap_or_default().as_secs_f64() * 1000.0
    };
    format!(
        "n {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}
