//! The `keys` table: one row per gateway key.
//!
//! A row holds the key's id, name, owner (user, team), tags and model
//! patterns (JSON arrays), its times (created, expires, revoked, last
//! used; Unix seconds), the id of the key it replaced, the SHA-256 of the
//! key in hex and the `tg_` + 4 characters that lists show. Never the key:
//! it is returned once by [`create`] and [`rotate`] and forgotten.
//!
//! Every change to which keys work (create, revoke, rotate) bumps the
//! `revision` row in the same transaction, so a reader that sees the new
//! revision sees the change.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::store_error;
use crate::auth::{new_key_id, KeyLimits, KeyRecord, NewKey};
use crate::store::{KeySpec, StoreError};

/// The columns [`record`] reads, in its order; a macro so that the
/// statements below are `concat!`ed constants, not strings built per call.
macro_rules! columns {
    () => {
        "id, name, prefix, user, team, tags, models, created_at, expires_at, revoked_at, last_used_at, rotated_from, rpm, tpm"
    };
}

const SELECT_BY_ID: &str = concat!("SELECT ", columns!(), " FROM keys WHERE id = ?1");
const SELECT_BY_HASH: &str = concat!("SELECT ", columns!(), " FROM keys WHERE hash = ?1");
// rowid breaks ties between keys made in the same second.
const SELECT_ALL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM keys ORDER BY created_at DESC, rowid DESC"
);

fn record(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        user: row.get(3)?,
        team: row.get(4)?,
        tags: json_list(row, 5)?,
        models: json_list(row, 6)?,
        created_at: row.get(7)?,
        expires_at: row.get(8)?,
        revoked_at: row.get(9)?,
        last_used_at: row.get(10)?,
        rotated_from: row.get(11)?,
        limits: KeyLimits {
            rpm: limit(row, 12, |v| u32::try_from(v).ok().and_then(NonZeroU32::new))?,
            tpm: limit(row, 13, |v| u64::try_from(v).ok().and_then(NonZeroU64::new))?,
        },
    })
}

/// A limit column: NULL is none; anything but a positive integer that
/// fits is an error rather than a limit silently dropped.
fn limit<T>(row: &Row<'_>, i: usize, valid: fn(i64) -> Option<T>) -> rusqlite::Result<Option<T>> {
    let Some(v) = row.get::<_, Option<i64>>(i)? else {
        return Ok(None);
    };
    valid(v).map(Some).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Integer,
            format!("{v} is not a rate limit (a positive integer)").into(),
        )
    })
}

/// A limit as the column keeps it.
fn limit_column<T: Into<u64>>(limit: Option<T>) -> Option<i64> {
    limit.map(|v| i64::try_from(v.into()).unwrap_or(i64::MAX))
}

fn json_list(row: &Row<'_>, i: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn to_json(list: &[String]) -> String {
    // A list of strings always serializes.
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn write(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    // IMMEDIATE: take the write lock at the start, so that a busy database
    // is waited for (busy timeout) instead of failing at the first write.
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)
}

fn bump_revision(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("UPDATE revision SET value = value + 1 WHERE id = 1", [])
        .map_err(store_error)?;
    Ok(())
}

fn get(conn: &Connection, id: &str) -> Result<Option<KeyRecord>, StoreError> {
    conn.query_row(SELECT_BY_ID, [id], record)
        .optional()
        .map_err(store_error)
}

pub(super) fn lookup(
    conn: &mut Connection,
    hash_hex: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    conn.prepare_cached(SELECT_BY_HASH)
        .and_then(|mut s| s.query_row([hash_hex], record).optional())
        .map_err(store_error)
}

pub(super) fn revision(conn: &mut Connection) -> Result<u64, StoreError> {
    let value: i64 = conn
        .prepare_cached("SELECT value FROM revision WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(store_error)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

pub(super) fn has_active(conn: &mut Connection, now: i64) -> Result<bool, StoreError> {
    // The same rule as `KeyRecord::unusable_at`.
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM keys
             WHERE (revoked_at IS NULL OR revoked_at > ?1)
               AND (expires_at IS NULL OR expires_at > ?1))",
        [now],
        |r| r.get(0),
    )
    .map_err(store_error)
}

pub(super) fn touch(conn: &mut Connection, used: &[(String, i64)]) -> Result<(), StoreError> {
    let tx = write(conn)?;
    {
        // Never moves a time backwards: batches from several gateways may
        // arrive out of order.
        let mut update = tx
            .prepare_cached(
                "UPDATE keys SET last_used_at = ?2
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
            )
            .map_err(store_error)?;
        for (id, at) in used {
            update.execute(params![id, at]).map_err(store_error)?;
        }
    }
    tx.commit().map_err(store_error)
}

