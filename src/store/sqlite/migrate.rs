//! The store's schema, as an ordered list of steps.
//!
//! `PRAGMA user_version` holds how many steps a file has had. Opening it
//! applies the rest in one `IMMEDIATE` transaction, so that two processes
//! opening a new file at once do not both migrate it, and a step that
//! fails leaves the file as it was. Steps are only ever appended: a step
//! that shipped is never edited.

use rusqlite::{Connection, TransactionBehavior};

use super::store_error;
use crate::store::StoreError;

/// Every step, oldest first.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: gateway keys, and the revision the `Auth` layer polls to know
    // when to forget the keys it cached.
    r#"
    CREATE TABLE keys (
        id           TEXT PRIMARY KEY NOT NULL,
        name         TEXT NOT NULL,
        hash         TEXT NOT NULL UNIQUE,
        prefix       TEXT NOT NULL,
        user         TEXT,
        team         TEXT,
        tags         TEXT NOT NULL DEFAULT '[]',
        models       TEXT NOT NULL DEFAULT '[]',
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        revoked_at   INTEGER,
        last_used_at INTEGER,
        rotated_from TEXT REFERENCES keys (id) ON DELETE SET NULL
    ) STRICT;
    CREATE INDEX keys_by_created_at ON keys (created_at);
    CREATE TABLE revision (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    ) STRICT;
    INSERT INTO revision (id, value) VALUES (1, 0);
    "#,
    // 2: the spend ledger, one row per request that reached a provider
    // (see `usage::LedgerRow`). Money in nano-dollars; NULL cost: the
    // model's price was unknown. Times in Unix milliseconds. `tags` and
    // `attempts` are JSON arrays. Every index is paid for on each insert:
    // only time and key are indexed (a user's, team's or tag's spend is
    // read from the period's time range, once per budget), and the rows
    // live in the id's B-tree (no rowid: ids are UUIDv7, in time order).
    r#"
    CREATE TABLE requests (
        id                 TEXT PRIMARY KEY NOT NULL,
        created_at_ms      INTEGER NOT NULL,
        key_id             TEXT,
        key_name           TEXT,
        user               TEXT,
        team               TEXT,
        tags               TEXT NOT NULL DEFAULT '[]',
        format             TEXT NOT NULL,
        requested_model    TEXT NOT NULL,
        provider           TEXT,
        model              TEXT,
        credential         TEXT,
        input_tokens       INTEGER NOT NULL DEFAULT 0,
        output_tokens      INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
        cost_nanos         INTEGER,
        list_cost_nanos    INTEGER,
        ttft_ms            INTEGER,
        duration_ms        INTEGER NOT NULL,
        status             INTEGER NOT NULL,
        error              TEXT,
        finish_reason      TEXT,
        streamed           INTEGER NOT NULL,
        disconnected       INTEGER NOT NULL DEFAULT 0,
        estimated          INTEGER NOT NULL DEFAULT 0,
        attempts           TEXT NOT NULL DEFAULT '[]'
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX requests_by_time ON requests (created_at_ms);
    CREATE INDEX requests_by_key ON requests (key_id, created_at_ms);
    "#,
    // 3: budgets, one per scope (`kind` global|key|user|team|tag, `value`
    // empty for global), in nano-dollars per period; and the revision a
    // running gateway polls to read them again.
    r#"
    CREATE TABLE budgets (
        kind         TEXT NOT NULL,
        value        TEXT NOT NULL DEFAULT '',
        amount_nanos INTEGER NOT NULL CHECK (amount_nanos >= 0),
        period       TEXT NOT NULL,
        soft         INTEGER NOT NULL DEFAULT 0,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (kind, value)
    ) STRICT;
    CREATE TABLE budget_revision (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    ) STRICT;
    INSERT INTO budget_revision (id, value) VALUES (1, 0);
    "#,
    // 4: a key's own rate limits, requests and tokens per minute (NULL:
    // none; the config's `[[rate_limits]]` may still apply).
    r#"
    ALTER TABLE keys ADD COLUMN rpm INTEGER CHECK (rpm > 0);
    ALTER TABLE keys ADD COLUMN tpm INTEGER CHECK (tpm > 0);
    "#,
    // 5: how a ledger row's principal authenticated (`key`, `static-key`,
    // `jwt`, `none`), which with `key_id` tells whose row it is. Rows
    // written before have none: only an open gateway's viewer sees them.
    r#"
    ALTER TABLE requests ADD COLUMN key_method TEXT;
    "#,
];

/// Applies the `steps` that `conn`'s file lacks.
pub(super) fn migrate(conn: &mut Connection, steps: &[&str]) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(store_error)?;
    let known = steps.len();
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > known {
        return Err(StoreError(format!(
            "its schema is version {version}, newer than this tollgate knows ({known}): upgrade tollgate"
        )));
    }
    for (i, step) in steps.iter().enumerate().skip(applied) {
        tx.execute_batch(step)
            .map_err(|e| StoreError(format!("migration {} failed: {}", i + 1, store_error(e).0)))?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )
        .map_err(store_error)?;
    }
    tx.commit().map_err(store_error)
}
