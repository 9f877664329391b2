//! The budgets in memory: each one's window of spend, and the
//! reservations that requests in flight hold on it.
//!
//! The hot path is two hash lookups per scope of the principal and a short
//! lock per budget that applies; the store's budgets are read only at
//! startup and when its revision moves (polled every [`REFRESH_EVERY`]).
//!
//! A budget's window of spend outlives a change to the budget: a new
//! amount, a new period (the window restarts from the ledger, keeping
//! what requests in flight hold), even a delete and a set again while
//! requests reserved on it are in flight. Requests in flight when a
//! budget is set for the first time hold nothing on it; their spend
//! reaches it through the ledger: every [`REFRESH_EVERY`] each window's
//! spend is raised to the ledger's for its period, if that is more (at
//! most [`RECONCILED_PER_TICK`] budgets a tick, in turn).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::auth::Principal;
use crate::usage::Nanos;

use super::spec::{BudgetSpec, Period, Scope};
use super::store::BudgetStore;

mod reservation;
mod sync;

pub use reservation::{Applicable, Refusal, Reservation};
pub use sync::{RECONCILED_PER_TICK, REFRESH_EVERY};

use sync::StoreSync;

/// Where the current time comes from, in Unix seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The budgets a gateway enforces, from the config and a
/// [`BudgetStore`], with what each has spent this period and what
/// requests in flight have reserved. Clones share everything.
///
/// See the [module docs](super) for how a request is checked.
#[derive(Clone)]
pub struct Budgets {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("count", &self.table().len)
            .finish_non_exhaustive()
    }
}

struct Inner {
    table: RwLock<Arc<Table>>,
    clock: Clock,
    configured: Vec<BudgetSpec>,
    store: Option<Arc<dyn BudgetStore>>,
    /// The store's budget revision last read; -1 before the first read.
    revision: AtomicI64,
    /// One rebuild at a time: two would each load the ledger's spend.
    rebuilding: tokio::sync::Mutex<StoreSync>,
    refresher: OnceLock<()>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    refused: AtomicU64,
    over_soft: AtomicU64,
    unknown_price: AtomicU64,
}

/// What the budgets have done since the gateway started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// Requests refused with a 402 by a hard budget.
    pub refused: u64,
    /// Requests served past a soft budget's amount.
    pub over_soft: u64,
    /// Requests served with nothing reserved, their price being unknown.
    pub unknown_price: u64,
}

#[derive(Default)]
struct Table {
    by_scope: HashMap<Scope, Vec<Arc<Entry>>>,
    len: usize,
}

/// Where a budget was set: a rebuild keeps the spend of a budget whose
/// origin, scope and period stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Origin {
    Config,
    Store,
}

struct Entry {
    spec: BudgetSpec,
    origin: Origin,
    /// Shared with the entry that replaces this one when the store's
    /// budgets are read again, and held by the reservations taken on it,
    /// so that they settle where the budget is now.
    window: Arc<Mutex<Window>>,
}

/// One budget's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// The budget's period, which the window rolls over by.
    period: Period,
    start: i64,
    end: Option<i64>,
    spent: u64,
    reserved: u64,
    /// Whether the ledger's spend for this window has been read.
    loaded: bool,
}

impl Entry {
    fn current(&self, now: i64) -> std::sync::MutexGuard<'_, Window> {
        current(&self.window, now)
    }
}

fn lock(window: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    window.lock().unwrap_or_else(|p| p.into_inner())
}

/// The window at `now`: a new period starts from zero spent; what
/// requests in flight reserved stays until they settle.
fn current(window: &Mutex<Window>, now: i64) -> std::sync::MutexGuard<'_, Window> {
    let mut w = lock(window);
    if w.end.is_some_and(|end| now >= end) {
        *w = Window {
            spent: 0,
            loaded: true,
            ..Window::new(w.period, now, w.reserved)
        };
    }
    w
}

impl Window {
    /// The window of `period` at `now`, nothing spent, `reserved` held,
    /// the ledger not read.
    fn new(period: Period, now: i64, reserved: u64) -> Window {
        let (start, end) = period.window(now);
        Window {
            period,
            start,
            end,
            spent: 0,
            reserved,
            loaded: false,
        }
    }
}

/// What a budget stands at now: what `GET /v1/credits` and `tollgate
/// budgets list` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    /// The budget.
    pub spec: BudgetSpec,
    /// Spent in the current window.
    pub spent: Nanos,
    /// Held by requests in flight.
    pub reserved: Nanos,
    /// When the window ends, in Unix seconds.
    pub resets_at: Option<i64>,
}

impl BudgetStatus {
    /// What is left to spend: the amount less what was spent and what
    /// is held (zero when a soft budget is past it).
    pub fn remaining(&self) -> Nanos {
        self.spec
            .amount
            .saturating_sub(self.spent)
            .saturating_sub(self.reserved)
    }
}

impl Budgets {
    /// The budgets of the config (`[[budgets]]`), each starting from
    /// nothing spent; [`Budgets::with_store`] adds the store's and the
    /// ledger's spend.
    pub fn new(configured: Vec<BudgetSpec>) -> Self {
        Self::build(configured, None, Arc::new(crate::store::unix_now))
    }

    /// No budget at all: every request passes, at the cost of one read of
    /// an empty table.
    pub fn none() -> Self {
        Self::new(Vec::new())
    }

