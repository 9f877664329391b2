//! Cooldowns and circuit breakers, through the provider-order layer.

use super::*;

// ---------------------------------------------------------------------
// Cooldowns through the layer
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_rate_limited_provider_goes_last_until_its_retry_after() {
    // `a` answers 429 with Retry-After 200 ms once, then serves.
    let (inner, calls) = provider(|l, n| {
        if l.starts_with("a/") && n == 0 {
            Err(upstream(429).with_retry_after(Duration::from_millis(200)))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);

    let resp = svc.clone().oneshot(req_m()).await.unwrap();
    assert_eq!(served(&resp), "b/m");
    assert_eq!(calls.list(), ["a/m", "b/m"]);

    calls.clear();
    let resp = svc.clone().oneshot(req_m()).await.unwrap();
    assert_eq!(served(&resp), "b/m");
    assert_eq!(calls.list(), ["b/m"], "a is cooling down: last, after b");
    assert_eq!(attempts(&resp), "b/m=200");

    tokio::time::sleep(Duration::from_millis(300)).await;
    calls.clear();
    let resp = svc.oneshot(req_m()).await.unwrap();
    assert_eq!(served(&resp), "a/m", "back in rotation");
    assert_eq!(calls.list(), ["a/m"]);
}

#[tokio::test(start_paused = true)]
async fn a_sole_provider_in_cooldown_is_still_tried() {
    let (inner, calls) = provider(|l, n| {
        if n == 0 {
            Err(upstream(429).with_retry_after(Duration::from_secs(60)))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let r = || req(r#"{"model":"a/solo","messages":[]}"#);
    let err = svc.clone().oneshot(r()).await.unwrap_err();
    assert_eq!(err.status(), 429);
    let resp = svc.oneshot(r()).await.unwrap();
    assert_eq!(served(&resp), "a/solo");
    assert_eq!(calls.list(), ["a/solo", "a/solo"]);
}

#[tokio::test(start_paused = true)]
async fn when_every_candidate_cools_down_the_soonest_free_goes_first() {
    let (inner, calls) = provider(|l, n| match (l, n) {
        ("a/m", 0) => Err(upstream(429).with_retry_after(Duration::from_secs(60))),
        ("b/m", 0) => Err(upstream(429).with_retry_after(Duration::from_secs(20))),
        ("c/m", 0) => Err(upstream(429).with_retry_after(Duration::from_secs(40))),
        _ => Err(upstream(503)),
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    svc.clone().oneshot(req_m()).await.unwrap_err();
    calls.clear();
    svc.oneshot(req_m()).await.unwrap_err();
    assert_eq!(calls.list(), ["b/m", "c/m", "a/m"]);
}

/// `a` and `c` fail with a 500; `b` answers `b_answer(model, n)`.
fn a_and_c_fail(b_answer: fn(&str, usize) -> Reply) -> (Provider, Calls) {
    provider(move |l, n| match l.split_once('/') {
        Some(("b", model)) => b_answer(model, n),
        _ => Err(upstream(500)),
    })
}

#[tokio::test(start_paused = true)]
async fn a_target_cooling_down_is_tried_last_not_skipped() {
    // b/m is rate limited for a minute by its first answer.
    let (inner, calls) = a_and_c_fail(|_, n| {
        if n == 0 {
            Err(upstream(429).with_retry_after(Duration::from_secs(60)))
        } else {
            ok("b/m")
        }
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let err = svc.clone().oneshot(req_m()).await.unwrap_err();
    assert_eq!(err.status(), 500, "every candidate failed");
    calls.clear();
    let resp = svc.oneshot(req_m()).await.unwrap();
    assert_eq!(calls.list(), ["a/m", "c/m", "b/m"]);
    assert_eq!(served(&resp), "b/m", "b might serve, and did");
    assert_eq!(attempts(&resp), "a/m=500, c/m=500, b/m=200");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_on_one_model_leaves_the_providers_other_models_in_turn() {
    // The issue's case: b's `other` model is rate limited; a model whose
    // targets are a (500) and b's `m` is served by b.
    let (inner, calls) = a_and_c_fail(|model, _| {
        if model == "other" {
            Err(upstream(429).with_retry_after(Duration::from_secs(60)))
        } else {
            ok("b/m")
        }
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let err = svc
        .clone()
        .oneshot(req(r#"{"model":"b/other","messages":[]}"#))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 429);
    calls.clear();
    let resp = svc.oneshot(req_m()).await.unwrap();
    assert_eq!(calls.list(), ["a/m", "b/m"], "b/m in its configured turn");
    assert_eq!(served(&resp), "b/m");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_of_a_key_puts_its_other_models_last() {
    // g is an OpenAI-compatible server: its limits cover the key, so a 429
    // on one model puts g's other models last (but still tried).
    let (inner, calls) = provider(|l, n| match (l, n) {
        ("g/other", _) => Err(upstream(429)),
        ("c/m", 0) => Err(upstream(500)),
        _ => ok(l),
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let gm = || req(r#"{"model":"gm","messages":[]}"#);
    svc.clone()
        .oneshot(req(r#"{"model":"g/other","messages":[]}"#))
        .await
        .unwrap_err();
    calls.clear();
    let resp = svc.clone().oneshot(gm()).await.unwrap();
    assert_eq!(calls.list(), ["c/m", "g/m"], "g/m last, and it serves");
    assert_eq!(served(&resp), "g/m");
    // Its success shows the key serves again: back in its turn.
    calls.clear();
    svc.clone().oneshot(gm()).await.unwrap();
    assert_eq!(calls.list(), ["g/m"]);

    // An answer may say its limit covers the key, whatever the provider's
    // usual scope (a's are per model).
    let (inner, calls) = provider(|l, _| match l {
        "a/other" => Err(upstream(429).with_limit_scope(LimitScope::Key)),
        _ => ok(l),
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    svc.clone()
        .oneshot(req(r#"{"model":"a/other","messages":[]}"#))
        .await
        .unwrap_err();
    calls.clear();
    svc.oneshot(req_m()).await.unwrap();
    assert_eq!(calls.list(), ["b/m"], "a/m goes last");
}

#[tokio::test(start_paused = true)]
async fn the_next_candidate_is_chosen_when_it_is_needed() {
    // While a's attempt is out, another request finds b/m rate limited:
    // this request then tries c before b.
    let cooldowns = Cooldowns::default();
    let shared = cooldowns.clone();
    let (inner, calls) = provider(move |l, _| {
        if l == "a/m" {
            let b = TargetKey::new("b".into(), 0, "m".into());
            let limited = upstream(429).with_retry_after(Duration::from_secs(60));
            shared.on_failure(&b, &limited, LimitScope::Model, Instant::now());
            Err(upstream(503))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new()
        .layer(ProviderOrderLayer::new(routes(), cooldowns))
        .service(inner);
    let resp = svc.oneshot(req_m()).await.unwrap();
    assert_eq!(calls.list(), ["a/m", "c/m"]);
    assert_eq!(served(&resp), "c/m");
}

// ---------------------------------------------------------------------
// Circuit breaker through the layer
// ---------------------------------------------------------------------

const OPEN_FOR: Duration = Duration::from_millis(300);

fn breaker_layer() -> ProviderOrderLayer {
    // Two failures open a circuit for 300 ms.
    ProviderOrderLayer::new(
        routes(),
        Cooldowns::new(2, OPEN_FOR, Duration::from_secs(5)),
    )
}

#[tokio::test(start_paused = true)]
async fn repeated_502s_open_the_circuit_and_a_probe_closes_it() {
    // `a` fails twice, then serves.
    let (inner, calls) = provider(|l, n| {
        if l.starts_with("a/") && n < 2 {
            Err(upstream(502))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(breaker_layer()).service(inner);
    for _ in 0..2 {
        let resp = svc.clone().oneshot(req_m()).await.unwrap();
        assert_eq!(served(&resp), "b/m");
    }
    assert_eq!(calls.list(), ["a/m", "b/m", "a/m", "b/m"]);

    calls.clear();
    let resp = svc.clone().oneshot(req_m()).await.unwrap();
    assert_eq!(served(&resp), "b/m");
    assert_eq!(calls.list(), ["b/m"], "circuit open: a is skipped");

    tokio::time::sleep(OPEN_FOR + Duration::from_millis(150)).await;
    calls.clear();
    let resp = svc.clone().oneshot(req_m()).await.unwrap();
    assert_eq!(served(&resp), "a/m", "half-open: one probe goes to a");
    let resp = svc.oneshot(req_m()).await.unwrap();
    assert_eq!(served(&resp), "a/m", "the probe succeeded: closed");
    assert_eq!(calls.list(), ["a/m", "a/m"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_the_circuit_again() {
    let (inner, calls) = provider(|l, _| {
        if l.starts_with("a/") {
            Err(upstream(502))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(breaker_layer()).service(inner);
    for _ in 0..2 {
        svc.clone().oneshot(req_m()).await.unwrap();
    }
    tokio::time::sleep(OPEN_FOR + Duration::from_millis(150)).await;
    calls.clear();
    svc.clone().oneshot(req_m()).await.unwrap();
    assert_eq!(calls.list(), ["a/m", "b/m"], "the probe");
    calls.clear();
    svc.oneshot(req_m()).await.unwrap();
    assert_eq!(calls.list(), ["b/m"], "open again after the failed probe");
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_probe_does_not_keep_the_circuit_shut() {
    // `a` fails twice, hangs on the probe (whose client goes away), then
    // serves.
    let (inner, calls) = provider_async(|l, n| {
        let l = l.to_string();
        Box::pin(async move {
            match (l.starts_with("a/"), n) {
                (true, 0 | 1) => Err(upstream(502)),
                (true, 2) => std::future::pending().await,
                _ => ok(&l),
            }
        })
    });
    let svc = ServiceBuilder::new().layer(breaker_layer()).service(inner);
    for _ in 0..2 {
        svc.clone().oneshot(req_m()).await.unwrap();
    }
    tokio::time::sleep(OPEN_FOR + Duration::from_millis(150)).await;
    calls.clear();
    let (dropped, meanwhile) = tokio::join!(
        tokio::time::timeout(Duration::from_millis(50), svc.clone().oneshot(req_m())),
        async {
            // Once the probe is out.
            tokio::task::yield_now().await;
            svc.clone().oneshot(req_m()).await
        }
    );
    assert!(
        dropped.is_err(),
        "the probe hangs and its request is dropped"
    );
    assert_eq!(served(&meanwhile.unwrap()), "b/m", "one probe at a time");
    assert_eq!(calls.list(), ["a/m", "b/m"]);

    // Long after: a is probed again, and serves.
    tokio::time::sleep(OPEN_FOR + Duration::from_millis(150)).await;
    calls.clear();
    let resp = svc.oneshot(req_m()).await.unwrap();
    assert_eq!(calls.list(), ["a/m"]);
    assert_eq!(served(&resp), "a/m");
}
