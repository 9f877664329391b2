//! The `budgets` table (one budget per scope), its revision, and the
//! ledger's spend per scope since a time (the `requests` table).
//!
//! Setting or deleting a budget bumps `budget_revision` in the same
//! transaction, so a gateway that sees the new revision reads the change.

use rusqlite::{params, Connection, TransactionBehavior};

use super::{store_error, SqliteStore};
use crate::budget::{BudgetAdmin, BudgetSpec, BudgetStore, Period, Scope};
use crate::store::{StoreError, StoreFuture};
use crate::usage::Nanos;

fn list(conn: &Connection) -> Result<Vec<BudgetSpec>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT kind, value, amount_nanos, period, soft FROM budgets ORDER BY kind, value",
        )
        .map_err(store_error)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })
        .map_err(store_error)?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, value, amount, period, soft) = row.map_err(store_error)?;
        // A row this tollgate cannot read (written by a newer one) is
        // an error, not a budget silently dropped.
        let bad = |e: String| StoreError(format!("budget `{kind}:{value}`: {e}"));
        out.push(BudgetSpec {
            scope: Scope::from_parts(&kind, &value).map_err(bad)?,
            amount: Nanos(u64::try_from(amount).map_err(|_| bad("negative amount".into()))?),
            period: Period::parse(&period).map_err(bad)?,
            soft,
        });
    }
    Ok(out)
}

fn revision(conn: &Connection) -> Result<u64, StoreError> {
    let v: i64 = conn
        .query_row("SELECT value FROM budget_revision WHERE id = 1", [], |r| {
            r.get(0)
        })
        .map_err(store_error)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

fn spent_since(conn: &Connection, scope: &Scope, since_ms: i64) -> Result<Nanos, StoreError> {
    const SUM: &str = "SELECT COALESCE(SUM(cost_nanos), 0) FROM requests WHERE created_at_ms >= ?1";
    let sum: i64 = match scope {
        Scope::Global => conn.query_row(SUM, params![since_ms], |r| r.get(0)),
        Scope::Key(v) => conn.query_row(
            &format!("{SUM} AND key_id = ?2"),
            params![since_ms, &**v],
            |r| r.get(0),
        ),
        Scope::User(v) => conn.query_row(
            &format!("{SUM} AND user = ?2"),
            params![since_ms, &**v],
            |r| r.get(0),
        ),
        Scope::Team(v) => conn.query_row(
            &format!("{SUM} AND team = ?2"),
            params![since_ms, &**v],
            |r| r.get(0),
        ),
        Scope::Tag(v) => conn.query_row(
            &format!("{SUM} AND EXISTS (SELECT 1 FROM json_each(requests.tags) WHERE json_each.value = ?2)"),
            params![since_ms, &**v],
            |r| r.get(0),
        ),
    }
    .map_err(store_error)?;
    Ok(Nanos(u64::try_from(sum).unwrap_or(0)))
}

fn set(conn: &mut Connection, now: i64, spec: &BudgetSpec) -> Result<(), StoreError> {
    let amount =
        i64::try_from(spec.amount.0).map_err(|_| StoreError("the amount is too large".into()))?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    tx.execute(
        "INSERT INTO budgets (kind, value, amount_nanos, period, soft, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (kind, value) DO UPDATE SET
           amount_nanos = excluded.amount_nanos, period = excluded.period,
           soft = excluded.soft, updated_at = excluded.updated_at",
        params![
            spec.scope.kind(),
            spec.scope.value(),
            amount,
            spec.period.as_str(),
            spec.soft,
            now
        ],
    )
    .map_err(store_error)?;
    bump(&tx)?;
    tx.commit().map_err(store_error)
}

fn delete(conn: &mut Connection, scope: &Scope) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    let n = tx
        .execute(
            "DELETE FROM budgets WHERE kind = ?1 AND value = ?2",
            params![scope.kind(), scope.value()],
        )
        .map_err(store_error)?;
    if n > 0 {
        bump(&tx)?;
    }
    tx.commit().map_err(store_error)?;
    Ok(n > 0)
}

fn bump(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE budget_revision SET value = value + 1 WHERE id = 1",
        [],
    )
    .map_err(store_error)?;
    Ok(())
}

