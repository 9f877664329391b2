//! Rate limits end to end, in-process: the binary's assembly against the
//! mock, with `[[rate_limits]]` in the config and a key made by
//! `tollgate keys create --rpm`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Stack;
use serde_json::{json, Value};

/// Every user gets 1 request a minute; `tok`, which has no user, 100
/// tokens a minute.
const EXTRA: &str = r#"
[auth]
keys = [
  { name = "chat", key = "chat-key-0123456789abcdef", user = "a" },
  { name = "responses", key = "responses-key-0123456789abcdef", user = "b" },
  { name = "messages", key = "messages-key-0123456789abcdef", user = "c" },
  { name = "stream", key = "stream-key-0123456789abcdef", user = "d" },
  { name = "tok", key = "tok-key-0123456789abcdef" },
]

[[rate_limits]]
scope = "user"
rpm = 1

[[rate_limits]]
scope = "key"
name = "tok"
rpm = 100
tpm = 100
"#;

async fn post(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if url.contains("/v1/messages") {
        req = req
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01");
    } else {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

fn requests_headers(r: &reqwest::Response) -> [Option<&str>; 3] {
    [
        header(r, "x-ratelimit-limit-requests"),
        header(r, "x-ratelimit-remaining-requests"),
        header(r, "x-ratelimit-reset-requests"),
    ]
}

/// The `Retry-After` of a 429, in seconds.
fn retry_after(r: &reqwest::Response) -> u64 {
    header(r, "retry-after")
        .expect("a 429 has Retry-After")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_second_request_in_a_minute_is_a_429_in_each_clients_format() {
    let stack = Stack::start_with(EXTRA).await;
    let cases = [
        (
            "/v1/chat/completions",
            "chat-key-0123456789abcdef",
            json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/responses",
            "responses-key-0123456789abcdef",
            json!({"model": "fast", "input": "hi"}),
        ),
        (
            "/v1/messages",
            "messages-key-0123456789abcdef",
            json!({"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ];
    for (path, key, body) in cases {
        let served = post(&stack.client, &stack.url(path), key, &body).await;
        assert_eq!(served.status(), 200, "{path}");
        assert_eq!(
            requests_headers(&served),
            [Some("1"), Some("0"), Some("1m0s")],
            "{path}"
        );
        // No token limit applies to this key: no token headers.
        assert_eq!(header(&served, "x-ratelimit-limit-tokens"), None, "{path}");

        let limited = post(&stack.client, &stack.url(path), key, &body).await;
        assert_eq!(limited.status(), 429, "{path}");
        let wait = retry_after(&limited);
        assert!((1..=60).contains(&wait), "{path}: Retry-After {wait}");
        assert_eq!(
            requests_headers(&limited)[..2],
            [Some("1"), Some("0")],
            "{path}"
        );
        let (_, body) = common::json(limited).await;
        let message = if path == "/v1/messages" {
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            body["error"]["message"].as_str().unwrap().to_string()
        } else {
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
            body["error"]["message"].as_str().unwrap().to_string()
        };
        assert!(
            message.starts_with("rate limit reached for user `")
                && message.contains("`: 1 request per minute; try again in "),
            "{path}: {message}"
        );
    }
    // The refused requests never reached the upstream: one each.
    let creds = stack
        .client
        .get(format!("{}/mock/credentials", stack.mock.base_url()))
        .send()
        .await
        .unwrap();
    let (_, creds) = common::json(creds).await;
    assert_eq!(creds.as_array().map(Vec::len), Some(3), "{creds}");
}

#[tokio::test]
async fn a_stream_carries_the_headers_and_tokens_are_limited_by_the_estimate() {
    let stack = Stack::start_with(EXTRA).await;
    let body =
        json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let resp = post(
        &stack.client,
        &stack.url("/v1/chat/completions"),
        "stream-key-0123456789abcdef",
        &body,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(requests_headers(&resp)[..2], [Some("1"), Some("0")]);
    let events = common::sse(resp).await;
    assert!(!events.is_empty());

    // 100 tokens a minute: a request for 1000 passes alone on a full
    // bucket, and the next one waits for it to be full again.
    let url = stack.url("/v1/chat/completions");
    let big = json!({"model": "fast", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]});
    let first = post(&stack.client, &url, "tok-key-0123456789abcdef", &big).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-tokens"), Some("100"));
    assert_eq!(header(&first, "x-ratelimit-remaining-tokens"), Some("0"));
    let second = post(&stack.client, &url, "tok-key-0123456789abcdef", &big).await;
    assert_eq!(second.status(), 429);
    assert!(retry_after(&second) >= 1);
    let (_, body) = common::json(second).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("this key: 100 tokens per minute"),
        "{message}"
    );
}

#[tokio::test]
async fn a_key_made_with_rpm_is_limited_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["keys", "create", "--store", db.to_str().unwrap()])
        .args([
            "--name", "limited", "--rpm", "2", "--tpm", "50000", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (made["rpm"].as_u64(), made["tpm"].as_u64()),
        (Some(2), Some(50000))
    );
    let key = made["key"].as_str().unwrap().to_string();
    for bad in ["0", "-1", "lots"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["keys", "create", "--store", db.to_str().unwrap()])
            .args(["--name", "bad", &format!("--rpm={bad}")])
            .output()
            .unwrap();
        assert!(!out.status.success(), "--rpm {bad} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--rpm"), "{err}");
    }

    let mock = tollgate::mock::spawn().await.unwrap();
    let config =
        tollgate::config::Config::parse(&common::config_text(&mock.base_url(), ""), &|_| None)
            .unwrap();
    let store = tollgate::store::SqliteStore::open(&db).unwrap();
    let auth = tollgate::server::authenticator(&config, Some(Arc::new(store)))
        .unwrap()
        .unwrap();
    auth.refresh().await.unwrap();
    let app = tollgate::server::assemble(
        &config,
        tollgate::server::Layers::Default,
        Some(auth),
        tollgate::server::Control::from_config(&config),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tollgate::server::serve(
        app,
        listener,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let body =
        json!({"model": "fast", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let seen: Vec<_> = {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let r = post(&client, &url, &key, &body).await;
            assert_eq!(r.status(), 200);
            seen.push(requests_headers(&r).map(|v| v.map(str::to_owned)));
            assert_eq!(header(&r, "x-ratelimit-limit-tokens"), Some("50000"));
        }
        seen
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        seen,
        [[s("2"), s("1"), s("30s")], [s("2"), s("0"), s("1m0s")]]
    );
    let r = post(&client, &url, &key, &body).await;
    assert_eq!(r.status(), 429);
    assert!((1..=30).contains(&retry_after(&r)));
}
