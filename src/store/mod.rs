//! Where the gateway keeps its state: small async traits, with an
//! embedded SQLite default ([`SqliteStore`]) that needs no server.
//!
//! Keys, budgets (their trait is [`BudgetStore`](crate::budget::BudgetStore))
//! and the spend ledger live here; the request log will.
//! A shared backend (PostgreSQL) would implement the same traits; the
//! layers only see the traits.
//!
//! - [`KeyStore`]: what the `Auth` layer needs on the hot path (a lookup by
//!   hash) and to stay current (a revision number it polls, and the
//!   last-used times it writes back).
//! - [`KeyAdmin`]: what `tollgate keys ...` (and later the admin API) does.
//! - [`LedgerStore`]: the spend ledger's rows: appended in batches by the
//!   ledger's writer, read by `/v1/generation`, `/v1/report`, `tollgate
//!   usage` and the budgets.
//!
//! # What the embedded store keeps, and how
//!
//! One SQLite file (`[store] path`, default `tollgate.db` under the
//! platform's data directory), mode 0600, in WAL mode so that the running
//! gateway and `tollgate keys` use it at once. Its schema is versioned and
//! migrated at open; a file from a newer tollgate is refused.
//!
//! For each gateway key: an id, a name, the owner (user, team), tags, the
//! model patterns it may use, its own rate limits (requests and tokens
//! per minute), when it was created, expires, was revoked
//! and was last used, the key it replaced, and, of the key itself, only
//! its SHA-256 and the `tg_` + 4 characters that lists show. The key is
//! returned once, when it is made, and cannot be recovered from the file.
//! A revision number changes with every create, revoke and rotate, so a
//! cache in front of the store knows when to forget.

mod ledger;
mod poll;
mod sqlite;

pub use ledger::{GroupBy, LedgerStore, LedgerWriter, ReportQuery, ReportRow, SpendScope};
pub use sqlite::SqliteStore;

pub(crate) use poll::poll_every;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::auth::{KeyHash, KeyRecord, NewKey};

/// The system clock in Unix seconds, as the store keeps times (0 before
/// 1970, `i64::MAX` past its range).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The future a store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store that failed (I/O, a locked or corrupt database, a migration).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// Gateway keys by hash: what authentication needs.
///
/// Implement it to authenticate against your own user database (see
/// `examples/auth_alone.rs`); only [`KeyStore::lookup`] is required.
pub trait KeyStore: Send + Sync + 'static {
    /// The key whose hash is `hash`, revoked and expired ones included
    /// (the caller tells why a key does not work); `None` when there is
    /// no such key.
    fn lookup(&self, hash: &KeyHash) -> StoreFuture<'_, Option<KeyRecord>>;

    /// A number that changes whenever a key is created, revoked or
    /// rotated, so that a cache in front can tell when to forget what it
    /// holds. The default never changes (a store whose keys never change).
    fn revision(&self) -> StoreFuture<'_, u64> {
        Box::pin(std::future::ready(Ok(0)))
    }

    /// Whether the store holds at least one key that works now.
    /// The default says yes (a custom store is there to be used).
    fn has_active_keys(&self) -> StoreFuture<'_, bool> {
        Box::pin(std::future::ready(Ok(true)))
    }

    /// Records when keys were last used: `(key id, Unix seconds)`. The
    /// default does nothing.
    fn touch(&self, used: Vec<(String, i64)>) -> StoreFuture<'_, ()> {
        let _ = used;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What a new key is for: the options of `tollgate keys create`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// Its name.
    pub name: String,
    /// The user it belongs to.
    pub user: Option<String>,
    /// The team it belongs to.
    pub team: Option<String>,
    /// Tags for usage and budgets.
    pub tags: Vec<String>,
    /// Model patterns it may use; empty: all.
    pub models: Vec<String>,
    /// How long until it stops working; `None`: never.
    pub expires_in: Option<Duration>,
    /// Its own rate limits (requests and tokens per minute).
    pub limits: crate::auth::KeyLimits,
}

/// Managing keys: `tollgate keys create | list | revoke | rotate`.
pub trait KeyAdmin: KeyStore {
    /// Makes a new key. The key itself is returned once and never stored.
    fn create(&self, spec: KeySpec) -> StoreFuture<'_, (KeyRecord, NewKey)>;

    /// Every key, newest first.
    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>>;

    /// Revokes key `id` now; `false` when there is no such key (revoking
    /// a revoked key again is not an error).
    fn revoke<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;

    /// Replaces key `id` with a new one with the same name, owner, tags,
    /// models, rate limits and expiry; the old key keeps working for `grace` (zero:
    /// it stops now). `None` when there is no such key, it no longer
    /// works, or it was already rotated (rotate its successor instead).
    fn rotate<'a>(
        &'a self,
        id: &'a str,
        grace: Duration,
    ) -> StoreFuture<'a, Option<(KeyRecord, NewKey)>>;
}
