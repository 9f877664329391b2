//! The credential of each attempt, end to end through the mock upstream: a
//! Claude subscription's OAuth token passed through and falling back when
//! it is at its limit or expired, keys the request brings (BYOK), and
//! where each credential went (the mock records what it received).

mod common;

use common::{answer_text, everything, json, request, sse, Log, Stack};
use serde_json::{json, Value};

/// Every secret in play contains this: the gateway's provider keys and
/// the clients' own credentials.
const MARK: &str = "SECRET";
const BETAS: &str = "oauth-2025-04-20,interleaved-thinking-2025-05-14";

const CONFIG: &str = r#"
[providers.claude]
kind = "anthropic"
base_url = "MOCK_BASE"
api_key = "sk-ant-gateway-SECRET"
pass_through = true
[providers.claude-sub]
kind = "anthropic"
base_url = "MOCK_BASE"
pass_through = true
[providers.oa]
kind = "openai"
base_url = "MOCK_BASE/v1"
api_key = "sk-oa-gateway-SECRET"
allow_byok = true
[providers.oa-fb]
kind = "openai"
base_url = "MOCK_BASE/v1"
api_key = "sk-oafb-gateway-SECRET"
allow_byok = true
byok_fallback = true
[models.sonnet]
targets = ["claude-sub/claude-sonnet-4-5", "mock-openai/gpt-4o"]
[models.sonnet-keyed]
targets = ["claude/claude-sonnet-4-5", "mock-openai/gpt-4o"]
"#;

/// One test at a time: the log test's subscriber is the test thread's,
/// and a callsite that another thread first reaches meanwhile may be
/// cached as uninteresting to it (tracing's interest cache is global).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// An Anthropic Messages request (as Claude Code sends it) with the
/// client's own `token` as its bearer.
async fn messages(stack: &Stack, model: &str, token: &str, stream: bool) -> reqwest::Response {
    stack
        .client
        .post(stack.url("/v1/messages?beta=true"))
        .bearer_auth(token)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", BETAS)
        .body(request("/v1/messages", model, "hi", stream).to_string())
        .send()
        .await
        .unwrap()
}

