//! Budgets end to end over loopback: the race (500 concurrent requests
//! against a budget that fits 20), the 402 in each client format, a soft
//! budget's mark, `GET /v1/credits` and the ledger after spending, and
//! `tollgate budgets` changing what a running binary enforces.
//!
//! The in-process gateway is the binary's assembly (`server::assemble`:
//! auth, rate limits, budgets, the usage meter and a real ledger on a
//! temporary SQLite store, the routing layers, the providers) in front of
//! the mock, with its prices from the test config's `[prices]`. What was
//! spent is read back from the ledger.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::assembled::Assembled;
use serde_json::{json, Value};
use tollgate::store::GroupBy;
use tollgate::usage::{Nanos, Price};

const KEY: &str = "race-team-key-0123456789";
const OTHER_KEY: &str = "other-team-key-0123456789";

/// $10 per million input tokens, $30 per million output tokens: a token
/// is 10,000 or 30,000 nano-dollars, so every cost is exact.
const PRICES: &str = r#"
[prices]
"gpt-4o" = { input = 10.0, output = 30.0 }
"claude-sonnet-4-5" = { input = 10.0, output = 30.0 }
"#;
const INPUT_NANOS: u64 = 10_000;
const OUTPUT_NANOS: u64 = 30_000;

/// What `PRICES` says, for the worst cases the budget layer reserves.
fn price() -> Price {
    Price {
        input: Nanos(INPUT_NANOS * 1_000_000),
        output: Nanos(OUTPUT_NANOS * 1_000_000),
        ..Price::default()
    }
}

/// The binary's gateway with the keys of team `race` ([`KEY`]) and
/// `other` ([`OTHER_KEY`]), [`PRICES`], and `budgets` (TOML).
async fn gateway(budgets: &str) -> Assembled {
    Assembled::start(&format!(
        r#"
[auth]
mode = "required"
keys = [
  {{ name = "race", key = "{KEY}", team = "race" }},
  {{ name = "other", key = "{OTHER_KEY}", team = "other" }},
]
{PRICES}
{budgets}
"#
    ))
    .await
}

