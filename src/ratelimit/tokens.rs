//! Tokens per minute: a bucket that can give back.
//!
//! `governor`'s GCRA cannot refund a cell, and a token reservation is an
//! estimate that settlement corrects, up or down. So this is the same
//! algorithm kept by hand on one atomic: the bucket's "theoretical arrival
//! time" (`tat`), the instant at which it would be full again. Taking `n`
//! tokens moves it `n` token-intervals later (an interval is a minute over
//! the limit); giving them back moves it earlier. The bucket is full when
//! `tat` is at or before now, and may hold at most a minute's worth.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The window every limit is per: a minute, in nanoseconds.
const WINDOW_NANOS: u64 = 60_000_000_000;

/// What a token bucket looks like at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenState {
    /// The limit, tokens per minute.
    pub limit: u64,
    /// Tokens left to take now.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
}

/// One subject's tokens per minute.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: NonZeroU64,
    /// When the bucket is full again, in the layer clock's nanoseconds.
    tat: AtomicU64,
}

impl TokenBucket {
    /// A full bucket of `limit` tokens per minute.
    pub(crate) fn new(limit: NonZeroU64) -> Self {
        TokenBucket {
            limit,
            tat: AtomicU64::new(0),
        }
    }

    /// The time `n` tokens take to refill, rounded up to the nanosecond;
    /// saturating well below `u64::MAX` so that sums of it cannot wrap.
    fn cost(&self, n: u64) -> u64 {
        let nanos =
            (u128::from(n) * u128::from(WINDOW_NANOS)).div_ceil(u128::from(self.limit.get()));
        u64::try_from(nanos)
            .unwrap_or(u64::MAX / 4)
            .min(u64::MAX / 4)
    }

