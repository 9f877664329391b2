//! Budgets end to end over loopback: the race (500 concurrent requests
//! against a budget that fits 20), the 402 in each client format, a soft
//! budget's mark, `GET /v1/credits`, and `tollgate budgets` changing
//! what a running binary enforces.
//!
//! The in-process gateway is the edge, the `Auth` layer (keys from the
//! config), the `BudgetLayer`, and a stand-in for the usage meter that
//! settles each complete answer with the cost of the usage the mock
//! reported (until the meter of issue 10 lands in `routing_stack`), over
//! the providers and the mock.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tollgate::auth::{AuthLayer, Authenticator};
use tollgate::budget::{credits_router, BudgetLayer, Budgets, Pricing};
use tollgate::canonical::Usage;
use tollgate::config::Config;
use tollgate::edge::{router, EdgeConfig};
use tollgate::provider::Providers;
use tollgate::usage::{Nanos, Outcome, Price, PriceTable, Settlement, Summary};
use tollgate::{GatewayResponse, ResponseBody};
use tower::ServiceBuilder;

const KEY: &str = "race-team-key-0123456789";
const OTHER_KEY: &str = "other-team-key-0123456789";

/// $10 per million input tokens, $30 per million output tokens.
fn price() -> Price {
    Price {
        input: Nanos(10_000_000_000),
        output: Nanos(30_000_000_000),
        ..Price::default()
    }
}

/// A gateway in front of the mock, with `budgets` (TOML) for the team
/// `race` (key [`KEY`]) and `other` ([`OTHER_KEY`]), and what the stand-in
/// meter has settled.
struct Gateway {
    addr: SocketAddr,
    settled: Arc<AtomicU64>,
    client: reqwest::Client,
    _mock: tollgate::mock::MockUpstream,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Gateway {
    async fn start(budgets: &str) -> Gateway {
        let mock = tollgate::mock::spawn().await.unwrap();
        let text = format!(
            r#"
[providers.mock-openai]
kind = "openai"
base_url = "{base}/v1"
api_key = "sk-test-openai"
[providers.mock-anthropic]
kind = "anthropic"
base_url = "{base}"
api_key = "sk-ant-test"
[auth]
mode = "required"
keys = [
  {{ name = "race", key = "{KEY}", team = "race" }},
  {{ name = "other", key = "{OTHER_KEY}", team = "other" }},
]
{budgets}
"#,
            base = mock.base_url()
        );
        let config = Config::parse(&text, &|_| None).unwrap();
        let providers = Providers::from_config(&config).unwrap();
        let prices = PriceTable::default()
            .with_price(Some("mock-openai"), "gpt-4o", price())
            .with_price(Some("mock-anthropic"), "claude-sonnet-4-5", price());
        let pricing = Pricing::new(providers.routes(), Arc::new(prices));
        let budgets = Budgets::new(config.budget_specs());
        let settled = Arc::new(AtomicU64::new(0));
        let meter = settled.clone();
        let stack = ServiceBuilder::new()
            .layer(BudgetLayer::new(budgets.clone(), pricing))
            .map_response(move |resp| settle_from_usage(resp, &meter))
            .service(providers);
        let auth = Authenticator::from_config(&config.auth, None, true).unwrap();
        let app = router(stack, EdgeConfig::from_config(&config))
            .merge(credits_router(budgets))
            .layer(AuthLayer::new(auth));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
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
            addr,
            settled,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            _mock: mock,
            _stop: tx,
        }
    }

    async fn post(
        &self,
        path: &str,
        key: &str,
        body: &Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .client
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(body.to_string());
        req = if path.starts_with("/v1/messages") {
            req.header("x-api-key", key)
                .header("anthropic-version", "2023-06-01")
        } else {
            req.bearer_auth(key)
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, headers, v)
    }

    async fn credits(&self, key: &str) -> Value {
        let resp = self
            .client
            .get(format!("http://{}/v1/credits", self.addr))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    }
}

/// The stand-in meter: a complete JSON answer settles at once with the
/// cost of the usage it reports (OpenAI `prompt_tokens` /
/// `completion_tokens`, Anthropic `input_tokens` / `output_tokens`).
fn settle_from_usage(mut resp: GatewayResponse, settled: &AtomicU64) -> GatewayResponse {
    let ResponseBody::Raw(bytes) = &resp.body else {
        return resp;
    };
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let u = &v["usage"];
    let n = |a: &str, b: &str| u[a].as_u64().or(u[b].as_u64()).unwrap();
    let usage = Usage {
        input_tokens: n("prompt_tokens", "input_tokens"),
        output_tokens: n("completion_tokens", "output_tokens"),
        ..Usage::default()
    };
    let cost = price().cost(&usage);
    settled.fetch_add(cost.0, Ordering::SeqCst);
    let settlement = Settlement::new();
    resp.extensions.insert(settlement.clone());
    settlement.settle(Summary {
        usage,
        finish: None,
        ttft: None,
        duration: Duration::ZERO,
        provider: None,
        model: None,
        credential: None,
        attempts: Vec::new(),
        streamed: false,
        outcome: Outcome::Complete,
        estimated: false,
        cost: Some(cost),
        list_cost: Some(cost),
    });
    resp
}

