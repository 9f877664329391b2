//! Provider order: the candidates for one model, tried in turn.
//!
//! [`ProviderOrder`] finds the targets that serve the requested model
//! ([`Routes`]), ranks them by cost or time to first token when the
//! request or the model's config asks ([`ProviderSort`]), applies the
//! client's `only` / `ignore` / `order` (the providers `order` names go
//! first, the others keep the ranking), expands
//! each provider into its deployments (weighted choice, or least latency),
//! and tries them in turn: a failure that the [`Failover`] rules accept
//! moves to the next. The next is chosen when it is needed, from the
//! cooldown state of that moment: the first untried candidate that is not
//! cooling down ([`Cooldowns`]), or, when every one left is, the one free
//! soonest. So a request does not fail while a candidate it has not tried
//! might serve it. Each attempt is recorded in the request's
//! [`AttemptLog`], and the served response carries them all in its
//! metadata.
//!
//! A provider may be tried with several credentials: the keys the request
//! brought (BYOK), the client's own credential (pass-through), then the
//! provider's configured deployments; see [`credential`](super::credential)
//! for the order and the rules. Each attempt's [`Credential`] goes in its
//! request extensions, beside its [`Target`] and [`Deployment`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate::config::Config;
//! use tollgate::provider::Providers;
//! use tollgate::routing::{Cooldowns, ProviderOrderLayer, Routes};
//! use tower::ServiceBuilder;
//!
//! let config = Config::from_env(&|k| std::env::var(k).ok());
//! let routes = Arc::new(Routes::from_config(&config));
//! let svc = ServiceBuilder::new()
//!     .layer(ProviderOrderLayer::new(routes, Cooldowns::default()))
//!     .service(Providers::from_config(&config).unwrap());
//! # let _ = svc;
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::util::rng::{HasherRng, Rng};
use tower::{Layer, Service, ServiceExt};

use super::attempts::{Attempt, AttemptLog, Outcome};
use super::balance::{weighted_order, Ewma, TtftEstimate};
use super::cooldown::{Cooldowns, TargetKey};
use super::credential::{
    byok_field, byok_headers, client_credential, too_many_keys, Credential, CredentialKind, SendAs,
    BYOK_HEADER_PREFIX, MAX_BYOK_KEYS,
};
use super::options::ProviderSort;
use super::routes::{CredentialPolicy, Routes};
use crate::config::Balance;
use crate::error::{Cause, ErrorKind, GatewayError, LimitScope};
use crate::format::WireFormat;
use crate::request::{GatewayRequest, Target};
use crate::response::GatewayResponse;
use crate::usage::PriceTable;

/// Which deployment of a provider serves an attempt (its index in the
/// provider's `deployments`); the provider service reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment(pub usize);

/// Decides whether a failed attempt moves on to the next candidate.
///
/// Implemented for closures `Fn(&GatewayError) -> bool` and by
/// [`DefaultFailover`].
pub trait Failover: Send + Sync + 'static {
    /// Whether another candidate may succeed where this one failed.
    fn next_candidate(&self, err: &GatewayError) -> bool;
}

impl<F: Fn(&GatewayError) -> bool + Send + Sync + 'static> Failover for F {
    fn next_candidate(&self, err: &GatewayError) -> bool {
        self(err)
    }
}

/// The default rules: move on after connect errors, timeouts, 429, 5xx,
/// Anthropic's 529 and context-length errors, and after a 401 or 403 of a
/// credential the client brought ([`Cause::CredentialRejected`]: the next
/// candidate sends another); not after 400, 401, 403 (of the gateway's
/// own key), 404 or other client errors, and not once the request's total
/// deadline has passed ([`Cause::DeadlinePassed`]).
///
/// A provider's 404 (whatever its `code`, `model_not_found` included)
/// goes back to the client like a 400: it says the request, or the
/// target's configured model name, is wrong, which the client or the
/// operator has to see rather than have it hidden by another target.
/// Only the gateway's own "no such model" moves on, to the next model
/// ([`ModelChain`](super::ModelChain)).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultFailover;

impl Failover for DefaultFailover {
    fn next_candidate(&self, err: &GatewayError) -> bool {
        err.cause() != Some(Cause::DeadlinePassed)
            && (err.kind().is_retryable()
                || err.kind() == ErrorKind::ContextLengthExceeded
                || err.cause() == Some(Cause::CredentialRejected))
    }
}

