//! Timeouts: first byte, idle gap, total deadline.

use super::*;

// ---------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------

/// A provider that answers after `delay`, or never for the labels in
/// `hang`.
fn sleepy(delay: Duration, hang: &'static [&'static str]) -> (Provider, Calls) {
    provider_async(move |l, _| {
        let l = l.to_string();
        Box::pin(async move {
            if hang.contains(&l.as_str()) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(delay).await;
            ok(&l)
        })
    })
}

fn chunk(text: &'static str) -> StreamChunk {
    StreamChunk::Raw(Bytes::from_static(text.as_bytes()))
}

/// A provider whose stream sends one chunk, then nothing.
fn stalling_stream() -> (Provider, Calls) {
    provider(|_, _| {
        let s = futures_util::stream::once(async { Ok(chunk("data: one\n\n")) })
            .chain(futures_util::stream::pending());
        Ok(GatewayResponse::new(ResponseBody::Stream(Box::pin(s))))
    })
}

fn stream_of(resp: GatewayResponse) -> crate::response::ChunkStream {
    match resp.body {
        ResponseBody::Stream(s) => s,
        other => panic!("not a stream: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_byte_is_a_timeout() {
    let (inner, _) = sleepy(Duration::ZERO, &["a/m"]);
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new().first_byte(Duration::from_millis(50)))
        .service(inner);
    let t0 = Instant::now();
    let err = svc.clone().oneshot(pinned("a")).await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_millis(50));
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.status(), 504);
    assert_eq!(err.cause(), None, "another target may do");
    assert!(
        err.message().contains("`a`") && err.message().contains("50 ms"),
        "{}",
        err.message()
    );
    // In time: served.
    assert_eq!(served(&svc.oneshot(pinned("b")).await.unwrap()), "b/m");
}

#[tokio::test(start_paused = true)]
async fn a_client_provider_timeout_overrides_the_default() {
    // Default 10 s; the client gives `a` 50 ms. b takes 100 ms, within its
    // default.
    let (inner, calls) = sleepy(Duration::from_millis(100), &["a/m"]);
    let svc = ServiceBuilder::new()
        .layer(order_layer())
        .layer(TimeoutLayer::new().first_byte(Duration::from_secs(10)))
        .service(inner);
    let t0 = Instant::now();
    let resp = svc
        .oneshot(req(
            r#"{"model":"m","messages":[],"providerOptions":{"gateway":{"providerTimeouts":{"a":50}}}}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(50 + 100),
        "a's 50 ms, b's answer"
    );
    assert_eq!(served(&resp), "b/m");
    assert_eq!(calls.list(), ["a/m", "b/m"]);
    assert_eq!(attempts(&resp), "a/m=timeout, b/m=200");
}

#[tokio::test(start_paused = true)]
async fn an_idle_gap_ends_the_stream_with_an_in_band_timeout() {
    let (inner, _) = stalling_stream();
    let svc = ServiceBuilder::new()
        .layer(
            TimeoutLayer::new()
                .first_byte(Duration::from_secs(10))
                .idle(Duration::from_millis(100)),
        )
        .service(inner);
    let t0 = Instant::now();
    let mut s = stream_of(svc.oneshot(pinned("a")).await.unwrap());
    assert_eq!(s.next().await.unwrap().unwrap(), chunk("data: one\n\n"));
    let err = s.next().await.unwrap().unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_millis(100));
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.cause(), None);
    assert!(err.message().contains("100 ms"), "{}", err.message());
    assert!(s.next().await.is_none(), "the stream ends after the error");
}

#[tokio::test(start_paused = true)]
async fn a_steady_stream_is_not_cut() {
    let (inner, _) = provider(|_, _| {
        let s = futures_util::stream::unfold(0, |i| async move {
            if i == 5 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((Ok(chunk("data: x\n\n")), i + 1))
        });
        Ok(GatewayResponse::new(ResponseBody::Stream(Box::pin(s))))
    });
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new().idle(Duration::from_millis(500)))
        .service(inner);
    let s = stream_of(svc.oneshot(pinned("a")).await.unwrap());
    let items: Vec<_> = s.collect().await;
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(Result::is_ok));
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_stops_the_attempt_before_it_starts() {
    let (inner, calls) = provider(|l, _| ok(l));
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new().total(Duration::from_millis(100)))
        .service(inner);
    let mut r = pinned("a");
    r.extensions.insert(Started(
        (Instant::now() - Duration::from_millis(200)).into_std(),
    ));
    let err = svc.oneshot(r).await.unwrap_err();
    assert_eq!(err.cause(), Some(Cause::DeadlinePassed));
    // What the client reads.
    assert_eq!(err.code(), Some(DEADLINE_EXCEEDED));
    assert_eq!(err.status(), 504);
    assert!(err.message().contains("100 ms"), "{}", err.message());
    assert_eq!(calls.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_a_later_attempt() {
    // `a` answers 503 just after the deadline (the clock moves while its
    // answer is ready, so that its own attempt is not cut); `b` is then
    // not tried, nor `c`.
    let (inner, calls) = provider_async(|l, _| {
        let l = l.to_string();
        Box::pin(async move {
            if l == "a/m" {
                tokio::time::advance(Duration::from_millis(150)).await;
                Err(upstream(503))
            } else {
                ok(&l)
            }
        })
    });
    let svc = ServiceBuilder::new()
        .layer(order_layer())
        .layer(TimeoutLayer::new().total(Duration::from_millis(100)))
        .service(inner);
    let mut r = req_m();
    r.extensions.insert(Started(Instant::now().into_std()));
    let err = svc.oneshot(r).await.unwrap_err();
    assert_eq!(err.cause(), Some(Cause::DeadlinePassed));
    assert_eq!(calls.list(), ["a/m"]);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_a_slow_attempt_and_nothing_follows() {
    let (inner, calls) = sleepy(Duration::ZERO, &["a/m"]);
    let svc = ServiceBuilder::new()
        .layer(order_layer())
        .layer(
            TimeoutLayer::new()
                .first_byte(Duration::from_secs(10))
                .total(Duration::from_millis(100)),
        )
        .service(inner);
    let mut r = req_m();
    r.extensions.insert(Started(Instant::now().into_std()));
    let t0 = Instant::now();
    let err = svc.oneshot(r).await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_millis(100));
    assert_eq!(err.cause(), Some(Cause::DeadlinePassed));
    assert_eq!(calls.list(), ["a/m"]);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_stream_in_band() {
    let (inner, _) = stalling_stream();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new().total(Duration::from_millis(100)))
        .service(inner);
    let mut r = pinned("a");
    r.extensions.insert(Started(Instant::now().into_std()));
    let mut s = stream_of(svc.oneshot(r).await.unwrap());
    assert!(s.next().await.unwrap().is_ok());
    let err = s.next().await.unwrap().unwrap_err();
    assert_eq!(err.cause(), Some(Cause::DeadlinePassed));
    assert!(s.next().await.is_none());
}
