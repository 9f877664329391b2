//! The mock upstream: a stand-in for OpenAI, Anthropic and Gemini that
//! every test and benchmark uses.
//!
//! It is written independently of the gateway's translators (it builds its
//! JSON by hand with `serde_json::json!`), so that tests can check the
//! translators against it.
//!
//! # Routes
//!
//! | API | Route | Auth |
//! |---|---|---|
//! | OpenAI | `POST /v1/chat/completions`, `POST /v1/responses`, `GET /v1/models` | `Authorization: Bearer <key>` (else 401) |
//! | Anthropic | `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models` with `anthropic-version` | `x-api-key` or `Authorization: Bearer` (else 401) and `anthropic-version` (else 400) |
//! | Gemini | `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent` (`?alt=sse` for SSE, else a streamed JSON array), `:countTokens`, `GET /v1beta/models` | `x-goog-api-key` or `?key=` (else 403) |
//! | Mock | `GET /mock/credentials`: every credential received so far, in order, as `[{"api", "path", "header", "credential"}]` (`header` is `authorization` with the bearer token as `credential`, `x-api-key`, `x-goog-api-key`, `x-tollgate-key` (which no gateway should ever send upstream) or `query:key`; both `null` for a request that carried none); `DELETE /mock/credentials` forgets them | none |
//!
//! # Credentials that script an answer
//!
//! Checked before the route, for every API (a test fixture: credentials are
//! kept and shown in clear):
//!
//! | Credential | Effect |
//! |---|---|
//! | ends in `~expired` | 401 in the API's shape (Anthropic `authentication_error`) |
//! | ends in `~limit` | 429 in the API's shape with `retry-after: 3600`; an Anthropic OAuth token also gets `anthropic-ratelimit-unified-status: rejected` and `anthropic-ratelimit-unified-reset: <now + 3600, Unix seconds>`, as a Claude subscription at its limit |
//! | `Authorization: Bearer sk-ant-oat01-…` (Anthropic) | an OAuth token (a subscription): needs `anthropic-beta` to contain `oauth-2025-04-20`, else 401 `authentication_error` "OAuth authentication is currently not supported." |
//!
//! Errors use each API's own body shape. Malformed JSON is a 400; so is a
//! missing `model` (OpenAI, Anthropic), a missing `max_tokens` or `messages`
//! (Anthropic), and an unknown or malformed directive.
//!
//! # Directives
//!
//! Behaviour is scripted by directives appended to the model name with `~`
//! (`gpt-4o~status=429~retry-after=2`, `claude~chunks=20~gap=5`), because
//! the gateway forwards model names but not client headers. Direct callers
//! may also send them in an `x-mock: status=429;retry-after=2` header
//! (`;`-separated; the header wins over the model). The model echoed in
//! responses is the part before the first `~`. Every wait is capped at
//! 120 s and ends early when the server shuts down.
//!
//! | Directive | Effect |
//! |---|---|
//! | `latency=MS` | delay before the response head |
//! | `ttfb=MS` | streams: head first, then this delay before the first event |
//! | `gap=MS` | streams: delay between events |
//! | `chunks=N` | streams: number of text deltas (default 5). The text is split on word boundaries, else on characters, else padded with words, so there are exactly N |
//! | `status=CODE` | answer CODE (400..=599) with the API's error body (Anthropic: 429 `rate_limit_error`, 529 `overloaded_error`, ...; OpenAI: the error type for the status; Gemini: the `google.rpc` status name) |
//! | `retry-after=SECS` | with `status`: a `Retry-After` header; Anthropic also `anthropic-ratelimit-requests-reset` (RFC 3339), Gemini also a `RetryInfo` detail |
//! | `cut=N` | streams: send the opening events, then N more, then close the connection abruptly, never sending the terminator (`[DONE]`, `message_stop`, `response.completed`, Gemini's finishing event) |
//! | `stall` | send nothing, not even the head, until the client goes away (at most 120 s, then a 504) |
//! | `stall-after=N` | streams: send the opening events and N more, then stall (at most 120 s, then close abruptly) |
//! | `tool` / `tool=NAME` | answer with a call to the first tool of the request (or the named one); arguments give each required property of the tool's schema a sample value (`"sample"`, `1`, `true`, `[]`, `{}`, or the first `enum` value). Streams send the arguments in two fragments. Finish reason `tool_calls` / `tool_use` / `STOP` |
//! | `parallel` | two calls: the first two tools, or the same tool twice (implies `tool`) |
//! | `think` | include reasoning: an Anthropic `thinking` block signed `mock-signature-<n>` (streamed with `signature_delta`), OpenAI `reasoning_tokens` (and a `reasoning` item with a summary in Responses), a Gemini `thought: true` part and `thoughtsTokenCount` |
//! | `cached=N` | report N cached input tokens (`cached_tokens`, `cache_read_input_tokens`, `cachedContentTokenCount`) |
//! | `echo-request` | the reply text is the exact request body received |
//! | `echo-head` | the reply text is `{"path", "headers"}` of the request received as JSON (the path with its query; credential header values read `[credential]`) |
//! | `fail-after=N` | streams: send the opening events and N more, then the API's in-band error (Anthropic `event: error`, a Chat `{"error": ...}` chunk, Responses `response.failed`, Gemini `{"error": ...}`) and end the body |
//! | `leak` | echo the credentials received (`authorization`, `x-api-key`, `x-goog-api-key`, and the query string) wherever an upstream might: every response repeats those headers and carries them in `x-mock-leak` and the request id; `status` and `fail-after` errors carry them in the message and in a string `code` (which not every API has); successful JSON answers in a top-level `mock_leak` field. For tests that none of it reaches a client |
//!
//! Every response carries `x-mock-received-model` (the full model received,
//! directives included, when known) and `x-mock-path` (path and query).
//!
//! # Replies and usage
//!
//! The default reply is `Hello from the mock <api> upstream. You said: <text
//! of the last user message>` (`<api>` is `openai`, `anthropic` or `gemini`),
//! or `Tool result received: <text>` when the last turn is a tool result.
//! Token counts are deterministic: the uncached input is
//! `ceil(body bytes / 4)`; OpenAI and Gemini prompt counts add the `cached`
//! tokens (cached tokens are part of the prompt there), Anthropic reports
//! them apart in `cache_read_input_tokens`. Output tokens are the words of
//! the reply text, plus `ceil(len / 4)` per tool call's arguments, plus the
//! reasoning words (OpenAI and Anthropic count reasoning in the output;
//! Gemini's `candidatesTokenCount` excludes it). IDs come from one process
//! counter: `chatcmpl-mock-N`, `resp_mock_N`, `msg_mock_N`, `toolu_mock_N`,
//! `call_mock_N`, `fc_mock_N`, `rs_mock_N`.

