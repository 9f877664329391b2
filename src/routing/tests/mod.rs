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
/// `provider[i]/model` for a deployment, with `[kind=secret]` for a
/// client's credential), in order.
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
    let l = match req.extensions.get::<Deployment>() {
        Some(d) => format!("{p}[{}]/{m}", d.0),
        None => format!("{p}/{m}"),
    };
    // A client's credential: its kind and (a test's) secret.
    match req.extensions.get::<Credential>() {
        Some(c) => format!("{l}[{}={}]", c.kind(), c.secret()),
        None => l,
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

/// A request for `m` already routed to `provider`.
fn pinned(provider: &str) -> GatewayRequest {
    let mut r = req_m();
    r.extensions.insert(target(provider, "m"));
    r
}

fn order_layer() -> ProviderOrderLayer {
    ProviderOrderLayer::new(routes(), Cooldowns::default())
}

mod cooldown;
mod credentials;
mod fallback;
mod order;
mod retry;
mod sort;
mod timeout;
