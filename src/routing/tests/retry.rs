//! Same-target retries (tower::retry::Retry with RetryTransient).

use super::*;

// ---------------------------------------------------------------------
// Same-target retries (tower::retry::Retry with RetryTransient)
// ---------------------------------------------------------------------

fn retry_layer(retries: u32, budget_percent: u32) -> RetryLayer<RetryTransient> {
    RetryLayer::new(RetryTransient::new(retries, budget_percent))
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_on_the_same_target() {
    for err in [
        GatewayError::new(ErrorKind::Connect, "connection refused"),
        upstream(502),
        upstream(503),
    ] {
        let what = format!("{:?} {}", err.kind(), err.status());
        // Fails twice, then serves.
        let (inner, calls) = provider(move |l, n| if n < 2 { Err(err.clone()) } else { ok(l) });
        let svc = ServiceBuilder::new()
            .layer(retry_layer(2, 20))
            .service(inner);
        let resp = svc.oneshot(pinned("a")).await.unwrap();
        assert_eq!(served(&resp), "a/m", "{what}");
        assert_eq!(calls.list(), ["a/m", "a/m", "a/m"], "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_the_configured_number() {
    let (inner, calls) = provider(|_, _| Err(upstream(503)));
    let svc = ServiceBuilder::new()
        .layer(retry_layer(1, 20))
        .service(inner);
    let err = svc.oneshot(pinned("a")).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(calls.len(), 2, "the attempt and one retry");
}

#[tokio::test(start_paused = true)]
async fn other_failures_are_not_retried() {
    for err in [
        upstream(429),
        upstream(400),
        upstream(500),
        upstream(529),
        upstream(503).with_retry_after(Duration::from_secs(1)),
        GatewayError::new(ErrorKind::Timeout, "no first byte"),
    ] {
        let status = err.status();
        let (inner, calls) = provider(move |_, _| Err(err.clone()));
        let svc = ServiceBuilder::new()
            .layer(retry_layer(3, 20))
            .service(inner);
        let got = svc.oneshot(pinned("a")).await.unwrap_err();
        assert_eq!(got.status(), status);
        assert_eq!(calls.len(), 1, "{status}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_shows_in_the_attempts() {
    let (inner, _) = provider(|l, n| if n == 0 { Err(upstream(502)) } else { ok(l) });
    let svc = ServiceBuilder::new()
        .layer(order_layer())
        .layer(retry_layer(1, 20))
        .service(inner);
    let resp = svc.oneshot(req_m()).await.unwrap();
    assert_eq!(attempts(&resp), "a/m=502, a/m=200");
}

#[tokio::test(start_paused = true)]
async fn a_spent_retry_budget_stops_retries() {
    // No share of the traffic for retries: only the budget's floor (one a
    // second over its 10 s window) is left.
    let (inner, calls) = provider(|_, _| Err(upstream(503)));
    let svc = ServiceBuilder::new()
        .layer(retry_layer(1, 0))
        .service(inner);
    for _ in 0..15 {
        svc.clone().oneshot(pinned("a")).await.unwrap_err();
    }
    assert_eq!(calls.len(), 15 + 10, "15 attempts and 10 retries");
    calls.clear();
    svc.oneshot(pinned("a")).await.unwrap_err();
    assert_eq!(calls.len(), 1, "the budget is spent");
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_keeps_up_does_not_stop_retries() {
    // 100%: every request pays for one retry.
    let (inner, calls) = provider(|_, _| Err(upstream(503)));
    let svc = ServiceBuilder::new()
        .layer(retry_layer(1, 100))
        .service(inner);
    for _ in 0..15 {
        svc.clone().oneshot(pinned("a")).await.unwrap_err();
    }
    assert_eq!(calls.len(), 30);
}
