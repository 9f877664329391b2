//! What an admitted request carries to its answer: the headers of its
//! standing, and its token reservation until the answer settles.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::clock::LimitClock;
use super::headers;
use super::layer::with_headers;
use super::limits::{Applied, Counters, Standing, Table};
use crate::error::GatewayError;
use crate::response::GatewayResponse;
use crate::routing::CredentialKind;
use crate::usage::Settlement;

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

/// What an admitted request carries to its answer.
pub(super) struct Admitted {
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

    fn on_response(self, resp: &mut GatewayResponse) {
        headers::set(&self.standing, &mut resp.meta.headers);
        let Some(reservation) = self.reservation else {
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
        // Dropping the reservation gives its tokens back.
        with_headers(err, &self.standing)
    }
}

pin_project! {
    /// The future of [`RateLimit`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Passed {
            #[pin]
            fut: F,
            admitted: Option<Box<Admitted>>,
        },
        Refused {
            err: Option<GatewayError>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn passed(fut: F, admitted: Option<Box<Admitted>>) -> Self {
        ResponseFuture {
            state: State::Passed { fut, admitted },
        }
    }

    pub(super) fn refused(err: GatewayError) -> Self {
        ResponseFuture {
            state: State::Refused { err: Some(err) },
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<GatewayResponse, GatewayError>>,
{
    type Output = Result<GatewayResponse, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { err } => {
                Poll::Ready(Err(err.take().expect("polled after completion")))
            }
            StateProj::Passed { fut, admitted } => {
                let mut result = std::task::ready!(fut.poll(cx));
                if let Ok(resp) = &mut result {
                    // The gateway's provider account's limits are not the
                    // caller's; a client's own credential's are (Claude
                    // Code reads its subscription's).
                    if resp.meta.credential == Some(CredentialKind::Gateway) {
                        headers::remove_upstream(&mut resp.meta.headers);
                    }
                }
                let Some(admitted) = admitted.take() else {
                    return Poll::Ready(result);
                };
                Poll::Ready(match result {
                    Ok(mut resp) => {
                        admitted.on_response(&mut resp);
                        Ok(resp)
                    }
                    Err(e) => Err(admitted.on_error(e)),
                })
            }
        }
    }
}
