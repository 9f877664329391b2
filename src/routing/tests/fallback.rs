//! Model fallback (Fallback + ModelChain).

use super::*;

// ---------------------------------------------------------------------
// Model fallback (Fallback + ModelChain)
// ---------------------------------------------------------------------

fn fallback_stack(inner: Provider) -> Fallback<ProviderOrder<Provider>, ModelChain> {
    ServiceBuilder::new()
        .layer(FallbackLayer::new(ModelChain::new(routes())))
        .layer(order_layer())
        .service(inner)
}

/// Every target fails with a 503 except `serves`.
fn all_fail_but(serves: &'static str) -> (Provider, Calls) {
    provider(move |l, _| {
        if l == serves {
            ok(l)
        } else {
            Err(upstream(503))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn the_client_models_then_the_configured_fallbacks() {
    let (inner, calls) = all_fail_but("c/backup");
    let log = AttemptLog::new();
    let mut r = req(r#"{"model":"chat","messages":[],"models":["alt"]}"#);
    r.extensions.insert(log.clone());
    let resp = fallback_stack(inner).oneshot(r).await.unwrap();
    assert_eq!(served(&resp), "c/backup");
    assert_eq!(calls.list(), ["a/chat", "b/chat", "c/alt", "c/backup"]);
    let want = "a/chat=503, b/chat=503, c/alt=503, c/backup=200";
    assert_eq!(log.header_value().as_deref(), Some(want));
    assert_eq!(attempts(&resp), want);
}

#[tokio::test(start_paused = true)]
async fn vercel_models_and_a_repeated_requested_model() {
    let (inner, calls) = all_fail_but("none");
    let err = fallback_stack(inner)
        .oneshot(req(
            r#"{"model":"chat","messages":[],"providerOptions":{"gateway":{"models":["chat","alt"]}}}"#,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503, "the last model's error");
    assert_eq!(calls.list(), ["a/chat", "b/chat", "c/alt", "c/backup"]);
}

#[tokio::test(start_paused = true)]
async fn a_client_error_does_not_fall_back() {
    for status in [400, 401, 404] {
        let (inner, calls) = provider(move |_, _| Err(upstream(status)));
        let err = fallback_stack(inner)
            .oneshot(req(r#"{"model":"chat","messages":[],"models":["alt"]}"#))
            .await
            .unwrap_err();
        assert_eq!(err.status(), status);
        assert_eq!(calls.list(), ["a/chat"], "{status}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_context_length_error_skips_models_that_are_not_larger() {
    let too_long = || GatewayError::new(ErrorKind::ContextLengthExceeded, "prompt is too long");
    // chat has 8000 tokens; small 4000 is skipped, large 128000 is tried.
    let (inner, calls) = provider(move |l, _| {
        if l.ends_with("/chat") {
            Err(too_long())
        } else {
            ok(l)
        }
    });
    let resp = fallback_stack(inner)
        .oneshot(req(
            r#"{"model":"chat","messages":[],"models":["small","large"]}"#,
        ))
        .await
        .unwrap();
    assert_eq!(served(&resp), "c/large");
    assert_eq!(calls.list(), ["a/chat", "b/chat", "c/large"]);

    // Any other failure does not skip.
    let (inner, calls) = all_fail_but("c/small");
    let resp = fallback_stack(inner)
        .oneshot(req(
            r#"{"model":"chat","messages":[],"models":["small","large"]}"#,
        ))
        .await
        .unwrap();
    assert_eq!(served(&resp), "c/small");
    assert_eq!(calls.list(), ["a/chat", "b/chat", "c/small"]);
}

#[tokio::test(start_paused = true)]
async fn a_providers_404_does_not_fall_back_whatever_its_code() {
    // An OpenAI provider's 404 names `model_not_found` in its code: it is
    // still the provider's answer, and goes back to the client.
    let (inner, calls) = provider(|l, _| {
        if l.ends_with("/chat") {
            Err(upstream(404).with_code("model_not_found"))
        } else {
            ok(l)
        }
    });
    let err = fallback_stack(inner)
        .oneshot(req(r#"{"model":"chat","messages":[],"models":["alt"]}"#))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 404);
    assert_eq!(calls.list(), ["a/chat"]);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_model_or_one_no_allowed_provider_serves_is_skipped() {
    for body in [
        // The gateway does not know the model.
        r#"{"model":"nope","messages":[],"models":["alt"]}"#,
        // Only c may serve, and c does not serve `chat`.
        r#"{"model":"chat","messages":[],"models":["alt"],"provider":{"only":["c"]}}"#,
    ] {
        let (inner, calls) = provider(|l, _| ok(l));
        let resp = fallback_stack(inner).oneshot(req(body)).await.unwrap();
        assert_eq!(served(&resp), "c/alt", "{body}");
        assert_eq!(calls.list(), ["c/alt"], "{body}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_fallback_after_the_deadline() {
    let (inner, calls) = provider(|l, _| ok(l));
    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(ModelChain::new(routes())))
        .layer(order_layer())
        .layer(TimeoutLayer::new().total(Duration::from_millis(100)))
        .service(inner);
    let mut r = req(r#"{"model":"chat","messages":[],"models":["alt"]}"#);
    r.extensions.insert(Started(
        (Instant::now() - Duration::from_secs(1)).into_std(),
    ));
    let err = svc.oneshot(r).await.unwrap_err();
    assert_eq!(err.cause(), Some(Cause::DeadlinePassed));
    assert_eq!(calls.len(), 0);
}

#[test]
fn requests_with_nowhere_to_fall_back_are_not_copied() {
    let mut chain = ModelChain::new(routes());
    assert!(
        chain.clone_request(&req_m()).is_none(),
        "m has no fallbacks and the client named no models"
    );
    assert!(chain
        .clone_request(&req(r#"{"model":"a/raw","messages":[]}"#))
        .is_none());
    let mut chain = ModelChain::new(routes());
    assert!(
        chain
            .clone_request(&req(r#"{"model":"chat","messages":[]}"#))
            .is_some(),
        "chat falls back to backup"
    );

    // Down the chain: the last model is not copied either.
    let mut chain = ModelChain::new(routes());
    let kept = chain
        .clone_request(&req(r#"{"model":"m","messages":[],"models":["alt"]}"#))
        .expect("the client named alt");
    let failed: Reply = Err(upstream(503));
    let next = chain.next(&kept, &failed).expect("alt is next");
    assert_eq!(next.model, "alt");
    assert!(chain.clone_request(&next).is_none(), "nothing after alt");
    assert!(chain.next(&next, &failed).is_none());
}
