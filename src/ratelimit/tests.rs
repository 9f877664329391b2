//! The layer alone, on a manual clock, around a `service_fn`.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use serde_json::json;
use tower::{service_fn, Layer, Service, ServiceExt};

use super::*;
use crate::auth::{AuthMethod, KeyLimits, Principal};
use crate::canonical::Usage;
use crate::config::{RateLimitConfig, RateLimitScope};
use crate::error::{ErrorKind, GatewayError};
use crate::json::RawObject;
use crate::request::{GatewayRequest, Operation};
use crate::response::{GatewayResponse, ResponseBody};
use crate::usage::{Settlement, Summary};
use crate::WireFormat;

/// What the inner service answers.
#[derive(Clone, Default)]
enum Answer {
    /// A 200 with nothing else.
    #[default]
    Plain,
    /// A 200 whose usage settles later, through the returned settlement.
    Settles,
    /// A 200 that knows its usage at once (no settlement).
    Usage(u64),
    /// A 502.
    Fails,
}

#[derive(Clone, Default)]
struct Inner {
    answer: Arc<Mutex<Answer>>,
    settlements: Arc<Mutex<Vec<Settlement>>>,
}

impl Inner {
    fn answer(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    /// Settles the oldest unsettled answer with `tokens` used.
    fn settle(&self, tokens: u64) {
        let s = self.settlements.lock().unwrap().remove(0);
        s.settle(summary(tokens));
    }

    fn service(
        &self,
    ) -> impl Service<
        GatewayRequest,
        Response = GatewayResponse,
        Error = GatewayError,
        Future = impl Send,
    > + Clone {
        let me = self.clone();
        service_fn(move |_req: GatewayRequest| {
            let me = me.clone();
            async move {
                let answer = me.answer.lock().unwrap().clone();
                let mut resp = GatewayResponse::new(ResponseBody::TokenCount(0));
                // An upstream's own rate-limit headers, passed through.
                resp.meta.headers.insert(
                    "x-ratelimit-limit-requests",
                    HeaderValue::from_static("10000"),
                );
                resp.meta.headers.insert(
                    "x-ratelimit-remaining-tokens-usage-based",
                    HeaderValue::from_static("7"),
                );
                match answer {
                    Answer::Plain => {}
                    Answer::Settles => {
                        let s = Settlement::new();
                        resp.extensions.insert(s.clone());
                        me.settlements.lock().unwrap().push(s);
                    }
                    Answer::Usage(n) => {
                        resp.meta.usage = Some(Usage {
                            input_tokens: n / 2,
                            output_tokens: n - n / 2,
                            ..Usage::default()
                        })
                    }
                    Answer::Fails => return Err(GatewayError::bad_upstream("upstream broke")),
                }
                Ok(resp)
            }
        })
    }
}

fn summary(tokens: u64) -> Summary {
    let usage = Usage {
        input_tokens: tokens / 2,
        output_tokens: tokens - tokens / 2,
        ..Usage::default()
    };
    Summary::settled(usage, None)
}

fn principal(id: &str, user: Option<&str>, team: Option<&str>, limits: KeyLimits) -> Principal {
    Principal {
        id: id.into(),
        name: Some(format!("{id}-name").into()),
        user: user.map(Into::into),
        team: team.map(Into::into),
        method: AuthMethod::Key,
        limits,
        ..Principal::anonymous()
    }
}

fn limits(rpm: Option<u32>, tpm: Option<u64>) -> KeyLimits {
    KeyLimits {
        rpm: rpm.and_then(NonZeroU32::new),
        tpm: tpm.and_then(NonZeroU64::new),
    }
}

fn rule(
    scope: RateLimitScope,
    name: Option<&str>,
    rpm: Option<u32>,
    tpm: Option<u64>,
) -> RateLimitConfig {
    RateLimitConfig {
        scope,
        name: name.map(Into::into),
        rpm,
        tpm,
    }
}

/// A chat request from `p` whose body is `body`.
fn request_with(p: &Principal, body: serde_json::Value) -> GatewayRequest {
    let raw = RawObject::parse(body.to_string().as_bytes()).unwrap();
    let mut req = GatewayRequest::new(WireFormat::OpenAiChat, Operation::Generate, raw).unwrap();
    req.extensions.insert(p.clone());
    req
}

/// A small chat request: its estimate is [`INPUT`] tokens of input (the
/// padding keeps the body's size whatever the digits of `max_tokens`)
/// and `max_tokens` of output.
fn request(p: &Principal, max_tokens: u64) -> GatewayRequest {
    let pad = "x".repeat(11 - max_tokens.to_string().len());
    request_with(
        p,
        json!({"model": "m", "messages": [], "max_tokens": max_tokens, "x": pad}),
    )
}

/// The input tokens [`request`] is estimated at: 60 bytes over four.
const INPUT: u64 = 15;

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

fn requests_headers(h: &http::HeaderMap) -> [Option<&str>; 3] {
    [
        header(h, "x-ratelimit-limit-requests"),
        header(h, "x-ratelimit-remaining-requests"),
        header(h, "x-ratelimit-reset-requests"),
    ]
}

fn tokens_headers(h: &http::HeaderMap) -> [Option<&str>; 3] {
    [
        header(h, "x-ratelimit-limit-tokens"),
        header(h, "x-ratelimit-remaining-tokens"),
        header(h, "x-ratelimit-reset-tokens"),
    ]
}

fn stack(
    layer: RateLimitLayer,
    inner: &Inner,
) -> (
    impl Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError> + Clone,
    LimitClock,
) {
    let clock = LimitClock::manual();
    (layer.clock(clock.clone()).layer(inner.service()), clock)
}

#[test]
fn the_estimate_is_the_body_over_four_and_the_maximum_output() {
    let p = Principal::anonymous();
    for max in [0, 7, 100, 4096] {
        assert_eq!(layer::estimate_tokens(&request(&p, max), 7), INPUT + max);
    }
    for field in ["max_completion_tokens", "max_output_tokens"] {
        let req = request_with(&p, json!({"model": "m", "messages": [], field: 64}));
        assert!(layer::estimate_tokens(&req, 7) > 64, "{field}");
        assert!(layer::estimate_tokens(&req, 7) < 64 + 20, "{field}");
    }
    // Several maximums: the largest, whichever a decoder would read.
    let both =
        json!({"model": "m", "messages": [], "max_completion_tokens": 10, "max_tokens": 5000});
    assert!(layer::estimate_tokens(&request_with(&p, both), 7) > 5000);
    // `{"model":"m","messages":[]}`, 27 bytes: 7 tokens.
    let req = request_with(&p, json!({"model": "m", "messages": []}));
    assert_eq!(layer::estimate_tokens(&req, 7), 7 + 7);
    // A maximum that is not a count is the provider's 400 to give; the
    // estimate takes the default.
    let req = request_with(
        &p,
        json!({"model": "m", "messages": [], "max_tokens": "lots"}),
    );
    assert!(layer::estimate_tokens(&req, 7) < 20);
}

#[tokio::test]
async fn requests_pass_in_a_burst_then_wait_for_the_next_cell() {
    let inner = Inner::default();
    let (svc, clock) = stack(RateLimitLayer::new(), &inner);
    let p = principal("key_a", None, None, limits(Some(3), None));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let resp = svc.clone().oneshot(request(&p, 1)).await.unwrap();
        seen.push(requests_headers(&resp.meta.headers).map(|v| v.map(str::to_owned)));
        assert_eq!(tokens_headers(&resp.meta.headers), [None, None, None]);
    }
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        seen,
        [
            [s("3"), s("2"), s("20s")],
            [s("3"), s("1"), s("40s")],
            [s("3"), s("0"), s("1m0s")],
        ]
    );

    let err = svc.clone().oneshot(request(&p, 1)).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.status().as_u16()),
        (ErrorKind::RateLimited, 429)
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(20)));
    assert_eq!(
        err.message(),
        "rate limit reached for this key: 3 requests per minute; try again in 20s"
    );
    let h = err.headers().unwrap();
    assert_eq!(requests_headers(h), [Some("3"), Some("0"), Some("1m0s")]);

    clock.advance(Duration::from_secs(15));
    let err = svc.clone().oneshot(request(&p, 1)).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    clock.advance(Duration::from_secs(5));
    let resp = svc.clone().oneshot(request(&p, 1)).await.unwrap();
    assert_eq!(
        requests_headers(&resp.meta.headers),
        [Some("3"), Some("0"), Some("1m0s")]
    );
    // A quiet minute refills the whole burst.
    clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        svc.clone().oneshot(request(&p, 1)).await.unwrap();
    }
    assert!(svc.clone().oneshot(request(&p, 1)).await.is_err());
}

