//! Load balancing between the deployments of one provider: a weighted
//! random order, and the peak-EWMA latency estimate that least-latency
//! balancing ranks deployments by. [`ProviderOrder`](super::ProviderOrder)
//! uses both when it plans a request's attempts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::util::rng::{HasherRng, Rng};

/// Deployments in a random order where each comes first in proportion to
/// its weight.
pub(super) fn weighted_order(weights: &[u32], rng: &mut HasherRng) -> Vec<usize> {
    let mut left: Vec<(usize, u64)> = weights.iter().map(|w| u64::from(*w)).enumerate().collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|l| l.1).sum();
        let mut pick = rng.next_u64() % total.max(1);
        let mut idx = 0;
        for (j, (_, w)) in left.iter().enumerate() {
            if pick < *w {
                idx = j;
                break;
            }
            pick -= w;
        }
        out.push(left.remove(idx).0);
    }
    out
}

/// Peak-EWMA of the time to an answer, as `tower::load::PeakEwma` keeps
/// it: a slower sample replaces the estimate at once, faster ones decay
/// into it; the cost is the estimate times the requests in flight.
pub(super) struct Ewma {
    nanos: f64,
    stamp: Instant,
    /// Requests in flight on the deployment.
    pub(super) pending: u32,
}

const DECAY: Duration = Duration::from_secs(10);

impl Ewma {
    pub(super) fn new() -> Self {
        Ewma {
            nanos: 0.0,
            stamp: Instant::now(),
            pending: 0,
        }
    }

    pub(super) fn observe(&mut self, rtt: Duration, now: Instant) {
        let sample = rtt.as_nanos() as f64;
        if sample > self.nanos {
            self.nanos = sample;
        } else {
            let elapsed = now.saturating_duration_since(self.stamp).as_nanos() as f64;
            let w = (-elapsed / DECAY.as_nanos() as f64).exp();
            self.nanos = self.nanos * w + sample * (1.0 - w);
        }
        self.stamp = now;
    }

    /// The estimate decays toward zero while no answer comes in, so a
    /// deployment that was slow once is tried again later.
    pub(super) fn cost(&self, now: Instant) -> f64 {
        let idle = now.saturating_duration_since(self.stamp).as_nanos() as f64;
        let decayed = self.nanos * (-idle / DECAY.as_nanos() as f64).exp();
        decayed * f64::from(self.pending + 1)
    }
}

/// A deployment's time to first token, as a moving average that moves a
/// quarter of the way to each new sample (so one slow answer does not
/// rank a deployment last for long, nor one fast answer first), in an
/// atomic: read and updated without a lock on every request.
#[derive(Debug, Default)]
pub(super) struct TtftEstimate {
    /// Nanoseconds; 0: not measured yet.
    nanos: AtomicU64,
}

impl TtftEstimate {
    /// The estimate, once there is one.
    pub(super) fn get(&self) -> Option<u64> {
        match self.nanos.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    pub(super) fn observe(&self, took: Duration) {
        // At least 1: 0 means "not measured".
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(match old {
                    0 => sample,
                    old => old - old / 4 + sample / 4,
                })
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_order_follows_weights() {
        let mut rng = HasherRng::default();
        let mut firsts = [0u32; 3];
        for _ in 0..6000 {
            let order = weighted_order(&[4, 1, 1], &mut rng);
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2], "every deployment appears once");
            firsts[order[0]] += 1;
        }
        // Deployment 0 comes first about 2/3 of the time.
        assert!((3500..4500).contains(&firsts[0]), "{firsts:?}");
        assert!(firsts[1] > 600 && firsts[2] > 600, "{firsts:?}");
    }

    #[test]
    fn ttft_estimate_moves_a_quarter_of_the_way() {
        let e = TtftEstimate::default();
        assert_eq!(e.get(), None);
        e.observe(Duration::from_millis(100));
        assert_eq!(
            e.get(),
            Some(100_000_000),
            "the first sample is the estimate"
        );
        e.observe(Duration::from_millis(20));
        assert_eq!(e.get(), Some(80_000_000));
        e.observe(Duration::ZERO);
        assert_eq!(e.get(), Some(60_000_000));
        for _ in 0..100 {
            e.observe(Duration::from_millis(10));
        }
        assert!(
            e.get().unwrap().abs_diff(10_000_000) < 1_000,
            "{:?}",
            e.get()
        );
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let t0 = Instant::now();
        let mut e = Ewma::new();
        e.observe(Duration::from_millis(100), t0);
        assert_eq!(e.cost(t0), 100e6);
        // A fast sample right after barely moves it; much later it dominates.
        e.observe(Duration::from_millis(10), t0 + Duration::from_millis(1));
        assert!(e.cost(t0) > 99e6);
        e.observe(Duration::from_millis(10), t0 + Duration::from_secs(60));
        assert!(e.cost(t0) < 11e6);
        e.pending = 1;
        assert!(e.cost(t0) > 11e6);
        // Without answers, a slow estimate fades.
        let t1 = t0 + Duration::from_secs(60);
        e.pending = 0;
        e.observe(Duration::from_millis(500), t1);
        assert!(e.cost(t1) >= 499e6);
        assert!(e.cost(t1 + Duration::from_secs(30)) < 30e6);
    }
}
