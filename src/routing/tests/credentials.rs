//! The credential of each attempt, through the provider-order layer: the
//! client's own credential (pass-through) and BYOK keys before the
//! gateway's, their failures, and cooldowns kept per credential.

use http::HeaderMap;

use super::*;

const CONFIG: &str = r#"
[providers.an]
kind = "anthropic"
api_key = "sk-ant-gateway"
pass_through = true
[providers.sub]
kind = "anthropic"
pass_through = true
[providers.oa]
kind = "openai"
api_key = "sk-oa-gateway"
allow_byok = true
[providers.oafb]
kind = "openai"
api_key = "sk-oafb-gateway"
allow_byok = true
byok_fallback = true
[providers.plain]
kind = "openai"
api_key = "sk-plain"
[providers.Mixed]
kind = "openai"
allow_byok = true

[models]
sonnet = { targets = ["an/s", "oa/g"] }
subonly = { targets = ["sub/s", "oa/g"] }
"#;

fn layer() -> ProviderOrderLayer {
    let routes = Routes::from_config(&Config::parse(CONFIG, &|_| None).unwrap());
    ProviderOrderLayer::new(Arc::new(routes), Cooldowns::default())
}

fn headers(pairs: &[(&'static str, &str)]) -> Arc<HeaderMap> {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    Arc::new(h)
}

/// An Anthropic Messages request for `model` with the client's `token` as
/// its bearer.
fn anthropic(model: &str, token: &str) -> GatewayRequest {
    let mut r = GatewayRequest::new(
        WireFormat::Anthropic,
        Operation::Generate,
        RawObject::parse(format!(r#"{{"model":"{model}","messages":[]}}"#).as_bytes()).unwrap(),
    )
    .unwrap();
    r.headers = headers(&[("authorization", &format!("Bearer {token}"))]);
    r
}

/// A subscription at its limit, as the provider reports it.
fn limited() -> GatewayError {
    upstream(429)
        .with_limit_scope(LimitScope::Key)
        .with_retry_after(Duration::from_secs(3600))
}

/// A client credential the provider refused.
fn refused() -> GatewayError {
    upstream(401).with_cause(Cause::CredentialRejected)
}

#[tokio::test(start_paused = true)]
async fn the_clients_own_token_goes_first_and_only_to_a_pass_through_provider() {
    let (inner, calls) = provider(|l, _| ok(l));
    let svc = ServiceBuilder::new().layer(layer()).service(inner);
    let resp = svc
        .clone()
        .oneshot(anthropic("sonnet", "sk-ant-oat01-alice"))
        .await
        .unwrap();
    assert_eq!(served(&resp), "an/s[subscription=sk-ant-oat01-alice]");
    assert_eq!(attempts(&resp), "an/s[subscription]=200");

    // An OpenAI client's bearer was meant for the gateway, not Anthropic.
    calls.clear();
    let mut r = req(r#"{"model":"sonnet","messages":[]}"#);
    r.headers = headers(&[("authorization", "Bearer sk-ant-oat01-alice")]);
    assert_eq!(served(&svc.clone().oneshot(r).await.unwrap()), "an/s");

    // A gateway key is never passed on.
    let resp = svc.oneshot(anthropic("sonnet", "tg_abc")).await.unwrap();
    assert_eq!(served(&resp), "an/s");
    assert_eq!(attempts(&resp), "an/s=200");
}

#[tokio::test(start_paused = true)]
async fn a_subscription_at_its_limit_cools_down_for_that_token_only() {
    let (inner, calls) = provider(|l, _| {
        if l.contains("alice") {
            Err(limited())
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(layer()).service(inner);
    let alice = || anthropic("sonnet", "sk-ant-oat01-alice");

    let resp = svc.clone().oneshot(alice()).await.unwrap();
    assert_eq!(served(&resp), "an/s", "the gateway's Anthropic key serves");
    assert_eq!(attempts(&resp), "an/s[subscription]=429, an/s=200");

    // Alice's next requests go straight to the fallback, for every model.
    calls.clear();
    let resp = svc.clone().oneshot(alice()).await.unwrap();
    assert_eq!(calls.list(), ["an/s"]);
    assert_eq!(attempts(&resp), "an/s=200");
    calls.clear();
    svc.clone()
        .oneshot(anthropic("an/opus", "sk-ant-oat01-alice"))
        .await
        .unwrap();
    assert_eq!(calls.list(), ["an/opus"]);

    // Bob's token and the gateway's key are not held back.
    calls.clear();
    let resp = svc
        .clone()
        .oneshot(anthropic("sonnet", "sk-ant-oat01-bob"))
        .await
        .unwrap();
    assert_eq!(served(&resp), "an/s[subscription=sk-ant-oat01-bob]");

    // After the reset time, alice's token is tried first again.
    tokio::time::sleep(Duration::from_secs(3601)).await;
    calls.clear();
    svc.oneshot(alice()).await.unwrap();
    assert_eq!(
        calls.list(),
        ["an/s[subscription=sk-ant-oat01-alice]", "an/s"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_moves_on_and_is_tried_last_for_ten_minutes() {
    let (inner, calls) = provider(|l, _| {
        if l.contains("expired") {
            Err(refused())
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(layer()).service(inner);
    let expired = || anthropic("subonly", "sk-ant-oat01-carol-expired");
    let resp = svc.clone().oneshot(expired()).await.unwrap();
    assert_eq!(
        attempts(&resp),
        "sub/s[subscription]=401, oa/g=200",
        "a subscription-only provider has no gateway-managed attempt"
    );
    calls.clear();
    svc.clone().oneshot(expired()).await.unwrap();
    assert_eq!(calls.list(), ["oa/g"]);
    tokio::time::sleep(Duration::from_secs(601)).await;
    calls.clear();
    svc.oneshot(expired()).await.unwrap();
    assert_eq!(
        calls.list(),
        ["sub/s[subscription=sk-ant-oat01-carol-expired]", "oa/g"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_subscription_only_provider_without_a_client_token_is_not_tried() {
    let (inner, calls) = provider(|l, _| ok(l));
    let svc = ServiceBuilder::new().layer(layer()).service(inner);
    let resp = svc
        .clone()
        .oneshot(req(r#"{"model":"subonly","messages":[]}"#))
        .await
        .unwrap();
    assert_eq!(served(&resp), "oa/g");
    let err = svc
        .oneshot(req(r#"{"model":"sub/s","messages":[]}"#))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 401);
    assert!(err.message().contains("`sub`"), "{}", err.message());
    assert_eq!(calls.len(), 1, "nothing was sent without a credential");
}

/// A request for `model` bringing `body_keys` in its body and `header`
/// (name, key) as headers.
fn byok(model: &str, body_keys: &str, header: &[(&'static str, &str)]) -> GatewayRequest {
    let mut r = req(&format!(
        r#"{{"model":"{model}","messages":[],"providerOptions":{{"gateway":{{"byok":{body_keys}}}}}}}"#
    ));
    r.headers = headers(header);
    r
}

#[tokio::test(start_paused = true)]
async fn byok_keys_are_tried_in_order_and_fall_back_only_when_allowed() {
    let (inner, calls) = provider(|l, _| {
        if l.contains("byok=bad") {
            Err(refused())
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(layer()).service(inner);

    // Body keys first, then the header's; the first that works serves.
    let resp = svc
        .clone()
        .oneshot(byok(
            "oa/g",
            r#"{"oa":[{"apiKey":"bad-key-1"},{"apiKey":"good-key-2"}]}"#,
            &[("x-tollgate-byok-oa", "good-key-3")],
        ))
        .await
        .unwrap();
    assert_eq!(served(&resp), "oa/g[byok=good-key-2]");
    assert_eq!(attempts(&resp), "oa/g[byok]=401, oa/g[byok]=200");

    // Without `byok_fallback`, the gateway's key is never used.
    calls.clear();
    let err = svc
        .clone()
        .oneshot(byok("oa/g", r#"{"oa":[{"apiKey":"bad-key-4"}]}"#, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 401);
    assert_eq!(calls.list(), ["oa/g[byok=bad-key-4]"]);

    // With it, the gateway's key follows.
    calls.clear();
    let resp = svc
        .clone()
        .oneshot(byok(
            "oafb/g",
            "{}",
            &[("x-tollgate-byok-oafb", "bad-key-5")],
        ))
        .await
        .unwrap();
    assert_eq!(attempts(&resp), "oafb/g[byok]=401, oafb/g=200");

    // A header names a provider regardless of case.
    let resp = svc
        .oneshot(byok(
            "Mixed/g",
            "{}",
            &[("x-tollgate-byok-mixed", "good-key-6")],
        ))
        .await
        .unwrap();
    assert_eq!(served(&resp), "Mixed/g[byok=good-key-6]");
}

#[tokio::test(start_paused = true)]
async fn byok_for_a_provider_that_does_not_take_it_is_the_clients_400() {
    let (inner, calls) = provider(|l, _| ok(l));
    let svc = ServiceBuilder::new().layer(layer()).service(inner);
    for (r, field) in [
        (
            byok("oa/g", r#"{"plain":[{"apiKey":"k-SECRET"}]}"#, &[]),
            "providerOptions.gateway.byok.plain",
        ),
        (
            byok("oa/g", "{}", &[("x-tollgate-byok-plain", "k-SECRET")]),
            "x-tollgate-byok-plain",
        ),
        (
            byok("oa/g", r#"{"nope":[{"apiKey":"k-SECRET"}]}"#, &[]),
            "providerOptions.gateway.byok.nope",
        ),
        // A body names the provider as configured: `Mixed`, not `mixed`
        // (only a header name, lower case, may differ in case).
        (
            byok("Mixed/g", r#"{"mixed":[{"apiKey":"k-SECRET"}]}"#, &[]),
            "providerOptions.gateway.byok.mixed",
        ),
    ] {
        let err = svc.clone().oneshot(r).await.unwrap_err();
        assert_eq!(err.status(), 400, "{field}");
        assert_eq!(err.param(), Some(field));
        assert!(err.message().contains(field), "{}", err.message());
        assert!(!err.message().contains("SECRET"), "{}", err.message());
    }
    assert_eq!(calls.len(), 0);

    // Spelled as configured, the body's key serves.
    let resp = svc
        .oneshot(byok("Mixed/g", r#"{"Mixed":[{"apiKey":"k-SECRET"}]}"#, &[]))
        .await
        .unwrap();
    assert_eq!(served(&resp), "Mixed/g[byok=k-SECRET]");
}

#[tokio::test(start_paused = true)]
async fn byok_keys_body_and_headers_together_are_capped_naming_the_header() {
    let (inner, calls) = provider(|l, _| ok(l));
    let svc = ServiceBuilder::new().layer(layer()).service(inner);
    let body = |n: usize| {
        let keys: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"apiKey":"sk-SECRET-body-{i}"}}"#))
            .collect();
        format!(r#"{{"oa":[{}]}}"#, keys.join(","))
    };
    let h = [
        ("x-tollgate-byok-oa", "sk-SECRET-header-1"),
        ("x-tollgate-byok-oa", "sk-SECRET-header-2"),
    ];
    // Within the cap: every key is a candidate.
    let resp = svc
        .clone()
        .oneshot(byok("oa/g", &body(MAX - 2), &h))
        .await
        .unwrap();
    assert_eq!(served(&resp), "oa/g[byok=sk-SECRET-body-0]");
    // One more, from either side: the client's 400, naming the header.
    let err = svc
        .oneshot(byok("oa/g", &body(MAX - 1), &h))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.param(), Some("x-tollgate-byok-oa"));
    assert!(!err.message().contains("SECRET"), "{}", err.message());
    assert_eq!(calls.len(), 1, "the refused request reached no provider");
}

const MAX: usize = crate::routing::credential::MAX_BYOK_KEYS;