/// A chat request whose worst case is its real cost, near enough: the
/// mock answers "Hello from the mock openai upstream. You said: hi", nine
/// words, nine tokens, and counts the input as the body's bytes / 4 (of
/// the body it receives, whose model is shorter by the provider's name).
fn race_request() -> Value {
    json!({"model": "mock-openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9})
}

/// Its worst case, as the budget layer prices it.
fn worst_case() -> Nanos {
    let input = (race_request().to_string().len() as u64).div_ceil(4);
    tollgate::budget::estimate::worst_case(&price(), input, 9)
}

fn usd(n: Nanos) -> String {
    n.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_requests_never_overspend_a_budget_that_fits_twenty() {
    let budget = Nanos(worst_case().0 * 20);
    let gw = Arc::new(
        Gateway::start(&format!(
            "[[budgets]]\nscope = \"team:race\"\nusd = {}\nperiod = \"daily\"\n",
            usd(budget)
        ))
        .await,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let gw = gw.clone();
        tasks.spawn(async move { gw.post("/v1/chat/completions", KEY, &race_request()).await });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (status, _, body) = r.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                assert_eq!(body["error"]["type"], "insufficient_funds", "{body}");
                refused += 1;
            }
            s => panic!("{s}: {body}"),
        }
    }
    let spent = gw.settled.load(Ordering::SeqCst);
    assert_eq!(ok + refused, 500);
    assert!(
        spent <= budget.0,
        "spent {spent} of a budget of {}",
        budget.0
    );
    assert!(ok >= 15, "only {ok} requests were served");
    // The worst case is the real cost but for a few input tokens: the
    // budget stops near twenty, not far past it.
    assert!(ok <= 21, "{ok} requests were served");
    // What /v1/credits says is what was settled.
    let c = gw.credits(KEY).await;
    assert_eq!(c["total_used"], usd(Nanos(spent)), "{c}");
    assert_eq!(c["balance"], usd(Nanos(budget.0 - spent)), "{c}");
    // Another team's requests are not this budget's business.
    let (s, _, b) = gw
        .post("/v1/chat/completions", OTHER_KEY, &race_request())
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn an_exhausted_budget_is_a_402_in_each_client_format_naming_it() {
    let gw = Gateway::start(
        "[[budgets]]\nscope = \"team:race\"\nusd = 0.000001\nperiod = \"monthly\"\n",
    )
    .await;
    let cases = [
        ("/v1/chat/completions", race_request()),
        (
            "/v1/responses",
            json!({"model": "mock-openai/gpt-4o", "input": "hi", "max_output_tokens": 9}),
        ),
        (
            "/v1/messages",
            json!({"model": "mock-anthropic/claude-sonnet-4-5", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ];
    for (path, body) in cases {
        let (status, _, v) = gw.post(path, KEY, &body).await;
        assert_eq!(status, 402, "{path}: {v}");
        let (ty, message) = if path == "/v1/messages" {
            assert_eq!(v["type"], "error", "{v}");
            (&v["error"]["type"], &v["error"]["message"])
        } else {
            assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
            (&v["error"]["type"], &v["error"]["message"])
        };
        assert_eq!(ty, "insufficient_funds", "{path}: {v}");
        let message = message.as_str().unwrap();
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
    assert_eq!(gw.settled.load(Ordering::SeqCst), 0);
    let c = gw.credits(KEY).await;
    assert_eq!(c["budget"]["scope"], "team:race", "{c}");
    assert_eq!(c["total_used"], "0", "{c}");
    // A caller no budget applies to: nothing to say.
    assert_eq!(
        gw.credits(OTHER_KEY).await,
        json!({"balance": null, "total_used": null, "budget": null})
    );
}

#[tokio::test]
async fn a_soft_budget_serves_past_its_amount_and_marks_the_answer() {
    let gw = Gateway::start(&format!(
        "[[budgets]]\nscope = \"team:race\"\nusd = {}\nperiod = \"weekly\"\nsoft = true\n",
        usd(Nanos(worst_case().0 * 2))
    ))
    .await;
    let mut marks = Vec::new();
    for _ in 0..4 {
        let (status, headers, v) = gw.post("/v1/chat/completions", KEY, &race_request()).await;
        assert_eq!(status, 200, "{v}");
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
    let c = gw.credits(KEY).await;
    assert!(c["balance"].as_str().unwrap().starts_with('-'), "{c}");
    assert_eq!(c["budget"]["soft"], true, "{c}");
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
                .body(race_request().to_string())
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
