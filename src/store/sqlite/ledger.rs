//! The `requests` table (migration 2): one row per [`LedgerRow`].
//!
//! Counts and money are `u64` in Rust and `INTEGER` (i64) in SQLite.
//! Token counts are stored at most [`MAX_TOKENS`] and costs at most
//! [`MAX_COST`] (a summary has them so already): never a real count or
//! cost, and small enough that the sums `/v1/report` and the budgets ask
//! for do not overflow SQLite's integers, which would fail them. `tags`
//! and `attempts` are JSON arrays of strings.

use std::path::Path;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{connect, migrate, store_error};
use crate::auth::AuthMethod;
use crate::canonical::Usage;
use crate::format::WireFormat;
use crate::routing::CredentialKind;
use crate::store::{GroupBy, LedgerWriter, ReportQuery, ReportRow, SpendScope, StoreError};
use crate::usage::summary::{MAX_COST, MAX_TOKENS};
use crate::usage::{LedgerRow, Nanos};

/// The columns [`row`] reads and [`INSERT`] writes, in their order.
macro_rules! columns {
    () => {
        "id, created_at_ms, key_id, key_name, user, team, tags, format, requested_model, \
         provider, model, credential, input_tokens, output_tokens, cache_read_tokens, \
         cache_write_tokens, reasoning_tokens, cost_nanos, list_cost_nanos, ttft_ms, \
         duration_ms, status, error, finish_reason, streamed, disconnected, estimated, attempts, \
         key_method"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO requests (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
     ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29) ON CONFLICT (id) DO NOTHING"
);

const SELECT_BY_ID: &str = concat!("SELECT ", columns!(), " FROM requests WHERE id = ?1");

/// The ledger's own connection to the store's file, held by the ledger's
/// writer thread.
pub(super) struct SqliteLedgerWriter {
    conn: Connection,
    // Dropped with the writer, which stops the checkpointer.
    _checkpoints: std::sync::mpsc::Sender<()>,
}

/// How often the checkpointer moves the log's pages into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Checkpoints the store's write-ahead log from a thread of its own, until
/// `stop` is dropped. A checkpoint syncs the file to disk; made by the
/// writer itself (SQLite's automatic checkpoint, every 1000 pages), it
/// would hold back every answer waiting for its row meanwhile.
fn checkpointer(path: &Path, stop: std::sync::mpsc::Receiver<()>) -> Result<(), StoreError> {
    let conn = connect(path, migrate::MIGRATIONS)?;
    std::thread::Builder::new()
        .name("tollgate-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stop.recv_timeout(CHECKPOINT_EVERY)
            {
                // PASSIVE never waits for the writer; a failed checkpoint
                // is retried at the next tick (the log only grows).
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "the ledger's checkpoint failed; retrying");
                }
            }
        })
        .map_err(|e| StoreError(format!("cannot start the ledger's checkpointer: {e}")))?;
    Ok(())
}

impl SqliteLedgerWriter {
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = connect(path, migrate::MIGRATIONS)?;
        // In WAL mode, NORMAL writes each commit to the log before it
        // returns and syncs the log to disk only at checkpoints: a commit
        // survives the process being killed (the operating system has the
        // log's pages), not a power loss or kernel crash in the moments
        // after it. FULL would sync on every commit, which is what the
        // batching exists to avoid paying per request.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(store_error)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(store_error)?;
        let (tx, rx) = std::sync::mpsc::channel();
        checkpointer(path, rx)?;
        Ok(SqliteLedgerWriter {
            conn,
            _checkpoints: tx,
        })
    }
}

