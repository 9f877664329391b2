//! The budgets kept current with their store: the store's budgets read
//! again when its revision moves, and each budget's spend this period
//! read from the ledger when the budget is first seen.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{fresh, Budgets, Entry, Origin, Table};
use crate::store::{poll_every, StoreError};

/// How often the store is asked whether its budgets changed: a budget
/// set with `tollgate budgets` applies within this.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

impl Budgets {
    /// Reads the store's budgets again if its revision moved (or on the
    /// first call), and the ledger's spend for each budget not read yet.
    /// The binary calls it before it listens; then it runs every
    /// [`REFRESH_EVERY`] by itself (from the first call, reservation or
    /// status inside a Tokio runtime).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let Some(store) = self.inner.store.clone() else {
            return Ok(());
        };
        self.start_refresher();
        let _one = self.inner.rebuilding.lock().await;
        let rev = store.budget_revision().await?;
        let rev = i64::try_from(rev).unwrap_or(i64::MAX);
        if self.inner.revision.load(Ordering::Acquire) == rev {
            return Ok(());
        }
        let stored = store.budgets().await?;
        let old = self.table();
        let now = self.now();
        let specs = self
            .inner
            .configured
            .iter()
            .map(|s| (s, Origin::Config))
            .chain(stored.iter().map(|s| (s, Origin::Store)));
        let mut entries = Vec::new();
        for (spec, origin) in specs {
            let kept = old
                .by_scope
                .get(&spec.scope)
                .into_iter()
                .flatten()
                .find(|e| e.origin == origin && e.spec.period == spec.period);
            let window = match kept {
                Some(e) => e.window.clone(),
                None => Arc::new(Mutex::new(fresh(spec.period, now, 0, false))),
            };
            let unread = {
                let w = window.lock().unwrap_or_else(|p| p.into_inner());
                (!w.loaded).then_some(w.start)
            };
            if let Some(start) = unread {
                let ledger = store
                    .spent_since(&spec.scope, start.saturating_mul(1000))
                    .await?;
                let mut w = window.lock().unwrap_or_else(|p| p.into_inner());
                if w.start == start {
                    // Spend settled meanwhile is in the ledger too (or
                    // will be): the larger of the two, not their sum.
                    w.spent = w.spent.max(ledger.0);
                }
                w.loaded = true;
            }
            entries.push(Entry {
                spec: spec.clone(),
                origin,
                window,
            });
        }
        *self.inner.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Table::of(entries));
        self.inner.revision.store(rev, Ordering::Release);
        Ok(())
    }

    /// Starts the task that keeps the store's budgets current, once, from
    /// inside a runtime; it holds the budgets weakly and ends with them.
    pub(super) fn start_refresher(&self) {
        if self.inner.store.is_none() {
            return;
        }
        poll_every(
            &self.inner.refresher,
            &self.inner,
            REFRESH_EVERY,
            |inner| async move {
                if let Err(e) = (Budgets { inner }).refresh().await {
                    tracing::warn!(error = %e, "cannot refresh the budgets");
                }
            },
        );
    }
}
