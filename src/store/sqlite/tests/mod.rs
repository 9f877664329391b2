//! The store's tests: its key methods, and its file (migrations, mode,
//! WAL, what the bytes hold).

mod file;
mod keys;
mod ledger;

use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::auth::{KeyHash, KeyLimits};

/// A store in a fresh folder, its clock at `t` (Unix seconds) and moved
/// by the returned handle.
fn store_at(t: i64) -> (tempfile::TempDir, PathBuf, SqliteStore, Arc<AtomicI64>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("tollgate.db");
    let clock = Arc::new(AtomicI64::new(t));
    let c = clock.clone();
    let store = SqliteStore::open(&path)
        .unwrap()
        .with_clock(move || c.load(Ordering::SeqCst));
    (dir, path, store, clock)
}

fn spec(name: &str) -> KeySpec {
    KeySpec {
        name: name.into(),
        ..KeySpec::default()
    }
}
