//! Layer tests: each routing layer (and the stack) around a scripted
//! provider service, checked the way a user would see it: who was called,
//! in what order, and what the client got back.
//!
//! Time is tokio's paused clock (`start_paused`): a wait takes no real time
//! and ends exactly when due, so the tests that measure time assert what
//! the limit is, not a wide bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::StatusCode;
use tokio::time::Instant;
use tower::retry::RetryLayer;
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use super::fallback::Policy;
use super::timeout::DEADLINE_EXCEEDED;
use super::*;
use crate::config::Config;
use crate::error::{Cause, ErrorKind, GatewayError, LimitScope};
use crate::format::WireFormat;
use crate::json::RawObject;
use crate::request::{GatewayRequest, Operation, Target};
use crate::response::{GatewayResponse, ResponseBody, StreamChunk};

// ---------------------------------------------------------------------
// A scripted provider
// ---------------------------------------------------------------------

type Reply = Result<GatewayResponse, GatewayError>;
type BoxReply = Pin<Box<dyn Future<Output = Reply> + Send>>;
type Provider = BoxCloneService<GatewayRequest, GatewayResponse, GatewayError>;

/// Every call the provider service saw, as `provider/model` (or
/// `provider[i]/model` for a deployment), in order.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Forgets the calls so far (between requests of one test).
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// Where the routing layers sent `req`, in the attempt log's notation.
fn label(req: &GatewayRequest) -> String {
    let (p, m) = req.extensions.get::<Target>().map_or_else(
        || ("?".to_string(), req.model.clone()),
        |t| (t.provider.to_string(), t.model.to_string()),
    );
    match req.extensions.get::<Deployment>() {
        Some(d) => format!("{p}[{}]/{m}", d.0),
        None => format!("{p}/{m}"),
    }
}

/// A provider that answers `answer(label, n)` after a delay of its own,
/// where `n` counts the earlier calls with the same label.
fn provider_async<F>(answer: F) -> (Provider, Calls)
where
    F: Fn(&str, usize) -> BoxReply + Send + Sync + 'static,
{
    let calls = Calls::default();
    let seen = calls.clone();
    let answer = Arc::new(answer);
    // Counted apart from `calls`, which a test may clear.
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let svc = service_fn(move |req: GatewayRequest| {
        let l = label(&req);
        seen.0.lock().unwrap().push(l.clone());
        let n = {
            let mut counts = counts.lock().unwrap();
            let n = counts.entry(l.clone()).or_default();
            *n += 1;
            *n - 1
        };
        answer(&l, n)
    });
    (BoxCloneService::new(svc), calls)
}

/// A provider that answers `answer(label, n)` at once.
fn provider<F>(answer: F) -> (Provider, Calls)
where
    F: Fn(&str, usize) -> Reply + Send + Sync + 'static,
{
    provider_async(move |l, n| {
        let r = answer(l, n);
        Box::pin(async move { r })
    })
}

/// A complete answer whose body names who served it.
fn ok(label: &str) -> Reply {
    Ok(GatewayResponse::new(ResponseBody::Raw(Bytes::from(
        label.to_string(),
    ))))
}

/// Who served `resp` (the label the scripted provider put in the body).
fn served(resp: &GatewayResponse) -> String {
    match &resp.body {
        ResponseBody::Raw(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("not a scripted answer: {other:?}"),
    }
}

/// An error as a provider answering `status` would give it.
fn upstream(status: u16) -> GatewayError {
    GatewayError::from_upstream_status(
        StatusCode::from_u16(status).unwrap(),
        format!("upstream said {status}"),
    )
}

fn attempts(resp: &GatewayResponse) -> String {
    let parts: Vec<String> = resp.meta.attempts.iter().map(|a| a.to_string()).collect();
    parts.join(", ")
}

// ---------------------------------------------------------------------
// Config and requests
// ---------------------------------------------------------------------

const CONFIG: &str = r#"
[providers.a]
kind = "openai"
[providers.b]
kind = "openai"
[providers.c]
kind = "openai"
[providers.d]
kind = "openai"
deployments = [{ api_key = "k1" }, { api_key = "k2" }]
[providers.e]
kind = "openai"
balance = "least-latency"
deployments = [{ api_key = "k1" }, { api_key = "k2" }]
[providers.g]
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"

[models]
m = { targets = ["a/m", "b/m", "c/m"] }
dm = { targets = ["d/m", "b/m"] }
em = "e/m"
gm = { targets = ["g/m", "c/m"] }
chat = { targets = ["a/chat", "b/chat"], fallbacks = ["backup"], context_window = 8000 }
alt = "c/alt"
backup = "c/backup"
small = { targets = ["c/small"], context_window = 4000 }
large = { targets = ["c/large"], context_window = 128000 }
"#;

fn routes() -> Arc<Routes> {
    Arc::new(Routes::from_config(
        &Config::parse(CONFIG, &|_| None).unwrap(),
    ))
}

/// A Chat Completions request with `body`.
fn req(body: &str) -> GatewayRequest {
    GatewayRequest::new(
        WireFormat::OpenAiChat,
        Operation::Generate,
        RawObject::parse(body.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A request for model `m` (targets a, b, c in that order).
fn req_m() -> GatewayRequest {
    req(r#"{"model":"m","messages":[]}"#)
}

fn target(provider: &str, model: &str) -> Target {
    Target {
        provider: provider.into(),
        model: model.into(),
    }
}

fn order_layer() -> ProviderOrderLayer {
    ProviderOrderLayer::new(routes(), Cooldowns::default())
}

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
    // e[0] takes 80 ms, e[1] answers at once.
    let (inner, _) = provider_async(|l, _| {
        let l = l.to_string();
        Box::pin(async move {
            if l.starts_with("e[0]") {
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
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

// ---------------------------------------------------------------------
// Same-target retries (tower::retry::Retry with RetryTransient)
// ---------------------------------------------------------------------

/// A request for `m` already routed to `provider`.
fn pinned(provider: &str) -> GatewayRequest {
    let mut r = req_m();
    r.extensions.insert(target(provider, "m"));
    r
}

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
async fn a_providers_404_does_not_fall_back_but_an_unknown_model_does() {
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

    // A model the gateway does not know: the next model of the chain.
    let (inner, calls) = provider(|l, _| ok(l));
    let resp = fallback_stack(inner)
        .oneshot(req(r#"{"model":"nope","messages":[],"models":["alt"]}"#))
        .await
        .unwrap();
    assert_eq!(served(&resp), "c/alt");
    assert_eq!(calls.list(), ["c/alt"]);
}

#[tokio::test(start_paused = true)]
async fn a_model_no_allowed_provider_serves_is_skipped() {
    let (inner, calls) = provider(|l, _| ok(l));
    let resp = fallback_stack(inner)
        .oneshot(req(
            r#"{"model":"chat","messages":[],"models":["alt"],"provider":{"only":["c"]}}"#,
        ))
        .await
        .unwrap();
    assert_eq!(served(&resp), "c/alt");
    assert_eq!(calls.list(), ["c/alt"]);
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
