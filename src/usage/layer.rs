//! The usage layer: every answer priced, metered and written to the
//! ledger.
//!
//! ```
//! use std::sync::Arc;
//! use tollgate::usage::{PriceTable, UsageLayer};
//! use tower::ServiceBuilder;
//!
//! # fn wrap<S>(providers: S) -> tollgate::usage::UsageService<S> {
//! let prices = Arc::new(PriceTable::default());
//! ServiceBuilder::new()
//!     .layer(UsageLayer::new(prices, None))
//!     .service(providers)
//! # }
//! ```
//!
//! On each answer the layer looks up the serving model's price, attaches
//! the meter ([`attach`]) and registers the hook
//! that hands the ledger its row. A complete answer is settled before it
//! is returned, and returned only once its row is durable; a stream
//! settles at its end (see [`Settlement`]). Layers that settle too (the
//! budget, rate limits) sit outside this one and register their hooks on
//! the [`Settlement`] in the response they get back. A failed request that
//! reached a provider is written as a failed row; one that never left the
//! gateway is not.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::{join_all, JoinAll};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::ledger::{Ledger, LedgerRow};
use super::meter::{attach, complete_summary, error_type};
use super::price::PriceTable;
use super::sent::Sent;
use super::summary::{costs, Durable, MeterContext, Outcome, Settlement, Summary};
use crate::auth::Principal;
use crate::canonical::{FinishReason, Usage};
use crate::edge::RequestId;
use crate::error::GatewayError;
use crate::format::WireFormat;
use crate::request::{GatewayRequest, Operation, RequestBody};
use crate::response::{GatewayResponse, ResponseBody};
use crate::routing::AttemptLog;

/// Builds [`UsageService`]s; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct UsageLayer {
    prices: Arc<PriceTable>,
    ledger: Option<Ledger>,
}

impl UsageLayer {
    /// Prices answers with `prices` and writes them to `ledger` (`None`:
    /// metered and priced for the layers outside, recorded nowhere).
    pub fn new(prices: Arc<PriceTable>, ledger: Option<Ledger>) -> Self {
        UsageLayer { prices, ledger }
    }
}

impl<S> Layer<S> for UsageLayer {
    type Service = UsageService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UsageService {
            inner,
            prices: self.prices.clone(),
            ledger: self.ledger.clone(),
        }
    }
}

/// Meters, prices and records every answer of the inner service; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct UsageService<S> {
    inner: S,
    prices: Arc<PriceTable>,
    ledger: Option<Ledger>,
}

/// Who sent a request, as the ledger keeps it.
#[derive(Debug, Clone, Default)]
struct Who {
    key_id: Option<Arc<str>>,
    key_method: Option<&'static str>,
    key_name: Option<Arc<str>>,
    user: Option<Arc<str>>,
    team: Option<Arc<str>>,
    tags: Option<Arc<[Arc<str>]>>,
}

/// What the layer knows of a request before it is sent.
struct Facts {
    id: Arc<str>,
    created_at_ms: i64,
    started: Instant,
    /// The principal's key id, key name, user, team and tags.
    who: Who,
    format: WireFormat,
    /// A token count costs nothing, whatever its answer looks like.
    operation: Operation,
    requested_model: String,
    stream: bool,
    input_estimate: u64,
    attempts: Option<AttemptLog>,
    /// Where the request was sent, for a row when it is dropped unanswered.
    sent: Sent,
    /// For the fallback input estimate.
    body: Arc<RequestBody>,
}

impl Facts {
    fn of(req: &mut GatewayRequest) -> Self {
        let sent = Sent::default();
        req.extensions.insert(sent.clone());
        let created_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Facts {
            id: req
                .extensions
                .get::<RequestId>()
                .map_or_else(|| Arc::from(""), |r| r.0.clone()),
            created_at_ms,
            started: super::summary::now(),
            who: req
                .extensions
                .get::<Principal>()
                .map(|p| Who {
                    key_id: Some(p.id.clone()),
                    key_method: Some(p.method.as_str()),
                    key_name: p.name.clone(),
                    user: p.user.clone(),
                    team: p.team.clone(),
                    tags: Some(p.tags.clone()),
                })
                .unwrap_or_default(),
            format: req.format,
            operation: req.operation,
            requested_model: req.model.clone(),
            stream: req.stream,
            input_estimate: req.body.estimate().input_tokens,
            attempts: req.extensions.get::<AttemptLog>().cloned(),
            sent,
            body: req.body.clone(),
        }
    }