/// Builds [`ProviderOrder`] services; see the [module docs](self).
#[derive(Clone)]
pub struct ProviderOrderLayer<F = DefaultFailover> {
    shared: Arc<Shared<F>>,
    prices: PriceTable,
}

struct Shared<F> {
    routes: Arc<Routes>,
    cooldowns: Cooldowns,
    failover: F,
    latency: Mutex<HashMap<TargetKey, Ewma>>,
    /// Each configured deployment's time to first token, by provider
    /// then deployment: made once from the routes, updated with atomics.
    ttft: HashMap<Arc<str>, Box<[TtftEstimate]>>,
}

impl ProviderOrderLayer<DefaultFailover> {
    /// Candidates from `routes`, cooldown state in `cooldowns`, the
    /// default failover rules.
    pub fn new(routes: Arc<Routes>, cooldowns: Cooldowns) -> Self {
        Self::with_failover(routes, cooldowns, DefaultFailover)
    }
}

impl<F: Failover> ProviderOrderLayer<F> {
    /// With other failover rules.
    pub fn with_failover(routes: Arc<Routes>, cooldowns: Cooldowns, failover: F) -> Self {
        let ttft = routes
            .providers()
            .map(|(name, r)| {
                let n = r.weights.len().max(1);
                (
                    Arc::from(name),
                    (0..n).map(|_| TtftEstimate::default()).collect(),
                )
            })
            .collect();
        ProviderOrderLayer {
            shared: Arc::new(Shared {
                routes,
                cooldowns,
                failover,
                latency: Mutex::new(HashMap::new()),
                ttft,
            }),
            prices: PriceTable::default(),
        }
    }

    /// The prices that [`ProviderSort::Cost`] ranks providers by. Default:
    /// none, so a cost sort keeps the configured order.
    pub fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }
}

impl<S, F> Layer<S> for ProviderOrderLayer<F> {
    type Service = ProviderOrder<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        ProviderOrder {
            inner,
            shared: self.shared.clone(),
            prices: self.prices.clone(),
        }
    }
}

/// Tries the candidates of a model in turn; see the [module docs](self).
pub struct ProviderOrder<S, F = DefaultFailover> {
    inner: S,
    shared: Arc<Shared<F>>,
    prices: PriceTable,
}

impl<S: Clone, F> Clone for ProviderOrder<S, F> {
    fn clone(&self) -> Self {
        ProviderOrder {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            prices: self.prices.clone(),
        }
    }
}

/// The future of [`ProviderOrder`].
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<GatewayResponse, GatewayError>> + Send>>;

/// One planned attempt.
struct Planned {
    target: Target,
    /// `Some` when the provider has several deployments.
    deployment: Option<usize>,
    key: TargetKey,
    /// What a 429 of this provider covers when it does not say.
    scope: LimitScope,
    /// The client's credential it sends; `None`: the configured key.
    credential: Option<Credential>,
}

