//! The ledger's endpoints end to end, in-process: `/v1/generation` and
//! `/v1/report` on the binary's assembly (`server::assemble` with a
//! ledger), with `[auth] keys` in the config; and `tollgate usage` reading
//! the same store through the binary.
//!
//! The rows are recorded through `Ledger::record`, as the gateway's meter
//! does at the end of each answer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tollgate::canonical::Usage;
use tollgate::config::Config;
use tollgate::store::SqliteStore;
use tollgate::usage::{Ledger, LedgerRow, Nanos};

const KEYS: &str = r#"
[auth]
keys = [
  { name = "alice", key = "alice-key-0123456789" },
  { name = "bob", key = "bob-key-0123456789" },
]
"#;

/// 2025-06-01 00:00:00 UTC, in milliseconds.
const JUNE_1: i64 = 1_748_736_000_000;
const DAY: i64 = 86_400_000;

struct Gateway {
    _mock: tollgate::mock::MockUpstream,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    ledger: Ledger,
    base: String,
    client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Gateway {
    async fn start(extra: &str) -> Gateway {
        let mock = tollgate::mock::spawn().await.unwrap();
        let text = common::config_text(&mock.base_url(), extra);
        let config = Config::parse(&text, &|_| None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("tollgate.db");
        let ledger = Ledger::open(Arc::new(SqliteStore::open(&db).unwrap())).unwrap();
        let auth = tollgate::server::authenticator(&config, None).unwrap();
        let app = tollgate::server::assemble(
            &config,
            tollgate::server::Layers::Default,
            auth,
            tollgate::server::Control {
                metering: tollgate::usage::Metering {
                    prices: Default::default(),
                    ledger: Some(ledger.clone()),
                },
                budgets: tollgate::budget::Budgets::new(Vec::new()),
            },
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tollgate::server::serve(
            app,
            listener,
            async move {
                let _ = rx.await;
            },
            Duration::from_secs(1),
        ));
        Gateway {
            _mock: mock,
            _dir: dir,
            db,
            ledger,
            base,
            client: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    /// GETs `path` with `key`; the status and the body's text.
    async fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn get_json(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let (status, text) = self.get(path, key).await;
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, body)
    }
}

fn row(id: &str, key: &str, at: i64) -> LedgerRow {
    LedgerRow {
        id: id.into(),
        created_at_ms: at,
        key_id: Some(key.into()),
        key_method: Some("static-key"),
        key_name: Some(key.into()),
        format: "anthropic",
        requested_model: "claude-x".into(),
        provider: Some("mock-anthropic".into()),
        model: Some("claude-x-1".into()),
        credential: Some("gateway"),
        usage: Usage {
            input_tokens: 1_200,
            output_tokens: 300,
            cache_read_tokens: 1_000,
            cache_write_tokens: 100,
            reasoning_tokens: 50,
            cache_write_1h_tokens: 0,
        },
        cost: Some(Nanos(123_000)),
        list_cost: Some(Nanos(123_000)),
        ttft_ms: Some(42),
        duration_ms: 640,
        status: 200,
        finish_reason: Some("stop".into()),
        streamed: true,
        attempts: vec!["mock-anthropic/claude-x-1=200".into()],
        ..LedgerRow::default()
    }
}

#[tokio::test]
async fn a_generation_is_looked_up_by_its_request_id_in_vercels_shape() {
    let gw = Gateway::start(KEYS).await;
    gw.ledger
        .record(row("req_a1", "alice", JUNE_1 + 3_723_004))
        .0
        .await;
    let (status, text) = gw
        .get("/v1/generation?id=req_a1", Some("alice-key-0123456789"))
        .await;
    assert_eq!(status, 200, "{text}");
    // Costs are JSON numbers of dollars, printed exactly.
    assert!(text.contains(r#""total_cost":0.000123,"#), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({"data": {
            "id": "req_a1",
            "total_cost": 0.000123,
            "usage": 0.000123,
            "model": "claude-x-1",
            "provider_name": "mock-anthropic",
            "streamed": true,
            "finish_reason": "stop",
            "latency": 42,
            "generation_time": 640,
            "native_tokens_prompt": 1_200,
            "native_tokens_completion": 300,
            "native_tokens_reasoning": 50,
            "native_tokens_cached": 1_000,
            "native_tokens_cache_creation": 100,
            "created_at": "2025-06-01T01:02:03.004Z",
            "is_byok": false,
        }})
    );

    // A request paid with the client's own credential, and one whose
    // price is unknown: the cost is `null`, not a zero.
    gw.ledger
        .record(LedgerRow {
            credential: Some("byok"),
            cost: None,
            list_cost: None,
            ..row("req_a2", "alice", JUNE_1)
        })
        .0
        .await;
    let (_, body) = gw
        .get_json("/v1/generation?id=req_a2", Some("alice-key-0123456789"))
        .await;
    assert_eq!(body["data"]["is_byok"], true);
    assert_eq!(body["data"]["total_cost"], Value::Null);
}

#[tokio::test]
async fn another_keys_generation_is_a_404_like_an_unknown_one() {
    let gw = Gateway::start(KEYS).await;
    gw.ledger.record(row("req_a", "alice", JUNE_1)).0.await;
    let bob = Some("bob-key-0123456789");
    let (s1, theirs) = gw.get_json("/v1/generation?id=req_a", bob).await;
    let (s2, unknown) = gw.get_json("/v1/generation?id=req_zzz", bob).await;
    assert_eq!((s1, s2), (404, 404));
    // The OpenAI error shape, and nothing that tells the two apart.
    assert_eq!(theirs["error"]["type"], "not_found_error", "{theirs}");
    assert_eq!(
        theirs["error"]["message"]
            .as_str()
            .unwrap()
            .replace("req_a", "ID"),
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .replace("req_zzz", "ID")
    );
    let (status, body) = gw.get_json("/v1/generation", bob).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "id", "{body}");
    // Without a key, nothing at all.
    let (status, _) = gw.get("/v1/generation?id=req_a", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_jwt_subject_spelled_like_a_key_is_not_that_key() {
    let gw = Gateway::start(KEYS).await;
    // A request of a JWT whose `sub` is "alice", alice's static key's name.
    let jwt = LedgerRow {
        key_method: Some("jwt"),
        ..row("req_jwt", "alice", JUNE_1)
    };
    gw.ledger.record(jwt).0.await;
    gw.ledger.record(row("req_key", "alice", JUNE_1)).0.await;
    let alice = Some("alice-key-0123456789");
    let (status, _) = gw.get("/v1/generation?id=req_jwt", alice).await;
    assert_eq!(status, 404);
    let (status, _) = gw.get("/v1/generation?id=req_key", alice).await;
    assert_eq!(status, 200);
    let (_, body) = gw
        .get_json(
            "/v1/report?start_date=2025-06-01&end_date=2025-06-01",
            alice,
        )
        .await;
    assert_eq!(body["results"][0]["request_count"], 1, "{body}");
}

#[tokio::test]
async fn an_open_gateways_anonymous_caller_sees_every_row() {
    let gw = Gateway::start("").await;
    gw.ledger.record(row("req_a", "alice", JUNE_1)).0.await;
    gw.ledger.record(row("req_b", "bob", JUNE_1)).0.await;
    let (status, body) = gw.get_json("/v1/generation?id=req_b", None).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = gw
        .get_json("/v1/report?start_date=2025-06-01&end_date=2025-06-01", None)
        .await;
    assert_eq!(body["results"][0]["request_count"], 2, "{body}");
}

#[tokio::test]
async fn the_report_groups_what_the_key_may_see_over_inclusive_utc_days() {
    let gw = Gateway::start(KEYS).await;
    let mut second_day = row("a2", "alice", JUNE_1 + DAY + 5);
    second_day.model = Some("claude-y".into());
    second_day.credential = Some("byok");
    second_day.cost = Some(Nanos(0));
    second_day.list_cost = Some(Nanos(1_000_000_000));
    second_day.tags = vec!["ci".into(), "nightly".into()];
    for r in [
        row("a1", "alice", JUNE_1),
        second_day,
        row("b1", "bob", JUNE_1),
        row("late", "alice", JUNE_1 + 2 * DAY),
        row("early", "alice", JUNE_1 - 1),
    ] {
        gw.ledger.record(r).0.await;
    }
    let alice = Some("alice-key-0123456789");
    let report = |q: &str| format!("/v1/report?start_date=2025-06-01&end_date=2025-06-02{q}");

    let (status, body) = gw.get_json(&report(""), alice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"results": [
            {"day": "2025-06-01", "total_cost": 0.000123, "market_cost": 0.000123,
             "input_tokens": 1_200, "output_tokens": 300, "cached_input_tokens": 1_000,
             "cache_creation_input_tokens": 100, "reasoning_tokens": 50, "request_count": 1},
            {"day": "2025-06-02", "total_cost": 0, "market_cost": 1,
             "input_tokens": 1_200, "output_tokens": 300, "cached_input_tokens": 1_000,
             "cache_creation_input_tokens": 100, "reasoning_tokens": 50, "request_count": 1},
        ]})
    );

