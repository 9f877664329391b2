//! [`RateLimitLayer`] and its service, [`RateLimit`].

use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::clock::LimitClock;
use super::future::{Admitted, Passed, Reservation};
use super::headers;
use super::limits::{Applied, Kind, Refusal, Rules, Standing, Table};
use crate::auth::Principal;
use crate::config::{Config, RateLimitConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::request::{GatewayRequest, Operation};
use crate::usage::{Admit, Gate};

/// The output tokens a request is assumed to ask for when its body names
/// no maximum (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
/// `generationConfig.maxOutputTokens`).
pub const DEFAULT_OUTPUT_TOKENS: u64 = 4096;

/// Builds [`RateLimit`] services; see the [module docs](super).
#[derive(Clone)]
pub struct RateLimitLayer {
    rules: Arc<Vec<RateLimitConfig>>,
    clock: LimitClock,
    default_output_tokens: u64,
}

impl RateLimitLayer {
    /// Keys' own limits only (`tollgate keys create --rpm N --tpm N`).
    pub fn new() -> Self {
        RateLimitLayer {
            rules: Arc::new(Vec::new()),
            clock: LimitClock::system(),
            default_output_tokens: DEFAULT_OUTPUT_TOKENS,
        }
    }

    /// Keys' own limits and the config's `[[rate_limits]]`.
    pub fn from_config(config: &Config) -> Self {
        config
            .rate_limits
            .iter()
            .cloned()
            .fold(Self::new(), Self::with_limit)
    }

    /// Adds a limit, as one `[[rate_limits]]` entry sets it.
    pub fn with_limit(mut self, limit: RateLimitConfig) -> Self {
        Arc::make_mut(&mut self.rules).push(limit);
        self
    }

    /// The clock the limits count time by. Default: the system's.
    pub fn clock(mut self, clock: LimitClock) -> Self {
        self.clock = clock;
        self
    }

    /// The output tokens reserved for a request that names no maximum.
    /// Default [`DEFAULT_OUTPUT_TOKENS`].
    pub fn default_output_tokens(mut self, tokens: u64) -> Self {
        self.default_output_tokens = tokens;
        self
    }
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    /// Each call makes a new set of counters: services from one layer
    /// value share theirs only through clones of the service.
    fn layer(&self, inner: S) -> RateLimit<S> {
        let mut rules = Rules::default();
        for r in self.rules.iter() {
            rules.add(r);
        }
        let limiter = Limiter {
            table: Table::new(rules, self.clock.clone()),
            default_output_tokens: self.default_output_tokens,
        };
        Gate::new(inner, Arc::new(limiter))
    }
}

/// The limits of a [`RateLimit`] service, shared by its clones: its
/// policy.
pub struct Limiter {
    table: Table,
    default_output_tokens: u64,
}

/// Counts each request against the limits of its [`Principal`] (its
/// key's, its user's, its team's) before the inner service sees it;
/// refuses one that does not fit with a 429 and `Retry-After`; puts the
/// `x-ratelimit-*` headers of the caller's tightest limits on every
/// answer; and corrects the tokens reserved once the answer settles.
pub type RateLimit<S> = Gate<S, Arc<Limiter>>;

impl Admit for Arc<Limiter> {
    type Ticket = Passed;

    fn admit(&self, req: &GatewayRequest) -> Result<Option<Passed>, GatewayError> {
        let table = &self.table;
        let Some(p) = req
            .extensions
            .get::<Principal>()
            .filter(|p| !table.none_for(p))
        else {
            return Ok(Some(Passed::Unlimited));
        };
        let applied = table.applied(p);
        let any_tokens = applied
            .iter()
            .flatten()
            .any(|s| s.counters.tokens.is_some());
        let estimate = match req.operation {
            Operation::Generate if any_tokens => estimate_tokens(req, self.default_output_tokens),
            _ => 0,
        };
        match table.admit(&applied, estimate) {
            Ok(standing) => {
                let reservation =
                    (estimate > 0).then(|| Reservation::new(&applied, estimate, table));
                Ok(Some(Passed::Limited(Box::new(Admitted::new(
                    standing,
                    reservation,
                )))))
            }
            Err((refusal, standing)) => Err(refused(&applied, &refusal, &standing)),
        }
    }
}

/// The client's 429: which of its limits, and when to try again. The
/// figures are the caller's own (its key, user or team).
fn refused(applied: &Applied, refusal: &Refusal, standing: &Standing) -> GatewayError {
    let whose = applied[refusal.subject]
        .as_ref()
        .map_or_else(|| "a limit".to_string(), |s| s.whose());
    // Whole seconds for a person (the headers have the milliseconds).
    let secs = u64::try_from(refusal.retry_after.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
    let wait = headers::go_duration(Duration::from_secs(secs.max(1)));
    let per_minute = |limit: u64, what: &str| {
        let s = if limit == 1 { "" } else { "s" };
        format!("{limit} {what}{s} per minute")
    };
    let message = match refusal.kind {
        Kind::Requests => {
            let limit = per_minute(standing.requests.map_or(0, |f| f.limit), "request");
            format!("rate limit reached for {whose}: {limit}; try again in {wait}")
        }
        Kind::Tokens => {
            let limit = per_minute(standing.tokens.map_or(0, |f| f.limit), "token");
            format!(
                "rate limit reached for {whose}: {limit}, and this request reserves {} (its input, estimated, and its max_tokens); try again in {wait}",
                refusal.estimate
            )
        }
    };
    let err = GatewayError::new(ErrorKind::RateLimited, message)
        .with_code("rate_limit_exceeded")
        // At least a second on the wire: `Retry-After: 0` reads as "now".
        .with_retry_after(refusal.retry_after.max(Duration::from_millis(1)));
    with_headers(err, standing)
}

/// `err` with the headers of `standing`.
pub(super) fn with_headers(err: GatewayError, standing: &Standing) -> GatewayError {
    let mut pairs = Vec::with_capacity(6);
    headers::each(standing, |k, v| pairs.push((k, v)));
    pairs.into_iter().fold(err, |e, (k, v)| e.with_header(k, v))
}

/// What a request reserves: its input and the output it asks for at
/// most ([`Estimate`](crate::usage::Estimate): the largest maximum it
/// names, since each format's decoder prefers a different field), else
/// `default_output`.
pub(crate) fn estimate_tokens(req: &GatewayRequest, default_output: u64) -> u64 {
    let e = req.body.estimate();
    e.input_tokens
        .saturating_add(e.max_output_tokens.unwrap_or(default_output))
}