    /// The ledger's row for a request that settled with `s`.
    fn row(&self, s: &Summary) -> LedgerRow {
        let (status, error, disconnected) = match &s.outcome {
            Outcome::Complete => (200, None, false),
            Outcome::Failed { status, error } => (*status, Some(error.clone()), false),
            Outcome::Disconnected => (200, None, true),
        };
        let mut row = self.base_row();
        row.provider = s.provider.clone();
        row.model = s.model.clone();
        row.credential = s.credential.map(|c| c.as_str());
        row.usage = s.usage;
        row.cost = s.cost;
        row.list_cost = s.list_cost;
        row.ttft_ms = s
            .ttft
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        row.duration_ms = u64::try_from(s.duration.as_millis()).unwrap_or(u64::MAX);
        row.status = status;
        row.error = error;
        row.finish_reason = s.finish.as_ref().map(|f| finish_name(f).to_owned());
        row.disconnected = disconnected;
        row.estimated = s.estimated;
        row.attempts = s.attempts.iter().map(ToString::to_string).collect();
        row
    }

    /// The row of a request that failed after reaching a provider.
    fn failed_row(&self, err: &GatewayError) -> Option<LedgerRow> {
        let attempts = self.attempts.as_ref()?.snapshot();
        let last = attempts.last()?;
        let mut row = self.base_row();
        row.provider = Some(last.target.provider.clone());
        row.model = Some(last.target.model.clone());
        row.credential = Some(last.credential.as_str());
        row.duration_ms =
            u64::try_from(super::summary::since(self.started).as_millis()).unwrap_or(u64::MAX);
        row.status = err.status().as_u16();
        row.error = Some(error_type(self.format, err).into());
        // Providers bill no failed request: a known zero, where `None`
        // would say the price is unknown.
        row.cost = Some(super::Nanos::ZERO);
        row.list_cost = Some(super::Nanos::ZERO);
        row.attempts = attempts.iter().map(ToString::to_string).collect();
        Some(row)
    }

    /// The row of a request dropped before its answer came (the client
    /// left, the shutdown's grace ended), once it was sent to a provider:
    /// the provider counts the input it was sent, so that is estimated;
    /// the output is unknown, so zero. The status is 499, nginx's "client
    /// closed request", as the client got no status at all.
    fn dropped_row(&self, prices: &PriceTable) -> Option<LedgerRow> {
        let mut attempts: Vec<String> = self
            .attempts
            .as_ref()
            .map(AttemptLog::snapshot)
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        let (target, credential) = match self.sent.get() {
            Some((target, credential)) => {
                attempts.push(format!("{}/{}=cancelled", target.provider, target.model));
                (target, credential)
            }
            None => {
                let log = self.attempts.as_ref()?.snapshot();
                let last = log.last()?;
                (last.target.clone(), last.credential)
            }
        };
        let usage = Usage {
            input_tokens: super::fallback::input_tokens(self.input_estimate, Some(&self.body)),
            ..Usage::default()
        };
        let price = prices.lookup(&target.provider, &target.model);
        let (cost, list_cost) = costs(price.as_deref(), Some(credential), &usage);
        let mut row = self.base_row();
        row.provider = Some(target.provider);
        row.model = Some(target.model);
        row.credential = Some(credential.as_str());
        row.usage = usage;
        row.cost = cost;
        row.list_cost = list_cost;
        row.duration_ms =
            u64::try_from(super::summary::since(self.started).as_millis()).unwrap_or(u64::MAX);
        row.status = 499;
        row.disconnected = true;
        row.estimated = true;
        row.attempts = attempts;
        Some(row)
    }

    fn base_row(&self) -> LedgerRow {
        let who = self.who.clone();
        LedgerRow {
            id: self.id.clone(),
            created_at_ms: self.created_at_ms,
            key_id: who.key_id,
            key_method: who.key_method,
            key_name: who.key_name,
            user: who.user,
            team: who.team,
            tags: who.tags.map(|t| t.to_vec()).unwrap_or_default(),
            format: self.format.as_str(),
            requested_model: self.requested_model.clone(),
            streamed: self.stream,
            ..LedgerRow::default()
        }
    }
}

