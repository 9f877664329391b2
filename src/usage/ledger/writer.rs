//! The ledger's writer thread: group commit, retries, and the watermark
//! that tells waiters their row is committed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Health, LedgerRow};
use crate::store::{LedgerWriter, StoreError};

/// The most rows one transaction takes: enough that a backlog clears in
/// few commits, few enough that one commit stays short.
const MAX_BATCH: usize = 4096;

/// The longest wait between two tries of a failing write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the thread; it ends when every sender is gone and the queue is
/// written.
pub(super) fn spawn(
    sink: Box<dyn LedgerWriter>,
    rx: mpsc::UnboundedReceiver<(u64, LedgerRow)>,
    committed: watch::Sender<u64>,
    done: Arc<AtomicU64>,
    health: Arc<Health>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("tollgate-ledger".into())
        .spawn(move || run(sink, rx, committed, done, &health))
        .map(drop)
        .map_err(|e| StoreError(format!("cannot start the ledger's writer: {e}")))
}

fn run(
    mut sink: Box<dyn LedgerWriter>,
    mut rx: mpsc::UnboundedReceiver<(u64, LedgerRow)>,
    committed: watch::Sender<u64>,
    done: Arc<AtomicU64>,
    health: &Health,
) {
    let mut rows = Vec::new();
    let mut seqs = Vec::new();
    let mut mark = Watermark::default();
    while let Some((seq, row)) = rx.blocking_recv() {
        seqs.push(seq);
        rows.push(row);
        while rows.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((seq, row)) => {
                    seqs.push(seq);
                    rows.push(row);
                }
                Err(_) => break,
            }
        }
        write(&mut *sink, &rows);
        health.committed();
        let upto = mark.extend(&seqs);
        done.store(upto, Ordering::Relaxed);
        committed.send_replace(upto);
        rows.clear();
        seqs.clear();
    }
}

/// Writes `rows`, trying again until it works: the rows are the only
/// copy of what these requests cost.
fn write(sink: &mut dyn LedgerWriter, rows: &[LedgerRow]) {
    let mut backoff = Duration::from_millis(50);
    while let Err(e) = sink.append(rows) {
        tracing::error!(error = %e, rows = rows.len(), retry_in_ms = backoff.as_millis() as u64, "cannot write to the ledger; retrying");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The highest row number up to which every row is committed. Rows are
/// numbered before they are sent, so two requests recording at once may
/// reach the queue out of order: a number committed early waits in
/// `early` until the ones before it are committed too.
#[derive(Default)]
struct Watermark {
    upto: u64,
    early: BinaryHeap<Reverse<u64>>,
}

impl Watermark {
    fn extend(&mut self, seqs: &[u64]) -> u64 {
        for &seq in seqs {
            if seq == self.upto + 1 {
                self.upto = seq;
            } else {
                self.early.push(Reverse(seq));
            }
            while self.early.peek() == Some(&Reverse(self.upto + 1)) {
                self.early.pop();
                self.upto += 1;
            }
        }
        self.upto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_waits_for_rows_that_arrive_late() {
        let mut w = Watermark::default();
        assert_eq!(w.extend(&[1, 2, 4]), 2);
        assert_eq!(w.extend(&[6, 5]), 2);
        assert_eq!(w.extend(&[3]), 6);
        assert_eq!(w.extend(&[7]), 7);
    }
}