impl BudgetStore for SqliteStore {
    fn budgets(&self) -> StoreFuture<'_, Vec<BudgetSpec>> {
        self.run(|conn, _| list(conn))
    }

    fn budget_revision(&self) -> StoreFuture<'_, u64> {
        self.run(|conn, _| revision(conn))
    }

    fn spent_since<'a>(&'a self, scope: &'a Scope, since_ms: i64) -> StoreFuture<'a, Nanos> {
        let scope = scope.clone();
        self.run(move |conn, _| spent_since(conn, &scope, since_ms))
    }
}

impl BudgetAdmin for SqliteStore {
    fn set_budget(&self, spec: BudgetSpec) -> StoreFuture<'_, ()> {
        self.run(move |conn, now| set(conn, now, &spec))
    }

    fn delete_budget<'a>(&'a self, scope: &'a Scope) -> StoreFuture<'a, bool> {
        let scope = scope.clone();
        self.run(move |conn, _| delete(conn, &scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    fn budget(label: &str, usd: u64, period: Period, soft: bool) -> BudgetSpec {
        BudgetSpec {
            scope: Scope::parse(label).unwrap(),
            amount: Nanos(usd * crate::usage::NANOS_PER_USD),
            period,
            soft,
        }
    }

    #[tokio::test]
    async fn budgets_are_set_replaced_and_deleted_each_bumping_the_revision() {
        let (_dir, store) = open();
        assert!(store.budgets().await.unwrap().is_empty());
        let r0 = store.budget_revision().await.unwrap();
        store
            .set_budget(budget("team:ml", 50, Period::Monthly, false))
            .await
            .unwrap();
        store
            .set_budget(budget("global", 500, Period::None, true))
            .await
            .unwrap();
        // The same scope again replaces it.
        store
            .set_budget(budget("team:ml", 70, Period::Weekly, true))
            .await
            .unwrap();
        let r1 = store.budget_revision().await.unwrap();
        assert!(r1 > r0);
        assert_eq!(
            store.budgets().await.unwrap(),
            [
                budget("global", 500, Period::None, true),
                budget("team:ml", 70, Period::Weekly, true)
            ]
        );
        let ml = Scope::parse("team:ml").unwrap();
        assert!(store.delete_budget(&ml).await.unwrap());
        assert!(!store.delete_budget(&ml).await.unwrap());
        assert!(store.budget_revision().await.unwrap() > r1);
        assert_eq!(store.budgets().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_ledgers_spend_is_summed_per_scope_since_a_time() {
        let (_dir, store) = open();
        let rows = [
            // id, time, key, user, team, tags, cost
            ("r1", 1_000, "k1", "ana", "ml", r#"["ci","x"]"#, Some(10)),
            ("r2", 2_000, "k1", "ana", "ml", r#"[]"#, Some(20)),
            ("r3", 2_000, "k2", "bob", "ops", r#"["ci"]"#, Some(40)),
            ("r4", 3_000, "k2", "bob", "ops", r#"["cix"]"#, None),
        ];
        store
            .run(move |conn, _| {
                for (id, t, key, user, team, tags, cost) in rows {
                    conn.execute(
                        "INSERT INTO requests (id, created_at_ms, key_id, user, team, tags, format, requested_model, cost_nanos, duration_ms, status, streamed)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'openai-chat', 'm', ?7, 1, 200, 0)",
                        params![id, t, key, user, team, tags, cost],
                    )
                    .map_err(store_error)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let spent = |label: &str, since: i64| {
            let store = store.clone();
            let scope = Scope::parse(label).unwrap();
            async move { store.spent_since(&scope, since).await.unwrap().0 }
        };
        assert_eq!(spent("global", 0).await, 70);
        assert_eq!(spent("global", 2_000).await, 60);
        assert_eq!(spent("key:k1", 0).await, 30);
        assert_eq!(spent("user:bob", 0).await, 40);
        assert_eq!(spent("team:ml", 1_500).await, 20);
        // A tag is matched whole, not as a substring.
        assert_eq!(spent("tag:ci", 0).await, 50);
        assert_eq!(spent("tag:cix", 0).await, 0);
        assert_eq!(spent("team:none", 0).await, 0);
    }
}
