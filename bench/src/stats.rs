//! Percentiles and medians.

use std::time::Duration;

/// The `q` quantile (0..=1, nearest rank) of `values`, reordering them; 0 when empty.
pub fn percentile_u32(values: &mut [u32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = nearest_rank(values.len(), q);
    let (_, value, _) = values.select_nth_unstable(rank);
    f64::from(*value)
}

/// Latencies (as durations) to sorted microseconds and their p50/p99.
pub fn latency_percentiles(latencies: &mut [u32]) -> (f64, f64) {
    (
        percentile_u32(latencies, 0.50),
        percentile_u32(latencies, 0.99),
    )
}

/// A duration in whole microseconds, saturating.
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn nearest_rank(len: usize, q: f64) -> usize {
    let q = q.clamp(0.0, 1.0);
    // Nearest rank: ceil(q * n), 1-based.
    let rank = (q * len as f64).ceil() as usize;
    rank.clamp(1, len) - 1
}

/// The median of `values` (mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return 0.0;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let mut v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_u32(&mut v, 0.5), 50.0);
        assert_eq!(percentile_u32(&mut v, 0.99), 99.0);
        assert_eq!(percentile_u32(&mut [], 0.5), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