    fn build(
        configured: Vec<BudgetSpec>,
        store: Option<Arc<dyn BudgetStore>>,
        clock: Clock,
    ) -> Self {
        let now = clock();
        let entries = configured
            .iter()
            .map(|spec| Entry {
                spec: spec.clone(),
                origin: Origin::Config,
                window: Arc::new(Mutex::new(Window {
                    loaded: store.is_none(),
                    ..Window::new(spec.period, now, 0)
                })),
            })
            .collect();
        Budgets {
            inner: Arc::new(Inner {
                table: RwLock::new(Arc::new(Table::of(entries))),
                clock,
                configured,
                store,
                revision: AtomicI64::new(-1),
                rebuilding: tokio::sync::Mutex::new(StoreSync::default()),
                refresher: OnceLock::new(),
                stats: Stats::default(),
            }),
        }
    }

    /// These budgets and those of `store`, with each one's spend so far
    /// read from the store's ledger (by [`Budgets::refresh`], which the
    /// first request also starts).
    pub fn with_store(self, store: Arc<dyn BudgetStore>) -> Self {
        let i = &self.inner;
        Self::build(i.configured.clone(), Some(store), i.clock.clone())
    }

    /// Reads the time (Unix seconds) from `clock` instead of the system's:
    /// for tests of periods rolling over. Default: the system clock.
    pub fn with_clock(self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        let i = &self.inner;
        Self::build(i.configured.clone(), i.store.clone(), Arc::new(clock))
    }

    fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    fn table(&self) -> Arc<Table> {
        self.inner
            .table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether there is no budget at all.
    pub fn is_empty(&self) -> bool {
        self.table().len == 0
    }

    /// What the budgets have done so far.
    pub fn stats(&self) -> BudgetStats {
        let s = &self.inner.stats;
        BudgetStats {
            refused: s.refused.load(Ordering::Relaxed),
            over_soft: s.over_soft.load(Ordering::Relaxed),
            unknown_price: s.unknown_price.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_unknown_price(&self) {
        self.inner
            .stats
            .unknown_price
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The budgets that apply to `principal` (the global ones only,
    /// without one), found by one hash lookup per scope it has.
    fn entries_for(&self, table: &Table, principal: Option<&Principal>) -> Vec<Arc<Entry>> {
        let mut out: Vec<Arc<Entry>> = Vec::new();
        let mut add = |scope: Scope| {
            for e in table.by_scope.get(&scope).into_iter().flatten() {
                // A tag listed twice is still one budget, reserved once.
                if !out.iter().any(|o| Arc::ptr_eq(o, e)) {
                    out.push(e.clone());
                }
            }
        };
        add(Scope::Global);
        if let Some(p) = principal {
            add(Scope::Key(p.id.clone()));
            if let Some(u) = &p.user {
                add(Scope::User(u.clone()));
            }
            if let Some(t) = &p.team {
                add(Scope::Team(t.clone()));
            }
            for t in p.tags.iter() {
                add(Scope::Tag(t.clone()));
            }
        }
        out
    }

    /// Reserves `cost` on every budget that applies to `principal`, or
    /// none of them: the first hard budget it does not fit is refused.
    ///
    /// A reservation fits when what was spent, what is held and `cost`
    /// stay within the amount. A zero `cost` (the price is unknown) fits
    /// a budget only while it has something left.
    pub fn reserve(
        &self,
        principal: Option<&Principal>,
        cost: Nanos,
    ) -> Result<Reservation, Refusal> {
        self.reserve_with(principal, || cost)
    }

    /// [`Budgets::reserve`] with the cost computed only when some budget
    /// applies: a request without one is never priced.
    pub fn reserve_with(
        &self,
        principal: Option<&Principal>,
        cost: impl FnOnce() -> Nanos,
    ) -> Result<Reservation, Refusal> {
        let applicable = self.applicable(principal);
        if applicable.is_empty() {
            return Ok(Reservation::none());
        }
        applicable.reserve(cost())
    }

    /// The budgets that apply to `principal` (the global ones only,
    /// without one), to look at before reserving on them.
    pub fn applicable(&self, principal: Option<&Principal>) -> Applicable<'_> {
        self.start_refresher();
        let table = self.table();
        let entries = if table.len == 0 {
            Vec::new()
        } else {
            self.entries_for(&table, principal)
        };
        Applicable {
            entries,
            budgets: self,
        }
    }

    /// Counts a request refused for a reason of its own (its price is
    /// unknown under a hard budget).
    pub(crate) fn count_refused(&self) {
        self.inner.stats.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Every budget that applies to `principal`, as it stands now.
    pub fn status(&self, principal: Option<&Principal>) -> Vec<BudgetStatus> {
        self.start_refresher();
        let table = self.table();
        let now = self.now();
        self.entries_for(&table, principal)
            .iter()
            .map(|e| status_of(e, now))
            .collect()
    }

    /// Every budget, as it stands now, in scope order.
    pub fn all(&self) -> Vec<BudgetStatus> {
        let table = self.table();
        let now = self.now();
        let mut out: Vec<BudgetStatus> = table
            .by_scope
            .values()
            .flatten()
            .map(|e| status_of(e, now))
            .collect();
        out.sort_by(|a, b| a.spec.scope.cmp(&b.spec.scope));
        out
    }
}

fn status_of(e: &Entry, now: i64) -> BudgetStatus {
    let w = *e.current(now);
    BudgetStatus {
        spec: e.spec.clone(),
        spent: Nanos(w.spent),
        reserved: Nanos(w.reserved),
        resets_at: w.end,
    }
}

impl Table {
    fn of(entries: Vec<Entry>) -> Table {
        let mut by_scope: HashMap<Scope, Vec<Arc<Entry>>> = HashMap::new();
        let len = entries.len();
        for e in entries {
            by_scope
                .entry(e.spec.scope.clone())
                .or_default()
                .push(Arc::new(e));
        }
        Table { by_scope, len }
    }
}