impl<F: Failover> Shared<F> {
    /// The candidates for `req`, in the order of preference (cooldowns
    /// aside: [`Shared::pick`] looks at them at each attempt).
    fn plan(
        &self,
        req: &GatewayRequest,
        prices: &PriceTable,
    ) -> Result<Vec<Planned>, GatewayError> {
        let opts = &req.routing;
        let mut targets = match req.extensions.get::<Target>() {
            Some(t) => vec![t.clone()],
            None => {
                let all = self.routes.candidates(&req.model)?;
                let allowed: Vec<Target> = all
                    .iter()
                    .filter(|t| opts.allows(&t.provider))
                    .cloned()
                    .collect();
                if allowed.is_empty() {
                    let providers: Vec<&str> = all.iter().map(|t| &*t.provider).collect();
                    let field = opts.exclusion_field();
                    return Err(GatewayError::invalid_param(
                        field,
                        format!(
                            "no provider of model `{}` is allowed by `{field}`: it is served by {}",
                            req.model,
                            providers.join(", ")
                        ),
                    )
                    .with_code("no_allowed_provider")
                    .with_cause(Cause::NoAllowedProvider));
                }
                allowed
            }
        };
        if targets.len() > 1 {
            if let Some(by) = opts.sort.or_else(|| self.routes.default_sort(&req.model)) {
                self.sort(&mut targets, by, req, prices);
            }
        }
        if !opts.order.is_empty() {
            // Stable: the named providers first, in the client's order.
            targets.sort_by_key(|t| {
                opts.order
                    .iter()
                    .position(|p| **p == *t.provider)
                    .unwrap_or(usize::MAX)
            });
        }
        if !opts.allow_fallbacks {
            targets.truncate(1);
        }
        let byok_headers = byok_headers(&req.headers)?;
        self.check_byok(req, &byok_headers)?;
        // The client's own credential is meant for Anthropic only when it
        // speaks Anthropic's format; read once, for every provider.
        let pass_through = |t: &Target| {
            self.routes
                .provider(&t.provider)
                .is_some_and(|r| r.credentials.pass_through)
        };
        let client = (req.format == WireFormat::Anthropic && targets.iter().any(pass_through))
            .then(|| client_credential(&req.headers))
            .flatten();
        let mut rng = HasherRng::default();
        let mut planned = Vec::with_capacity(targets.len());
        let mut keyless = None;
        for target in targets {
            let route = self.routes.provider(&target.provider);
            let n = route.map_or(1, |r| r.weights.len());
            let scope = route.map_or(LimitScope::Key, |r| r.rate_limits);
            let policy = route.map_or(CredentialPolicy::default(), |r| r.credentials);
            let key = |i| TargetKey::new(target.provider.clone(), i, target.model.clone());
            let deployment = |i| (n > 1).then_some(i);
            // The client's credentials first, on the first deployment.
            let brought: Vec<_> = req
                .routing
                .byok(&target.provider)
                .iter()
                .chain(
                    byok_headers
                        .iter()
                        .filter(|(p, _)| p.eq_ignore_ascii_case(&target.provider))
                        .map(|(_, k)| k),
                )
                .map(|k| (k.clone(), SendAs::ApiKey, CredentialKind::Byok))
                .collect();
            let byok = !brought.is_empty();
            let passed = client.iter().filter(|_| policy.pass_through).cloned();
            for (secret, send_as, kind) in brought.into_iter().chain(passed) {
                let c = Credential::new(kind, secret, send_as, target.provider.clone());
                planned.push(Planned {
                    key: key(0).with_credential(c.id()),
                    scope,
                    target: target.clone(),
                    deployment: deployment(0),
                    credential: Some(c),
                });
            }
            if byok && !policy.byok_fallback {
                continue;
            }
            let several = match route {
                Some(r) if n > 1 => Some(match r.balance {
                    Balance::Weighted => weighted_order(&r.weights, &mut rng),
                    Balance::LeastLatency => {
                        self.latency_order(&|i| key(i).deployment_key(), n, &mut rng)
                    }
                }),
                _ => None,
            };
            // One deployment, the common case: no list to allocate.
            let one = several.is_none().then_some(0);
            for i in several.into_iter().flatten().chain(one) {
                // A pass-through provider's deployment without a key of
                // its own serves only with its clients' credentials.
                let keyed = route.is_none_or(|r| r.keyed.get(i).copied().unwrap_or(true));
                if policy.pass_through && !keyed {
                    keyless.get_or_insert_with(|| target.provider.clone());
                    continue;
                }
                planned.push(Planned {
                    key: key(i),
                    scope,
                    target: target.clone(),
                    deployment: deployment(i),
                    credential: None,
                });
            }
        }
        match keyless {
            // Nothing planned can only mean that every deployment left was
            // a pass-through one without a key, and no client credential.
            Some(provider) if planned.is_empty() => Err(GatewayError::new(
                ErrorKind::Authentication,
                format!(
                    "no provider of model `{}` can serve this request: `{provider}` serves only with the client's own Anthropic credential (`pass_through` without an `api_key`), and the request brought none",
                    req.model
                ),
            )
            .with_cause(Cause::NoAllowedProvider)),
            _ => Ok(planned),
        }
    }

    /// Ranks `targets` by `by`, stably: equal ones (and unknown ones among
    /// themselves) keep their configured order.
    fn sort(
        &self,
        targets: &mut [Target],
        by: ProviderSort,
        req: &GatewayRequest,
        prices: &PriceTable,
    ) {
        match by {
            ProviderSort::Cost => {
                let estimate = req.body.estimate();
                let input = estimate.input_tokens;
                let output = estimate.max_output_tokens.unwrap_or(0);
                // Unknown prices last.
                targets.sort_by_cached_key(|t| {
                    prices
                        .find(&t.provider, &t.model)
                        .map_or((1, 0), |p| (0, p.estimate(input, output).0))
                });
            }
            ProviderSort::Ttft => {
                // A provider's best deployment; one not yet measured
                // first, so that it gets measured.
                targets.sort_by_cached_key(|t| {
                    self.ttft
                        .get(&t.provider)
                        .and_then(|ds| ds.iter().filter_map(TtftEstimate::get).min())
                        .map_or((0, 0), |nanos| (1, nanos))
                });
            }
        }
    }