/// A Chat Completions request with `body`, `headers` and no credential of
/// its own.
async fn chat(stack: &Stack, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = stack
        .client
        .post(stack.url("/v1/chat/completions"))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// What the mock received: `(api, header, credential)` of each request.
async fn received(stack: &Stack) -> Vec<(String, String, String)> {
    let url = format!("{}/mock/credentials", stack.mock.base_url());
    let (status, v) = json(stack.client.get(url).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| (s(&r["api"]), s(&r["header"]), s(&r["credential"])))
        .collect()
}

fn got(api: &str, header: &str, credential: &str) -> (String, String, String) {
    (api.into(), header.into(), credential.into())
}

async fn forget(stack: &Stack) {
    let url = format!("{}/mock/credentials", stack.mock.base_url());
    let r = stack.client.delete(url).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn an_oauth_token_passes_through_with_the_clients_betas() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start_with(CONFIG).await;
    let token = "sk-ant-oat01-alice-SECRET";
    let resp = messages(&stack, "claude/claude-sonnet-4-5~echo-head", token, false).await;
    assert_eq!(header(&resp, "x-tollgate-credential"), "subscription");
    assert_eq!(
        header(&resp, "x-tollgate-attempts"),
        "claude/claude-sonnet-4-5~echo-head[subscription]=200"
    );
    let (status, v) = json(resp).await;
    assert_eq!(status, 200, "{v}");
    let head: Value = serde_json::from_str(&answer_text("/v1/messages", &v)).unwrap();
    assert_eq!(head["headers"]["anthropic-beta"], BETAS);
    assert_eq!(head["path"], "/v1/messages?beta=true");
    assert!(
        head["headers"].get("x-api-key").is_none(),
        "the gateway's key went along: {head}"
    );
    // The token, and only the token, reached Anthropic.
    assert_eq!(
        received(&stack).await,
        [got("anthropic", "authorization", token)]
    );
}

#[tokio::test]
async fn a_subscription_at_its_limit_falls_back_across_formats_and_is_skipped_after() {
    let _serial = SERIAL.lock().await;
    let (log, _guard) = Log::capture();
    let stack = Stack::start_with(CONFIG).await;
    let alice = "sk-ant-oat01-alice-SECRET~limit";
    let mut seen = String::new();

    let resp = messages(&stack, "sonnet", alice, false).await;
    assert_eq!(
        header(&resp, "x-tollgate-attempts"),
        "claude-sub/claude-sonnet-4-5[subscription]=429, mock-openai/gpt-4o=200"
    );
    assert_eq!(header(&resp, "x-tollgate-credential"), "gateway");
    assert_eq!(header(&resp, "x-tollgate-provider"), "mock-openai");
    let (status, text) = everything(resp).await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(text.split("\n\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["type"], "message", "answered in the client's format");
    assert!(answer_text("/v1/messages", &body).starts_with("Hello from the mock openai upstream"));
    seen.push_str(&text);
    assert_eq!(
        received(&stack).await,
        [
            got("anthropic", "authorization", alice),
            got("openai", "authorization", "sk-test-openai-SECRET"),
        ]
    );

    // The next requests with alice's token go straight to the fallback,
    // streams too; her token is not sent again.
    forget(&stack).await;
    for stream in [false, true] {
        let resp = messages(&stack, "sonnet", alice, stream).await;
        assert_eq!(
            header(&resp, "x-tollgate-attempts"),
            "mock-openai/gpt-4o=200"
        );
        assert_eq!(header(&resp, "x-tollgate-credential"), "gateway");
        if stream {
            let head: String = resp
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            seen.push_str(&head);
            let events = sse(resp).await;
            assert_eq!(
                events.last().unwrap().event.as_deref(),
                Some("message_stop")
            );
            for e in &events {
                seen.push_str(&format!("{:?}\n", e));
            }
        } else {
            let (status, text) = everything(resp).await;
            assert_eq!(status, 200, "{text}");
            seen.push_str(&text);
        }
    }
    let after = received(&stack).await;
    assert!(
        after.iter().all(|(api, _, _)| api == "openai"),
        "the subscription was tried again: {after:?}"
    );

    // Another user's token still serves.
    let bob = "sk-ant-oat01-bob-SECRET";
    let resp = messages(&stack, "sonnet", bob, false).await;
    assert_eq!(
        header(&resp, "x-tollgate-attempts"),
        "claude-sub/claude-sonnet-4-5[subscription]=200"
    );
    assert_eq!(header(&resp, "x-tollgate-credential"), "subscription");
    let (status, text) = everything(resp).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("Hello from the mock anthropic upstream"),
        "{text}"
    );
    seen.push_str(&text);

    // An upstream that echoes the token cannot leak it back.
    for model in [
        "claude/claude-sonnet-4-5~leak",
        "claude/claude-sonnet-4-5~leak~status=400",
    ] {
        let (_, text) = everything(messages(&stack, model, bob, false).await).await;
        assert!(text.contains("[redacted]"), "nothing echoed? {text}");
        seen.push_str(&text);
    }

    // The OAuth tokens never reached OpenAI, any client or the log.
    let all = received(&stack).await;
    assert!(
        all.iter()
            .all(|(api, _, c)| api == "anthropic" || !c.contains("oat01")),
        "{all:?}"
    );
    assert!(!seen.contains(MARK), "a secret reached the client:\n{seen}");
    let log = log.text();
    assert!(log.contains("rate limited: tried last"), "{log}");
    assert!(!log.contains(MARK), "a secret reached the log:\n{log}");
    assert!(!log.contains("oat01"), "a token reached the log:\n{log}");
}

#[tokio::test]
async fn an_expired_token_falls_back_to_the_gateways_key() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start_with(CONFIG).await;
    let dave = "sk-ant-oat01-dave-SECRET~expired";
    let resp = messages(&stack, "sonnet-keyed", dave, false).await;
    assert_eq!(
        header(&resp, "x-tollgate-attempts"),
        "claude/claude-sonnet-4-5[subscription]=401, claude/claude-sonnet-4-5=200"
    );
    assert_eq!(header(&resp, "x-tollgate-credential"), "gateway");
    assert_eq!(json(resp).await.0, 200);
    assert_eq!(
        received(&stack).await,
        [
            got("anthropic", "authorization", dave),
            got("anthropic", "x-api-key", "sk-ant-gateway-SECRET"),
        ]
    );
}

#[tokio::test]
async fn only_an_anthropic_clients_own_credential_is_passed_through() {
    let _serial = SERIAL.lock().await;
    let gw_key = "tg_abcdefSECRET0123456789";
    let stack = Stack::start_with(&format!(
        "{CONFIG}\n[auth]\nkeys = [{{ name = \"k\", key = \"{gw_key}\" }}]\n"
    ))
    .await;
    // A gateway key in `Authorization` is the gateway's, not Anthropic's.
    let resp = messages(&stack, "claude/claude-sonnet-4-5", gw_key, false).await;
    assert_eq!(header(&resp, "x-tollgate-credential"), "gateway");
    assert_eq!(json(resp).await.0, 200);
    // An OpenAI client's bearer was not meant for Anthropic: the
    // subscription-only provider is not tried at all.
    let resp = chat(
        &stack,
        &request("/v1/chat/completions", "sonnet", "hi", false),
        &[
            ("x-tollgate-key", gw_key),
            ("authorization", "Bearer sk-ant-oat01-erin-SECRET"),
        ],
    )
    .await;
    assert_eq!(
        header(&resp, "x-tollgate-attempts"),
        "mock-openai/gpt-4o=200"
    );
    assert_eq!(json(resp).await.0, 200);
    assert_eq!(
        received(&stack).await,
        [
            got("anthropic", "x-api-key", "sk-ant-gateway-SECRET"),
            got("openai", "authorization", "sk-test-openai-SECRET"),
        ]
    );
    // An unknown `tg_` key is refused, and reaches no upstream.
    let resp = messages(
        &stack,
        "claude/claude-sonnet-4-5",
        "tg_unknownSECRET",
        false,
    )
    .await;
    assert_eq!(json(resp).await.0, 401);
    assert_eq!(
        received(&stack).await.len(),
        2,
        "nothing more reached the mock"
    );
}

#[tokio::test]
async fn byok_by_body_field_and_by_header() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start_with(CONFIG).await;
    let mut body = request("/v1/chat/completions", "oa/gpt-4o", "hi", false);
    body["providerOptions"] =
        json!({"gateway": {"byok": {"oa": [{"apiKey": "sk-byok-alice-SECRET"}]}}});
    let resp = chat(&stack, &body, &[]).await;
    assert_eq!(header(&resp, "x-tollgate-credential"), "byok");
    assert_eq!(header(&resp, "x-tollgate-attempts"), "oa/gpt-4o[byok]=200");
    assert_eq!(json(resp).await.0, 200);

    let resp = chat(
        &stack,
        &request("/v1/chat/completions", "oa/gpt-4o", "hi", false),
        &[("x-tollgate-byok-oa", "sk-byok-bob-SECRET")],
    )
    .await;
    assert_eq!(header(&resp, "x-tollgate-credential"), "byok");
    assert_eq!(json(resp).await.0, 200);
    assert_eq!(
        received(&stack).await,
        [
            got("openai", "authorization", "sk-byok-alice-SECRET"),
            got("openai", "authorization", "sk-byok-bob-SECRET"),
        ]
    );
}

