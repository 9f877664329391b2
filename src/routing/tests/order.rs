//! ProviderOrder: which candidates, in which order, which errors move
//! on, the attempt log, and a provider's deployments.

use super::*;

// ---------------------------------------------------------------------
// ProviderOrder: which candidates, in which order
// ---------------------------------------------------------------------

/// Every candidate fails with a 503, so the calls show the whole order.
async fn order_of(body: &str) -> (Vec<String>, GatewayError) {
    let (inner, calls) = provider(|_, _| Err(upstream(503)));
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let err = svc.oneshot(req(body)).await.unwrap_err();
    (calls.list(), err)
}

#[tokio::test(start_paused = true)]
async fn order_follows_the_configured_targets() {
    let (calls, err) = order_of(r#"{"model":"m","messages":[]}"#).await;
    assert_eq!(calls, ["a/m", "b/m", "c/m"]);
    assert_eq!(err.status(), 503, "the last candidate's error");
}

#[tokio::test(start_paused = true)]
async fn client_order_moves_named_providers_first() {
    let (calls, _) =
        order_of(r#"{"model":"m","messages":[],"provider":{"order":["c","b"]}}"#).await;
    assert_eq!(calls, ["c/m", "b/m", "a/m"]);
    // Vercel's spelling; unnamed providers keep their configured order.
    let (calls, _) =
        order_of(r#"{"model":"m","messages":[],"providerOptions":{"gateway":{"order":["b"]}}}"#)
            .await;
    assert_eq!(calls, ["b/m", "a/m", "c/m"]);
}

#[tokio::test(start_paused = true)]
async fn only_and_ignore_filter_the_candidates() {
    let (calls, _) = order_of(r#"{"model":"m","messages":[],"provider":{"only":["c","a"]}}"#).await;
    assert_eq!(calls, ["a/m", "c/m"], "configured order, filtered");
    let (calls, _) = order_of(r#"{"model":"m","messages":[],"provider":{"ignore":["a"]}}"#).await;
    assert_eq!(calls, ["b/m", "c/m"]);
    let (calls, _) =
        order_of(r#"{"model":"m","messages":[],"providerOptions":{"gateway":{"only":["b"]}}}"#)
            .await;
    assert_eq!(calls, ["b/m"]);
}

#[tokio::test(start_paused = true)]
async fn only_excluding_every_target_is_a_400_without_any_call() {
    for (body, field) in [
        (
            r#"{"model":"m","messages":[],"provider":{"only":["zzz"]}}"#,
            "only",
        ),
        (
            r#"{"model":"m","messages":[],"provider":{"ignore":["a","b","c"]}}"#,
            "ignore",
        ),
    ] {
        let (calls, err) = order_of(body).await;
        assert!(calls.is_empty(), "{body}: {calls:?}");
        assert_eq!(err.status(), 400, "{body}");
        assert_eq!(err.cause(), Some(Cause::NoAllowedProvider), "{body}");
        assert_eq!(err.code(), Some("no_allowed_provider"), "{body}");
        assert!(
            err.param().is_some_and(|p| p.ends_with(field)),
            "{body}: {:?}",
            err.param()
        );
        assert!(err.message().contains(field), "{}", err.message());
        // The message tells the client who could have served.
        assert!(err.message().contains("a, b, c"), "{}", err.message());
    }
}

#[tokio::test(start_paused = true)]
async fn allow_fallbacks_false_tries_one_provider() {
    let (calls, err) =
        order_of(r#"{"model":"m","messages":[],"provider":{"allow_fallbacks":false}}"#).await;
    assert_eq!(calls, ["a/m"]);
    assert_eq!(err.status(), 503);
    // With an order: the first of the client's order.
    let (calls, _) = order_of(
        r#"{"model":"m","messages":[],"provider":{"order":["c"],"allow_fallbacks":false}}"#,
    )
    .await;
    assert_eq!(calls, ["c/m"]);
}

#[tokio::test(start_paused = true)]
async fn a_target_in_the_extensions_is_used_as_is() {
    let (inner, calls) = provider(|l, _| ok(l));
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let mut r = req(r#"{"model":"m","messages":[],"provider":{"only":["a"]}}"#);
    r.extensions.insert(target("b", "pinned"));
    let resp = svc.oneshot(r).await.unwrap();
    assert_eq!(served(&resp), "b/pinned");
    assert_eq!(calls.list(), ["b/pinned"]);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_model_is_a_404_without_any_call() {
    let (calls, err) = order_of(r#"{"model":"nope","messages":[]}"#).await;
    assert!(calls.is_empty());
    assert_eq!(err.status(), 404);
    assert_eq!(err.cause(), Some(Cause::UnknownModel));
    assert_eq!(err.code(), Some("model_not_found"));
}

// ---------------------------------------------------------------------
// DefaultFailover: which errors move on
// ---------------------------------------------------------------------

/// `a` fails with `err`, `b` serves: who was called, and what the client got.
async fn after_failure_on_a(err: GatewayError) -> (Vec<String>, Reply) {
    let (inner, calls) = provider(move |l, _| {
        if l.starts_with("a/") {
            Err(err.clone())
        } else {
            ok(l)
        }
    });
    // A fresh layer each time: no cooldown from an earlier case.
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let res = svc.oneshot(req_m()).await;
    (calls.list(), res)
}

#[tokio::test(start_paused = true)]
async fn transient_and_capacity_errors_move_to_the_next_candidate() {
    for err in [
        upstream(429),
        upstream(500),
        upstream(502),
        upstream(503),
        upstream(529),
        GatewayError::new(ErrorKind::Connect, "connection refused"),
        GatewayError::new(ErrorKind::Timeout, "no first byte"),
        GatewayError::new(ErrorKind::ContextLengthExceeded, "prompt is too long"),
    ] {
        let what = format!("{:?} {}", err.kind(), err.status());
        let (calls, res) = after_failure_on_a(err).await;
        assert_eq!(calls, ["a/m", "b/m"], "{what}");
        assert_eq!(served(&res.unwrap()), "b/m", "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn client_errors_and_deadlines_are_answered_at_once() {
    for err in [
        upstream(400),
        upstream(401),
        upstream(403),
        upstream(404),
        GatewayError::new(ErrorKind::Timeout, "deadline").with_cause(Cause::DeadlinePassed),
    ] {
        let (status, cause) = (err.status(), err.cause());
        let (calls, res) = after_failure_on_a(err).await;
        assert_eq!(calls, ["a/m"], "{status}");
        let got = res.unwrap_err();
        assert_eq!(got.status(), status);
        assert_eq!(got.cause(), cause);
    }
}

#[tokio::test(start_paused = true)]
async fn a_providers_error_code_decides_nothing() {
    // A provider's own `code` strings that the gateway also uses: they
    // count for their status, as any other provider answer.
    let err = upstream(504).with_code(DEADLINE_EXCEEDED);
    let (calls, res) = after_failure_on_a(err).await;
    assert_eq!(
        calls,
        ["a/m", "b/m"],
        "a provider's 504 is a timeout like any other"
    );
    assert_eq!(served(&res.unwrap()), "b/m");
    let err = upstream(404).with_code("model_not_found");
    let (calls, res) = after_failure_on_a(err).await;
    assert_eq!(calls, ["a/m"], "a provider's 404 goes back to the client");
    assert_eq!(res.unwrap_err().status(), 404);
}

#[tokio::test(start_paused = true)]
async fn custom_failover_rules_replace_the_default() {
    // Move on after nothing at all.
    let (inner, calls) = provider(|_, _| Err(upstream(503)));
    let layer = ProviderOrderLayer::with_failover(routes(), Cooldowns::default(), |_: &_| false);
    let err = ServiceBuilder::new()
        .layer(layer)
        .service(inner)
        .oneshot(req_m())
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(calls.list(), ["a/m"]);
}

// ---------------------------------------------------------------------
// AttemptLog
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn attempts_are_listed_in_the_response_and_the_request_log() {
    let (inner, _) = provider(|l, _| {
        if l.starts_with("a/") {
            Err(upstream(429))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    // The edge puts a log in every request; the layer writes to it.
    let log = AttemptLog::new();
    let mut r = req_m();
    r.extensions.insert(log.clone());
    let resp = svc.oneshot(r).await.unwrap();
    assert_eq!(attempts(&resp), "a/m=429, b/m=200");
    assert_eq!(log.header_value().as_deref(), Some("a/m=429, b/m=200"));
}

#[tokio::test(start_paused = true)]
async fn attempts_are_listed_without_a_log_from_the_edge() {
    let (inner, _) = provider(|l, _| {
        if l.starts_with("a/") {
            Err(GatewayError::new(ErrorKind::Connect, "refused"))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let resp = svc.oneshot(req_m()).await.unwrap();
    assert_eq!(attempts(&resp), "a/m=connect, b/m=200");
}

// ---------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------

fn req_dm() -> GatewayRequest {
    req(r#"{"model":"dm","messages":[]}"#)
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_deployment_moves_to_the_other_one_first() {
    // Whichever deployment of d is tried first answers 429; the rest serve.
    let d_calls = Arc::new(AtomicUsize::new(0));
    let (inner, calls) = provider(move |l, _| {
        if l.starts_with("d[") && d_calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(upstream(429))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let resp = svc.clone().oneshot(req_dm()).await.unwrap();
    let list = calls.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list[0].starts_with("d[") && list[1].starts_with("d["),
        "{list:?}"
    );
    assert_ne!(list[0], list[1], "the other deployment, before b: {list:?}");
    assert_eq!(served(&resp), list[1]);
    assert_eq!(attempts(&resp), format!("{}=429, {}=200", list[0], list[1]));

    // The limited deployment cools down: the next request goes to the other.
    calls.clear();
    let resp = svc.oneshot(req_dm()).await.unwrap();
    assert_eq!(calls.list(), [list[1].clone()]);
    assert_eq!(served(&resp), list[1]);
}

#[tokio::test(start_paused = true)]
async fn every_deployment_is_tried_before_the_next_provider() {
    let (inner, calls) = provider(|l, _| {
        if l.starts_with("d[") {
            Err(upstream(503))
        } else {
            ok(l)
        }
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let resp = svc.oneshot(req_dm()).await.unwrap();
    let mut list = calls.list();
    assert_eq!(list.pop().as_deref(), Some("b/m"));
    list.sort();
    assert_eq!(list, ["d[0]/m", "d[1]/m"]);
    assert_eq!(served(&resp), "b/m");
}

#[tokio::test(start_paused = true)]
async fn weighted_choice_spreads_over_both_deployments() {
    let (inner, _) = provider(|l, _| ok(l));
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let mut first = 0;
    for _ in 0..400 {
        let resp = svc.clone().oneshot(req_dm()).await.unwrap();
        match served(&resp).as_str() {
            "d[0]/m" => first += 1,
            "d[1]/m" => {}
            other => panic!("served by {other}"),
        }
    }
    // Equal weights: about 200 each (a standard deviation of 10).
    assert!((120..=280).contains(&first), "d[0] served {first} of 400");
}

#[tokio::test(start_paused = true)]
async fn least_latency_prefers_the_faster_deployment() {
    // e[0] takes 80 ms, e[1] 1 ms. (Not 0: on the paused clock an
    // instant answer would cost as little as an unmeasured deployment, and
    // the tie would leave e[0] unmeasured for as long as chance has it.)
    let (inner, _) = provider_async(|l, _| {
        let l = l.to_string();
        Box::pin(async move {
            let ms = if l.starts_with("e[0]") { 80 } else { 1 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ok(&l)
        })
    });
    let svc = ServiceBuilder::new().layer(order_layer()).service(inner);
    let mut by = Vec::new();
    for _ in 0..10 {
        let resp = svc
            .clone()
            .oneshot(req(r#"{"model":"em","messages":[]}"#))
            .await
            .unwrap();
        by.push(served(&resp));
    }
    // Once both have been measured, the fast one goes first.
    assert!(by[3..].iter().all(|s| s == "e[1]/m"), "{by:?}");
}
