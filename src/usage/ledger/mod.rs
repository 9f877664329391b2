//! The spend ledger: one row per request that reached a provider, written
//! durably in batches off the hot path.
//!
//! [`Ledger::record`] hands a [`LedgerRow`] to a background writer and
//! returns a [`Durable`] that completes once the row is committed; the
//! meter makes the last chunk of an answer wait for it, so that a client
//! never sees the end of an answer whose spend could still be lost.
//!
//! # How rows are written
//!
//! - **Off the hot path.** `record` is a channel send; the writer is a
//!   thread of its own with its own connection to the store
//!   ([`LedgerStore::writer`]), so a slow disk delays the ends of answers,
//!   never the runtime's threads.
//! - **Group commit.** The writer takes every row queued (up to
//!   4096), inserts them in one transaction, commits, then wakes
//!   every waiter of the batch. Alone, a row is committed at once (no
//!   timer); under load, rows queue while a commit runs, and the next
//!   batch takes them all: batches grow with the load and commits per
//!   second stay bounded by the disk, not the request rate.
//! - **Durable against a process kill.** The embedded store commits in
//!   WAL mode with `synchronous = NORMAL`: a committed row is in the
//!   operating system's hands and survives SIGKILL or a crash of the
//!   gateway. It is synced to the disk at checkpoints, so a power loss or
//!   kernel crash may lose the last moments of rows.
//! - **A write that fails** is logged and retried (with a backoff up to
//!   five seconds) with the rows it held, which stay queued. Nothing is
//!   dropped, and the rows are written once the store recovers.
//! - **A store that stays stuck** does not hang every answer: a
//!   [`Durable`] waits at most [`Ledger::with_durable_timeout`] (five
//!   seconds by default), then lets its answer end before its row is
//!   committed. That is counted ([`Ledger::durable_timeouts`]) and logged
//!   as an error once per incident (until the writer commits again): a
//!   row released this way is lost if the process dies before the store
//!   recovers, and the log says so.
//! - **A writer far behind.** `record` never blocks and never drops a row;
//!   past 100,000 rows waiting it logs a warning (at each further
//!   multiple of it). The queue is not cut there because what it holds is
//!   what it would lose: every answer waiting for its row already holds
//!   the client back (that is the backpressure), and the only rows that
//!   pile up beyond that are those nobody waits for (clients that left),
//!   whose spend must be recorded all the same.
//! - **Shutdown.** [`Ledger::flush`] waits until every row recorded so far
//!   is committed; the binary calls it after the server has drained.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate::store::SqliteStore;
//! use tollgate::usage::{Ledger, LedgerRow};
//!
//! # async fn demo() -> Result<(), tollgate::store::StoreError> {
//! let store = SqliteStore::open("/var/lib/tollgate/tollgate.db".as_ref())?;
//! let ledger = Ledger::open(Arc::new(store))?;
//! ledger.record(LedgerRow { id: "req_1".into(), ..LedgerRow::default() }).0.await;
//! // committed
//! # Ok(()) }
//! ```

mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::canonical::Usage;
use crate::store::{LedgerStore, StoreError};

use super::money::Nanos;
use super::summary::Durable;

/// Rows waiting for the writer past which `record` warns that the
/// ledger is falling behind (see the [module docs](self)).
const SOFT_LIMIT: u64 = 100_000;

/// How long an answer waits for its row by default (see the [module
/// docs](self)): far above a healthy commit, short enough that a stuck
/// disk does not look like a hung gateway.
pub const DEFAULT_DURABLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One request, as the ledger keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerRow {
    /// The request's id (`x-tollgate-request-id`).
    pub id: Arc<str>,
    /// When it started, in Unix milliseconds.
    pub created_at_ms: i64,
    /// The principal's id (a key's `key_…`, a static key's name, a JWT subject).
    pub key_id: Option<Arc<str>>,
    /// How the principal authenticated (`key`, `static-key`, `jwt`,
    /// `none`: [`AuthMethod::as_str`](crate::auth::AuthMethod::as_str)):
    /// with `key_id`, who the row belongs to, since a JWT subject may be
    /// spelled like a static key's name.
    pub key_method: Option<&'static str>,
    /// The key's name.
    pub key_name: Option<Arc<str>>,
    /// The principal's user.
    pub user: Option<Arc<str>>,
    /// The principal's team.
    pub team: Option<Arc<str>>,
    /// The principal's tags.
    pub tags: Vec<Arc<str>>,
    /// The client's wire format (`openai-chat`, `openai-responses`, `anthropic`).
    pub format: &'static str,
    /// The model the client asked for.
    pub requested_model: String,
    /// The provider that served (configured name).
    pub provider: Option<Arc<str>>,
    /// The model that served, as the provider knows it.
    pub model: Option<Arc<str>>,
    /// `gateway`, `byok` or `subscription`.
    pub credential: Option<&'static str>,
    /// Token counts.
    pub usage: Usage,
    /// What it cost the gateway; `None`: the price is unknown.
    pub cost: Option<Nanos>,
    /// What its tokens cost at list price; `None`: unknown.
    pub list_cost: Option<Nanos>,
    /// Time to first token, in milliseconds.
    pub ttft_ms: Option<u64>,
    /// Duration, in milliseconds.
    pub duration_ms: u64,
    /// The HTTP status the client got (for a stream that failed after its
    /// first byte, the status its in-band error carries).
    pub status: u16,
    /// The error's type, when it failed.
    pub error: Option<Arc<str>>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, ...).
    pub finish_reason: Option<String>,
    /// Whether it was streamed.
    pub streamed: bool,
    /// Whether the client went away before the end.
    pub disconnected: bool,
    /// Whether some token counts are estimates.
    pub estimated: bool,
    /// Every attempt, `provider/model=outcome`, the serving one last.
    pub attempts: Vec<String>,
}