#[tokio::test]
async fn byok_for_a_provider_that_does_not_allow_it_is_a_400_in_the_clients_format() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start_with(CONFIG).await;
    let mut body = request("/v1/chat/completions", "mock-openai/gpt-4o", "hi", false);
    body["providerOptions"] =
        json!({"gateway": {"byok": {"mock-openai": [{"apiKey": "sk-byok-SECRET"}]}}});
    let (status, v) = json(chat(&stack, &body, &[]).await).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["error"]["param"],
        "providerOptions.gateway.byok.mock-openai"
    );
    assert!(!v.to_string().contains(MARK), "{v}");

    let resp = stack
        .client
        .post(stack.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .header("x-tollgate-byok-mock-anthropic", "sk-byok-SECRET")
        .body(request("/v1/messages", "claude-x", "hi", false).to_string())
        .send()
        .await
        .unwrap();
    let (status, v) = json(resp).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("x-tollgate-byok-mock-anthropic"), "{msg}");
    assert!(!msg.contains(MARK), "{msg}");
    assert_eq!(received(&stack).await, [], "nothing was sent upstream");
}

#[tokio::test]
async fn a_failing_byok_key_falls_back_only_where_the_config_allows() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start_with(CONFIG).await;
    let key = "sk-byok-frank-SECRET~expired";
    // Default: the caller asked for their own account; its failure is theirs.
    let resp = chat(
        &stack,
        &request("/v1/chat/completions", "oa/gpt-4o", "hi", false),
        &[("x-tollgate-byok-oa", key)],
    )
    .await;
    assert_eq!(header(&resp, "x-tollgate-attempts"), "oa/gpt-4o[byok]=401");
    let (status, v) = json(resp).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rejected the request's own credential (byok)"),
        "{v}"
    );
    assert!(!v.to_string().contains(MARK), "{v}");
    assert_eq!(
        received(&stack).await,
        [got("openai", "authorization", key)]
    );

    // `byok_fallback = true`: the gateway's key follows.
    forget(&stack).await;
    let resp = chat(
        &stack,
        &request("/v1/chat/completions", "oa-fb/gpt-4o", "hi", false),
        &[("x-tollgate-byok-oa-fb", key)],
    )
    .await;
    assert_eq!(
        header(&resp, "x-tollgate-attempts"),
        "oa-fb/gpt-4o[byok]=401, oa-fb/gpt-4o=200"
    );
    assert_eq!(header(&resp, "x-tollgate-credential"), "gateway");
    assert_eq!(json(resp).await.0, 200);
    assert_eq!(
        received(&stack).await,
        [
            got("openai", "authorization", key),
            got("openai", "authorization", "sk-oafb-gateway-SECRET"),
        ]
    );
}