impl LedgerWriter for SqliteLedgerWriter {
    fn append(&mut self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        // IMMEDIATE: take the write lock at the start, so that a busy
        // database (`tollgate keys` writing) is waited for.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_error)?;
        {
            let mut insert = tx.prepare_cached(INSERT).map_err(store_error)?;
            for r in rows {
                insert.execute(insert_params(r)).map_err(store_error)?;
            }
        }
        tx.commit().map_err(store_error)
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn json_list<S: AsRef<str>>(list: &[S]) -> String {
    let list: Vec<&str> = list.iter().map(AsRef::as_ref).collect();
    // A list of strings always serializes.
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

fn insert_params(r: &LedgerRow) -> [SqlValue; 29] {
    let text = |s: Option<&str>| s.map_or(SqlValue::Null, |s| SqlValue::Text(s.to_owned()));
    let tokens = |n: u64| SqlValue::Integer(int(n.min(MAX_TOKENS)));
    let cost = |n: Option<Nanos>| {
        n.map_or(SqlValue::Null, |n| {
            SqlValue::Integer(int(n.min(MAX_COST).0))
        })
    };
    let opt = |n: Option<u64>| n.map_or(SqlValue::Null, |n| SqlValue::Integer(int(n)));
    let u = &r.usage;
    [
        SqlValue::Text(r.id.to_string()),
        SqlValue::Integer(r.created_at_ms),
        text(r.key_id.as_deref()),
        text(r.key_name.as_deref()),
        text(r.user.as_deref()),
        text(r.team.as_deref()),
        SqlValue::Text(json_list(&r.tags)),
        SqlValue::Text(r.format.to_owned()),
        SqlValue::Text(r.requested_model.clone()),
        text(r.provider.as_deref()),
        text(r.model.as_deref()),
        text(r.credential),
        tokens(u.input_tokens),
        tokens(u.output_tokens),
        tokens(u.cache_read_tokens),
        tokens(u.cache_write_tokens),
        tokens(u.reasoning_tokens),
        cost(r.cost),
        cost(r.list_cost),
        opt(r.ttft_ms),
        SqlValue::Integer(int(r.duration_ms)),
        SqlValue::Integer(i64::from(r.status)),
        text(r.error.as_deref()),
        text(r.finish_reason.as_deref()),
        SqlValue::Integer(i64::from(r.streamed)),
        SqlValue::Integer(i64::from(r.disconnected)),
        SqlValue::Integer(i64::from(r.estimated)),
        SqlValue::Text(json_list(&r.attempts)),
        text(r.key_method),
    ]
}

fn strings(row: &Row<'_>, i: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn count(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(i)?).unwrap_or(0))
}

fn opt_count(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row
        .get::<_, Option<i64>>(i)?
        .map(|n| u64::try_from(n).unwrap_or(0)))
}

fn arc(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Arc<str>>> {
    Ok(row.get::<_, Option<String>>(i)?.map(Arc::from))
}

/// The `'static` name a row's `format` column holds (`unknown` for a
/// name this tollgate does not know: a newer one wrote it).
fn format_name(name: &str) -> &'static str {
    [
        WireFormat::OpenAiChat,
        WireFormat::OpenAiResponses,
        WireFormat::Anthropic,
        WireFormat::Gemini,
    ]
    .into_iter()
    .map(WireFormat::as_str)
    .find(|f| *f == name)
    .unwrap_or("unknown")
}

/// The `'static` name a row's `key_method` column holds.
fn method_name(name: &str) -> &'static str {
    [
        AuthMethod::Key,
        AuthMethod::StaticKey,
        AuthMethod::Jwt,
        AuthMethod::None,
    ]
    .into_iter()
    .map(AuthMethod::as_str)
    .find(|m| *m == name)
    .unwrap_or("unknown")
}

fn credential_name(name: &str) -> &'static str {
    [
        CredentialKind::Gateway,
        CredentialKind::Byok,
        CredentialKind::Subscription,
    ]
    .into_iter()
    .map(CredentialKind::as_str)
    .find(|c| *c == name)
    .unwrap_or("unknown")
}

fn row(row: &Row<'_>) -> rusqlite::Result<LedgerRow> {
    Ok(LedgerRow {
        id: row.get::<_, String>(0)?.into(),
        created_at_ms: row.get(1)?,
        key_id: arc(row, 2)?,
        key_name: arc(row, 3)?,
        user: arc(row, 4)?,
        team: arc(row, 5)?,
        tags: strings(row, 6)?.into_iter().map(Arc::from).collect(),
        format: format_name(&row.get::<_, String>(7)?),
        requested_model: row.get(8)?,
        provider: arc(row, 9)?,
        model: arc(row, 10)?,
        credential: row
            .get::<_, Option<String>>(11)?
            .map(|c| credential_name(&c)),
        usage: Usage {
            input_tokens: count(row, 12)?,
            output_tokens: count(row, 13)?,
            cache_read_tokens: count(row, 14)?,
            cache_write_tokens: count(row, 15)?,
            reasoning_tokens: count(row, 16)?,
            cache_write_1h_tokens: 0,
        },
        cost: opt_count(row, 17)?.map(Nanos),
        list_cost: opt_count(row, 18)?.map(Nanos),
        ttft_ms: opt_count(row, 19)?,
        duration_ms: count(row, 20)?,
        status: u16::try_from(row.get::<_, i64>(21)?).unwrap_or(0),
        error: arc(row, 22)?,
        finish_reason: row.get(23)?,
        streamed: row.get(24)?,
        disconnected: row.get(25)?,
        estimated: row.get(26)?,
        attempts: strings(row, 27)?,
        key_method: row.get::<_, Option<String>>(28)?.map(|m| method_name(&m)),
    })
}

