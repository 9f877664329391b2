//! Budgets: caps on what requests may cost, per key, user, team, tag or
//! for the whole gateway, that hold under any concurrency.
//!
//! ```
//! use std::sync::Arc;
//! use tollgate::budget::{BudgetLayer, BudgetSpec, Budgets, Period, Pricing, Scope};
//! use tollgate::usage::{Nanos, Price, PriceTable, NANOS_PER_USD};
//! use tollgate::{GatewayRequest, GatewayResponse, Operation, ResponseBody, WireFormat};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // One cent a day for everyone; a model at $1 / $2 per million tokens.
//! let budgets = Budgets::new(vec![BudgetSpec {
//!     scope: Scope::Global,
//!     amount: Nanos(NANOS_PER_USD / 100),
//!     period: Period::Daily,
//!     soft: false,
//! }]);
//! let config = tollgate::config::Config::parse(
//!     "[providers.p]\nkind = \"openai\"\n[models]\nm = \"p/m\"\n",
//!     &|_| None,
//! ).unwrap();
//! let price = Price { input: Nanos(NANOS_PER_USD), output: Nanos(2 * NANOS_PER_USD), ..Price::default() };
//! let pricing = Pricing::new(
//!     Arc::new(tollgate::routing::Routes::from_config(&config)),
//!     Arc::new(PriceTable::default().with_price(None, "m", price)),
//! );
//! let svc = ServiceBuilder::new()
//!     .layer(BudgetLayer::new(budgets, pricing))
//!     .service(service_fn(|_req: GatewayRequest| async {
//!         Ok(GatewayResponse::new(ResponseBody::TokenCount(0)))
//!     }));
//! // 5,000 output tokens may cost a cent: the first fits, the second not.
//! let ask = || {
//!     let body = tollgate::json::RawObject::parse(br#"{"model":"m","messages":[],"max_tokens":4900}"#).unwrap();
//!     GatewayRequest::new(WireFormat::OpenAiChat, Operation::Generate, body).unwrap()
//! };
//! assert!(svc.clone().oneshot(ask()).await.is_ok());
//! let refused = svc.oneshot(ask()).await.unwrap_err();
//! assert_eq!(refused.status(), 402);
//! # }
//! ```
//!
//! # How a request is checked
//!
//! [`BudgetLayer`] finds the budgets that apply to the request's
//! [`Principal`](crate::auth::Principal) (a hash lookup per scope: global,
//! its key, user, team, each tag) and reserves the request's worst-case
//! cost ([`Pricing`]; see [`estimate`] for how it is
//! counted) on every one, under a short lock per budget. A reservation
//! fits when what was spent this period, what requests in flight hold and
//! this one stay within the amount; a hard budget that it does not fit
//! refuses the request with a 402 in the client's format, type
//! `insufficient_funds`, naming the budget's scope and period, never an
//! amount. A soft budget serves it anyway, logs, counts
//! ([`BudgetStats::over_soft`]) and marks the answer `x-tollgate-budget: over`.
//!
//! When the answer's [`Settlement`](crate::usage::Settlement) settles
//! (the stream ended or was dropped, or at once for a complete answer),
//! the real cost replaces the reservation. An error from the inner
//! service releases it. Without a usage meter inside the layer (no
//! settlement on the response) the worst case is charged: a budget never
//! under-counts for want of a meter.
//!
//! Counting tokens (`count_tokens`) costs nothing: it reserves nothing
//! and no budget refuses it.
//!
//! # Unknown prices
//!
//! A hard budget cannot cap what a model of unknown price costs: a
//! request under one that may be served by such a model (its own, one it
//! names to fall back to, a configured fallback) is refused with a 402
//! (code `price_unknown`) naming the model and how to price it
//! (`[prices]`, or `[providers.NAME] price`; a self-hosted server can be
//! priced at 0). Under soft budgets only, it is served with what its
//! priced targets may cost reserved (nothing when none is), logged and
//! counted ([`BudgetStats::unknown_price`]). A request no budget applies
//! to is never priced.
//!
//! # Periods, the store and the ledger
//!
//! A period starts at 00:00 UTC (daily), Monday 00:00 UTC (weekly), the
//! first of the month (monthly), or never ends (`none`); each starts from
//! zero. The clock is injectable ([`Budgets::with_clock`]). Budgets come
//! from the config (`[[budgets]]`) and from a [`BudgetStore`] (`tollgate
//! budgets set`), read again within [`REFRESH_EVERY`] of a change; what
//! each has spent this period is read from the store's ledger when it is
//! first seen, then kept in memory: the hot path never waits for the store.
//!
//! `GET /v1/credits` ([`credits_router`]) answers the caller's tightest
//! budget among those whose figures are its to see: its key's, its
//! user's, its team's; never a tag's; the global one only to the operator
//! of an open gateway.
//!
//! # Known limits
//!
//! - A `key:` budget follows the key's id: a rotated key is a new id, and
//!   its successor starts outside the old key's budget (set one for it,
//!   or budget the user or team instead).
//! - Input a request's body does not show (a stored conversation, files
//!   by id) is not reserved: see [`estimate`].

mod credits;
pub mod estimate;
mod layer;
mod spec;
mod state;
mod store;

pub use credits::credits_router;
pub use estimate::{Priced, Pricing};
pub use layer::{Budget, BudgetLayer, ResponseFuture, BUDGET_HEADER};
pub use spec::{BudgetSpec, Period, Scope};
pub use state::{
    Applicable, BudgetStats, BudgetStatus, Budgets, Clock, Refusal, Reservation,
    RECONCILED_PER_TICK, REFRESH_EVERY,
};
pub use store::{BudgetAdmin, BudgetStore};

#[cfg(test)]
mod tests;
