use crate::canonical::Usage;
use crate::store::{GroupBy, LedgerStore, ReportQuery, SpendScope};
use crate::usage::{Ledger, LedgerRow, Nanos};

use super::*;

/// 2025-06-01 00:00:00 UTC, in milliseconds.
const JUNE_1: i64 = 1_748_736_000_000;
const DAY: i64 = 86_400_000;

fn row(id: &str, at: i64, key: &str, model: &str, cost: Option<u64>) -> LedgerRow {
    LedgerRow {
        id: id.into(),
        created_at_ms: at,
        key_id: Some(key.into()),
        key_method: Some("key"),
        format: "openai-chat",
        requested_model: "fast".into(),
        provider: Some("mock-openai".into()),
        model: Some(model.into()),
        credential: Some("gateway"),
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
            cache_read_tokens: 30,
            cache_write_tokens: 5,
            reasoning_tokens: 7,
            cache_write_1h_tokens: 0,
        },
        cost: cost.map(Nanos),
        list_cost: cost.map(Nanos),
        duration_ms: 40,
        status: 200,
        streamed: false,
        ..LedgerRow::default()
    }
}

#[test]
fn a_row_reads_back_exactly_after_the_store_is_reopened() {
    let (_dir, path, store, _) = store_at(0);
    let full = LedgerRow {
        id: "req_full".into(),
        created_at_ms: JUNE_1 + 1,
        key_id: Some("key_abc".into()),
        key_method: Some("key"),
        key_name: Some("ci".into()),
        user: Some("ana".into()),
        team: Some("platform".into()),
        tags: vec!["a".into(), "b \"q\"".into()],
        format: "anthropic",
        requested_model: "claude-x".into(),
        provider: Some("mock-anthropic".into()),
        model: Some("claude-x-2".into()),
        credential: Some("subscription"),
        usage: Usage {
            input_tokens: 1,
            output_tokens: 2,
            cache_read_tokens: 3,
            cache_write_tokens: 4,
            reasoning_tokens: 5,
            cache_write_1h_tokens: 0,
        },
        cost: Some(Nanos(0)),
        list_cost: Some(Nanos(123_456_789_012)),
        ttft_ms: Some(17),
        duration_ms: 900,
        status: 529,
        error: Some("overloaded_error".into()),
        finish_reason: Some("length".into()),
        streamed: true,
        disconnected: true,
        estimated: true,
        attempts: vec!["a/m=529".into(), "b/m=200".into()],
    };
    // No price known: both costs stay unknown, not zero.
    let unknown = LedgerRow {
        cost: None,
        list_cost: None,
        ttft_ms: None,
        ..row("req_unknown", JUNE_1, "k", "m", None)
    };
    let mut writer = store.writer().unwrap();
    writer.append(&[full.clone(), unknown.clone()]).unwrap();
    // The same id again (a retried batch) changes nothing.
    writer
        .append(&[LedgerRow {
            status: 1,
            ..full.clone()
        }])
        .unwrap();
    drop(writer);
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        rt.block_on(store.generation("req_full")).unwrap(),
        Some(full)
    );
    assert_eq!(
        rt.block_on(store.generation("req_unknown")).unwrap(),
        Some(unknown)
    );
    assert_eq!(rt.block_on(store.generation("nope")).unwrap(), None);
}

#[tokio::test]
async fn many_concurrent_records_are_all_committed() {
    let (_dir, path, store, _) = store_at(0);
    let ledger = Ledger::open(Arc::new(store.clone())).unwrap();
    let mut tasks = Vec::new();
    for t in 0..20 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let r = row(&format!("r{t}-{i}"), JUNE_1 + i, "k", "m", Some(1));
                ledger.record(r).0.await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store.spend(SpendScope::Global, 0).await.unwrap(),
        Nanos(2_000)
    );
    // A second connection (another process) sees every row.
    let other = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = other
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2_000);
}

