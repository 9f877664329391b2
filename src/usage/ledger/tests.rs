//! The writer against a store that shows what it was asked to do.

use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;

use futures_util::FutureExt;

use super::*;
use crate::store::{LedgerWriter, ReportQuery, ReportRow, SpendScope, StoreFuture};

/// Records each batch's ids; each append first tells `entered` and waits
/// for a word on `gate` (when there is a gate), and fails while
/// `failures` is above zero.
struct Fake {
    batches: Arc<Mutex<Vec<Vec<String>>>>,
    entered: std_mpsc::Sender<()>,
    gate: Option<std_mpsc::Receiver<()>>,
    failures: usize,
}

impl LedgerWriter for Fake {
    fn append(&mut self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        let _ = self.entered.send(());
        if let Some(gate) = &self.gate {
            let _ = gate.recv();
        }
        if self.failures > 0 {
            self.failures -= 1;
            return Err(StoreError("disk full".into()));
        }
        let ids = rows.iter().map(|r| r.id.to_string()).collect();
        self.batches.lock().unwrap().push(ids);
        Ok(())
    }
}

struct FakeStore(Mutex<Option<Fake>>);

impl LedgerStore for FakeStore {
    fn writer(&self) -> Result<Box<dyn LedgerWriter>, StoreError> {
        let fake = self.0.lock().unwrap().take().expect("one writer");
        Ok(Box::new(fake))
    }
    fn generation<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<LedgerRow>> {
        unimplemented!()
    }
    fn report(&self, _: ReportQuery) -> StoreFuture<'_, Vec<ReportRow>> {
        unimplemented!()
    }
    fn spend(&self, _: SpendScope, _: i64) -> StoreFuture<'_, Nanos> {
        unimplemented!()
    }
}

struct Harness {
    ledger: Ledger,
    batches: Arc<Mutex<Vec<Vec<String>>>>,
    entered: std_mpsc::Receiver<()>,
    gate: Option<std_mpsc::Sender<()>>,
}

fn harness(gated: bool, failures: usize) -> Harness {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (entered_tx, entered) = std_mpsc::channel();
    let (gate_tx, gate_rx) = std_mpsc::channel();
    let fake = Fake {
        batches: batches.clone(),
        entered: entered_tx,
        gate: gated.then_some(gate_rx),
        failures,
    };
    let ledger = Ledger::open(Arc::new(FakeStore(Mutex::new(Some(fake))))).unwrap();
    Harness {
        ledger,
        batches,
        entered,
        gate: gated.then_some(gate_tx),
    }
}

fn row(id: &str) -> LedgerRow {
    LedgerRow {
        id: id.into(),
        ..LedgerRow::default()
    }
}

#[tokio::test]
async fn a_row_is_durable_only_after_its_commit_and_rows_queued_meanwhile_share_one() {
    let h = harness(true, 0);
    let mut first = h.ledger.record(row("first")).0;
    // The writer took the row at once (no timer) and is committing it.
    h.entered.recv().unwrap();
    let mut rest: Vec<_> = (0..100)
        .map(|i| h.ledger.record(row(&format!("r{i}"))).0)
        .collect();
    assert!(
        (&mut first).now_or_never().is_none(),
        "durable before its commit"
    );
    assert!(h.batches.lock().unwrap().is_empty());

    let gate = h.gate.as_ref().unwrap();
    gate.send(()).unwrap();
    first.await;
    assert_eq!(h.batches.lock().unwrap().len(), 1);
    // The hundred rows queued during the first commit go in one batch.
    h.entered.recv().unwrap();
    assert!((&mut rest[99]).now_or_never().is_none());
    gate.send(()).unwrap();
    for d in rest {
        d.await;
    }
    let batches = h.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_eq!(batches[0], ["first"]);
    let want: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    assert_eq!(batches[1], want);
}

#[tokio::test]
async fn a_failed_write_is_retried_with_the_same_rows() {
    let h = harness(false, 1);
    h.ledger.record(row("a")).0.await;
    assert_eq!(h.entered.try_iter().count(), 2, "one failure, one retry");
    assert_eq!(*h.batches.lock().unwrap(), [["a"]]);
}

#[tokio::test]
async fn flush_waits_for_every_row_recorded_even_when_nobody_waits_for_it() {
    let h = harness(true, 0);
    for i in 0..10 {
        drop(h.ledger.record(row(&format!("r{i}"))));
    }
    let mut flushed = Box::pin(h.ledger.flush());
    h.entered.recv().unwrap();
    assert!((&mut flushed).now_or_never().is_none());
    let gate = h.gate.as_ref().unwrap();
    // However the ten rows were split into batches, let each through.
    for _ in 0..10 {
        let _ = gate.send(());
    }
    flushed.await;
    let written: usize = h.batches.lock().unwrap().iter().map(Vec::len).sum();
    assert_eq!(written, 10);
}

#[tokio::test(start_paused = true)]
async fn a_stuck_store_delays_answers_by_the_timeout_only_and_its_rows_are_written_later() {
    use std::sync::atomic::Ordering;
    let store = crate::usage::testing::MemStore::default();
    store.failing.store(true, Ordering::SeqCst);
    let ledger = store.ledger();
    let started = tokio::time::Instant::now();
    ledger.record(row("a")).0.await;
    assert_eq!(started.elapsed(), DEFAULT_DURABLE_TIMEOUT);
    ledger.record(row("b")).0.await;
    assert_eq!(ledger.durable_timeouts(), 2);
    assert!(store.rows().is_empty());

    // The store recovers: both rows, still queued, are written.
    store.failing.store(false, Ordering::SeqCst);
    ledger.flush().await;
    let ids: Vec<String> = store.rows().iter().map(|r| r.id.to_string()).collect();
    assert_eq!(ids, ["a", "b"]);
}
