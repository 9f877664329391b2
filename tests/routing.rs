//! End-to-end routing through the mock upstream: fallback between
//! providers and models, cooldowns, timeouts, streams decided before their
//! first byte, and the `x-tollgate-attempts` header.

mod common;

use std::time::{Duration, Instant};

use common::{json, request, sse, Stack};
use serde_json::json;

fn attempts(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-tollgate-attempts")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn provider(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-tollgate-provider")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn rate_limited_provider_falls_back_then_cools_down() {
    let stack = Stack::start_with(
        r#"
[models.sonnet]
targets = ["mock-anthropic/claude~status=429~retry-after=30", "mock-openai/gpt-4o"]
"#,
    )
    .await;
    let resp = stack
        .post(
            "/v1/messages",
            &request("/v1/messages", "sonnet", "hi", false),
        )
        .await;
    assert_eq!(
        attempts(&resp),
        "mock-anthropic/claude~status=429~retry-after=30=429, mock-openai/gpt-4o=200"
    );
    assert_eq!(provider(&resp), "mock-openai");
    let (status, body) = json(resp).await;
    assert_eq!(status, 200, "{body}");
    // Answered in the client's format, by the OpenAI upstream.
    assert_eq!(body["type"], "message");
    let text = body["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Hello from the mock openai upstream"),
        "{text}"
    );

    // Within the cooldown the rate-limited provider is not tried at all.
    let resp = stack
        .post(
            "/v1/messages",
            &request("/v1/messages", "sonnet", "again", false),
        )
        .await;
    assert_eq!(attempts(&resp), "mock-openai/gpt-4o=200");
    assert_eq!(json(resp).await.0, 200);
}

#[tokio::test]
async fn stalled_provider_times_out_and_the_next_serves() {
    let stack = Stack::start_with(
        r#"
[models.m]
targets = ["mock-anthropic/claude~stall", "mock-openai/gpt-4o"]
[routing]
first_byte_timeout_ms = 300
"#,
    )
    .await;
    // A circuit opens after 3 failures (the default), so both requests
    // try the stalled provider first and wait for its timeout.
    for (path, stream) in [
        ("/v1/chat/completions", false),
        ("/v1/chat/completions", true),
    ] {
        let started = Instant::now();
        let resp = stack.post(path, &request(path, "m", "hi", stream)).await;
        let took = started.elapsed();
        assert_eq!(
            attempts(&resp),
            "mock-anthropic/claude~stall=timeout, mock-openai/gpt-4o=200",
            "stream: {stream}"
        );
        assert_eq!(provider(&resp), "mock-openai");
        assert_eq!(resp.status(), 200);
        if stream {
            let events = sse(resp).await;
            assert_eq!(events.last().unwrap().data, "[DONE]");
        } else {
            json(resp).await;
        }
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
            "the fallback took {took:?}, the timeout is 300 ms (stream: {stream})"
        );
    }
}