/// Where rows go: a handle on the background writer (see the
/// [module docs](self)). Clones share the writer; it stops, once it has
/// written every row, when the last clone is dropped.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
    store: Arc<dyn LedgerStore>,
    durable_timeout: Duration,
}

/// How the writer is doing, shared by the handles and the writer thread.
#[derive(Default)]
pub(super) struct Health {
    /// Durables that gave up waiting.
    timeouts: AtomicU64,
    /// A durable gave up and the writer has not committed since: the
    /// incident is logged once, when this turns on.
    stuck: AtomicBool,
}

impl Health {
    fn timed_out(&self, after: Duration) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        if !self.stuck.swap(true, Ordering::Relaxed) {
            tracing::error!(
                waited_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                "the ledger's store has not committed in time: answers now end before their rows are durable; the rows stay queued and are written when the store recovers"
            );
        }
    }

    /// The writer committed: an incident, if there was one, is over.
    pub(super) fn committed(&self) {
        if self.stuck.load(Ordering::Relaxed) && self.stuck.swap(false, Ordering::Relaxed) {
            tracing::warn!("the ledger's store commits again: answers wait for their rows again");
        }
    }
}

struct Shared {
    queue: mpsc::UnboundedSender<(u64, LedgerRow)>,
    /// The number the next row gets (rows are numbered from 1).
    next: AtomicU64,
    /// Every row numbered up to this one is committed (mirrors `committed`,
    /// for a read without a lock).
    done: Arc<AtomicU64>,
    committed: watch::Receiver<u64>,
    health: Arc<Health>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field(
                "recorded",
                &self.shared.next.load(Ordering::Relaxed).saturating_sub(1),
            )
            .field("committed", &self.shared.done.load(Ordering::Relaxed))
            .field("durable_timeout", &self.durable_timeout)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Starts the writer thread on a writer of `store`; the store also
    /// answers the reads ([`Ledger::store`]).
    pub fn open(store: Arc<dyn LedgerStore>) -> Result<Ledger, StoreError> {
        let sink = store.writer()?;
        let (queue, rx) = mpsc::unbounded_channel();
        let (committed_tx, committed) = watch::channel(0);
        let done = Arc::new(AtomicU64::new(0));
        let health = Arc::new(Health::default());
        writer::spawn(sink, rx, committed_tx, done.clone(), health.clone())?;
        Ok(Ledger {
            shared: Arc::new(Shared {
                queue,
                next: AtomicU64::new(1),
                done,
                committed,
                health,
            }),
            store,
            durable_timeout: DEFAULT_DURABLE_TIMEOUT,
        })
    }

    /// This ledger, whose [`Durable`]s wait at most `timeout` for their
    /// row (default [`DEFAULT_DURABLE_TIMEOUT`]; see the [module
    /// docs](self)).
    pub fn with_durable_timeout(mut self, timeout: Duration) -> Self {
        self.durable_timeout = timeout;
        self
    }

    /// How many [`Durable`]s gave up waiting for their row since the
    /// ledger was opened (its clones share the count): answers that ended
    /// before their spend was committed.
    pub fn durable_timeouts(&self) -> u64 {
        self.shared.health.timeouts.load(Ordering::Relaxed)
    }

    /// Queues `row`; the returned future completes when it is committed,
    /// or after the durable timeout (see the [module docs](self)).
    ///
    /// Never blocks and never drops the row: a dropped or timed-out
    /// [`Durable`] leaves the row queued all the same.
    pub fn record(&self, row: LedgerRow) -> Durable {
        let shared = &self.shared;
        let seq = shared.next.fetch_add(1, Ordering::Relaxed);
        let behind = seq.saturating_sub(shared.done.load(Ordering::Relaxed));
        if behind.is_multiple_of(SOFT_LIMIT) {
            tracing::warn!(
                rows_waiting = behind,
                "the ledger's writer is falling behind: answers wait for their rows to be written"
            );
        }
        if let Err(mpsc::error::SendError((_, row))) = shared.queue.send((seq, row)) {
            // Only after the writer thread died: say what is lost.
            tracing::error!(request_id = %row.id, "the ledger's writer has stopped: this request's row is not recorded");
            return Durable(Box::pin(std::future::ready(())));
        }
        let wait = committed(shared.committed.clone(), seq);
        let (timeout, health) = (self.durable_timeout, shared.health.clone());
        Durable(Box::pin(async move {
            if tokio::time::timeout(timeout, wait).await.is_err() {
                health.timed_out(timeout);
            }
        }))
    }

    /// Completes when every row recorded before the call is committed.
    pub fn flush(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let last = self.shared.next.load(Ordering::Relaxed).saturating_sub(1);
        committed(self.shared.committed.clone(), last)
    }

    /// The store the rows go to, for reading them.
    pub fn store(&self) -> &Arc<dyn LedgerStore> {
        &self.store
    }
}

/// Completes when row `seq` is committed, or the writer has stopped.
async fn committed(mut rx: watch::Receiver<u64>, seq: u64) {
    let _ = rx.wait_for(|&done| done >= seq).await;
}

#[cfg(test)]
mod tests;