    /// Records how long deployment `deployment` of `provider` took to
    /// start answering.
    fn observe_ttft(&self, provider: &str, deployment: usize, took: std::time::Duration) {
        if let Some(e) = self.ttft.get(provider).and_then(|ds| ds.get(deployment)) {
            e.observe(took);
        }
    }

    /// Every key the request brings must be for a configured provider
    /// that takes them (`allow_byok`): the caller meant to pay with their
    /// own account, which is not to be ignored in silence.
    fn check_byok(
        &self,
        req: &GatewayRequest,
        headers: &[(&str, super::credential::Secret)],
    ) -> Result<(), GatewayError> {
        // `true`: from the body. A body names a provider exactly, as
        // `RoutingOptions::byok` looks it up; only a header name, which is
        // lower case, may differ in case. The field is named only for an
        // error: a request that is fine formats nothing.
        let from_body = req.routing.byok.iter().map(|(p, _)| (p.as_str(), true));
        let from_headers = headers.iter().map(|(p, _)| (*p, false));
        for (provider, in_body) in from_body.chain(from_headers) {
            let route = match self.routes.provider(provider) {
                None if !in_body => self.routes.provider_ignore_case(provider),
                r => r,
            };
            let field = || {
                if in_body {
                    byok_field(provider)
                } else {
                    format!("{BYOK_HEADER_PREFIX}{provider}")
                }
            };
            let why = match route {
                None => format!("there is no provider named `{provider}`"),
                Some(r) if !r.credentials.allow_byok => {
                    format!("provider `{provider}` does not take the request's own keys (its config does not set `allow_byok = true`)")
                }
                Some(_) => continue,
            };
            let field = field();
            return Err(
                GatewayError::invalid_param(&field, format!("`{field}`: {why}"))
                    .with_code("byok_not_allowed"),
            );
        }
        // Each source is capped alone where it is read; a provider's keys
        // from both together are capped here, naming the header (the body
        // alone was within the cap).
        for (i, (p, _)) in headers.iter().enumerate() {
            let first = headers[..i].iter().all(|(q, _)| q != p);
            if !first {
                continue;
            }
            let in_body: usize = req
                .routing
                .byok
                .iter()
                .filter(|(b, _)| b.eq_ignore_ascii_case(p))
                .map(|(_, keys)| keys.len())
                .sum();
            let in_headers = headers[i..].iter().filter(|(q, _)| q == p).count();
            if in_body + in_headers > MAX_BYOK_KEYS {
                return Err(too_many_keys(&format!("{BYOK_HEADER_PREFIX}{p}")));
            }
        }
        Ok(())
    }

    /// Which of the untried candidates `left` goes next: the first that is
    /// not cooling down, or, when all are, the one free soonest (the
    /// first of those on a tie). Asked at each attempt, so a cooldown that
    /// began during this request counts.
    fn pick(&self, left: &[Planned]) -> usize {
        let now = Instant::now();
        let mut soonest: Option<(usize, Instant)> = None;
        for (i, p) in left.iter().enumerate() {
            match self.cooldowns.blocked_until(&p.key, now) {
                None => return i,
                Some(until) => {
                    if soonest.is_none_or(|(_, s)| until < s) {
                        soonest = Some((i, until));
                    }
                }
            }
        }
        let (i, _) = soonest.unwrap_or((0, now));
        tracing::debug!(target = %left[i].key, "every candidate left is cooling down: trying the one free soonest");
        i
    }

    /// Power of two choices: of two random deployments, the cheaper
    /// first; then the rest, cheapest first. `key(i)` is the `i`th
    /// deployment's key.
    fn latency_order(
        &self,
        key: &dyn Fn(usize) -> TargetKey,
        n: usize,
        rng: &mut HasherRng,
    ) -> Vec<usize> {
        let map = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let cost = |i: usize| map.get(&key(i)).map_or(0.0, |e| e.cost(now));
        let a = (rng.next_u64() % n as u64) as usize;
        let mut b = (rng.next_u64() % (n as u64 - 1)) as usize;
        if b >= a {
            b += 1;
        }
        let first = if cost(b) < cost(a) { b } else { a };
        let mut rest: Vec<(usize, f64)> = (0..n)
            .filter(|i| *i != first)
            .map(|i| (i, cost(i)))
            .collect();
        rest.sort_by(|x, y| x.1.total_cmp(&y.1));
        std::iter::once(first)
            .chain(rest.into_iter().map(|r| r.0))
            .collect()
    }