#[tokio::test]
async fn client_provider_timeouts_override_the_default() {
    let stack = Stack::start_with(
        r#"
[models.m]
targets = ["mock-anthropic/claude~latency=2000", "mock-openai/gpt-4o"]
"#,
    )
    .await;
    let mut body = request("/v1/chat/completions", "m", "hi", false);
    body["providerOptions"] =
        json!({"gateway": {"providerTimeouts": {"byok": {"mock-anthropic": 200}}}});
    let started = Instant::now();
    let resp = stack.post("/v1/chat/completions", &body).await;
    assert_eq!(
        attempts(&resp),
        "mock-anthropic/claude~latency=2000=timeout, mock-openai/gpt-4o=200"
    );
    assert_eq!(json(resp).await.0, 200);
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn stream_failing_before_its_first_byte_falls_back() {
    let stack = Stack::start_with(
        r#"
[models.m]
targets = ["mock-anthropic/claude~status=529", "mock-openai/gpt-4o~chunks=3"]
[models.slow]
targets = ["mock-anthropic/claude~ttfb=3000", "mock-openai/gpt-4o~chunks=3"]
[routing]
first_byte_timeout_ms = 300
"#,
    )
    .await;
    for model in ["m", "slow"] {
        for path in ["/v1/chat/completions", "/v1/messages"] {
            let resp = stack.post(path, &request(path, model, "hi", true)).await;
            assert_eq!(resp.status(), 200, "{model} {path}");
            let a = attempts(&resp);
            assert!(a.ends_with("mock-openai/gpt-4o~chunks=3=200"), "{a}");
            assert_eq!(provider(&resp), "mock-openai");
            let events = sse(resp).await;
            let last = events.last().unwrap();
            if path == "/v1/messages" {
                assert_eq!(last.event.as_deref(), Some("message_stop"), "{events:?}");
                assert!(events.iter().all(|e| e.event.as_deref() != Some("error")));
            } else {
                assert_eq!(last.data, "[DONE]");
                assert!(events.iter().all(|e| e.json().get("error").is_none()));
            }
        }
    }
}

#[tokio::test]
async fn stream_failing_after_its_first_byte_is_an_in_band_error() {
    let stack = Stack::start_with(
        r#"
[models.m]
targets = ["mock-anthropic/claude~chunks=10~cut=3", "mock-openai/gpt-4o"]
"#,
    )
    .await;
    for path in ["/v1/chat/completions", "/v1/messages", "/v1/responses"] {
        let resp = stack.post(path, &request(path, "m", "hi", true)).await;
        assert_eq!(resp.status(), 200, "{path}");
        // Committed to the first provider: no fallback after the first byte.
        assert_eq!(attempts(&resp), "mock-anthropic/claude~chunks=10~cut=3=200");
        let events = sse(resp).await;
        match path {
            "/v1/messages" => {
                assert_eq!(
                    events.last().unwrap().event.as_deref(),
                    Some("error"),
                    "{events:?}"
                );
                assert!(events
                    .iter()
                    .all(|e| e.event.as_deref() != Some("message_stop")));
            }
            "/v1/responses" => {
                assert!(events.iter().any(|e| e.event.as_deref() == Some("error")));
                assert!(events
                    .iter()
                    .all(|e| e.event.as_deref() != Some("response.completed")));
            }
            _ => {
                let errors: Vec<_> = events
                    .iter()
                    .filter(|e| e.json().get("error").is_some())
                    .collect();
                assert_eq!(errors.len(), 1, "{events:?}");
                // Never a fake clean finish.
                assert!(events
                    .iter()
                    .all(|e| e.json()["choices"][0]["finish_reason"] != "stop"));
            }
        }
    }
}

#[tokio::test]
async fn only_excluding_every_target_is_a_clear_4xx() {
    let stack = Stack::start_with(
        r#"
[models.m]
targets = ["mock-anthropic/claude", "mock-openai/gpt-4o"]
"#,
    )
    .await;
    let mut body = request("/v1/chat/completions", "m", "hi", false);
    body["providerOptions"] = json!({"gateway": {"only": ["bedrock"]}});
    let started = Instant::now();
    let resp = stack.post("/v1/chat/completions", &body).await;
    assert_eq!(attempts(&resp), "", "nothing was tried");
    let (status, err) = json(resp).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "providerOptions.gateway.only");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("mock-anthropic") && msg.contains("mock-openai"),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // OpenRouter's `provider.ignore` in an Anthropic client's body.
    let mut body = request("/v1/messages", "m", "hi", false);
    body["provider"] = json!({"ignore": ["mock-anthropic", "mock-openai"]});
    let (status, err) = json(stack.post("/v1/messages", &body).await).await;
    assert_eq!(status, 400);
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "invalid_request_error");

    // `order` puts a provider first; the routing fields never go upstream.
    let mut body = request("/v1/chat/completions", "m", "hi", false);
    body["providerOptions"] = json!({"gateway": {"order": ["mock-openai"]}});
    body["model"] = json!("m");
    let resp = stack.post("/v1/chat/completions", &body).await;
    assert_eq!(attempts(&resp), "mock-openai/gpt-4o=200");

    // The routing fields never go upstream.
    let mut body = request(
        "/v1/chat/completions",
        "mock-openai/gpt-4o~echo-request",
        "hi",
        false,
    );
    body["providerOptions"] = json!({"gateway": {"order": ["mock-openai"]}});
    body["models"] = json!(["mock-openai/gpt-4o~echo-request", "fast"]);
    body["provider"] = json!({"allow_fallbacks": true});
    let (status, v) = json(stack.post("/v1/chat/completions", &body).await).await;
    assert_eq!(status, 200, "{v}");
    let sent: serde_json::Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    for field in ["providerOptions", "models", "provider"] {
        assert!(sent.get(field).is_none(), "{field} went upstream: {sent}");
    }
    assert_eq!(sent["model"], "gpt-4o~echo-request");
    assert_eq!(sent["messages"], body["messages"]);
}