#[tokio::test]
async fn tokens_are_reserved_then_corrected_when_the_answer_settles() {
    let inner = Inner::default();
    inner.answer(Answer::Settles);
    let (svc, clock) = stack(RateLimitLayer::new(), &inner);
    let p = principal("key_a", None, None, limits(None, Some(1000)));

    // Reserves its estimate: 15 of input, 500 of output, 515 of the
    // minute's 1000 (30.9 s of refill).
    let resp = svc.clone().oneshot(request(&p, 500)).await.unwrap();
    assert_eq!(
        tokens_headers(&resp.meta.headers),
        [Some("1000"), Some("485"), Some("30.9s")]
    );
    // While it streams, a second one that does not fit waits for it.
    let err = svc.clone().oneshot(request(&p, 600)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_millis(7800)));
    assert!(
        err.message().contains("1000 tokens per minute") && err.message().contains("reserves 615"),
        "{}",
        err.message()
    );
    assert_eq!(
        tokens_headers(err.headers().unwrap()),
        [Some("1000"), Some("485"), Some("30.9s")]
    );

    // It used 100 tokens: 410 come back.
    inner.settle(100);
    let resp = svc.clone().oneshot(request(&p, 600)).await.unwrap();
    assert_eq!(
        tokens_headers(&resp.meta.headers)[1],
        Some(&*(1000 - 100 - (INPUT + 600)).to_string())
    );
    // It used more than it reserved: the bucket owes the difference.
    inner.settle(1500);
    let err = svc.clone().oneshot(request(&p, 0)).await.unwrap_err();
    // 1600 tokens owed (96 s of refill), a minute holds 1000: 36.9 s
    // until 15 more fit.
    assert_eq!(err.retry_after(), Some(Duration::from_millis(36_900)));
    clock.advance(Duration::from_millis(36_900));
    assert!(svc.clone().oneshot(request(&p, 0)).await.is_ok());
}

