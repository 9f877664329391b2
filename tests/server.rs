//! The server and the edge against slow and broken clients: connection
//! timeouts and cap, the client's 408, when the total deadline starts,
//! streams at the end of the shutdown grace period, and the format of
//! errors no route produced. In-process, on loopback, on tokio's paused
//! clock: every wait below is simulated time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use futures_util::StreamExt;
use http::Request;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tollgate::canonical::{BlockKind, Delta, StreamEvent};
use tollgate::edge::{router, EdgeConfig, ATTEMPTS_HEADER};
use tollgate::response::{ResponseBody, StreamChunk};
use tollgate::routing::Started;
use tollgate::server::{serve_with, ServeConfig};
use tollgate::{GatewayError, GatewayRequest, GatewayResponse};
use tower::{service_fn, ServiceExt};

/// What the fake provider answers: a small JSON body, or (for a request
/// with `"stream": true`) a stream that sends one text delta and then
/// never ends.
fn answer(req: &GatewayRequest) -> GatewayResponse {
    if !req.stream {
        return GatewayResponse::new(ResponseBody::Raw(Bytes::from_static(b"{\"ok\":true}")));
    }
    let events = [
        StreamEvent::Start {
            id: "r1".into(),
            model: "m".into(),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::Text,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("first".into()),
        },
    ];
    let events = stream::iter(events.map(|e| Ok(StreamChunk::Event(e))));
    GatewayResponse::new(ResponseBody::Stream(Box::pin(
        events.chain(stream::pending()),
    )))
}

/// The edge around the fake provider; counts the calls that reach it. The
/// model `silent` never answers.
fn app(edge: EdgeConfig, calls: Arc<AtomicUsize>) -> axum::Router {
    let service = service_fn(move |req: GatewayRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        let silent = req.model == "silent";
        async move {
            if silent {
                std::future::pending::<()>().await;
            }
            Ok::<_, GatewayError>(answer(&req))
        }
    });
    router(service, edge)
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(app: axum::Router, config: ServeConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(serve_with(
            app,
            listener,
            async move {
                let _ = rx.await;
            },
            config,
        ));
        Server {
            addr,
            stop: Some(tx),
            done,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Sends `request` on a new connection and reads until the server
    /// closes it.
    async fn exchange(&self, request: &[u8]) -> String {
        let mut s = self.connect().await;
        s.write_all(request).await.unwrap();
        read_to_close(&mut s).await
    }
}

/// Reads until the server closes the connection; gives up (on the paused
/// clock) after two minutes, with what it read and a note.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out)).await;
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if closed.is_err() {
        text.push_str("<still open after 120 s>");
    }
    text
}

fn limits() -> ServeConfig {
    ServeConfig {
        grace: Duration::from_secs(2),
        header_read_timeout: Some(Duration::from_secs(5)),
        idle_timeout: Some(Duration::from_secs(8)),
        max_connections: 64,
    }
}

fn edge() -> EdgeConfig {
    EdgeConfig {
        body_timeout: Some(Duration::from_secs(10)),
        ..EdgeConfig::default()
    }
}

fn post(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_body(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

#[tokio::test(start_paused = true)]
async fn silent_slow_and_idle_connections_are_closed() {
    let server = Server::start(app(edge(), Arc::default()), limits()).await;

    // A connection that never sends a byte.
    let t0 = Instant::now();
    let mut silent = server.connect().await;
    assert_eq!(read_to_close(&mut silent).await, "");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited <= Duration::from_secs(9),
        "silent connection closed after {waited:?}"
    );

    // Headers at one byte per second never finish in time.
    let t0 = Instant::now();
    let mut slow = server.connect().await;
    let drip = async {
        for b in b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), drip)
        .await
        .unwrap();
    let got = read_to_close(&mut slow).await;
    assert!(!got.contains("200 OK"), "a slow head was served: {got}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // A keep-alive connection after its answer.
    let mut idle = server.connect().await;
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    let got = read_to_close(&mut idle).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited <= Duration::from_secs(9),
        "idle keep-alive closed after {waited:?}"
    );

    // HTTP/2 (prior knowledge): the preface and no request.
    let t0 = Instant::now();
    let mut h2 = server.connect().await;
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let _ = read_to_close(&mut h2).await;
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited <= Duration::from_secs(12),
        "idle HTTP/2 connection closed after {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_outlives_the_idle_timeout() {
    let server = Server::start(app(edge(), Arc::default()), limits()).await;
    let mut s = server.connect().await;
    s.write_all(&post(
        "/v1/chat/completions",
        "",
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    ))
    .await
    .unwrap();
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The stream stays open, sending nothing, long past the idle timeout
    // (8 s): the connection is busy, not idle.
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => panic!("the connection was closed while its stream was open"),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let config = ServeConfig {
        max_connections: 2,
        ..limits()
    };
    let server = Server::start(app(edge(), Arc::default()), config).await;
    let _a = server.connect().await;
    let _b = server.connect().await;
    tokio::task::yield_now().await;
    // Served once one of the two silent connections times out (5 s), not
    // before, and not never.
    let t0 = Instant::now();
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        server.exchange(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    )
    .await
    .expect("answered once a slot is free");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        t0.elapsed() >= Duration::from_secs(5),
        "served past the cap after {:?}",
        t0.elapsed()
    );
}