    let groups = |body: &Value, field: &str| -> Vec<(Value, u64)> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[field].clone(), r["request_count"].as_u64().unwrap()))
            .collect()
    };
    let (_, body) = gw.get_json(&report("&group_by=model"), alice).await;
    assert_eq!(
        groups(&body, "model"),
        [(json!("claude-x-1"), 1), (json!("claude-y"), 1)]
    );
    let (_, body) = gw
        .get_json(&report("&group_by=credential_type"), alice)
        .await;
    assert_eq!(
        groups(&body, "credential_type"),
        [(json!("gateway"), 1), (json!("byok"), 1)]
    );
    let (_, body) = gw.get_json(&report("&group_by=tag"), alice).await;
    assert_eq!(
        groups(&body, "tag"),
        // The costliest first: the untagged request cost the gateway more.
        [(Value::Null, 1), (json!("ci"), 1), (json!("nightly"), 1)]
    );
    let (_, body) = gw
        .get_json(&report("&group_by=provider"), Some("bob-key-0123456789"))
        .await;
    assert_eq!(groups(&body, "provider"), [(json!("mock-anthropic"), 1)]);
    for g in ["user", "team"] {
        let (status, body) = gw.get_json(&report(&format!("&group_by={g}")), alice).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(groups(&body, g), [(Value::Null, 2)]);
    }
}

