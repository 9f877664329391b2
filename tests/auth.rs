//! Gateway keys end to end, in-process: the binary's assembly
//! (`server::gateway`) with `[auth] keys` in the config, against the mock.

mod common;

use common::Stack;
use serde_json::{json, Value};

const EXTRA: &str = r#"
[auth]
keys = [
  { name = "all", key = "all-models-key-0123456789" },
  { name = "openai-only", key = "openai-only-key-0123456789", team = "t", models = ["mock-openai/*", "fast"] },
]
"#;

async fn post(stack: &Stack, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = stack
        .client
        .post(stack.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    if path.starts_with("/v1/messages") {
        req = req.header("anthropic-version", "2023-06-01");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
    } else if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn messages(model: &str) -> Value {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_key_serves_and_no_key_or_a_wrong_key_is_a_401_in_each_format() {
    let stack = Stack::start_with(EXTRA).await;
    let (s, b) = post(
        &stack,
        "/v1/chat/completions",
        Some("all-models-key-0123456789"),
        chat("fast"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = post(
        &stack,
        "/v1/messages",
        Some("all-models-key-0123456789"),
        messages("claude-x"),
    )
    .await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = post(&stack, "/v1/chat/completions", None, chat("fast")).await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    let (s, b) = post(
        &stack,
        "/v1/responses",
        Some("wrong"),
        json!({"model": "fast", "input": "hi"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (s, b) = post(&stack, "/v1/messages", Some("wrong"), messages("claude-x")).await;
    assert_eq!(s, 401);
    assert_eq!(
        (b["type"].as_str(), b["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );

    // The model list needs a key too; health checks do not.
    let resp = stack
        .client
        .get(stack.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = stack.client.get(stack.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_model_outside_the_keys_models_is_a_403_and_is_not_listed() {
    let stack = Stack::start_with(EXTRA).await;
    let key = Some("openai-only-key-0123456789");
    let (s, b) = post(
        &stack,
        "/v1/chat/completions",
        key,
        chat("mock-openai/gpt-4o"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = post(&stack, "/v1/messages", key, messages("claude-x")).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["type"], "error", "Anthropic's shape: {b}");
    assert_eq!(b["error"]["type"], "permission_error");
    assert!(b["error"]["message"].as_str().unwrap().contains("claude-x"));
    let (s, b) = post(
        &stack,
        "/v1/chat/completions",
        key,
        chat("mock-anthropic/claude-x"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (403, Some("permission_error"))
    );

    // Nor may the client name one to fall back to.
    let mut body = chat("fast");
    body["models"] = json!(["fast", "claude-x"]);
    let (s, _) = post(&stack, "/v1/chat/completions", key, body).await;
    assert_eq!(s, 403);

    let listed = |key: &'static str| {
        let stack = &stack;
        async move {
            let resp = stack
                .client
                .get(stack.url("/v1/models"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let list: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // A key for every model sees other providers' models too...
    let all = listed("all-models-key-0123456789").await;
    assert!(
        all.iter().any(|id| id.starts_with("mock-anthropic/")),
        "{all:?}"
    );
    // ...the limited key only its own.
    let ids = listed("openai-only-key-0123456789").await;
    assert!(!ids.is_empty());
    assert!(
        ids.iter()
            .all(|id| id.starts_with("mock-openai/") || id == "fast"),
        "{ids:?}"
    );
}
