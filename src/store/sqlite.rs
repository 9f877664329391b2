//! The embedded store: one SQLite file that the running gateway and
//! `tollgate keys ...` open at the same time.
//!
//! - **One file**, created with mode 0600 in a folder created with mode
//!   0700 (SQLite gives its `-wal` and `-shm` files the same mode).
//! - **WAL mode**, so that readers never wait for a writer and a writer
//!   never waits for readers, and a **busy timeout** ([`BUSY_TIMEOUT`]) for
//!   the rare moment two processes write at once.
//! - **Migrations** ([`migrate`]): an ordered list of SQL steps, the
//!   number applied kept in `PRAGMA user_version`, the missing ones
//!   applied at open in one transaction. A file written by a newer
//!   tollgate is refused rather than used with a schema this one does not
//!   know.
//! - **One connection per process**, behind a `Mutex`; every call runs on
//!   Tokio's blocking pool. SQLite serializes writers anyway, and the
//!   reads the hot path makes are few (the `Auth` layer caches keys in
//!   front of the store), so a pool would add a crate and buy nothing.
//!
//! What the `keys` table holds is in [`keys`]: never a key, only its
//! SHA-256 ([`KeyHash::to_hex`]) and the `tg_` + 4 characters that lists
//! show.

mod budgets;
mod keys;
mod ledger;
mod migrate;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{
    unix_now, KeyAdmin, KeySpec, KeyStore, LedgerStore, LedgerWriter, ReportQuery, ReportRow,
    SpendScope, StoreError, StoreFuture,
};
use crate::auth::{KeyHash, KeyRecord, NewKey};
use crate::usage::{LedgerRow, Nanos};

/// How long a write waits for another process's write to finish before
/// it fails: far longer than any of the store's transactions takes.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the current time comes from: Unix seconds. Replaceable for tests.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The embedded SQLite store ([what it keeps](crate::store)); clones share
/// one connection.
///
/// Its methods run on Tokio's blocking pool, so they need a Tokio runtime.
///
/// ```no_run
/// use tollgate::store::{KeyAdmin, KeySpec, SqliteStore};
///
/// # async fn demo() -> Result<(), tollgate::store::StoreError> {
/// let store = SqliteStore::open("/var/lib/tollgate/tollgate.db".as_ref())?;
/// let (record, key) = store
///     .create(KeySpec { name: "ci".into(), ..KeySpec::default() })
///     .await?;
/// println!("{}: {}", record.id, key.expose()); // shown once, never stored
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    clock: Clock,
    /// For connections of their own (the ledger's writer).
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its folder if needed) the database at
    /// `path`, and applies the migrations it lacks.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = connect(path, migrate::MIGRATIONS)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            clock: Arc::new(unix_now),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Reads the time (Unix seconds) from `clock` instead of the system's,
    /// for tests of expiry and rotation. Default: the system clock.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Runs `work` with the connection and the time, on the blocking pool.
    fn run<T, F>(&self, work: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        let clock = self.clock.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // A panic while the lock was held cannot leave the
                // connection half-written: an open transaction rolls back
                // when it is dropped.
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                work(&mut conn, clock())
            })
            .await
            .map_err(|e| StoreError(format!("the store's task failed: {e}")))?
        })
    }
}

/// Opens `path` with the settings every connection needs and migrates it
/// with `steps`.
fn connect(path: &Path, steps: &[&str]) -> Result<Connection, StoreError> {
    let shown = path.display();
    let fail = |e: rusqlite::Error| StoreError(format!("cannot open {shown}: {}", describe(&e)));
    create_file(path)?;
    // No URI flag: a path that starts with `file:` is a path.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        // A file system without shared memory (some network mounts):
        // the gateway and `tollgate keys` could not share the file.
        return Err(StoreError(format!(
            "cannot open {shown}: the file system does not support SQLite's WAL mode (journal mode is `{mode}`)"
        )));
    }
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(fail)?;
    migrate::migrate(&mut conn, steps)
        .map_err(|e| StoreError(format!("cannot open {shown}: {}", e.0)))?;
    Ok(conn)
}

/// Creates the file (mode 0600) and its folder (0700) if they do not
/// exist, so that SQLite never creates them with the process's umask.
fn create_file(path: &Path) -> Result<(), StoreError> {
    let shown = path.display();
    if path.is_dir() {
        return Err(StoreError(format!(
            "cannot open {shown}: it is a directory, not a database file"
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError(format!("cannot create {shown}: {e}"))),
    }
}

/// An SQLite error in words a user can act on.
fn describe(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => format!(
            "the database stayed locked by another process for more than {} s",
            BUSY_TIMEOUT.as_secs()
        ),
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "the file is not a tollgate store (not an SQLite database)".into()
        }
        _ => e.to_string(),
    }
}

/// An SQLite error as a [`StoreError`].
fn store_error(e: rusqlite::Error) -> StoreError {
    StoreError(describe(&e))
}

impl KeyStore for SqliteStore {
    fn lookup(&self, hash: &KeyHash) -> StoreFuture<'_, Option<KeyRecord>> {
        let hex = hash.to_hex();
        self.run(move |conn, _| keys::lookup(conn, &hex))
    }

    fn revision(&self) -> StoreFuture<'_, u64> {
        self.run(|conn, _| keys::revision(conn))
    }

    fn has_active_keys(&self) -> StoreFuture<'_, bool> {
        self.run(keys::has_active)
    }

    fn touch(&self, used: Vec<(String, i64)>) -> StoreFuture<'_, ()> {
        if used.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        self.run(move |conn, _| keys::touch(conn, &used))
    }
}

impl KeyAdmin for SqliteStore {
    fn create(&self, spec: KeySpec) -> StoreFuture<'_, (KeyRecord, NewKey)> {
        self.run(move |conn, now| keys::create(conn, now, &spec))
    }

    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        self.run(|conn, _| keys::list(conn))
    }

    fn revoke<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let id = id.to_owned();
        self.run(move |conn, now| keys::revoke(conn, now, &id))
    }

    fn rotate<'a>(
        &'a self,
        id: &'a str,
        grace: Duration,
    ) -> StoreFuture<'a, Option<(KeyRecord, NewKey)>> {
        let id = id.to_owned();
        self.run(move |conn, now| keys::rotate(conn, now, &id, grace))
    }
}

impl LedgerStore for SqliteStore {
    fn writer(&self) -> Result<Box<dyn LedgerWriter>, StoreError> {
        Ok(Box::new(ledger::SqliteLedgerWriter::open(&self.path)?))
    }

    fn generation<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<LedgerRow>> {
        let id = id.to_owned();
        self.run(move |conn, _| ledger::generation(conn, &id))
    }

    fn report(&self, query: ReportQuery) -> StoreFuture<'_, Vec<ReportRow>> {
        self.run(move |conn, _| ledger::report(conn, &query))
    }

    fn spend(&self, scope: SpendScope, since_ms: i64) -> StoreFuture<'_, Nanos> {
        self.run(move |conn, _| ledger::spend(conn, &scope, since_ms))
    }
}