pub(super) fn generation(conn: &mut Connection, id: &str) -> Result<Option<LedgerRow>, StoreError> {
    conn.prepare_cached(SELECT_BY_ID)
        .and_then(|mut s| s.query_row([id], row).optional())
        .map_err(store_error)
}

/// The SQL expression a report groups by, and the join it needs.
fn group_expr(group_by: GroupBy) -> (&'static str, &'static str) {
    match group_by {
        // Integer division: a millisecond before midnight is the day before.
        GroupBy::Day => (
            "strftime('%Y-%m-%d', r.created_at_ms / 1000, 'unixepoch')",
            "",
        ),
        GroupBy::Model => ("COALESCE(r.model, r.requested_model)", ""),
        GroupBy::Provider => ("r.provider", ""),
        GroupBy::User => ("r.user", ""),
        GroupBy::Team => ("r.team", ""),
        GroupBy::Tag => ("t.value", " LEFT JOIN json_each(r.tags) AS t"),
        GroupBy::CredentialType => ("r.credential", ""),
    }
}

pub(super) fn report(conn: &mut Connection, q: &ReportQuery) -> Result<Vec<ReportRow>, StoreError> {
    let (group, join) = group_expr(q.group_by);
    let by_key = if q.key_id.is_some() {
        " AND r.key_id = ?3 AND r.key_method IS ?4"
    } else {
        ""
    };
    // Days read in time order; other groups, the costliest first.
    let order = match q.group_by {
        GroupBy::Day => "g",
        _ => "total_cost DESC, g",
    };
    let sql = format!(
        "SELECT {group} AS g, COALESCE(SUM(r.cost_nanos), 0) AS total_cost,
                COALESCE(SUM(r.list_cost_nanos), 0), SUM(r.input_tokens), SUM(r.output_tokens),
                SUM(r.cache_read_tokens), SUM(r.cache_write_tokens), SUM(r.reasoning_tokens),
                COUNT(*)
         FROM requests AS r{join}
         WHERE r.created_at_ms >= ?1 AND r.created_at_ms < ?2{by_key}
         GROUP BY g ORDER BY {order}"
    );
    let mut args: Vec<SqlValue> = vec![SqlValue::Integer(q.start_ms), SqlValue::Integer(q.end_ms)];
    if let Some(key) = &q.key_id {
        args.push(SqlValue::Text(key.clone()));
        args.push(q.key_method.clone().map_or(SqlValue::Null, SqlValue::Text));
    }
    let mut stmt = conn.prepare_cached(&sql).map_err(store_error)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok(ReportRow {
                group: r.get(0)?,
                total_cost: Nanos(count(r, 1)?),
                market_cost: Nanos(count(r, 2)?),
                input_tokens: count(r, 3)?,
                output_tokens: count(r, 4)?,
                cached_input_tokens: count(r, 5)?,
                cache_creation_input_tokens: count(r, 6)?,
                reasoning_tokens: count(r, 7)?,
                request_count: count(r, 8)?,
            })
        })
        .map_err(store_error)?;
    rows.collect::<Result<_, _>>().map_err(store_error)
}

pub(super) fn spend(
    conn: &mut Connection,
    scope: &SpendScope,
    since_ms: i64,
) -> Result<Nanos, StoreError> {
    let (filter, value) = match scope {
        SpendScope::Key(k) => ("key_id = ?2", Some(k)),
        SpendScope::User(u) => ("user = ?2", Some(u)),
        SpendScope::Team(t) => ("team = ?2", Some(t)),
        SpendScope::Tag(t) => (
            "EXISTS (SELECT 1 FROM json_each(requests.tags) WHERE value = ?2)",
            Some(t),
        ),
        SpendScope::Global => ("1", None),
    };
    let sql = format!(
        "SELECT COALESCE(SUM(cost_nanos), 0) FROM requests WHERE created_at_ms >= ?1 AND {filter}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(store_error)?;
    let total: i64 = match value {
        Some(v) => stmt.query_row(params![since_ms, v], |r| r.get(0)),
        None => stmt.query_row(params![since_ms], |r| r.get(0)),
    }
    .map_err(store_error)?;
    Ok(Nanos(u64::try_from(total).unwrap_or(0)))
}
