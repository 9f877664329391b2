//! The response summary: what every layer that settles (budget, ledger,
//! telemetry, cache) needs to know about a response, produced once.
//!
//! [`attach`](crate::usage::attach) puts a [`Settlement`] in a response's extensions and, for a
//! stream, wraps the body in a meter that reads usage, finish reason and
//! the time to first chunk as chunks go by. The settlement completes when
//! the stream ends or is dropped (the client went away), and at once for a
//! complete answer or an error. Layers register what to do then with
//! [`Settlement::on_settle`]; a hook may return a [`Durable`] that the last
//! chunk waits for (the ledger's commit), so that a client never sees the
//! end of an answer whose spend is not recorded.
//!
//! For a complete answer, the caller registers its hooks, then settles
//! with [`Summary::complete`] and awaits what [`Settlement::settle`]
//! returns before handing the answer on; the
//! [`UsageLayer`](super::UsageLayer) does exactly that.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::canonical::{FinishReason, Usage};
use crate::format::WireFormat;
use crate::request::RequestBody;
use crate::response::ResponseMeta;
use crate::routing::{Attempt, CredentialKind};

use super::money::Nanos;
use super::price::Price;

/// How a response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The answer was complete (a JSON answer, or a stream to its last event).
    Complete,
    /// The request failed, before or after its first byte: the status the
    /// client got (or, after the first byte, the one its in-band error
    /// carries) and the error's type.
    Failed {
        /// The HTTP status of the error.
        status: u16,
        /// The error's kind, as the client's format names it.
        error: Arc<str>,
    },
    /// The client went away before the stream ended.
    Disconnected,
}

/// What is known about a response once it has settled.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Token counts (from the provider's own counts; see [`Summary::estimated`]).
    pub usage: Usage,
    /// Why generation stopped, when the answer said.
    pub finish: Option<FinishReason>,
    /// From the request's start to the first chunk of the answer (streams),
    /// or to the complete answer.
    pub ttft: Option<Duration>,
    /// From the request's start to the settlement.
    pub duration: Duration,
    /// The provider that served (its configured name).
    pub provider: Option<Arc<str>>,
    /// The model that served, as the provider knows it.
    pub model: Option<Arc<str>>,
    /// Which kind of credential served.
    pub credential: Option<CredentialKind>,
    /// Every attempt, the serving one last.
    pub attempts: Vec<Attempt>,
    /// Whether the answer was streamed.
    pub streamed: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether some token counts are estimates (the client went away
    /// before the provider's counts arrived).
    pub estimated: bool,
    /// What the request costs the gateway: the list cost, or zero when a
    /// client's own credential (BYOK, a subscription) served. `None` when
    /// the model's price is unknown.
    pub cost: Option<Nanos>,
    /// What the tokens cost at the model's list price, whoever paid.
    /// `None` when the price is unknown.
    pub list_cost: Option<Nanos>,
}

/// The most tokens of one kind a summary records for a request: a
/// thousand times the largest context window. More is not a count but an
/// upstream's bug or a lie, and sums of such values would overflow the
/// store's integers (and with them `/v1/report` and the budgets' reading
/// of the ledger at startup).
pub const MAX_TOKENS: u64 = 1_000_000_000_000;

/// The most one request is recorded as costing: $10,000, far above any
/// request's real cost, and low enough that the ledger's sums stay exact
/// integers for nearly a million such requests.
pub const MAX_COST: Nanos = Nanos(10_000 * super::money::NANOS_PER_USD);

/// `usage` with each count at most [`MAX_TOKENS`].
pub fn clamp_usage(mut usage: Usage) -> Usage {
    for n in [
        &mut usage.input_tokens,
        &mut usage.output_tokens,
        &mut usage.cache_read_tokens,
        &mut usage.cache_write_tokens,
        &mut usage.reasoning_tokens,
        &mut usage.cache_write_1h_tokens,
    ] {
        *n = (*n).min(MAX_TOKENS);
    }
    usage
}

/// The time, as the usage layer and the meter read it: tokio's clock, so
/// that a test with a paused clock controls every duration they measure
/// (outside such a test it is [`Instant::now`]).
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The time since `started`, by [`now`]'s clock.
pub fn since(started: Instant) -> Duration {
    now().saturating_duration_since(started)
}

/// A future a settle hook hands back: the last chunk of a stream (or a
/// complete answer) waits for it, so that what it records is durable
/// before the client sees the end.
pub struct Durable(pub Pin<Box<dyn Future<Output = ()> + Send>>);

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Durable(..)")
    }
}

