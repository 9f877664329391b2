//! The budgets that apply to a request, what it holds on them until it
//! settles, or why a hard budget refused it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::budget::spec::{rfc3339, BudgetSpec, Period, Scope};
use crate::error::{ErrorKind, GatewayError};
use crate::usage::Nanos;

use super::{current, Budgets, Entry, Window};

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
    holds: Vec<Hold>,
    amount: u64,
    over_soft: bool,
    budgets: Option<Budgets>,
}

/// A reservation's hold on one budget's window, which follows the
/// budget through a change (see the [module docs](super)).
struct Hold {
    window: Arc<Mutex<Window>>,
    /// When it was taken (Unix seconds): its spend counts in the window
    /// the request started in, as the ledger has it.
    at: i64,
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
            let mut w = current(&hold.window, now);
            w.reserved = w.reserved.saturating_sub(self.amount);
            if hold.at >= w.start {
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

/// The budgets that apply to one request ([`Budgets::applicable`]).
///
/// It borrows the budgets: a request that no budget applies to costs no
/// reference count.
pub struct Applicable<'a> {
    pub(super) entries: Vec<Arc<Entry>>,
    pub(super) budgets: &'a Budgets,
}

impl std::fmt::Debug for Applicable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applicable")
            .field("budgets", &self.entries.len())
            .finish()
    }
}

impl Applicable<'_> {
    /// Whether no budget applies.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first hard budget among them, if any.
    pub fn hard(&self) -> Option<&BudgetSpec> {
        self.entries.iter().map(|e| &e.spec).find(|s| !s.soft)
    }

    /// Reserves `cost` on every one of them, or on none: the first hard
    /// budget it does not fit is refused.
    ///
    /// A reservation fits when what was spent, what is held and `cost`
    /// stay within the amount. A zero `cost` (the price is unknown) fits
    /// a budget only while it has something left.
    pub fn reserve(self, cost: Nanos) -> Result<Reservation, Refusal> {
        let Applicable { entries, budgets } = self;
        if entries.is_empty() {
            return Ok(Reservation::none());
        }
        let now = budgets.now();
        let mut res = Reservation {
            holds: Vec::with_capacity(entries.len()),
            amount: cost.0,
            over_soft: false,
            budgets: Some(budgets.clone()),
        };
        for entry in entries {
            let mut w = entry.current(now);
            let used = w.spent.saturating_add(w.reserved);
            let amount = entry.spec.amount.0;
            let fits = used.checked_add(cost.0).is_some_and(|u| u <= amount)
                && (cost.0 > 0 || used < amount);
            if !fits && !entry.spec.soft {
                let refusal = Refusal {
                    scope: entry.spec.scope.clone(),
                    period: entry.spec.period,
                    resets_at: w.end,
                };
                drop(w);
                if let Some(b) = &res.budgets {
                    b.count_refused();
                }
                // Dropping `res` releases what it took on the others.
                drop(res);
                return Err(refusal);
            }
            if !fits && !res.over_soft {
                res.over_soft = true;
                if let Some(b) = &res.budgets {
                    b.inner.stats.over_soft.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(budget = %entry.spec.scope, period = entry.spec.period.as_str(), "soft budget exceeded: serving anyway");
            }
            w.reserved = w.reserved.saturating_add(cost.0);
            drop(w);
            res.holds.push(Hold {
                window: entry.window.clone(),
                at: now,
            });
        }
        Ok(res)
    }
}
