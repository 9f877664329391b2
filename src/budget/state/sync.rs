//! The budgets kept current with their store: the store's budgets read
//! again when its revision moves (each budget keeping its window of
//! spend across the change), each budget's spend this period read from
//! the ledger when the budget is first seen, and otherwise raised to the
//! ledger's a few budgets a tick (see the [module docs](super)).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{current, lock, Budgets, Entry, Origin, Table, Window};
use crate::budget::spec::{BudgetSpec, Scope};
use crate::budget::store::BudgetStore;
use crate::store::{poll_every, StoreError};

/// How often the store is asked whether its budgets changed: a budget
/// set with `tollgate budgets` applies within this.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// How many budgets' spend each refresh compares with the ledger (one
/// sum over the ledger each): with more budgets, they take turns.
pub const RECONCILED_PER_TICK: usize = 16;

/// What the store sync keeps between refreshes.
#[derive(Default)]
pub(super) struct StoreSync {
    /// The windows of budgets deleted from the store, while requests in
    /// flight still hold them: set again, a budget takes its window back.
    retired: HashMap<(Origin, Scope), Weak<Mutex<Window>>>,
    /// Where the next reconciliation with the ledger starts.
    cursor: usize,
}

impl Budgets {
    /// Reads the store's budgets again if its revision moved (or on the
    /// first call), and the ledger's spend for each budget not read yet;
    /// otherwise raises budgets' spend to the ledger's where that is
    /// more (see the docs of the `Budgets` type, [`crate::budget::Budgets`]). The binary calls it before it
    /// listens; then it runs every [`REFRESH_EVERY`] by itself (from the
    /// first call, reservation or status inside a Tokio runtime).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let Some(store) = self.inner.store.clone() else {
            return Ok(());
        };
        self.start_refresher();
        let mut sync = self.inner.rebuilding.lock().await;
        let rev = store.budget_revision().await?;
        let rev = i64::try_from(rev).unwrap_or(i64::MAX);
        if self.inner.revision.load(Ordering::Acquire) == rev {
            return self.reconcile(&*store, &mut sync).await;
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
        let mut entries: Vec<Entry> = Vec::new();
        for (spec, origin) in specs {
            let window = window_for(&old, &entries, &sync, spec, origin, now);
            let unread = {
                let w = lock(&window);
                (!w.loaded).then_some(w.start)
            };
            if let Some(start) = unread {
                let ledger = store
                    .spent_since(&spec.scope, start.saturating_mul(1000))
                    .await?;
                let mut w = lock(&window);
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
        // The windows of budgets gone from the store, while something
        // holds them: a budget set again takes its window back.
        for e in old.by_scope.values().flatten() {
            if !entries.iter().any(|n| Arc::ptr_eq(&n.window, &e.window)) {
                let key = (e.origin, e.spec.scope.clone());
                sync.retired.insert(key, Arc::downgrade(&e.window));
            }
        }
        sync.retired.retain(|_, w| {
            !entries
                .iter()
                .any(|e| Weak::as_ptr(w) == Arc::as_ptr(&e.window))
        });
        drop(old);
        *self.inner.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Table::of(entries));
        // Windows nothing holds any more are forgotten.
        sync.retired.retain(|_, w| w.strong_count() > 0);
        self.inner.revision.store(rev, Ordering::Release);
        Ok(())
    }

    /// Raises the spend of up to [`RECONCILED_PER_TICK`] budgets, in turn,
    /// to what the ledger holds for their window: spend of requests in
    /// flight when a budget was set, and of other gateways sharing the
    /// store. Never lowers it: spend settled here may not be written yet.
    async fn reconcile(
        &self,
        store: &dyn BudgetStore,
        sync: &mut StoreSync,
    ) -> Result<(), StoreError> {
        let table = self.table();
        let entries: Vec<&Arc<Entry>> = table.by_scope.values().flatten().collect();
        let n = entries.len();
        if n == 0 {
            return Ok(());
        }
        let now = self.now();
        for i in 0..n.min(RECONCILED_PER_TICK) {
            let e = entries[(sync.cursor + i) % n];
            let start = e.current(now).start;
            let ledger = store
                .spent_since(&e.spec.scope, start.saturating_mul(1000))
                .await?;
            let mut w = e.current(self.now());
            if w.start == start {
                w.spent = w.spent.max(ledger.0);
            }
        }
        sync.cursor = (sync.cursor + RECONCILED_PER_TICK) % n;
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

/// The window `spec` (from `origin`) counts its spend in after a
/// rebuild: the one it had (its period changed: restarted from the
/// ledger, what requests in flight hold kept), the one it had before it
/// was deleted if something still holds it, or a new one.
fn window_for(
    old: &Table,
    taken: &[Entry],
    sync: &StoreSync,
    spec: &BudgetSpec,
    origin: Origin,
    now: i64,
) -> Arc<Mutex<Window>> {
    let free = |w: &Arc<Mutex<Window>>| !taken.iter().any(|e| Arc::ptr_eq(&e.window, w));
    let same_scope = || {
        old.by_scope
            .get(&spec.scope)
            .into_iter()
            .flatten()
            .filter(|e| e.origin == origin && free(&e.window))
    };
    // The config may give one scope several periods; the store, one
    // budget per scope, whose period may change.
    let kept = same_scope()
        .find(|e| e.spec.period == spec.period)
        .or_else(|| same_scope().find(|_| origin == Origin::Store))
        .map(|e| e.window.clone())
        .or_else(|| {
            let key = (origin, spec.scope.clone());
            sync.retired.get(&key)?.upgrade().filter(free)
        });
    let Some(window) = kept else {
        return Arc::new(Mutex::new(Window::new(spec.period, now, 0)));
    };
    {
        let mut w = current(&window, now);
        if w.period != spec.period {
            *w = Window::new(spec.period, now, w.reserved);
        }
    }
    window
}
