//! Rate limits: requests and tokens per minute, per key, user and team.
//!
//! ```
//! use std::time::Duration;
//! use tollgate::auth::{KeyLimits, Principal};
//! use tollgate::config::{RateLimitConfig, RateLimitScope};
//! use tollgate::ratelimit::{LimitClock, RateLimitLayer};
//! use tollgate::{GatewayRequest, GatewayResponse, Operation, ResponseBody, WireFormat};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let clock = LimitClock::manual();
//! let svc = ServiceBuilder::new()
//!     .layer(
//!         RateLimitLayer::new()
//!             .with_limit(RateLimitConfig {
//!                 scope: RateLimitScope::Team,
//!                 name: Some("research".into()),
//!                 rpm: Some(2),
//!                 tpm: None,
//!             })
//!             .clock(clock.clone()),
//!     )
//!     .service(service_fn(|_req: GatewayRequest| async {
//!         Ok::<_, tollgate::GatewayError>(GatewayResponse::new(ResponseBody::TokenCount(1)))
//!     }));
//!
//! let request = || {
//!     let body = tollgate::json::RawObject::parse(br#"{"model":"m","messages":[]}"#).unwrap();
//!     let mut req = GatewayRequest::new(WireFormat::OpenAiChat, Operation::Generate, body).unwrap();
//!     req.extensions.insert(Principal {
//!         team: Some("research".into()),
//!         ..Principal::anonymous()
//!     });
//!     req
//! };
//! for _ in 0..2 {
//!     let resp = svc.clone().oneshot(request()).await.unwrap();
//!     assert!(resp.meta.headers.contains_key("x-ratelimit-remaining-requests"));
//! }
//! let refused = svc.clone().oneshot(request()).await.unwrap_err();
//! assert_eq!(refused.status(), 429);
//! assert_eq!(refused.retry_after(), Some(Duration::from_secs(30)));
//! clock.advance(Duration::from_secs(30));
//! assert!(svc.clone().oneshot(request()).await.is_ok());
//! # let _ = KeyLimits::default(); }
//! ```
//!
//! # What is limited
//!
//! A request counts against the limits of its [`Principal`](crate::auth::Principal):
//! its key's (the key's own, [`KeyLimits`](crate::auth::KeyLimits), set
//! with `tollgate keys create --rpm N --tpm N`, and those of
//! `[[rate_limits]] scope = "key"`), its user's and its team's
//! (`scope = "user"`, `"team"`). Where several cover one key (its own, an
//! entry naming it, an entry for every key), the tightest of each kind
//! applies; a request must pass its key's, its user's and its team's. A
//! request without a principal (no `Auth` layer) is not limited.
//!
//! - **Requests per minute**: GCRA (`governor`), with a burst of the whole
//!   minute: 60 rpm lets 60 requests through at once, then one a second.
//! - **Tokens per minute**, input and output together: a request reserves
//!   its estimate before it is sent ([`Estimate`](crate::usage::Estimate),
//!   shared with the budgets): its input at about four bytes of body a
//!   token and its output at the largest maximum it names (`max_tokens`,
//!   `max_completion_tokens`, `max_output_tokens`: each format's decoder
//!   prefers a different one; Gemini's `maxOutputTokens`), else
//!   [`DEFAULT_OUTPUT_TOKENS`]. When its answer settles
//!   ([`Settlement`](crate::usage::Settlement), from the `Usage` layer
//!   inside this one), the difference with the tokens it used is given
//!   back or charged; a request that fails, or is dropped, gives its
//!   reservation back. What comes back is less what the bucket refilled
//!   since the reservation was taken: the bucket may have forgotten it
//!   already, and giving it back then would pay other requests' debt.
//!   Without a settlement, a complete answer's usage corrects it, and a
//!   stream's estimate stands. A request larger than the whole limit
//!   passes when the bucket is full, and the bucket then owes the rest.
//!
//! A request refused is counted as a request (a GCRA cell cannot be
//! given back), and takes no tokens.
//!
//! # What the client sees
//!
//! A refused request is a 429 in the client's format (OpenAI
//! `rate_limit_error` / `rate_limit_exceeded`, Anthropic
//! `rate_limit_error`), with `Retry-After`, and a message naming which of
//! its limits refused (this key's, user `u`'s, team `t`'s) and its figure.
//! Every answer, served or refused, carries OpenAI's
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the caller's
//! tightest limit of each kind (fewest remaining), resets as Go durations
//! (`1s`, `6m0s`).
//!
//! An answer served with the gateway's own provider credential loses the
//! upstream's `x-ratelimit-*` and `anthropic-ratelimit-*` headers, ours
//! or not: they describe the gateway's provider account, shared by every
//! caller. An answer served with the client's own credential (BYOK, a
//! Claude subscription passed through) keeps them: they are the client's
//! (Claude Code reads its subscription's), and ours of the same names
//! replace theirs.
//!
//! # Cost
//!
//! No lock, no store, nothing async on the request path: the limits are
//! resolved from the config once; counters are found by a hash lookup (a
//! `moka` cache that forgets a subject idle for ten minutes, by then back
//! to full) and updated with atomics. A request to which no limit applies
//! costs one extension lookup and two branches.
//!
//! # Known limits
//!
//! - A key's counters are its id's: a rotated key (a new id) starts with
//!   fresh ones, and limits written for the old id in `[[rate_limits]]`
//!   do not follow it to its successor.
//! - Counters are forgotten after ten minutes without a request (by then
//!   back to full); a token correction of a stream longer than that is
//!   then lost.

mod clock;
mod future;
mod headers;
mod layer;
mod limits;
mod tokens;

pub use clock::LimitClock;
pub use future::ResponseFuture;
pub use headers::{
    LIMIT_REQUESTS, LIMIT_TOKENS, REMAINING_REQUESTS, REMAINING_TOKENS, RESET_REQUESTS,
    RESET_TOKENS,
};
pub use layer::{RateLimit, RateLimitLayer, DEFAULT_OUTPUT_TOKENS};

#[cfg(test)]
mod tests;
