//! [`BudgetLayer`]: reserves a request's worst case on its budgets before
//! the inner service is called, and settles the real cost when the
//! answer does.

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderValue;
use tower::Layer;

use super::estimate::Pricing;
use super::spec::{BudgetSpec, Period};
use super::state::{Budgets, Reservation};
use crate::auth::Principal;
use crate::error::{ErrorKind, GatewayError};
use crate::request::{GatewayRequest, Operation, Target};
use crate::response::GatewayResponse;
use crate::usage::gate::{self, Admit, Gate, Ticket};
use crate::usage::{Nanos, Settlement};

/// The response header that marks an answer served past a soft budget.
pub const BUDGET_HEADER: &str = "x-tollgate-budget";

/// Builds [`Budget`] services, and is their policy; see the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct BudgetLayer {
    budgets: Budgets,
    pricing: Pricing,
}

impl BudgetLayer {
    /// Checks requests against `budgets`, pricing their worst case with
    /// `pricing`.
    pub fn new(budgets: Budgets, pricing: Pricing) -> Self {
        BudgetLayer { budgets, pricing }
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Budget<S> {
        Gate::new(inner, self.clone())
    }
}

/// Reserves each request's worst-case cost on every budget that applies
/// to its [`Principal`] (a 402 `insufficient_funds` when a hard one
/// cannot take it), then replaces the reservation with the answer's
/// real cost when its [`Settlement`] settles, or releases it when the
/// inner service fails.
pub type Budget<S> = Gate<S, BudgetLayer>;

/// The future of [`Budget`].
pub type ResponseFuture<F> = gate::ResponseFuture<F, Reservation>;

impl Admit for BudgetLayer {
    type Ticket = Reservation;

    fn admit(&self, req: &GatewayRequest) -> Result<Option<Reservation>, GatewayError> {
        // Counting tokens is free: nothing to reserve, nothing to refuse.
        if req.operation == Operation::CountTokens {
            return Ok(None);
        }
        let applicable = self.budgets.applicable(req.extensions.get::<Principal>());
        if applicable.is_empty() {
            return Ok(None);
        }
        let priced = self.pricing.price(req);
        if let (Some(target), Some(hard)) = (&priced.unpriced, applicable.hard()) {
            // See "Unknown prices" in the module docs.
            self.budgets.count_refused();
            tracing::info!(budget = %hard.scope, provider = %target.provider, model = %target.model, "refused: a hard budget cannot cap a model of unknown price");
            return Err(unpriced_error(target, hard));
        }
        let cost = priced.cost.unwrap_or_else(|| {
            self.budgets.count_unknown_price();
            tracing::warn!(model = %req.model, "price unknown: the request is served with nothing reserved on its soft budgets");
            Nanos::ZERO
        });
        match applicable.reserve(cost) {
            Ok(reservation) => Ok(Some(reservation)),
            Err(refusal) => {
                tracing::info!(budget = %refusal.scope, period = refusal.period.as_str(), model = %req.model, "refused by a budget");
                Err(refusal.to_error())
            }
        }
    }
}

/// An error from the inner service drops the reservation: released.
impl Ticket for Reservation {
    fn on_response(self, resp: &mut GatewayResponse) {
        settle_on(resp, self);
    }
}

/// The 402 for a request that a hard budget applies to and that may be
/// served by `target`, whose price is unknown: it says how to price it.
fn unpriced_error(target: &Target, hard: &BudgetSpec) -> GatewayError {
    let model: String = target.model.chars().take(200).collect();
    let provider = &target.provider;
    let period = match hard.period {
        Period::None => String::new(),
        p => format!("{} ", p.as_str()),
    };
    GatewayError::new(
        ErrorKind::InsufficientFunds,
        format!(
            "model `{model}` on provider `{provider}` has no known price, so {} {period}budget cannot cap this request; \
             give it a price in the gateway's config: `[prices]` `\"{provider}/{model}\" = {{ input = …, output = … }}` \
             (USD per million tokens), or `[providers.{provider}] price = {{ input = 0, output = 0 }}` for every model of a self-hosted server",
            hard.scope.described()
        ),
    )
    .with_code("price_unknown")
}

/// Whether the missing-meter warning was logged.
static NO_METER_LOGGED: AtomicBool = AtomicBool::new(false);

/// Marks an answer served past a soft budget, and hands the reservation
/// to the answer's settlement.
fn settle_on(resp: &mut GatewayResponse, reservation: Reservation) {
    if reservation.is_empty() {
        return;
    }
    if reservation.is_over_soft() {
        resp.meta
            .headers
            .insert(BUDGET_HEADER, HeaderValue::from_static("over"));
    }
    match resp.extensions.get::<Settlement>() {
        Some(settlement) => settlement.on_settle(move |summary| {
            // An unknown price at settlement keeps what was reserved.
            let cost = summary.cost.unwrap_or(reservation.amount());
            reservation.settle(cost);
            None
        }),
        None => {
            // No meter inside this layer: the real cost is never known,
            // so the worst case is what is spent.
            if !NO_METER_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::warn!("budgets: no usage meter inside the budget layer; requests are charged their worst-case cost");
            }
            let cost = reservation.amount();
            reservation.settle(cost);
        }
    }
}