#[tokio::test]
async fn an_oauth_token_without_its_beta_gets_it_added() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start_with(CONFIG).await;
    // Claude Code sends `ANTHROPIC_AUTH_TOKEN` as a bearer with its own
    // betas but not `oauth-2025-04-20`, without which Anthropic (and the
    // mock) refuse the token.
    let betas = "claude-code-20250219,interleaved-thinking-2025-05-14";
    let resp = stack
        .client
        .post(stack.url("/v1/messages?beta=true"))
        .bearer_auth("sk-ant-oat01-carol-SECRET")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", betas)
        .body(
            request(
                "/v1/messages",
                "claude/claude-sonnet-4-5~echo-head",
                "hi",
                false,
            )
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-tollgate-credential"), "subscription");
    let (status, v) = json(resp).await;
    assert_eq!(status, 200, "{v}");
    let head: Value = serde_json::from_str(&answer_text("/v1/messages", &v)).unwrap();
    assert_eq!(
        head["headers"]["anthropic-beta"],
        format!("{betas},oauth-2025-04-20")
    );

    // The gateway's own key is no OAuth token: the client's betas go
    // unchanged.
    let resp = stack
        .client
        .post(stack.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", betas)
        .body(
            request(
                "/v1/messages",
                "mock-anthropic/claude-x~echo-head",
                "hi",
                false,
            )
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-tollgate-credential"), "gateway");
    let (status, v) = json(resp).await;
    assert_eq!(status, 200, "{v}");
    let head: Value = serde_json::from_str(&answer_text("/v1/messages", &v)).unwrap();
    assert_eq!(head["headers"]["anthropic-beta"], betas);
}