/// A finish reason as the ledger names it (OpenAI's words).
fn finish_name(f: &FinishReason) -> &str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::StopSequence(_) => "stop_sequence",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::PauseTurn => "pause_turn",
        FinishReason::Other(s) => s,
    }
}

impl<S> Service<GatewayRequest> for UsageService<S>
where
    S: Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError>,
{
    type Response = GatewayResponse;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: GatewayRequest) -> Self::Future {
        let facts = Facts::of(&mut req);
        ResponseFuture {
            state: State::Calling {
                fut: self.inner.call(req),
            },
            facts: Some(facts),
            prices: self.prices.clone(),
            ledger: self.ledger.clone(),
        }
    }
}

type Wait = JoinAll<Pin<Box<dyn Future<Output = ()> + Send>>>;

pin_project! {
    /// The [`UsageService`]'s future: the inner call, then, for a complete
    /// answer or a failure, the wait for its row to be durable. Dropped
    /// before the inner call answered, it records the request if it was
    /// sent to a provider (see [`Sent`]).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        facts: Option<Facts>,
        prices: Arc<PriceTable>,
        ledger: Option<Ledger>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // `facts` is taken when the inner call answers: still here,
            // the request was abandoned on its way.
            if let (Some(facts), Some(ledger)) = (this.facts.take(), this.ledger.as_ref()) {
                if let Some(row) = facts.dropped_row(this.prices) {
                    // Nobody is left to wait for it.
                    drop(ledger.record(row));
                }
            }
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] fut: F },
        Waiting {
            wait: Wait,
            result: Option<Result<GatewayResponse, GatewayError>>,
        },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<GatewayResponse, GatewayError>>,
{
    type Output = Result<GatewayResponse, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx));
                    let Some(facts) = this.facts.take() else {
                        return Poll::Ready(result);
                    };
                    let (result, durables) =
                        settle(facts, this.prices, this.ledger.as_ref(), result);
                    if durables.is_empty() {
                        return Poll::Ready(result);
                    }
                    this.state.set(State::Waiting {
                        wait: join_all(durables.into_iter().map(|d| d.0)),
                        result: Some(result),
                    });
                }
                StateProj::Waiting { wait, result } => {
                    ready!(Pin::new(wait).poll(cx));
                    let result = result.take().ok_or_else(|| {
                        GatewayError::internal("usage future polled after completion")
                    });
                    return Poll::Ready(result.and_then(|r| r));
                }
            }
        }
    }
}

/// Meters and prices `result`, registers the ledger's hook, and settles
/// a complete answer; returns what to wait for before handing it on.
fn settle(
    facts: Facts,
    prices: &PriceTable,
    ledger: Option<&Ledger>,
    result: Result<GatewayResponse, GatewayError>,
) -> (Result<GatewayResponse, GatewayError>, Vec<Durable>) {
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            let durable = ledger.and_then(|l| facts.failed_row(&err).map(|row| l.record(row)));
            return (Err(err), durable.into_iter().collect());
        }
    };
    if resp.extensions.get::<Settlement>().is_some() {
        // Metered further in: recorded there.
        return (Ok(resp), Vec::new());
    }
    let price = match (&resp.meta.provider, &resp.meta.model) {
        (Some(p), Some(m)) => prices.lookup(p, m),
        _ => None,
    };
    if price.is_none() {
        tracing::debug!(
            provider = resp.meta.provider.as_deref().unwrap_or(""),
            model = resp.meta.model.as_deref().unwrap_or(""),
            "no price for the serving model: its cost is unknown"
        );
    }
    let ctx = MeterContext {
        format: facts.format,
        started: facts.started,
        streamed: facts.stream,
        price,
        input_estimate: facts.input_estimate,
        body: Some(facts.body.clone()),
    };
    let settlement = attach(&mut resp, ctx.clone());
    let operation = facts.operation;
    if let Some(ledger) = ledger.cloned() {
        settlement.on_settle(move |s| Some(ledger.record(facts.row(s))));
    }
    if matches!(resp.body, ResponseBody::Stream(_)) {
        return (Ok(resp), Vec::new());
    }
    let summary = match operation {
        Operation::CountTokens => Summary::counted(&resp.meta, &ctx),
        Operation::Generate => complete_summary(&resp, &ctx),
    };
    let durables = settlement.settle(summary);
    (Ok(resp), durables)
}