/// A request whose body stops short of its `Content-Length` gets a 408 in
/// the route's format once the body timeout passes; nothing reaches a
/// provider, and no attempt is reported.
#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_arrive_is_the_clients_408() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Server::start(app(edge(), calls.clone()), limits()).await;
    let cases = [
        ("/v1/chat/completions", "authorization: Bearer k\r\n"),
        (
            "/v1/messages",
            "x-api-key: k\r\nanthropic-version: 2023-06-01\r\n",
        ),
    ];
    for (path, headers) in cases {
        let t0 = Instant::now();
        let mut s = server.connect().await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{headers}content-length: 500\r\n\r\n{{\"model\":\"m\","
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(60), read_to_close(&mut s))
            .await
            .expect("the gateway answers");
        assert!(got.starts_with("HTTP/1.1 408"), "{path}: {got}");
        assert!(
            !got.to_ascii_lowercase().contains(ATTEMPTS_HEADER),
            "{path}: {got}"
        );
        let v = json_body(&got);
        let message = if path == "/v1/messages" {
            assert_eq!(v["type"], "error", "{v}");
            &v["error"]["message"]
        } else {
            assert_eq!(v["error"]["code"], "request_timeout", "{v}");
            &v["error"]["message"]
        };
        assert!(
            message.as_str().unwrap().contains("request body"),
            "{path}: {v}"
        );
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(12),
            "{path}: answered after {waited:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a provider was called");
}

/// The total deadline (`Started`) counts from the end of the body: an
/// upload's time is the client's, not the providers'.
#[tokio::test]
async fn the_total_deadline_starts_after_the_body_is_read() {
    let body_end = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(None));
    let service = {
        let seen = seen.clone();
        service_fn(move |req: GatewayRequest| {
            *seen.lock().unwrap() = req.extensions.get::<Started>().map(|s| s.0);
            std::future::ready(Ok::<_, GatewayError>(answer(&req)))
        })
    };
    let end = body_end.clone();
    let parts = stream::iter([
        r#"{"model":"m","#,
        r#""messages":[{"role":"user","content":"hi"}]}"#,
    ])
    .map(|p| Ok::<_, std::io::Error>(Bytes::from(p)))
    .chain(stream::poll_fn(move |_| {
        // The body's end, as the edge sees it.
        *end.lock().unwrap() = Some(std::time::Instant::now());
        std::task::Poll::Ready(None)
    }));
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from_stream(parts))
        .unwrap();
    let resp = router(service, EdgeConfig::default())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = seen.lock().unwrap().expect("the edge sets Started");
    let body_end = body_end.lock().unwrap().expect("the body was read");
    assert!(
        started >= body_end,
        "the deadline started {:?} before the body was read",
        body_end - started
    );
}

