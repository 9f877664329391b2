//! The clock every limiter of a layer reads: the system's monotonic clock,
//! or one a test moves by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::nanos::Nanos;

/// Time for the rate limiters, in nanoseconds since the clock was made.
/// `governor`'s GCRA and the token windows read the same one, so a test
/// that moves a [`LimitClock::manual`] clock moves both.
#[derive(Debug, Clone)]
pub struct LimitClock(Source);

#[derive(Debug, Clone)]
enum Source {
    System(Instant),
    Manual(Arc<AtomicU64>),
}

impl LimitClock {
    /// The system's monotonic clock (the default).
    pub fn system() -> Self {
        LimitClock(Source::System(Instant::now()))
    }

    /// A clock that stands still until [`LimitClock::advance`] moves it
    /// (and every clone of it).
    pub fn manual() -> Self {
        LimitClock(Source::Manual(Arc::new(AtomicU64::new(0))))
    }

    /// Moves a manual clock forward; the system clock moves by itself and
    /// ignores this.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(now) = &self.0 {
            let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            let _ = now.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
        }
    }

    /// Nanoseconds since the clock was made.
    pub(crate) fn nanos(&self) -> u64 {
        match &self.0 {
            Source::System(start) => u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Source::Manual(now) => now.load(Ordering::Acquire),
        }
    }
}

impl Default for LimitClock {
    fn default() -> Self {
        Self::system()
    }
}

impl governor::clock::Clock for LimitClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.nanos())
    }
}