    /// Takes `n` tokens at `now` if they fit in the minute's worth, or if
    /// the bucket is full (a request larger than the whole limit then
    /// passes alone, and the bucket owes the rest, rather than a request
    /// that can never pass). Otherwise says how long until they fit.
    pub(crate) fn try_take(&self, n: u64, now: u64) -> Result<TokenState, Duration> {
        let cost = self.cost(n);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let next = tat.max(now).saturating_add(cost);
            let used = next - now;
            if used > WINDOW_NANOS && tat > now {
                // Fits once `used` is back under the window, or once the
                // bucket is full for a request larger than all of it.
                let wait = (used - WINDOW_NANOS).min(tat - now);
                return Err(Duration::from_nanos(wait));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(self.state_of(next, now)),
                Err(seen) => tat = seen,
            }
        }
    }

    /// Gives back `n` tokens taken `elapsed` nanoseconds ago (what was
    /// reserved and not used), less what the bucket may have forgotten
    /// of them since: in `elapsed` it refilled `elapsed` worth, and once
    /// full it forgets what it was owed. Given back whole, a late refund
    /// would pay the debt of requests taken since, and requests holding
    /// long reservations in turn would pass several minutes' worth a
    /// minute. Never fills the bucket past full: a `tat` before now reads
    /// as full.
    pub(crate) fn give_back(&self, n: u64, elapsed: u64) {
        let cost = self.cost(n).saturating_sub(elapsed);
        if cost == 0 {
            return;
        }
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.saturating_sub(cost))
            });
    }

    /// Takes `n` more tokens than were reserved, whether or not they fit:
    /// they were used already, and the bucket owes them.
    pub(crate) fn charge(&self, n: u64, now: u64) {
        let cost = self.cost(n);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.max(now).saturating_add(cost))
            });
    }

    /// The bucket at `now`, without taking anything.
    pub(crate) fn state(&self, now: u64) -> TokenState {
        self.state_of(self.tat.load(Ordering::Acquire), now)
    }

    fn state_of(&self, tat: u64, now: u64) -> TokenState {
        let owed = tat.saturating_sub(now);
        let limit = self.limit.get();
        let used = (u128::from(owed) * u128::from(limit)).div_ceil(u128::from(WINDOW_NANOS));
        TokenState {
            limit,
            remaining: u64::try_from(u128::from(limit).saturating_sub(used)).unwrap_or(0),
            reset: Duration::from_nanos(owed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn bucket(limit: u64) -> TokenBucket {
        TokenBucket::new(NonZeroU64::new(limit).unwrap())
    }

    #[test]
    fn a_minutes_worth_passes_then_waits_for_the_refill() {
        let b = bucket(600); // 10 tokens a second
        let s = b.try_take(400, 0).unwrap();
        assert_eq!((s.limit, s.remaining), (600, 200));
        assert_eq!(s.reset, Duration::from_secs(40));
        assert_eq!(b.try_take(200, 0).unwrap().remaining, 0);
        // 50 more fit after 5 s.
        assert_eq!(b.try_take(50, 0), Err(Duration::from_secs(5)));
        assert_eq!(b.try_take(50, 4 * SEC), Err(Duration::from_secs(1)));
        assert_eq!(b.try_take(50, 5 * SEC).unwrap().remaining, 0);
        // A minute after the last take, it is full again.
        assert_eq!(b.state(65 * SEC).remaining, 600);
        assert_eq!(b.state(65 * SEC).reset, Duration::ZERO);
    }

    #[test]
    fn what_is_given_back_can_be_taken_again_but_never_more_than_full() {
        let b = bucket(600);
        b.try_take(600, 0).unwrap();
        assert!(b.try_take(100, 0).is_err());
        b.give_back(100, 0);
        assert_eq!(b.try_take(100, 0).unwrap().remaining, 0);
        // Giving back more than was ever taken leaves it just full.
        b.give_back(10_000, 0);
        assert_eq!(b.state(0).remaining, 600);
        assert_eq!(b.try_take(600, 0).unwrap().remaining, 0);
    }

    #[test]
    fn a_request_larger_than_the_limit_passes_alone_and_the_bucket_owes_it() {
        let b = bucket(100);
        let s = b.try_take(250, 0).unwrap();
        assert_eq!(s.remaining, 0);
        assert_eq!(s.reset, Duration::from_secs(150));
        // Until the debt is paid nothing else passes; then a large one
        // waits for the bucket to be full.
        assert_eq!(b.try_take(250, 10 * SEC), Err(Duration::from_secs(140)));
        assert_eq!(b.try_take(10, 90 * SEC), Err(Duration::from_secs(6)));
        assert!(b.try_take(250, 150 * SEC).is_ok());
    }

    #[test]
    fn a_charge_after_the_fact_is_owed_even_past_the_limit() {
        let b = bucket(600);
        b.try_take(100, 0).unwrap();
        b.charge(900, 0);
        let s = b.state(0);
        assert_eq!((s.remaining, s.reset), (0, Duration::from_secs(100)));
        assert_eq!(
            b.try_take(1, 0),
            Err(Duration::from_nanos(40 * SEC + SEC / 10))
        );
    }

    #[test]
    fn a_late_refund_gives_back_only_what_the_bucket_has_not_forgotten() {
        let b = bucket(600); // 10 tokens a second
        b.try_take(600, 0).unwrap();
        // Half a minute on, half of it is refilled: the other half of an
        // unused reservation comes back, and the bucket is full.
        b.give_back(600, 30 * SEC);
        assert_eq!(b.state(30 * SEC).remaining, 600);

        // A reservation forgotten (the bucket filled up while it was held)
        // gives nothing back: the debt of the request taken since stands.
        let b = bucket(600);
        b.try_take(600, 0).unwrap();
        b.try_take(600, 60 * SEC).unwrap();
        b.give_back(600, 60 * SEC);
        assert_eq!(b.try_take(600, 60 * SEC), Err(Duration::from_secs(60)));
        assert_eq!(b.state(60 * SEC).remaining, 0);
    }
}
