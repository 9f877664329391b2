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
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use crate::auth::Principal;
use crate::error::{ErrorKind, GatewayError};
use crate::store::StoreError;
use crate::usage::Nanos;

use super::spec::{rfc3339, BudgetSpec, Period, Scope};
use super::store::BudgetStore;

/// How often the store is asked whether its budgets changed: a budget
/// set with `tollgate budgets` applies within this.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// How many budgets' spend each refresh compares with the ledger (one
/// sum over the ledger each): with more budgets, they take turns.
pub const RECONCILED_PER_TICK: usize = 16;

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

/// What the store sync keeps between refreshes.
#[derive(Default)]
struct StoreSync {
    /// The windows of budgets deleted from the store, while requests in
    /// flight still hold them: set again, a budget takes its window back.
    retired: HashMap<(Origin, Scope), Weak<Mutex<Window>>>,
    /// Where the next reconciliation with the ledger starts.
    cursor: usize,
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

/// What one request holds on each budget that applies to it. Settle it
/// with the request's real cost; dropped unsettled, it releases what it
/// holds (the request failed before a provider answered).
pub struct Reservation {
    holds: Vec<Hold>,
    amount: u64,
    over_soft: bool,
    budgets: Option<Budgets>,
}

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
    entries: Vec<Arc<Entry>>,
    budgets: &'a Budgets,
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

    /// Reads the store's budgets again if its revision moved (or on the
    /// first call), and the ledger's spend for each budget not read yet;
    /// otherwise raises budgets' spend to the ledger's where that is
    /// more (see the [module docs](self)). The binary calls it before it
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
    fn start_refresher(&self) {
        if self.inner.store.is_none() || self.inner.refresher.get().is_some() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.inner.refresher.get_or_init(|| {
            let weak: Weak<Inner> = Arc::downgrade(&self.inner);
            handle.spawn(async move {
                let mut tick = tokio::time::interval(REFRESH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    let budgets = Budgets { inner };
                    if let Err(e) = budgets.refresh().await {
                        tracing::warn!(error = %e, "cannot refresh the budgets");
                    }
                }
            });
        });
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