#[tokio::test]
async fn reports_group_in_the_store_and_see_only_what_the_key_may() {
    let (_dir, _path, store, _) = store_at(0);
    let tagged = |mut r: LedgerRow, tags: &[&str], user: Option<&str>| {
        r.tags = tags.iter().map(|t| Arc::from(*t)).collect();
        r.user = user.map(Arc::from);
        r
    };
    let rows = [
        tagged(
            row("1", JUNE_1, "k1", "m-a", Some(1_000)),
            &["x", "y"],
            Some("ana"),
        ),
        tagged(
            row("2", JUNE_1 + DAY - 1, "k1", "m-b", Some(500)),
            &["x"],
            None,
        ),
        tagged(row("3", JUNE_1 + DAY, "k2", "m-a", None), &[], Some("bo")),
        // Outside the range asked for.
        row("4", JUNE_1 + 2 * DAY, "k1", "m-a", Some(7)),
        row("5", JUNE_1 - 1, "k1", "m-a", Some(7)),
    ];
    store.writer().unwrap().append(&rows).unwrap();
    let q = |group_by, key: Option<&str>| ReportQuery {
        start_ms: JUNE_1,
        end_ms: JUNE_1 + 2 * DAY,
        group_by,
        key_id: key.map(str::to_owned),
        key_method: key.map(|_| "key".to_owned()),
    };

    let days = store.report(q(GroupBy::Day, None)).await.unwrap();
    let summary: Vec<_> = days
        .iter()
        .map(|r| (r.group.as_deref(), r.total_cost, r.request_count))
        .collect();
    assert_eq!(
        summary,
        [
            (Some("2025-06-01"), Nanos(1_500), 2),
            (Some("2025-06-02"), Nanos(0), 1)
        ]
    );
    let first = &days[0];
    assert_eq!(
        (
            first.input_tokens,
            first.output_tokens,
            first.cached_input_tokens,
            first.cache_creation_input_tokens,
            first.reasoning_tokens,
            first.market_cost
        ),
        (200, 40, 60, 10, 14, Nanos(1_500))
    );

    let models = store.report(q(GroupBy::Model, Some("k1"))).await.unwrap();
    let summary: Vec<_> = models
        .iter()
        .map(|r| (r.group.as_deref(), r.total_cost))
        .collect();
    assert_eq!(
        summary,
        [(Some("m-a"), Nanos(1_000)), (Some("m-b"), Nanos(500))]
    );

    let tags = store.report(q(GroupBy::Tag, None)).await.unwrap();
    let summary: Vec<_> = tags
        .iter()
        .map(|r| (r.group.as_deref(), r.request_count))
        .collect();
    assert_eq!(summary, [(Some("x"), 2), (Some("y"), 1), (None, 1)]);

    let users = store.report(q(GroupBy::User, Some("k2"))).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].group.as_deref(), Some("bo"));
    assert!(store
        .report(q(GroupBy::CredentialType, Some("nobody")))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn spend_sums_a_scope_since_a_time() {
    let (_dir, _path, store, _) = store_at(0);
    let mut a = row("a", JUNE_1, "k1", "m", Some(10));
    a.user = Some("ana".into());
    a.team = Some("t".into());
    a.tags = vec!["x".into()];
    let mut b = row("b", JUNE_1 + 5, "k2", "m", Some(20));
    b.team = Some("t".into());
    b.tags = vec!["xx".into()];
    let old = row("old", JUNE_1 - 1, "k1", "m", Some(1_000));
    let unknown = row("unknown", JUNE_1, "k1", "m", None);
    store
        .writer()
        .unwrap()
        .append(&[a, b, old, unknown])
        .unwrap();
    for (scope, want) in [
        (SpendScope::Global, 30),
        (SpendScope::Key("k1".into()), 10),
        (SpendScope::User("ana".into()), 10),
        (SpendScope::Team("t".into()), 30),
        (SpendScope::Tag("x".into()), 10),
        (SpendScope::Tag("nope".into()), 0),
    ] {
        assert_eq!(
            store.spend(scope.clone(), JUNE_1).await.unwrap(),
            Nanos(want),
            "{scope:?}"
        );
    }
    assert_eq!(
        store.spend(SpendScope::Global, 0).await.unwrap(),
        Nanos(1_030)
    );
}

#[tokio::test]
async fn absurd_counts_from_upstreams_do_not_break_the_sums() {
    use crate::usage::summary::{MAX_COST, MAX_TOKENS};
    let (_dir, _path, store, _) = store_at(0);
    let absurd = |id: &str| LedgerRow {
        usage: Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
            cache_read_tokens: u64::MAX,
            cache_write_tokens: u64::MAX,
            reasoning_tokens: u64::MAX,
            cache_write_1h_tokens: u64::MAX,
        },
        cost: Some(Nanos(u64::MAX)),
        list_cost: Some(Nanos(u64::MAX)),
        ..row(id, JUNE_1, "k", "m", None)
    };
    let rows: Vec<LedgerRow> = (0..3).map(|i| absurd(&format!("r{i}"))).collect();
    store.writer().unwrap().append(&rows).unwrap();
    // Stored as i64::MAX each, three of them overflowed SQLite's SUM.
    let spent = store.spend(SpendScope::Global, 0).await.unwrap();
    assert_eq!(spent, Nanos(3 * MAX_COST.0));
    let report = store
        .report(ReportQuery {
            start_ms: JUNE_1,
            end_ms: JUNE_1 + DAY,
            group_by: GroupBy::Model,
            key_id: None,
            key_method: None,
        })
        .await
        .unwrap();
    assert_eq!(report[0].input_tokens, 3 * MAX_TOKENS);
    assert_eq!(report[0].total_cost, Nanos(3 * MAX_COST.0));
    let one = store.generation("r0").await.unwrap().unwrap();
    assert_eq!(one.usage.output_tokens, MAX_TOKENS);
}