/// The three requests of the race, one per client format, whose worst
/// case is near their real cost: the mock answers "Hello from the mock
/// <api> upstream. You said: hi", nine words, nine tokens, and counts the
/// input as the body's bytes / 4 (of the body it receives, whose model is
/// shorter by the provider's name).
fn requests() -> [(&'static str, Value); 3] {
    [
        (
            "/v1/chat/completions",
            json!({"model": "mock-openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}),
        ),
        (
            "/v1/responses",
            json!({"model": "mock-openai/gpt-4o", "input": "hi", "max_output_tokens": 9}),
        ),
        (
            "/v1/messages",
            json!({"model": "mock-anthropic/claude-sonnet-4-5", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ]
}

/// The dearest worst case of the three, as the budget layer prices it.
fn worst_case() -> Nanos {
    requests()
        .iter()
        .map(|(_, body)| {
            let input = (body.to_string().len() as u64).div_ceil(4);
            tollgate::budget::estimate::worst_case(&price(), input, 9)
        })
        .max()
        .unwrap()
}

fn usd(n: Nanos) -> String {
    n.to_string()
}

/// Asserts that `v` is a budget's 402 body in the format of `path`.
fn assert_insufficient_funds(path: &str, v: &Value) {
    if path == "/v1/messages" {
        assert_eq!(v["type"], "error", "{v}");
    } else {
        assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    }
    assert_eq!(v["error"]["type"], "insufficient_funds", "{path}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_requests_never_overspend_a_budget_that_fits_twenty() {
    let budget = Nanos(worst_case().0 * 20);
    let gw = Arc::new(
        gateway(&format!(
            "[[budgets]]\nscope = \"team:race\"\nusd = {}\nperiod = \"daily\"\n",
            usd(budget)
        ))
        .await,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let gw = gw.clone();
        tasks.spawn(async move {
            let (path, body) = requests()[i % 3].clone();
            let (status, _, v) = gw.post(path, KEY, &body).await;
            (path, status, v)
        });
    }
    let (mut ok, mut refused) = (0u64, 0u64);
    while let Some(r) = tasks.join_next().await {
        let (path, status, v) = r.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                assert_insufficient_funds(path, &v);
                refused += 1;
            }
            s => panic!("{path}: {s}: {v}"),
        }
    }
    assert_eq!(ok + refused, 500);
    // The ledger: one row per served request (a refused one never
    // reached a provider), and their sum within the budget.
    let (spent, rows) = gw.spent_by_team("race").await;
    assert_eq!(rows, ok, "rows in the ledger");
    assert!(
        spent <= budget,
        "the ledger holds {spent} USD of a budget of {budget} USD"
    );
    // Not a budget that refuses everything: the worst case is the real
    // cost but for a few input tokens.
    assert!(ok >= 15, "only {ok} requests were served");
    // Each row is priced with the config's price, to the nano-dollar.
    let report = gw.report(GroupBy::Team).await;
    let race = report
        .iter()
        .find(|r| r.group.as_deref() == Some("race"))
        .unwrap();
    assert_eq!(
        race.total_cost.0,
        race.input_tokens * INPUT_NANOS + race.output_tokens * OUTPUT_NANOS
    );
    assert_eq!(race.output_tokens, 9 * ok);
    // What /v1/credits says is what the ledger holds.
    let (status, c) = gw.get("/v1/credits", KEY).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["total_used"], usd(spent), "{c}");
    assert_eq!(c["balance"], usd(Nanos(budget.0 - spent.0)), "{c}");
    // Another team's requests are not this budget's business.
    let (path, body) = &requests()[0];
    let (s, _, b) = gw.post(path, OTHER_KEY, body).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn an_exhausted_budget_is_a_402_in_each_client_format_naming_it() {
    let gw =
        gateway("[[budgets]]\nscope = \"team:race\"\nusd = 0.000001\nperiod = \"monthly\"\n").await;
    for (path, body) in requests() {
        let (status, _, v) = gw.post(path, KEY, &body).await;
        assert_eq!(status, 402, "{path}: {v}");
        assert_insufficient_funds(path, &v);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("team `race`'s monthly budget") && message.contains("resets at"),
            "{path}: {message}"
        );
        // No figure of the budget: not its amount, not what was spent.
        assert!(
            !message.contains("0.000001") && !message.contains('$'),
            "{message}"
        );
    }
    // Nothing reached a provider: nothing in the ledger, nothing spent.
    assert_eq!(gw.spent_by_team("race").await, (Nanos::ZERO, 0));
    let (_, c) = gw.get("/v1/credits", KEY).await;
    assert_eq!(c["budget"]["scope"], "team:race", "{c}");
    assert_eq!(c["total_used"], "0", "{c}");
    assert_eq!(c["balance"], "0.000001", "{c}");
    // A caller no budget applies to: nothing to say, and served.
    let (_, c) = gw.get("/v1/credits", OTHER_KEY).await;
    assert_eq!(
        c,
        json!({"balance": null, "total_used": null, "budget": null})
    );
    let (path, body) = &requests()[2];
    let (s, _, b) = gw.post(path, OTHER_KEY, body).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn a_soft_budget_serves_past_its_amount_and_marks_the_answer() {
    let budget = Nanos(worst_case().0 * 2);
    let gw = gateway(&format!(
        "[[budgets]]\nscope = \"team:race\"\nusd = {}\nperiod = \"weekly\"\nsoft = true\n",
        usd(budget)
    ))
    .await;
    let mut marks = Vec::new();
    for (path, body) in requests().iter().chain(&requests()[..1]) {
        let (status, headers, v) = gw.post(path, KEY, body).await;
        assert_eq!(status, 200, "{path}: {v}");
        marks.push(
            headers
                .get("x-tollgate-budget")
                .map(|v| v.to_str().unwrap().to_string()),
        );
    }
    // Two fit; the third and fourth are past the amount, served and marked.
    assert_eq!(
        marks,
        [None, None, Some("over".into()), Some("over".into())]
    );
    // Everything served is in the ledger, and /v1/credits says so.
    let (spent, rows) = gw.spent_by_team("race").await;
    assert_eq!(rows, 4);
    assert!(spent > budget);
    let (_, c) = gw.get("/v1/credits", KEY).await;
    assert_eq!(c["total_used"], usd(spent), "{c}");
    assert_eq!(
        c["balance"],
        format!("-{}", Nanos(spent.0 - budget.0)),
        "{c}"
    );
    assert_eq!(c["budget"]["soft"], true, "{c}");
    assert_eq!(gw.budgets.stats().over_soft, 2);
}

// `tollgate budgets` and a running binary.

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn budgets_cli(store: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("budgets")
        .args(args)
        .args(["--store", store])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

#[tokio::test]
async fn budgets_set_with_the_cli_apply_to_a_running_gateway_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let store = db.to_str().unwrap();
    let mock = tollgate::mock::spawn().await.unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"{store}\"\n[auth]\nmode = \"none\"\n[providers.mock-openai]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"sk-test\"\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let _gw = Proc(
        Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let ask = || async {
        for _ in 0..100 {
            match client
                .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(requests()[0].1.to_string())
                .send()
                .await
            {
                Ok(r) => return r.status().as_u16(),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("the gateway did not start");
    };
    assert_eq!(ask().await, 200);

    // A zero budget refuses even a request whose price is unknown.
    let (ok, _, err) = budgets_cli(
        store,
        &["set", "--global", "--usd", "0", "--period", "daily"],
    );
    assert!(ok, "{err}");
    assert!(err.contains("daily budget of global"), "{err}");
    let mut status = 200;
    for _ in 0..50 {
        status = ask().await;
        if status == 402 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 402, "the CLI's budget did not apply within 5 s");

    let (ok, out, err) = budgets_cli(store, &["list", "--json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["scope"], "global", "{list}");
    assert_eq!(list[0]["usd"], "0", "{list}");
    assert_eq!(list[0]["period"], "daily", "{list}");
    assert!(list[0]["resets_at"].as_i64().unwrap() > 0, "{list}");
    let (ok, table, _) = budgets_cli(store, &["list"]);
    assert!(
        ok && table.starts_with("SCOPE") && table.contains("global"),
        "{table}"
    );

    let (ok, _, err) = budgets_cli(store, &["delete", "--global"]);
    assert!(ok, "{err}");
    for _ in 0..50 {
        status = ask().await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the deleted budget still applied after 5 s");
}

#[test]
fn the_cli_refuses_bad_budgets_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let store = db.to_str().unwrap();
    let (ok, _, err) = budgets_cli(
        store,
        &["set", "--tag", "x", "--usd", "5", "--period", "none"],
    );
    assert!(ok, "{err}");
    for (args, says) in [
        (
            &["set", "--team", "ml", "--usd", "1e3", "--period", "daily"][..],
            "is not an amount of dollars",
        ),
        (
            &["set", "--team", "ml", "--usd", "5", "--period", "yearly"],
            "yearly",
        ),
        (&["set", "--usd", "5", "--period", "daily"], "--global"),
        (
            &[
                "set", "--team", "ml", "--global", "--usd", "5", "--period", "daily",
            ],
            "cannot be used with",
        ),
        (
            &["set", "--team", " ", "--usd", "5", "--period", "daily"],
            "--team",
        ),
        (&["delete", "--tag", "none"], "no budget for tag:none"),
    ] {
        let (ok, _, err) = budgets_cli(store, args);
        assert!(!ok, "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