#[tokio::test]
async fn model_fallback_across_formats() {
    let stack = Stack::start_with(
        r#"
[models.broken-claude]
targets = ["mock-anthropic/claude~status=503"]
[models.broken-gpt]
targets = ["mock-openai/gpt-4o~status=500"]
fallbacks = ["claude-sonnet-4-5"]
"#,
    )
    .await;
    // An OpenAI client; the first model (Anthropic) fails, the second
    // (OpenAI format) serves.
    let mut body = request("/v1/chat/completions", "broken-claude", "hi", false);
    body["providerOptions"] = json!({"gateway": {"models": ["mock-openai/gpt-4o"]}});
    let resp = stack.post("/v1/chat/completions", &body).await;
    let a = attempts(&resp);
    // 503 is retried once on the same target, then the next model.
    assert_eq!(
        a,
        "mock-anthropic/claude~status=503=503, mock-anthropic/claude~status=503=503, mock-openai/gpt-4o=200"
    );
    let (status, v) = json(resp).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Hello from the mock openai upstream"));

    // OpenRouter's `models` array, streaming, to an Anthropic client.
    let mut body = request("/v1/messages", "broken-gpt", "hi", true);
    body["models"] = json!(["broken-gpt", "mock-gemini/gemini-2.5-flash"]);
    let resp = stack.post("/v1/messages", &body).await;
    assert_eq!(
        attempts(&resp),
        "mock-openai/gpt-4o~status=500=500, mock-gemini/gemini-2.5-flash=200"
    );
    let events = sse(resp).await;
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );

    // Configured fallbacks, when the client names none.
    let resp = stack
        .post(
            "/v1/messages",
            &request("/v1/messages", "broken-gpt", "hi", false),
        )
        .await;
    assert_eq!(
        attempts(&resp),
        "mock-openai/gpt-4o~status=500=500, mock-anthropic/claude-sonnet-4-5=200"
    );
    assert_eq!(provider(&resp), "mock-anthropic");

    // All fail: the last error, in the client's format, with every attempt listed.
    let mut body = request("/v1/messages", "broken-claude", "hi", false);
    body["providerOptions"] = json!({"gateway": {"models": ["broken-gpt"]}});
    body["provider"] = json!({"only": ["mock-anthropic", "mock-openai"]});
    let resp = stack.post("/v1/messages", &body).await;
    let a = attempts(&resp);
    assert!(a.starts_with("mock-anthropic/claude~status=503=503"), "{a}");
    assert!(a.contains("mock-openai/gpt-4o~status=500=500"), "{a}");
    let (status, err) = json(resp).await;
    assert_eq!(status, 500, "{err}");
    assert_eq!(err["type"], "error");
}

#[tokio::test]
async fn a_rate_limit_on_one_model_does_not_stop_failover_to_another() {
    // The issue's case: one Anthropic model is rate limited; a model whose
    // targets are a failing OpenAI model and another Anthropic model is
    // still served, by Anthropic.
    let stack = Stack::start_with(
        r#"
[models.m]
targets = ["mock-openai/gpt-4o~status=500", "mock-anthropic/claude-sonnet-4-5"]
[models.limited-first]
targets = ["mock-anthropic/claude~status=429~retry-after=30", "mock-openai/gpt-4o~status=500"]
"#,
    )
    .await;
    let path = "/v1/chat/completions";
    let resp = stack
        .post(
            path,
            &request(
                path,
                "mock-anthropic/claude-sonnet-4-5~status=429",
                "hi",
                false,
            ),
        )
        .await;
    assert_eq!(json(resp).await.0, 429);
    let resp = stack.post(path, &request(path, "m", "hi", false)).await;
    assert_eq!(
        attempts(&resp),
        "mock-openai/gpt-4o~status=500=500, mock-anthropic/claude-sonnet-4-5=200"
    );
    assert_eq!(json(resp).await.0, 200);

    // A target cooling down is tried last, not left out.
    for (want, status) in [
        (
            "mock-anthropic/claude~status=429~retry-after=30=429, mock-openai/gpt-4o~status=500=500",
            500,
        ),
        (
            "mock-openai/gpt-4o~status=500=500, mock-anthropic/claude~status=429~retry-after=30=429",
            429,
        ),
    ] {
        let resp = stack
            .post(path, &request(path, "limited-first", "hi", false))
            .await;
        assert_eq!(attempts(&resp), want);
        assert_eq!(json(resp).await.0, status, "the last attempt's error");
    }
}