/// What to do when a response settles.
pub type SettleHook = Box<dyn FnOnce(&Summary) -> Option<Durable> + Send>;

/// What the meter needs to know about the request.
#[derive(Debug, Clone)]
pub struct MeterContext {
    /// The client's wire format (pass-through chunks are in it).
    pub format: WireFormat,
    /// When the request started, by [`now`]'s clock.
    pub started: Instant,
    /// Whether the client asked for a stream.
    pub streamed: bool,
    /// The serving model's price, when known.
    pub price: Option<Arc<Price>>,
    /// An estimate of the request's input tokens, for a stream the client
    /// left before the provider counted them.
    pub input_estimate: u64,
    /// The request's body, read only when the estimate stands in for the
    /// provider's count, to discount the media inline in it (see
    /// [`MeterContext::fallback_input_tokens`]).
    pub body: Option<Arc<RequestBody>>,
}

impl MeterContext {
    /// The input tokens recorded when the provider's count never came:
    /// `input_estimate`, with each image or document inline as base64 in
    /// `body` counted as about 1,600 tokens instead of a quarter of its
    /// bytes, and at most 2 million (no model reads more).
    pub fn fallback_input_tokens(&self) -> u64 {
        super::fallback::input_tokens(self.input_estimate, self.body.as_deref())
    }
}

/// A response's settlement, shared by the meter and the layers through
/// the response's extensions.
#[derive(Clone)]
pub struct Settlement(Arc<Shared>);

impl std::fmt::Debug for Settlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settlement").finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    /// The cost of the usage seen so far, plus one (0: none yet, or the
    /// price is unknown): written by the meter when usage goes by, read
    /// by the edge for `usage.cost`, without the lock.
    cost_so_far: AtomicU64,
    /// How many times `cost_so_far` was written: the edge looks for a
    /// usage object to add the cost to only in a chunk that follows a
    /// write, the chunk that brought the usage on.
    cost_writes: AtomicU64,
}

struct State {
    hooks: Vec<SettleHook>,
    summary: Option<Arc<Summary>>,
}