    /// Counts a request in flight on `key` until the guard is finished
    /// (its latency observed) or dropped (a request that went away).
    fn in_flight(&self, key: &TargetKey) -> InFlight<'_, F> {
        let mut map = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.clone()).or_insert_with(Ewma::new).pending += 1;
        InFlight {
            shared: self,
            key: key.clone(),
            started: Instant::now(),
        }
    }
}

/// A request in flight on a least-latency deployment.
struct InFlight<'a, F> {
    shared: &'a Shared<F>,
    key: TargetKey,
    started: Instant,
}

impl<F> InFlight<'_, F> {
    fn finish(self) {
        let mut map = self
            .shared
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get_mut(&self.key) {
            e.observe(self.started.elapsed(), Instant::now());
        }
        // Drop takes it out of the in-flight count.
    }
}

impl<F> Drop for InFlight<'_, F> {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get_mut(&self.key) {
            e.pending = e.pending.saturating_sub(1);
        }
    }
}

impl<S, F> Service<GatewayRequest> for ProviderOrder<S, F>
where
    S: Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    F: Failover,
{
    type Response = GatewayResponse;
    type Error = GatewayError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: GatewayRequest) -> ResponseFuture {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let prices = self.prices.clone();
        let log = match req.extensions.get::<AttemptLog>() {
            Some(l) => l.clone(),
            None => {
                let l = AttemptLog::new();
                req.extensions.insert(l.clone());
                l
            }
        };
        Box::pin(async move {
            let mut left = shared.plan(&req, &prices)?;
            let mut req = Some(req);
            let mut first = true;
            let mut last_err = None;
            while !left.is_empty() {
                let p = left.remove(shared.pick(&left));
                // The last attempt takes the request itself; the others a copy.
                let mut r = if left.is_empty() {
                    req.take().expect("taken only by the last attempt")
                } else {
                    req.as_ref().expect("kept until the last attempt").clone()
                };
                r.extensions.insert(p.target.clone());
                if let Some(d) = p.deployment {
                    r.extensions.insert(Deployment(d));
                }
                let credential = CredentialKind::of(p.credential.as_ref());
                if let Some(c) = p.credential.clone() {
                    r.extensions.insert(c);
                }
                let balanced = p.deployment.is_some()
                    && shared
                        .routes
                        .provider(&p.target.provider)
                        .is_some_and(|r| r.balance == Balance::LeastLatency);
                shared.cooldowns.begin(&p.key, Instant::now());
                // Latency is kept per deployment: a key per model name or
                // per client credential would let clients grow the map
                // without bound.
                let in_flight = balanced.then(|| {
                    let mut d = p.key.deployment_key();
                    d.credential = None;
                    shared.in_flight(&d)
                });
                let started = Instant::now();
                let result = if first {
                    first = false;
                    inner.call(r).await
                } else {
                    match inner.ready().await {
                        Ok(svc) => svc.call(r).await,
                        Err(e) => Err(e),
                    }
                };
                if let Some(f) = in_flight {
                    f.finish();
                }
                match result {
                    Ok(mut resp) => {
                        // A stream resolves at its first event, a complete
                        // answer once read: either way, the wait before
                        // the client sees anything.
                        shared.observe_ttft(
                            &p.target.provider,
                            p.deployment.unwrap_or(0),
                            started.elapsed(),
                        );
                        shared.cooldowns.on_success(&p.key);
                        log.push(Attempt {
                            target: p.target,
                            deployment: p.deployment,
                            credential,
                            outcome: Outcome::Status(resp.status.as_u16()),
                        });
                        resp.meta.attempts = log.snapshot();
                        return Ok(resp);
                    }
                    Err(err) => {
                        shared
                            .cooldowns
                            .on_failure(&p.key, &err, p.scope, Instant::now());
                        log.push(Attempt {
                            target: p.target,
                            deployment: p.deployment,
                            credential,
                            outcome: Outcome::of_error(&err),
                        });
                        if !shared.failover.next_candidate(&err) {
                            return Err(err);
                        }
                        if !left.is_empty() {
                            tracing::debug!(error = %err.message(), "next candidate");
                        }
                        last_err = Some(err);
                    }
                }
            }
            Err(last_err.unwrap_or_else(|| GatewayError::internal("no candidate was tried")))
        })
    }
}