#[tokio::test]
async fn bad_report_parameters_are_a_400_that_names_them() {
    let gw = Gateway::start(KEYS).await;
    let alice = Some("alice-key-0123456789");
    for (query, param, says) in [
        ("end_date=2025-06-01", "start_date", "required"),
        ("start_date=2025-06-01", "end_date", "required"),
        (
            "start_date=2025-02-30&end_date=2025-03-01",
            "start_date",
            "YYYY-MM-DD",
        ),
        (
            "start_date=2025-06-01&end_date=06/02/2025",
            "end_date",
            "YYYY-MM-DD",
        ),
        (
            "start_date=2025-06-02&end_date=2025-06-01",
            "end_date",
            "before",
        ),
        (
            "start_date=2025-06-01&end_date=2025-06-01&group_by=week",
            "group_by",
            "credential_type",
        ),
    ] {
        let (status, body) = gw.get_json(&format!("/v1/report?{query}"), alice).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    let resp = gw
        .client
        .post(format!("{}/v1/report", gw.base))
        .bearer_auth("alice-key-0123456789")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 405, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
}

#[tokio::test]
async fn tollgate_usage_prints_the_report_from_the_store() {
    let gw = Gateway::start(KEYS).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut other = row("b", "bob", now - 1_000);
    other.model = Some("gpt-4o".into());
    other.cost = Some(Nanos(2_500_000_000));
    for r in [
        row("a", "alice", now - 2_000),
        other,
        row("old", "alice", now - 8 * DAY),
    ] {
        gw.ledger.record(r).0.await;
    }
    let usage = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("usage")
            .arg("--store")
            .arg(&gw.db)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{err}");
        text
    };
    let text = usage(&["--since", "7d", "--group-by", "model"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("MODEL "), "{text}");
    assert!(lines[0].contains("COST (USD)"), "{text}");
    // The costliest first; every model of every key; a total.
    assert!(
        lines[1].starts_with("gpt-4o ") && lines[1].contains(" 2.5 "),
        "{text}"
    );
    assert!(lines[2].starts_with("claude-x-1 "), "{text}");
    assert!(lines[2].contains(" 0.000123 "), "{text}");
    assert!(
        lines[3].starts_with("TOTAL ") && lines[3].contains(" 2.500123 "),
        "{text}"
    );

    let json: Value = serde_json::from_str(&usage(&["--since", "30d", "--json"])).unwrap();
    let count: u64 = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_count"].as_u64().unwrap())
        .sum();
    assert_eq!(count, 3, "{json}");
    assert!(json["results"][0]["day"].is_string(), "{json}");
}
