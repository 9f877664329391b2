//! Where budgets and the spend they start from are kept: a small trait,
//! implemented by the embedded [`SqliteStore`](crate::store::SqliteStore).

use crate::store::StoreFuture;
use crate::usage::Nanos;

use super::spec::{BudgetSpec, Scope};

/// Budgets set at run time (`tollgate budgets set`), and the spend the
/// ledger has recorded: what the [`Budgets`](super::Budgets) read at
/// startup and when the revision moves. Never called per request.
pub trait BudgetStore: Send + Sync + 'static {
    /// Every budget in the store, one per scope.
    fn budgets(&self) -> StoreFuture<'_, Vec<BudgetSpec>>;

    /// A number that changes whenever a budget is set or deleted, so that
    /// a running gateway knows when to read them again.
    fn budget_revision(&self) -> StoreFuture<'_, u64>;

    /// What the ledger holds for requests in `scope` that started at or
    /// after `since_ms` (Unix milliseconds). Requests of unknown cost
    /// count as nothing.
    fn spent_since<'a>(&'a self, scope: &'a Scope, since_ms: i64) -> StoreFuture<'a, Nanos>;
}

/// Managing budgets: `tollgate budgets set | delete`.
pub trait BudgetAdmin: BudgetStore {
    /// Sets the budget of `spec.scope`, replacing the one it had.
    fn set_budget(&self, spec: BudgetSpec) -> StoreFuture<'_, ()>;

    /// Deletes the budget of `scope`; `false` when it had none.
    fn delete_budget<'a>(&'a self, scope: &'a Scope) -> StoreFuture<'a, bool>;
}