#[tokio::test]
async fn a_failed_or_dropped_request_gives_its_tokens_back() {
    let inner = Inner::default();
    let (svc, _clock) = stack(RateLimitLayer::new(), &inner);
    let p = principal("key_a", None, None, limits(Some(100), Some(1000)));

    inner.answer(Answer::Fails);
    let err = svc.clone().oneshot(request(&p, 900)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadUpstreamResponse);
    // The upstream's error still carries the caller's standing.
    assert_eq!(
        tokens_headers(err.headers().unwrap())[..2],
        [Some("1000"), Some("85")]
    );
    assert_eq!(requests_headers(err.headers().unwrap())[1], Some("99"));

    // Called, never polled: the client went away.
    inner.answer(Answer::Settles);
    let mut s = svc.clone();
    let fut = s.ready().await.unwrap().call(request(&p, 900));
    drop(fut);

    let resp = svc.clone().oneshot(request(&p, 900)).await.unwrap();
    assert_eq!(tokens_headers(&resp.meta.headers)[1], Some("85"));
    assert_eq!(requests_headers(&resp.meta.headers)[1], Some("97"));
}

#[tokio::test]
async fn without_a_settlement_a_complete_answers_usage_corrects_the_estimate() {
    let inner = Inner::default();
    inner.answer(Answer::Usage(40));
    let (svc, _clock) = stack(RateLimitLayer::new(), &inner);
    let p = principal("key_a", None, None, limits(None, Some(1000)));
    svc.clone().oneshot(request(&p, 500)).await.unwrap();
    inner.answer(Answer::Plain);
    let resp = svc.clone().oneshot(request(&p, 500)).await.unwrap();
    assert_eq!(tokens_headers(&resp.meta.headers)[1], Some("445"));
    // A plain answer says nothing of its usage: its estimate stands.
    let resp = svc.clone().oneshot(request(&p, 0)).await.unwrap();
    assert_eq!(tokens_headers(&resp.meta.headers)[1], Some("430"));
}