impl Settlement {
    /// A settlement not yet settled.
    pub fn new() -> Self {
        Settlement(Arc::new(Shared {
            state: Mutex::new(State {
                hooks: Vec::new(),
                summary: None,
            }),
            cost_so_far: AtomicU64::new(0),
            cost_writes: AtomicU64::new(0),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `hook` when the response settles, or now if it has. A
    /// [`Durable`] returned after settlement is not waited for (what it
    /// records is still recorded; nothing waits to show it).
    pub fn on_settle(&self, hook: impl FnOnce(&Summary) -> Option<Durable> + Send + 'static) {
        let mut state = self.lock();
        match state.summary.clone() {
            Some(summary) => {
                drop(state);
                drop(hook(&summary));
            }
            None => state.hooks.push(Box::new(hook)),
        }
    }

    /// The summary, once settled.
    pub fn summary(&self) -> Option<Arc<Summary>> {
        self.lock().summary.clone()
    }

    /// Settles with `summary`: runs every hook, once, and returns what
    /// they asked to wait for. A second call does nothing. Counts past
    /// [`MAX_TOKENS`] and costs past [`MAX_COST`] are cut to them.
    pub fn settle(&self, mut summary: Summary) -> Vec<Durable> {
        summary.usage = clamp_usage(summary.usage);
        summary.cost = summary.cost.map(|c| c.min(MAX_COST));
        summary.list_cost = summary.list_cost.map(|c| c.min(MAX_COST));
        if let Some(cost) = summary.cost {
            self.set_cost_so_far(cost);
        }
        let summary = Arc::new(summary);
        let hooks = {
            let mut state = self.lock();
            if state.summary.is_some() {
                return Vec::new();
            }
            state.summary = Some(summary.clone());
            std::mem::take(&mut state.hooks)
        };
        hooks.into_iter().filter_map(|h| h(&summary)).collect()
    }

    /// What the usage seen so far costs the gateway (see
    /// [`Summary::cost`]): what an OpenAI client's `usage.cost` says in
    /// the chunk that carries the usage. `None` until usage is seen, or
    /// when the price is unknown.
    pub fn cost_so_far(&self) -> Option<Nanos> {
        match self.0.cost_so_far.load(Ordering::Acquire) {
            0 => None,
            n => Some(Nanos(n - 1)),
        }
    }

    /// Records the cost of the usage seen so far.
    pub(crate) fn set_cost_so_far(&self, cost: Nanos) {
        let n = cost.min(MAX_COST).0 + 1;
        self.0.cost_so_far.store(n, Ordering::Release);
        self.0.cost_writes.fetch_add(1, Ordering::Release);
    }

    /// [`Settlement::cost_so_far`] if it was written since the last call
    /// with the same `seen` (which keeps count of the writes), for a
    /// stream: the chunk that brought usage on follows a write; those
    /// after it need no look.
    pub(crate) fn new_cost(&self, seen: &mut u64) -> Option<Nanos> {
        let writes = self.0.cost_writes.load(Ordering::Acquire);
        if writes == *seen {
            return None;
        }
        *seen = writes;
        self.cost_so_far()
    }
}

impl Default for Settlement {
    fn default() -> Self {
        Self::new()
    }
}

/// `(cost, list cost)` of `usage` at `price` for an answer served with
/// `credential`: a client's own credential costs the gateway nothing.
pub fn costs(
    price: Option<&Price>,
    credential: Option<CredentialKind>,
    usage: &Usage,
) -> (Option<Nanos>, Option<Nanos>) {
    let Some(price) = price else {
        return (None, None);
    };
    let list = price.cost(usage);
    let cost = match credential.unwrap_or_default() {
        CredentialKind::Gateway => list,
        CredentialKind::Byok | CredentialKind::Subscription => Nanos::ZERO,
    };
    (Some(cost), Some(list))
}

impl Summary {
    /// The summary of a response that ended `outcome` with `usage` and
    /// `finish`, served as `meta` says, priced with `ctx.price`.
    pub fn new(
        meta: &ResponseMeta,
        ctx: &MeterContext,
        usage: Usage,
        finish: Option<FinishReason>,
        outcome: Outcome,
    ) -> Self {
        let (cost, list_cost) = costs(ctx.price.as_deref(), meta.credential, &usage);
        Summary {
            usage,
            finish,
            ttft: None,
            duration: since(ctx.started),
            provider: meta.provider.clone(),
            model: meta.model.clone(),
            credential: meta.credential,
            attempts: meta.attempts.clone(),
            streamed: ctx.streamed,
            outcome,
            estimated: false,
            cost,
            list_cost,
        }
    }

    /// The summary of a complete answer (not a stream): its usage from
    /// `meta.usage` (the [fallback](MeterContext::fallback_input_tokens)
    /// input and `estimated` when the
    /// provider gave none), its finish from `meta.finish` or `finish`,
    /// and the time to it as the time to first token.
    pub fn complete(meta: &ResponseMeta, ctx: &MeterContext, finish: Option<FinishReason>) -> Self {
        let (usage, estimated) = match meta.usage {
            Some(u) => (u, false),
            None => (
                Usage {
                    input_tokens: ctx.fallback_input_tokens(),
                    ..Usage::default()
                },
                true,
            ),
        };
        let finish = meta.finish.clone().or(finish);
        let mut s = Summary::new(meta, ctx, usage, finish, Outcome::Complete);
        s.ttft = Some(s.duration);
        s.estimated = estimated;
        s
    }

    /// The summary of a token count (Anthropic's `count_tokens`): the
    /// provider generates nothing and bills nothing for it, so it has no
    /// tokens and costs zero, whatever the answer's body and whether the
    /// model's price is known.
    pub fn counted(meta: &ResponseMeta, ctx: &MeterContext) -> Self {
        let mut s = Summary::new(meta, ctx, Usage::default(), None, Outcome::Complete);
        s.ttft = Some(s.duration);
        s.cost = Some(Nanos::ZERO);
        s.list_cost = Some(Nanos::ZERO);
        s
    }
}

#[cfg(test)]
impl Summary {
    /// A stream that ended complete with `usage`, costing `cost` (its
    /// list cost too), nothing else known: what the tests of the layers
    /// that settle (budgets, rate limits) settle with.
    pub(crate) fn settled(usage: Usage, cost: Option<Nanos>) -> Self {
        Summary {
            usage,
            finish: None,
            ttft: None,
            duration: Duration::ZERO,
            provider: None,
            model: None,
            credential: None,
            attempts: Vec::new(),
            streamed: true,
            outcome: Outcome::Complete,
            estimated: false,
            cost,
            list_cost: cost,
        }
    }
}
