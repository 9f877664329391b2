//! The HTTP edge: decode the client's wire format once, call the layers,
//! encode the answer (or the error) back in the same format.
//!
//! [`router`] gives an axum `Router` with the gateway's routes, around any
//! `tower::Service<GatewayRequest>`; mount it in an existing axum app with
//! `Router::nest`:
//!
//! ```no_run
//! use tollgate::config::Config;
//! use tollgate::edge::{router, EdgeConfig};
//! use tollgate::provider::Providers;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_env(&|k| std::env::var(k).ok());
//! let gateway = router(Providers::from_config(&config)?, EdgeConfig::from_config(&config));
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .nest("/llm", gateway);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/responses`,
//! `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models`,
//! `GET /health`, and `HEAD`/`GET /`. Every answer carries
//! `x-tollgate-request-id`; a served one also `x-tollgate-provider` and
//! `x-tollgate-credential`.
//!
//! An error for a path no route takes is in the format of the API the
//! path belongs to (`/v1/messages…` Anthropic, `/v1/chat/…`,
//! `/v1/responses…` OpenAI), whatever the headers say; only a path of
//! neither API is guessed from them. A body that does not arrive within
//! [`EdgeConfig::body_timeout`] is the client's 408, and the routing
//! layers' total deadline ([`Started`]) counts from the end of the body.

mod encode;
mod models;
mod shutdown;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use tower::{Service, ServiceExt};

use crate::auth::Principal;
use crate::config::Config;
use crate::error::{ErrorKind, GatewayError};
use crate::format::WireFormat;
use crate::json::RawObject;
use crate::request::{GatewayRequest, Operation};
use crate::response::{GatewayResponse, ResponseBody};
use crate::routing::{AttemptLog, Started};

pub use encode::{encode_response, error_response};
pub use models::ModelList;
pub use shutdown::GraceOver;

/// The response header naming the provider that served.
pub const PROVIDER_HEADER: &str = "x-tollgate-provider";
/// The response header identifying the request.
pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";
/// The response header listing every attempt, `provider/model=outcome`
/// (status code, `timeout` or `connect`), in order; an attempt with a
/// client's own credential is marked `provider/model[subscription]=429`.
pub const ATTEMPTS_HEADER: &str = "x-tollgate-attempts";
/// The response header naming the kind of credential that served:
/// `gateway`, `byok` or `subscription`.
pub const CREDENTIAL_HEADER: &str = "x-tollgate-credential";

/// A request's ID, in its extensions for the layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub Arc<str>);

/// What the edge needs besides the service.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Largest request body accepted, in bytes; larger gets a 413.
    pub max_body_bytes: usize,
    /// How long a request's body may take to arrive after its headers;
    /// slower gets a 408 (`None`: no limit).
    pub body_timeout: Option<Duration>,
    /// What `GET /v1/models` lists.
    pub models: ModelList,
}

impl Default for EdgeConfig {
    /// The `[server]` defaults, no models.
    fn default() -> Self {
        let server = crate::config::ServerConfig::default();
        EdgeConfig {
            max_body_bytes: server.max_body_bytes,
            body_timeout: server.body_read_timeout(),
            models: ModelList::default(),
        }
    }
}

impl EdgeConfig {
    /// The body limits and model list of a gateway config (see [`ModelList::from_config`]).
    pub fn from_config(config: &Config) -> Self {
        EdgeConfig {
            max_body_bytes: config.server.max_body_bytes,
            body_timeout: config.server.body_read_timeout(),
            models: ModelList::from_config(config),
        }
    }
}

struct Edge<S> {
    service: S,
    config: Arc<EdgeConfig>,
}

impl<S: Clone> Clone for Edge<S> {
    fn clone(&self) -> Self {
        Edge {
            service: self.service.clone(),
            config: self.config.clone(),
        }
    }
}

/// The gateway's routes around `service`.
pub fn router<S>(service: S, config: EdgeConfig) -> Router
where
    S: Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let state = Edge {
        service,
        config: Arc::new(config),
    };
    Router::new()
        .route(
            "/v1/chat/completions",
            post(|State(e): State<Edge<S>>, req: Request| {
                handle(e, WireFormat::OpenAiChat, Operation::Generate, req)
            }),
        )
        .route(
            "/v1/responses",
            post(|State(e): State<Edge<S>>, req: Request| {
                handle(e, WireFormat::OpenAiResponses, Operation::Generate, req)
            }),
        )
        .route(
            "/v1/messages",
            post(|State(e): State<Edge<S>>, req: Request| {
                handle(e, WireFormat::Anthropic, Operation::Generate, req)
            }),
        )
        .route(
            "/v1/messages/count_tokens",
            post(|State(e): State<Edge<S>>, req: Request| {
                handle(e, WireFormat::Anthropic, Operation::CountTokens, req)
            }),
        )
        .route(
            "/v1/models",
            get(|State(e): State<Edge<S>>, req: Request| async move {
                models::list(
                    &e.config.models,
                    req.headers(),
                    req.extensions().get::<Principal>(),
                )
                .await
            }),
        )
        .route("/health", get(|| async { health() }))
        .route("/", get(|| async { health() }))
        .fallback(|req: Request| async move { not_routed(&req, StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|req: Request| async move {
            not_routed(&req, StatusCode::METHOD_NOT_ALLOWED)
        })
        .with_state(state)
}

fn health() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The wire format of an error for a request no route took: the API its
/// path belongs to decides (a wrong method or a trailing slash on an
/// OpenAI path is still an OpenAI client); only a path neither API has
/// falls back to a guess from the headers.
fn route_format(req: &Request) -> WireFormat {
    format_of(req.uri().path(), req.headers())
}

/// The wire format a request to `path` is answered in, before its body
/// is read (see [`route_format`]).
pub(crate) fn format_of(path: &str, headers: &http::HeaderMap) -> WireFormat {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/v1/messages") {
        WireFormat::Anthropic
    } else if under("/v1/responses") {
        WireFormat::OpenAiResponses
    } else if ["/v1/chat", "/v1/completions", "/v1/embeddings"]
        .into_iter()
        .any(under)
    {
        WireFormat::OpenAiChat
    } else if headers.contains_key("anthropic-version") {
        WireFormat::Anthropic
    } else {
        WireFormat::OpenAiChat
    }
}

fn not_routed(req: &Request, status: StatusCode) -> Response {
    // When the gateway is nested in an app, name the path the client sent.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or(req.uri().path(), |u| u.0.path());
    let msg = if status == StatusCode::METHOD_NOT_ALLOWED {
        format!("method {} is not allowed on {path}", req.method())
    } else {
        format!("no route for {} {path}", req.method())
    };
    let kind = if status == StatusCode::NOT_FOUND {
        ErrorKind::NotFound
    } else {
        ErrorKind::InvalidRequest
    };
    let err = GatewayError::new(kind, msg).with_status(status);
    error_response(route_format(req), &err, &new_request_id())
}

/// A UUIDv7: unique, and in time order, so that the ledger's rows (keyed
/// by it) are appended at the end of its index rather than all over it.
pub(crate) fn new_request_id() -> Arc<str> {
    uuid::Uuid::now_v7().simple().to_string().into()
}

async fn handle<S>(edge: Edge<S>, format: WireFormat, op: Operation, req: Request) -> Response
where
    S: Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let started = Instant::now();
    let id = new_request_id();
    let log = AttemptLog::new();
    let grace = req.extensions().get::<GraceOver>().cloned();
    let (model, result) = match decode(&edge.config, format, op, req, &id).await {
        Ok(mut greq) => {
            greq.extensions.insert(log.clone());
            // The deadline is the gateway's and its providers': a slow
            // upload is the client's time, not theirs.
            greq.extensions.insert(Started(Instant::now()));
            let model = greq.model.clone();
            let client_stream_usage = include_usage(&greq);
            let call = edge.service.clone().oneshot(greq);
            let result = match grace.clone() {
                None => call.await,
                Some(grace) => shutdown::or_shutting_down(call, grace).await,
            };
            (model, result.map(|r| (r, client_stream_usage)))
        }
        Err(e) => (String::new(), Err(e)),
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let attempts = log.header_value();
    let mut resp = match result {
        Ok((mut resp, usage_opt)) => {
            if let Some(grace) = grace {
                resp.body = match resp.body {
                    ResponseBody::Stream(s) => {
                        ResponseBody::Stream(shutdown::until_grace_over(s, grace))
                    }
                    body => body,
                };
            }
            tracing::info!(
                request_id = %id,
                format = format.as_str(),
                model = %model,
                provider = resp.meta.provider.as_deref().unwrap_or(""),
                credential = resp.meta.credential.map_or("", |c| c.as_str()),
                status = resp.status.as_u16(),
                attempts = attempts.as_deref().unwrap_or(""),
                elapsed_ms,
                "served"
            );
            encode_response(format, resp, &id, usage_opt)
        }
        Err(err) => {
            tracing::info!(
                request_id = %id,
                format = format.as_str(),
                model = %model,
                status = err.status().as_u16(),
                error = %err.message(),
                attempts = attempts.as_deref().unwrap_or(""),
                elapsed_ms,
                "failed"
            );
            error_response(format, &err, &id)
        }
    };
    if let Some(v) = attempts.and_then(|a| HeaderValue::from_str(&a).ok()) {
        resp.headers_mut().insert(ATTEMPTS_HEADER, v);
    }
    resp
}

/// Whether an OpenAI Chat client asked for usage in its stream.
fn include_usage(req: &GatewayRequest) -> bool {
    req.format == WireFormat::OpenAiChat
        && req.stream
        && req
            .body
            .raw()
            .get_as::<serde_json::Value>("stream_options")
            .ok()
            .flatten()
            .and_then(|o| o.get("include_usage").and_then(|v| v.as_bool()))
            .unwrap_or(false)
}

/// Client credentials (a provider token to pass through, BYOK keys) stay
/// on the request for the layers; marked sensitive, no `Debug` of the
/// request prints them.
fn mark_credentials_sensitive(headers: &mut http::HeaderMap) {
    for (name, value) in headers.iter_mut() {
        let n = name.as_str();
        if n == "authorization" || n == "x-api-key" || n.starts_with("x-tollgate-") {
            value.set_sensitive(true);
        }
    }
}

/// A 403 when the request names a model (its `model`, or one of its
/// `models` to fall back to) that its principal may not use. Fallbacks
/// that the operator configured are the operator's routing, not the
/// client's choice, and are not checked.
fn check_models(p: &Principal, req: &GatewayRequest) -> Result<(), GatewayError> {
    if p.models.is_any() {
        return Ok(());
    }
    let named = std::iter::once(&req.model).chain(req.routing.models.iter());
    for m in named {
        if !p.models.allows(m) {
            return Err(GatewayError::new(
                ErrorKind::PermissionDenied,
                format!("this gateway key may not use model `{m}`"),
            )
            .with_param("model")
            .with_code("model_not_allowed"));
        }
    }
    Ok(())
}

/// The client's error (408), not a provider's: nothing was sent upstream.
fn body_timeout(limit: Duration) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        format!(
            "the request body did not arrive within {} s",
            limit.as_secs_f64()
        ),
    )
    .with_status(StatusCode::REQUEST_TIMEOUT)
    .with_code("request_timeout")
}

async fn decode(
    config: &EdgeConfig,
    format: WireFormat,
    op: Operation,
    req: Request,
    id: &Arc<str>,
) -> Result<GatewayRequest, GatewayError> {
    let (parts, body) = req.into_parts();
    debug_assert_eq!(parts.method, Method::POST);
    let too_large = || {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "request body is larger than {} bytes",
                config.max_body_bytes
            ),
        )
    };
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > config.max_body_bytes as u64 {
            return Err(too_large());
        }
    }
    let read = Limited::new(body, config.max_body_bytes).collect();
    let read = match config.body_timeout {
        None => read.await,
        Some(limit) => tokio::time::timeout(limit, read)
            .await
            .map_err(|_| body_timeout(limit))?,
    };
    let bytes = read
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large()
            } else {
                GatewayError::invalid_request("could not read the request body")
            }
        })?
        .to_bytes();
    let raw = RawObject::parse(&bytes)?;
    let mut greq = GatewayRequest::new(format, op, raw)?;
    greq.query = parts.uri.query().map(str::to_owned);
    let mut headers = parts.headers;
    mark_credentials_sensitive(&mut headers);
    greq.headers = Arc::new(headers);
    greq.extensions = parts.extensions;
    greq.extensions.insert(RequestId(id.clone()));
    if let Some(p) = greq.extensions.get::<Principal>() {
        check_models(p, &greq)?;
    }
    Ok(greq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requests_debug_never_prints_a_client_credential() {
        let raw = RawObject::parse(
            br#"{"model":"m","messages":[],"providerOptions":{"gateway":{"byok":{"p":[{"apiKey":"sk-byok-SECRET-1"}]}}}}"#,
        )
        .unwrap();
        let mut greq =
            GatewayRequest::new(WireFormat::OpenAiChat, Operation::Generate, raw).unwrap();
        let mut headers = http::HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer sk-ant-oat01-SECRET-2"),
            ("x-api-key", "sk-SECRET-3"),
            ("x-tollgate-byok-p", "sk-SECRET-4"),
            ("user-agent", "visible/1.0"),
        ] {
            headers.insert(k, HeaderValue::from_static(v));
        }
        mark_credentials_sensitive(&mut headers);
        greq.headers = Arc::new(headers);
        let shown = format!("{greq:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("visible/1.0") && shown.contains("providerOptions"),
            "{shown}"
        );
    }
}
