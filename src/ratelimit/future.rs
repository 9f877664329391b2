//! What an admitted request carries to its answer: the headers of its
//! standing, and its token reservation until the answer settles.

use std::sync::Arc;

use super::clock::LimitClock;
use super::headers;
use super::layer::with_headers;
use super::limits::{Applied, Counters, Standing, Table};
use crate::error::GatewayError;
use crate::response::GatewayResponse;
use crate::routing::CredentialKind;
use crate::usage::{Settlement, Ticket};

/// The tokens a request took from its limits, until its answer settles:
/// then the difference with what it used is given back or charged. Given
/// back if the request fails, or is dropped, before that. What comes
/// back is less what the buckets refilled since it was taken (see
/// `TokenBucket::give_back`).
pub(super) struct Reservation {
    buckets: [Option<Arc<Counters>>; 3],
    tokens: u64,
    clock: LimitClock,
    /// When the tokens were taken, in the clock's nanoseconds.
    taken_at: u64,
    settled: bool,
}

impl Reservation {
    pub(super) fn new(applied: &Applied, tokens: u64, table: &Table) -> Self {
        let bucket = |i: usize| {
            applied[i]
                .as_ref()
                .filter(|s| s.counters.tokens.is_some())
                .map(|s| s.counters.clone())
        };
        Reservation {
            buckets: [bucket(0), bucket(1), bucket(2)],
            tokens,
            clock: table.clock.clone(),
            taken_at: table.clock.nanos(),
            settled: false,
        }
    }

    /// The request used `used` tokens.
    fn settle(mut self, used: u64) {
        self.settled = true;
        let now = self.clock.nanos();
        let elapsed = now.saturating_sub(self.taken_at);
        for bucket in self
            .buckets
            .iter()
            .flatten()
            .filter_map(|c| c.tokens.as_ref())
        {
            if used > self.tokens {
                bucket.charge(used - self.tokens, now);
            } else {
                bucket.give_back(self.tokens - used, elapsed);
            }
        }
    }

    /// The answer says nothing of what it used: the estimate stands.
    fn keep(mut self) {
        self.settled = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            let elapsed = self.clock.nanos().saturating_sub(self.taken_at);
            for bucket in self
                .buckets
                .iter()
                .flatten()
                .filter_map(|c| c.tokens.as_ref())
            {
                bucket.give_back(self.tokens, elapsed);
            }
        }
    }
}

/// What a request the rate limits let through carries to its answer:
/// its ticket through the [`Gate`](crate::usage::Gate). No allocation
/// for a caller no limit applies to.
pub enum Passed {
    /// No limit applies to the caller.
    Unlimited,
    /// Admitted under the caller's limits.
    Limited(Box<Admitted>),
}

/// What a request admitted under limits carries to its answer: the
/// headers of its standing, and its token reservation.
pub struct Admitted {
    standing: Standing,
    reservation: Option<Reservation>,
}

impl Admitted {
    pub(super) fn new(standing: Standing, reservation: Option<Reservation>) -> Self {
        Admitted {
            standing,
            reservation,
        }
    }
}

/// The future of [`RateLimit`](super::RateLimit).
pub type ResponseFuture<F> = crate::usage::gate::ResponseFuture<F, Passed>;

impl Ticket for Passed {
    fn on_response(self, resp: &mut GatewayResponse) {
        // The gateway's provider account's limits are not the caller's,
        // limited or not; a client's own credential's are (Claude Code
        // reads its subscription's).
        if resp.meta.credential == Some(CredentialKind::Gateway) {
            headers::remove_upstream(&mut resp.meta.headers);
        }
        let Passed::Limited(admitted) = self else {
            return;
        };
        let Admitted {
            standing,
            reservation,
        } = *admitted;
        headers::set(&standing, &mut resp.meta.headers);
        let Some(reservation) = reservation else {
            return;
        };
        if let Some(settlement) = resp.extensions.get::<Settlement>() {
            settlement.on_settle(move |summary| {
                let u = &summary.usage;
                reservation.settle(u.input_tokens.saturating_add(u.output_tokens));
                None
            });
        } else if let Some(u) = &resp.meta.usage {
            reservation.settle(u.input_tokens.saturating_add(u.output_tokens));
        } else {
            reservation.keep();
        }
    }

    fn on_error(self, err: GatewayError) -> GatewayError {
        match self {
            Passed::Unlimited => err,
            // Dropping the reservation gives its tokens back.
            Passed::Limited(admitted) => with_headers(err, &admitted.standing),
        }
    }
}