mod anthropic;
mod credentials;
mod gemini;
mod openai;
mod script;
mod stream;

use std::future::Future;
use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use credentials::CredentialLog;
use serde_json::json;

use script::Directives;
use stream::{json_response, Shutdown};

/// Shared state of the mock's handlers.
#[derive(Clone, Default)]
struct AppState {
    shutdown: Shutdown,
    credentials: CredentialLog,
}

/// The mock's routes (see the [module docs](self)).
pub fn router() -> Router {
    router_with(Shutdown::default())
}

fn router_with(shutdown: Shutdown) -> Router {
    let state = AppState {
        shutdown,
        credentials: CredentialLog::default(),
    };
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/responses", post(openai::responses))
        .route("/v1/models", get(openai::models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1beta/models", get(gemini::models))
        .route("/v1beta/models/{action}", post(gemini::dispatch))
        .route(
            "/mock/credentials",
            get(credentials::list).delete(credentials::clear),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            credentials::gate,
        ))
        .layer(axum::middleware::map_response(leak_into_body))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    let body = json!({"error": {
        "message": format!("mock upstream: no route for {}", uri.path()),
        "type": "not_found_error",
        "code": 404,
    }});
    Ctx::new(Api::OpenAi, &uri).finish(json_response(StatusCode::NOT_FOUND, &body))
}

/// Serves the mock on `listener` until `shutdown` resolves, then shuts down
/// gracefully (stalled requests and streams end at once).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let signal = Shutdown::default();
    let app = router_with(signal.clone());
    // Like a real provider's server: stream events are not held back.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            signal.trigger();
        })
        .await
}