#[tokio::test]
async fn a_providers_404_goes_back_to_the_client() {
    let stack = Stack::start_with(
        r#"
[models.m]
targets = ["mock-openai/gpt-4o~status=404"]
fallbacks = ["fast"]
"#,
    )
    .await;
    // OpenAI's 404 says `code: "model_not_found"`: still the provider's
    // answer, not the gateway's unknown model, so no fallback.
    let path = "/v1/chat/completions";
    let resp = stack.post(path, &request(path, "m", "hi", false)).await;
    assert_eq!(attempts(&resp), "mock-openai/gpt-4o~status=404=404");
    let (status, err) = json(resp).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["type"], "not_found_error");
    // A model the gateway does not know moves on to the client's next.
    let mut body = request(path, "no-such-model", "hi", false);
    body["models"] = json!(["mock-openai/gpt-4o"]);
    let resp = stack.post(path, &body).await;
    assert_eq!(attempts(&resp), "mock-openai/gpt-4o=200");
    assert_eq!(json(resp).await.0, 200);
}

#[tokio::test]
async fn client_errors_do_not_fall_back() {
    let stack = Stack::start_with(
        r#"
[models.m]
targets = ["mock-openai/gpt-4o~status=400", "mock-anthropic/claude"]
"#,
    )
    .await;
    for _ in 0..4 {
        let resp = stack
            .post(
                "/v1/chat/completions",
                &request("/v1/chat/completions", "m", "hi", false),
            )
            .await;
        assert_eq!(attempts(&resp), "mock-openai/gpt-4o~status=400=400");
        assert_eq!(json(resp).await.0, 400);
    }
}

#[tokio::test]
async fn deployments_share_load_and_a_429_moves_to_the_next_key() {
    let stack = Stack::start_with(
        r#"
[models.pair]
targets = ["pair/gpt-4o", "mock-anthropic/claude"]
[models.shared]
targets = ["shared/gpt-4o"]
[providers.pair]
kind = "openai"
base_url = "MOCK_BASE/v1"
deployments = [
  { api_key = "key-a", headers = { "x-mock" = "status=429;retry-after=30" } },
  { api_key = "key-b" },
]
[providers.shared]
kind = "openai"
base_url = "MOCK_BASE/v1"
deployments = [{ api_key = "key-a", weight = 3 }, { api_key = "key-b" }]
"#,
    )
    .await;
    // Each request tries key-a first with even odds, until key-a answers
    // 429: that request moves to key-b before any other provider. After
    // it, key-a cools down for 30 s, so key-b goes first.
    let mut seen = Vec::new();
    for _ in 0..40 {
        let resp = stack
            .post(
                "/v1/chat/completions",
                &request("/v1/chat/completions", "pair", "hi", false),
            )
            .await;
        seen.push(attempts(&resp));
        assert_eq!(provider(&resp), "pair");
        assert_eq!(json(resp).await.0, 200);
    }
    let rotated = seen
        .iter()
        .filter(|a| *a == "pair[0]/gpt-4o=429, pair[1]/gpt-4o=200")
        .count();
    // 40 requests that each miss key-a with odds 1/2: 1 in 10^12.
    assert_eq!(rotated, 1, "exactly one request met the 429: {seen:?}");
    let after = seen
        .iter()
        .skip_while(|a| !a.contains("=429"))
        .skip(1)
        .collect::<Vec<_>>();
    assert!(
        after.iter().all(|a| *a == "pair[1]/gpt-4o=200"),
        "key-a cools down: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|a| a == "pair[1]/gpt-4o=200" || a.contains("=429")),
        "{seen:?}"
    );

    let mut first = 0;
    for _ in 0..60 {
        let resp = stack
            .post(
                "/v1/chat/completions",
                &request("/v1/chat/completions", "shared", "hi", false),
            )
            .await;
        if attempts(&resp) == "shared[0]/gpt-4o=200" {
            first += 1;
        }
        assert_eq!(json(resp).await.0, 200);
    }
    // Weight 3:1, so about 45 of 60; wide bounds for chance.
    assert!(
        (32..=57).contains(&first),
        "{first} of 60 went to the weight-3 key"
    );
}