/// Streams still open when the grace period ends get their format's
/// in-band error, then the connection closes.
#[tokio::test(start_paused = true)]
async fn streams_open_at_the_end_of_the_grace_period_get_an_error_event() {
    let mut server = Server::start(app(edge(), Arc::default()), limits()).await;
    let body = r#"{"model":"m","stream":true,"max_tokens":10,"input":"hi","messages":[{"role":"user","content":"hi"}]}"#;
    let cases = [
        ("/v1/chat/completions", "authorization: Bearer k\r\n"),
        ("/v1/responses", "authorization: Bearer k\r\n"),
        (
            "/v1/messages",
            "x-api-key: k\r\nanthropic-version: 2023-06-01\r\n",
        ),
    ];
    let mut waiting = server.connect().await;
    let silent = r#"{"model":"silent","messages":[{"role":"user","content":"hi"}]}"#;
    waiting
        .write_all(&post(
            "/v1/chat/completions",
            "authorization: Bearer k\r\n",
            silent,
        ))
        .await
        .unwrap();
    let mut streams = Vec::new();
    for (path, headers) in cases {
        let mut s = server.connect().await;
        s.write_all(&post(path, headers, body)).await.unwrap();
        // Wait for the first event, so that the stream is under way.
        let mut first = vec![0u8; 4096];
        let n = s.read(&mut first).await.unwrap();
        let first = String::from_utf8_lossy(&first[..n]).into_owned();
        assert!(first.starts_with("HTTP/1.1 200"), "{path}: {first}");
        streams.push((path, first, s));
    }
    let t0 = Instant::now();
    let _ = server.stop.take().unwrap().send(());
    for (path, first, mut s) in streams {
        let rest = tokio::time::timeout(Duration::from_secs(30), read_to_close(&mut s))
            .await
            .unwrap_or_else(|_| panic!("{path}: the stream was left open"));
        let all = first + &rest;
        let expected = match path {
            "/v1/chat/completions" => "data: {\"error\":",
            "/v1/responses" => "event: response.failed",
            _ => "event: error",
        };
        assert!(all.contains(expected), "{path}: no error event in {all}");
        assert!(all.contains("shutting down"), "{path}: {all}");
        assert!(
            t0.elapsed() >= Duration::from_secs(2),
            "{path}: cut before the grace period ended"
        );
    }
    // A request still waiting for its provider is answered, not cut.
    let got = read_to_close(&mut waiting).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(json_body(&got)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("shutting down"));
    server.done.await.unwrap().unwrap();
}

/// An error no route produced is in the format of the API the path
/// belongs to; only a path of neither API follows the headers.
#[tokio::test]
async fn errors_take_the_format_of_the_route() {
    let cases = [
        // (method, path, anthropic-version sent, Anthropic format expected)
        ("GET", "/v1/chat/completions", true, false),
        ("POST", "/v1/chat/completions/", true, false),
        ("DELETE", "/v1/responses", true, false),
        ("POST", "/v1/completions", true, false),
        ("GET", "/v1/messages", false, true),
        ("POST", "/v1/messages/batches", false, true),
        ("POST", "/v1/foo", true, true),
        ("POST", "/v1/foo", false, false),
    ];
    for (method, path, anthropic_header, anthropic) in cases {
        let mut req = Request::builder().method(method).uri(path);
        if anthropic_header {
            req = req.header("anthropic-version", "2023-06-01");
        }
        let resp = app(edge(), Arc::default())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["type"] == "error",
            anthropic,
            "{method} {path} (anthropic-version: {anthropic_header}): {v}"
        );
        assert!(v["error"]["message"].as_str().is_some(), "{v}");
    }
}

/// The answers hyper writes itself, for requests that are not HTTP or are
/// over its limits, carry a JSON error body.
#[tokio::test(start_paused = true)]
async fn hypers_own_errors_have_a_json_body() {
    let server = Server::start(app(edge(), Arc::default()), limits()).await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers = format!(
        "GET /health HTTP/1.1\r\n{}\r\n",
        (0..200)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: [(&[u8], &str); 4] = [
        (b"GET /he alth HTTP/1.1\r\nhost: x\r\n\r\n", "400"),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
            "400",
        ),
        (long_uri.as_bytes(), "414"),
        (many_headers.as_bytes(), "431"),
    ];
    for (request, status) in cases {
        let got = server.exchange(request).await;
        assert!(got.starts_with(&format!("HTTP/1.1 {status} ")), "{got}");
        assert!(
            got.contains("content-type: application/json"),
            "{status}: {got}"
        );
        let v = json_body(&got);
        assert!(v["error"]["message"].as_str().is_some(), "{status}: {v}");
    }
    // A good request on the same server is untouched.
    let got = server
        .exchange(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    assert!(got.ends_with("{\"status\":\"ok\"}"), "{got}");
}