/// Starts the mock on `127.0.0.1` with an OS-chosen port, in a background
/// task.
pub async fn spawn() -> std::io::Result<MockUpstream> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        if let Err(e) = serve(listener, stop).await {
            tracing::warn!("mock upstream stopped: {e}");
        }
    });
    Ok(MockUpstream {
        addr,
        stop: Some(tx),
    })
}

/// A running mock upstream (from [`spawn`]); it stops when dropped.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MockUpstream {
    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Which API a route speaks (selects the error shape and headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Api {
    /// The name used in the default reply.
    fn label(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::Gemini => "gemini",
        }
    }

    /// An error response in this API's shape.
    fn error(self, status: StatusCode, message: &str) -> Response {
        match self {
            Api::OpenAi => openai::error(status, message, None),
            Api::Anthropic => anthropic::error(status, message),
            Api::Gemini => gemini::error(status, message, None),
        }
    }
}

/// Per-request bookkeeping for the response headers.
struct Ctx {
    api: Api,
    path: String,
    model: Option<String>,
    /// `leak`: the leak text and the credential headers received, which
    /// every response echoes.
    leak: Option<(String, HeaderMap)>,
}

impl Ctx {
    fn new(api: Api, uri: &Uri) -> Self {
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| uri.path().to_string());
        Ctx {
            api,
            path,
            model: None,
            leak: None,
        }
    }

    /// Remembers what a `leak` request's responses echo.
    fn set_leak(&mut self, d: &Directives, headers: &HeaderMap) {
        self.leak = d.leak.clone().map(|text| {
            let mut creds = HeaderMap::new();
            for name in script::CREDENTIAL_HEADERS {
                for v in headers.get_all(name) {
                    creds.append(name, v.clone());
                }
            }
            (text, creds)
        });
    }

    /// Adds the `x-mock-*` headers (and a request id) to `resp`.
    fn finish(&self, mut resp: Response) -> Response {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.path) {
            h.insert("x-mock-path", v);
        }
        if let Some(Ok(v)) = self.model.as_deref().map(HeaderValue::from_str) {
            h.insert("x-mock-received-model", v);
        }
        let mut rid = format!("req_mock_{}", script::next_id());
        if let Some((text, creds)) = &self.leak {
            for (name, v) in creds {
                h.append(name, v.clone());
            }
            if let Ok(v) = HeaderValue::from_str(text) {
                h.insert("x-mock-leak", v);
            }
            rid = format!("{rid} {text}");
        }
        if let Ok(v) = HeaderValue::from_str(&rid) {
            match self.api {
                Api::OpenAi => {
                    h.insert("x-request-id", v);
                }
                Api::Anthropic => {
                    h.insert("request-id", v);
                }
                Api::Gemini => {}
            }
        }
        resp
    }

    /// An error in this request's API shape, with the headers.
    fn error(&self, status: StatusCode, message: &str) -> Response {
        self.finish(self.api.error(status, message))
    }
}

/// Applies `stall`, `latency` and `status`; returns the response to send
/// instead of the normal one, if any.
async fn prelude(api: Api, d: &Directives, shutdown: &Shutdown) -> Option<Response> {
    if d.stall {
        shutdown.sleep(script::MAX_WAIT).await;
        return Some(api.error(
            StatusCode::GATEWAY_TIMEOUT,
            "mock upstream: stall ended without an answer",
        ));
    }
    if let Some(latency) = d.latency {
        shutdown.sleep(latency).await;
    }
    let code = d.status?;
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // With `leak`, `leak_into_body` also puts it in the error's `code`.
    let (message, _) = script::failure(d, &format!("status {code} requested by directive"));
    let mut resp = match api {
        Api::Gemini => gemini::error(status, &message, d.retry_after),
        _ => api.error(status, &message),
    };
    if let Some(secs) = d.retry_after {
        let h = resp.headers_mut();
        h.insert("retry-after", HeaderValue::from(secs));
        if api == Api::Anthropic {
            let at = script::rfc3339(script::unix_now() + secs);
            if let Ok(v) = HeaderValue::from_str(&at) {
                h.insert("anthropic-ratelimit-requests-reset", v);
            }
        }
    }
    Some(resp)
}