#[tokio::test]
async fn count_tokens_counts_as_a_request_and_reserves_no_tokens() {
    let inner = Inner::default();
    let (svc, _clock) = stack(RateLimitLayer::new(), &inner);
    let p = principal("key_a", None, None, limits(Some(5), Some(1000)));
    let raw = RawObject::parse(br#"{"model":"m","messages":[],"max_tokens":900}"#).unwrap();
    let mut req = GatewayRequest::new(WireFormat::Anthropic, Operation::CountTokens, raw).unwrap();
    req.extensions.insert(p.clone());
    let resp = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(requests_headers(&resp.meta.headers)[1], Some("4"));
    assert_eq!(
        tokens_headers(&resp.meta.headers)[..2],
        [Some("1000"), Some("1000")]
    );
}

#[tokio::test]
async fn a_team_limit_is_shared_by_its_keys_and_other_teams_are_apart() {
    let inner = Inner::default();
    let layer = RateLimitLayer::new()
        .with_limit(rule(RateLimitScope::Team, Some("red"), Some(2), None))
        .with_limit(rule(RateLimitScope::Team, None, Some(50), None));
    let (svc, _clock) = stack(layer, &inner);
    let a = principal("key_a", None, Some("red"), KeyLimits::default());
    let b = principal("key_b", None, Some("red"), KeyLimits::default());
    let c = principal("key_c", None, Some("blue"), KeyLimits::default());
    svc.clone().oneshot(request(&a, 1)).await.unwrap();
    let resp = svc.clone().oneshot(request(&b, 1)).await.unwrap();
    assert_eq!(
        requests_headers(&resp.meta.headers)[..2],
        [Some("2"), Some("0")]
    );
    let err = svc.clone().oneshot(request(&a, 1)).await.unwrap_err();
    assert_eq!(
        err.message(),
        "rate limit reached for team `red`: 2 requests per minute; try again in 30s"
    );
    // Another team has its own (the limit for every team), and nothing
    // of red's shows.
    let resp = svc.clone().oneshot(request(&c, 1)).await.unwrap();
    assert_eq!(
        requests_headers(&resp.meta.headers)[..2],
        [Some("50"), Some("49")]
    );
    // No principal: no limit.
    let mut req = request(&a, 1);
    req.extensions.remove::<Principal>();
    let resp = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(requests_headers(&resp.meta.headers)[1], None);
}

#[tokio::test]
async fn the_tightest_limit_applies_and_is_the_one_the_headers_show() {
    let inner = Inner::default();
    let layer = RateLimitLayer::new()
        .with_limit(rule(RateLimitScope::Key, None, Some(10), Some(5000)))
        .with_limit(rule(RateLimitScope::Key, Some("key_b-name"), Some(4), None))
        .with_limit(rule(RateLimitScope::User, Some("ann"), Some(6), Some(800)));
    let (svc, _clock) = stack(layer, &inner);
    // Its own 20 rpm, every key's 10 and its name's 4: 4.
    let b = principal("key_b", Some("ann"), None, limits(Some(20), None));
    let resp = svc.clone().oneshot(request(&b, 90)).await.unwrap();
    let h = &resp.meta.headers;
    assert_eq!(requests_headers(h)[..2], [Some("4"), Some("3")]);
    // Tokens: the key's 5000 or ann's 800; ann's has fewer left.
    assert_eq!(tokens_headers(h)[..2], [Some("800"), Some("695")]);
    // ann's other key counts against ann's 6; its own 10 has more left,
    // and ann's, with 4 left, is the one shown.
    let a = principal("key_a", Some("ann"), None, KeyLimits::default());
    let resp = svc.clone().oneshot(request(&a, 90)).await.unwrap();
    assert_eq!(
        requests_headers(&resp.meta.headers)[..2],
        [Some("6"), Some("4")]
    );
    // The upstream's header of the same name is replaced; others stay.
    assert_eq!(
        resp.meta
            .headers
            .get_all("x-ratelimit-limit-requests")
            .iter()
            .count(),
        1
    );
    assert!(resp
        .meta
        .headers
        .contains_key("x-ratelimit-remaining-tokens-usage-based"));
    for _ in 0..3 {
        svc.clone().oneshot(request(&b, 1)).await.unwrap();
    }
    let err = svc.clone().oneshot(request(&b, 1)).await.unwrap_err();
    assert!(
        err.message().contains("this key: 4 requests"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_request_refused_by_one_limit_takes_no_tokens_from_the_others() {
    let inner = Inner::default();
    let layer =
        RateLimitLayer::new().with_limit(rule(RateLimitScope::Team, Some("red"), None, Some(100)));
    let (svc, _clock) = stack(layer, &inner);
    let p = principal("key_a", None, Some("red"), limits(None, Some(1000)));
    svc.clone().oneshot(request(&p, 50)).await.unwrap();
    // The key's bucket has room; team red's has 35 left.
    let err = svc.clone().oneshot(request(&p, 200)).await.unwrap_err();
    assert!(
        err.message().contains("team `red`: 100 tokens"),
        "{}",
        err.message()
    );
    assert_eq!(
        tokens_headers(err.headers().unwrap())[..2],
        [Some("100"), Some("35")]
    );
    // The same key outside the team: only the first request's tokens
    // are gone from its bucket.
    let alone = principal("key_a", None, None, limits(None, Some(1000)));
    let resp = svc.clone().oneshot(request(&alone, 0)).await.unwrap();
    assert_eq!(
        tokens_headers(&resp.meta.headers)[1],
        Some(&*(1000 - (INPUT + 50) - INPUT).to_string())
    );
}

#[tokio::test]
async fn keys_with_no_limit_pass_untouched() {
    let inner = Inner::default();
    let (svc, _clock) = stack(RateLimitLayer::new(), &inner);
    let resp = svc
        .clone()
        .oneshot(request(&Principal::anonymous(), 1))
        .await
        .unwrap();
    // The upstream's header is left as it was.
    assert_eq!(
        header(&resp.meta.headers, "x-ratelimit-limit-requests"),
        Some("10000")
    );
    assert_eq!(tokens_headers(&resp.meta.headers), [None, None, None]);
}

#[tokio::test]
async fn long_requests_in_turn_cannot_pass_more_than_the_limit_a_minute() {
    let inner = Inner::default();
    inner.answer(Answer::Settles);
    let (svc, clock) = stack(RateLimitLayer::new(), &inner);
    let p = principal("key_a", None, None, limits(None, Some(1000)));
    let whole_minute = 1000 - INPUT;
    // The first holds the whole minute for a minute; then the bucket is
    // full again and the second takes it.
    svc.clone()
        .oneshot(request(&p, whole_minute))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    svc.clone()
        .oneshot(request(&p, whole_minute))
        .await
        .unwrap();
    // The first ends having used nothing: the bucket forgot its tokens
    // already, so giving them back would hand the second's to a third.
    inner.settle(0);
    let err = svc
        .clone()
        .oneshot(request(&p, whole_minute))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    // The second ends at once having used nothing: all of it comes back.
    inner.settle(0);
    svc.clone()
        .oneshot(request(&p, whole_minute))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_upstreams_limits_are_dropped_when_the_gateways_credential_served() {
    use crate::routing::CredentialKind;
    for (credential, kept) in [
        (Some(CredentialKind::Gateway), false),
        (Some(CredentialKind::Subscription), true),
        (Some(CredentialKind::Byok), true),
    ] {
        let svc = RateLimitLayer::new()
            .clock(LimitClock::manual())
            .layer(service_fn(move |_req: GatewayRequest| async move {
                let mut resp = GatewayResponse::new(ResponseBody::TokenCount(0));
                for (name, value) in [
                    ("x-ratelimit-limit-requests", "10000"),
                    ("x-ratelimit-remaining-tokens-usage-based", "7"),
                    ("anthropic-ratelimit-unified-status", "allowed"),
                    ("x-request-id", "req_1"),
                ] {
                    resp.meta
                        .headers
                        .insert(name, HeaderValue::from_static(value));
                }
                resp.meta.credential = credential;
                Ok::<_, GatewayError>(resp)
            }));
        // A caller with limits gets ours; one without gets none.
        let limited = principal("key_a", None, None, limits(Some(5), None));
        let resp = svc.clone().oneshot(request(&limited, 1)).await.unwrap();
        let h = &resp.meta.headers;
        assert_eq!(
            h.contains_key("anthropic-ratelimit-unified-status"),
            kept,
            "{credential:?}"
        );
        assert_eq!(
            h.contains_key("x-ratelimit-remaining-tokens-usage-based"),
            kept
        );
        assert_eq!(header(h, "x-ratelimit-limit-requests"), Some("5"));
        assert_eq!(header(h, "x-request-id"), Some("req_1"));
        let resp = svc
            .oneshot(request(&Principal::anonymous(), 1))
            .await
            .unwrap();
        let h = &resp.meta.headers;
        assert_eq!(
            header(h, "x-ratelimit-limit-requests").is_some(),
            kept,
            "{credential:?}"
        );
        assert_eq!(h.contains_key("anthropic-ratelimit-unified-status"), kept);
        assert_eq!(header(h, "x-request-id"), Some("req_1"));
    }
}