/// Seconds in `d`, rounded up (a key asked to live 1.5 s lives 2 s, not 1).
fn ceil_secs(d: Duration) -> i64 {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Inserts a new key for `spec`; the caller commits.
fn insert(
    tx: &Transaction<'_>,
    now: i64,
    spec: &KeySpec,
    expires_at: Option<i64>,
    rotated_from: Option<&str>,
) -> Result<(KeyRecord, NewKey), StoreError> {
    let key = NewKey::generate();
    let record = KeyRecord {
        id: new_key_id(),
        name: spec.name.clone(),
        prefix: key.display_prefix(),
        user: spec.user.clone(),
        team: spec.team.clone(),
        tags: spec.tags.clone(),
        models: spec.models.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        rotated_from: rotated_from.map(str::to_owned),
        limits: spec.limits,
    };
    tx.execute(
        "INSERT INTO keys (id, name, hash, prefix, user, team, tags, models, created_at, expires_at, rotated_from, rpm, tpm)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            record.id,
            record.name,
            key.hash().to_hex(),
            record.prefix,
            record.user,
            record.team,
            to_json(&record.tags),
            to_json(&record.models),
            record.created_at,
            record.expires_at,
            record.rotated_from,
            limit_column(record.limits.rpm.map(|v| v.get())),
            limit_column(record.limits.tpm.map(|v| v.get())),
        ],
    )
    .map_err(store_error)?;
    bump_revision(tx)?;
    Ok((record, key))
}

pub(super) fn create(
    conn: &mut Connection,
    now: i64,
    spec: &KeySpec,
) -> Result<(KeyRecord, NewKey), StoreError> {
    if spec.name.trim().is_empty() {
        return Err(StoreError("a key needs a name".into()));
    }
    // `ModelPatterns` drops a blank pattern, and none left means every
    // model: a key meant for some models must not end up allowed all.
    if spec.models.iter().any(|m| m.trim().is_empty()) {
        return Err(StoreError("a model pattern must not be empty".into()));
    }
    let expires_at = match spec.expires_in {
        None => None,
        Some(d) => Some(
            now.checked_add(ceil_secs(d))
                .ok_or_else(|| StoreError("the expiry is too far in the future".into()))?,
        ),
    };
    let tx = write(conn)?;
    let made = insert(&tx, now, spec, expires_at, None)?;
    tx.commit().map_err(store_error)?;
    Ok(made)
}

pub(super) fn list(conn: &mut Connection) -> Result<Vec<KeyRecord>, StoreError> {
    let mut stmt = conn.prepare(SELECT_ALL).map_err(store_error)?;
    let rows = stmt.query_map([], record).map_err(store_error)?;
    rows.collect::<Result<_, _>>().map_err(store_error)
}

pub(super) fn revoke(conn: &mut Connection, now: i64, id: &str) -> Result<bool, StoreError> {
    let tx = write(conn)?;
    let changed = tx
        .execute(
            "UPDATE keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )
        .map_err(store_error)?;
    let found = if changed > 0 {
        bump_revision(&tx)?;
        true
    } else {
        get(&tx, id)?.is_some()
    };
    tx.commit().map_err(store_error)?;
    Ok(found)
}

pub(super) fn rotate(
    conn: &mut Connection,
    now: i64,
    id: &str,
    grace: Duration,
) -> Result<Option<(KeyRecord, NewKey)>, StoreError> {
    let tx = write(conn)?;
    let Some(old) = get(&tx, id)? else {
        return Ok(None);
    };
    if old.unusable_at(now).is_some() {
        return Ok(None);
    }
    // A key in its grace period already has a successor: a second one
    // would leave two live keys for one purpose.
    let replaced: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM keys WHERE rotated_from = ?1)",
            [id],
            |r| r.get(0),
        )
        .map_err(store_error)?;
    if replaced {
        return Ok(None);
    }
    let spec = KeySpec {
        name: old.name.clone(),
        user: old.user.clone(),
        team: old.team.clone(),
        tags: old.tags.clone(),
        models: old.models.clone(),
        expires_in: None,
        limits: old.limits,
    };
    // The same end as the old key's: rotating never extends a key's life.
    let made = insert(&tx, now, &spec, old.expires_at, Some(&old.id))?;
    let grace_end = now.saturating_add(ceil_secs(grace));
    let old_end = old.expires_at.map_or(grace_end, |t| t.min(grace_end));
    tx.execute(
        "UPDATE keys SET expires_at = ?2 WHERE id = ?1",
        params![old.id, old_end],
    )
    .map_err(store_error)?;
    tx.commit().map_err(store_error)?;
    Ok(Some(made))
}