/// For `leak` (whose responses carry `x-mock-leak`): a JSON error gets the
/// leak as its `error.code`, a successful JSON answer as a top-level
/// `mock_leak` field, as a debugging upstream might echo it. Streams are
/// left alone (`fail-after` carries the leak there).
async fn leak_into_body(resp: Response) -> Response {
    let Some(leak) = resp.headers().get("x-mock-leak").cloned() else {
        return resp;
    };
    let json = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    if !json {
        return resp;
    }
    let leak = String::from_utf8_lossy(leak.as_bytes()).into_owned();
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        if parts.status.is_success() {
            obj.insert("mock_leak".into(), json!(leak));
        } else if let Some(err) = obj.get_mut("error").and_then(|e| e.as_object_mut()) {
            err.insert("code".into(), json!(leak));
        }
    }
    parts.headers.remove("content-length");
    Response::from_parts(parts, axum::body::Body::from(v.to_string()))
}

/// The non-empty bearer token of `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The non-empty value of header `name`, if any.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Parses a request body as a JSON object.
fn parse_object(body: &[u8]) -> Result<serde_json::Value, String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err("request body must be a JSON object".to_string()),
        Err(e) => Err(format!("request body is not valid JSON: {e}")),
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn spawn_serves_and_stops_on_drop() {
        let mock = spawn().await.unwrap();
        let base = mock.base_url();
        assert_eq!(base, format!("http://127.0.0.1:{}", mock.addr().port()));
        let r = client()
            .get(format!("{base}/v1/models"))
            .bearer_auth("k")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        drop(mock);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let fresh = reqwest::Client::builder().build().unwrap();
        assert!(fresh.get(format!("{base}/v1/models")).send().await.is_err());
    }

    #[tokio::test]
    async fn unknown_route_is_404_with_path_header() {
        let mock = spawn().await.unwrap();
        let r = client()
            .get(format!("{}/nope?x=1", mock.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["x-mock-path"], "/nope?x=1");
    }

    #[tokio::test]
    async fn stall_does_not_answer_within_300ms() {
        let mock = spawn().await.unwrap();
        let send = client()
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .bearer_auth("k")
            .body(r#"{"model":"gpt-4o~stall","messages":[]}"#)
            .send();
        let res = tokio::time::timeout(std::time::Duration::from_millis(300), send).await;
        assert!(res.is_err(), "stall answered");
    }

    fn chat_req(mock: &MockUpstream, model: &str, stream: bool) -> reqwest::RequestBuilder {
        let body = json!({"model": model, "stream": stream,
                          "messages": [{"role": "user", "content": "hi"}]});
        client()
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .bearer_auth("k")
            .body(body.to_string())
    }

    #[tokio::test]
    async fn gap_streams_events_as_they_are_produced() {
        let mock = spawn().await.unwrap();
        let t0 = Instant::now();
        let mut r = chat_req(&mock, "gpt-4o~gap=100~chunks=5", true)
            .send()
            .await
            .unwrap();
        let first = r.chunk().await.unwrap().unwrap();
        let first_at = t0.elapsed();
        assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
        let rest = read_body(r).await;
        assert!(rest.clean);
        let total = t0.elapsed();
        // role, 5 deltas, finish, [DONE]: 7 gaps of 100 ms after the first.
        assert!(
            first_at < Duration::from_millis(250),
            "first event took {first_at:?}"
        );
        assert!(
            total >= Duration::from_millis(700),
            "stream took only {total:?}"
        );
    }

    #[tokio::test]
    async fn client_disconnect_stops_the_stream() {
        let mock = spawn().await.unwrap();
        let mut r = chat_req(&mock, "gpt-4o~gap=50~chunks=200", true)
            .send()
            .await
            .unwrap();
        let first = r.chunk().await.unwrap().unwrap();
        let first = String::from_utf8_lossy(&first).into_owned();
        let id = sse_json(first.as_bytes())[0].1["id"]
            .as_str()
            .unwrap()
            .to_string();
        drop(r);
        let dropped = |id: &str| {
            stream::DROPPED_STREAMS
                .lock()
                .unwrap()
                .iter()
                .any(|tag| tag.contains(id))
        };
        let t0 = Instant::now();
        while !dropped(&id) {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "stream still running"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn latency_delays_the_head_and_ttfb_only_the_body() {
        let mock = spawn().await.unwrap();
        let t0 = Instant::now();
        let r = chat_req(&mock, "gpt-4o~latency=200", false)
            .send()
            .await
            .unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert_eq!(r.status(), 200);

        let t0 = Instant::now();
        let mut r = chat_req(&mock, "gpt-4o~ttfb=400", true)
            .send()
            .await
            .unwrap();
        let head_at = t0.elapsed();
        assert!(
            head_at < Duration::from_millis(300),
            "head took {head_at:?}"
        );
        r.chunk().await.unwrap().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn stall_after_sends_some_events_then_nothing() {
        let mock = spawn().await.unwrap();
        let mut r = chat_req(&mock, "gpt-4o~stall-after=2", true)
            .send()
            .await
            .unwrap();
        let mut got = Vec::new();
        let read = async {
            while let Ok(Some(c)) = r.chunk().await {
                got.extend_from_slice(&c);
            }
        };
        let res = tokio::time::timeout(Duration::from_millis(300), read).await;
        assert!(res.is_err(), "stream ended instead of stalling");
        assert_eq!(sse_events(&got).len(), 3, "role chunk + 2");
    }

    #[tokio::test]
    async fn bad_directive_is_a_400_and_header_directives_apply() {
        let mock = spawn().await.unwrap();
        let r = chat_req(&mock, "gpt-4o~sttaus=500", false)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v = json_of(&r.bytes().await.unwrap());
        assert!(v["error"]["message"].as_str().unwrap().contains("sttaus"));
        let r = chat_req(&mock, "gpt-4o", false)
            .header("x-mock", "status=500")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
    }

    #[tokio::test]
    async fn leak_echoes_credentials_in_headers_errors_and_streams() {
        let mock = spawn().await.unwrap();
        let r = client()
            .post(format!("{}/v1/messages?k=q", mock.base_url()))
            .header("x-api-key", "sk-leaked")
            .header("anthropic-version", "2023-06-01")
            .body(r#"{"model":"c~leak~status=400","max_tokens":5,"messages":[]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["x-api-key"], "sk-leaked");
        assert!(r.headers()["request-id"]
            .to_str()
            .unwrap()
            .contains("sk-leaked"));
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["code"], "x-api-key=sk-leaked; query=k=q");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sk-leaked"));

        let r = chat_req(&mock, "gpt-4o~leak", false).send().await.unwrap();
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["mock_leak"], "authorization=Bearer k");
        assert_eq!(v["object"], "chat.completion");

        let r = chat_req(&mock, "gpt-4o~leak~fail-after=1", true)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["authorization"], "Bearer k");
        let events = sse_json(&r.bytes().await.unwrap());
        assert_eq!(
            events.len(),
            3,
            "role chunk, one delta, the error: {events:?}"
        );
        assert_eq!(events[2].1["error"]["code"], "authorization=Bearer k");
    }

    #[tokio::test]
    async fn echo_head_answers_path_and_headers_without_credentials() {
        let mock = spawn().await.unwrap();
        let r = client()
            .post(format!("{}/v1/messages?beta=true", mock.base_url()))
            .header("x-api-key", "sk-secret")
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "b1")
            .body(r#"{"model":"c~echo-head","max_tokens":5,"messages":[]}"#)
            .send()
            .await
            .unwrap();
        let v = json_of(&r.bytes().await.unwrap());
        let head = json_of(v["content"][0]["text"].as_str().unwrap().as_bytes());
        assert_eq!(head["path"], "/v1/messages?beta=true");
        assert_eq!(head["headers"]["anthropic-beta"], "b1");
        assert_eq!(head["headers"]["x-api-key"], "[credential]");
    }

    #[tokio::test]
    async fn stall_ends_when_the_server_shuts_down() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async move {
            let _ = rx.await;
        }));
        let req = tokio::spawn(
            client()
                .post(format!("http://{addr}/v1/messages"))
                .header("x-api-key", "k")
                .header("anthropic-version", "2023-06-01")
                .header("x-mock", "stall")
                .body(r#"{"model":"c","max_tokens":5,"messages":[]}"#)
                .send(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let _ = tx.send(());
        let resp = tokio::time::timeout(std::time::Duration::from_secs(5), req)
            .await
            .expect("stall outlived shutdown")
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 504);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    }
}
