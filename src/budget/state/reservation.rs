//! What a request holds on its budgets until it settles, or why a hard
//! budget refused it.

use std::sync::Arc;

use crate::budget::spec::{rfc3339, Period, Scope};
use crate::error::{ErrorKind, GatewayError};
use crate::usage::Nanos;

use super::{Budgets, Entry};

/// A hard budget that could not take a request's reservation.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The budget's scope.
    pub scope: Scope,
    /// Its period.
    pub period: Period,
    /// When its window ends, in Unix seconds.
    pub resets_at: Option<i64>,
}

impl Refusal {
    /// The client's 402: names the budget's scope and period and when it
    /// resets, never an amount (a team's figures are not every member's
    /// to see in an error).
    pub fn to_error(&self) -> GatewayError {
        let period = match self.period {
            Period::None => String::new(),
            p => format!("{} ", p.as_str()),
        };
        let reset = self
            .resets_at
            .map_or(String::new(), |t| format!("; it resets at {}", rfc3339(t)));
        GatewayError::new(
            ErrorKind::InsufficientFunds,
            format!(
                "budget exceeded: {} {period}budget does not cover this request{reset}",
                self.scope.described()
            ),
        )
        .with_code("budget_exceeded")
    }
}

/// What one request holds on each budget that applies to it. Settle it
/// with the request's real cost; dropped unsettled, it releases what it
/// holds (the request failed before a provider answered).
pub struct Reservation {
    pub(super) holds: Vec<Hold>,
    pub(super) amount: u64,
    pub(super) over_soft: bool,
    pub(super) budgets: Option<Budgets>,
}

/// A reservation's hold on one budget, in the window it was taken in.
pub(super) struct Hold {
    pub(super) entry: Arc<Entry>,
    pub(super) window_start: i64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("budgets", &self.holds.len())
            .field("amount", &self.amount)
            .field("over_soft", &self.over_soft)
            .finish()
    }
}

impl Reservation {
    /// A reservation on no budget.
    pub fn none() -> Self {
        Reservation {
            holds: Vec::new(),
            amount: 0,
            over_soft: false,
            budgets: None,
        }
    }

    /// What it holds on each budget.
    pub fn amount(&self) -> Nanos {
        Nanos(self.amount)
    }

    /// Whether it holds nothing on any budget (none applies).
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// Whether a soft budget was past its amount: the answer is marked.
    pub fn is_over_soft(&self) -> bool {
        self.over_soft
    }

    /// Replaces what it holds with `cost`, the request's real cost.
    /// Spend settled after its budget's window ended counts in the
    /// window the request started in, as the ledger has it.
    pub fn settle(mut self, cost: Nanos) {
        self.finish(cost.0);
    }

    fn finish(&mut self, cost: u64) {
        let Some(budgets) = self.budgets.take() else {
            return;
        };
        let now = budgets.now();
        for hold in self.holds.drain(..) {
            let mut w = hold.entry.current(now);
            w.reserved = w.reserved.saturating_sub(self.amount);
            if w.start == hold.window_start {
                w.spent = w.spent.saturating_add(cost);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.finish(0);
    }
}
