//! Shared test harness: the mock upstream and a gateway in-process, on
//! loopback ports, and small helpers to call them.

#![allow(dead_code)]

pub mod assembled;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tollgate::config::Config;
use tollgate::mock::MockUpstream;

/// Provider kinds the conformance suite runs against, by configured name.
pub const PROVIDERS: &[&str] = &[
    "mock-openai",
    "mock-anthropic",
    "mock-gemini",
    "mock-compat",
];

/// A running mock upstream and gateway; both stop when dropped.
pub struct Stack {
    pub mock: MockUpstream,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub fn config_text(mock_base: &str, extra: &str) -> String {
    format!(
        r#"
[server]
max_body_bytes = 1048576
[providers.mock-openai]
kind = "openai"
base_url = "{mock_base}/v1"
api_key = "sk-test-openai-SECRET"
models = ["gpt-4o"]
[providers.mock-anthropic]
kind = "anthropic"
base_url = "{mock_base}"
api_key = "sk-ant-test-SECRET"
[providers.mock-gemini]
kind = "gemini"
base_url = "{mock_base}"
api_key = "gemini-test-SECRET"
[providers.mock-compat]
kind = "openai-compatible"
base_url = "{mock_base}/v1"
api_key = "compat-test-SECRET"
[models]
fast = "mock-openai/gpt-4o-mini"
"claude-*" = "mock-anthropic/*"
{extra}
"#
    )
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with("").await
    }

    pub async fn start_with(extra: &str) -> Stack {
        let mock = tollgate::mock::spawn().await.expect("mock starts");
        // `MOCK_BASE` in `extra` stands for the mock's base URL.
        let text = config_text(
            &mock.base_url(),
            &extra.replace("MOCK_BASE", &mock.base_url()),
        );
        let config = Config::parse(&text, &|_| None).expect("test config parses");
        let app = tollgate::server::gateway(&config).expect("gateway builds");
        Self::serve(mock, app).await
    }

    /// Serves `app` (a gateway built by the test) in front of `mock`.
    pub async fn serve(mock: MockUpstream, app: axum::Router) -> Stack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tollgate::server::serve(
            app,
            listener,
            async move {
                let _ = rx.await;
            },
            Duration::from_secs(1),
        ));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Stack {
            mock,
            addr,
            client,
            _shutdown: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs JSON with the headers a client of `path`'s format sends.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_raw(path, body.to_string().into_bytes()).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.post_with_key(path, "client-key", body).await
    }

    /// POSTs `body` with `key` where a client of `path`'s format sends
    /// its key (`x-api-key` for Anthropic's, a bearer token otherwise).
    pub async fn post_with_key(&self, path: &str, key: &str, body: Vec<u8>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if path.starts_with("/v1/messages") {
            req = req
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01");
        } else {
            req = req.bearer_auth(key);
        }
        req.send().await.expect("gateway answers")
    }
}

/// Reads a response as JSON, with its status.
pub async fn json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body reads");
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

/// One SSE event as a client sees it.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// Reads a whole SSE response.
pub async fn sse(resp: reqwest::Response) -> Vec<Event> {
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "not an event stream: {:?}",
        resp.headers()
    );
    let text = resp.text().await.expect("stream reads");
    let mut p = tollgate::sse::SseParser::new();
    let mut out = Vec::new();
    p.feed(text.as_bytes(), &mut out);
    assert!(!p.has_pending(), "stream ended mid-event: {text:?}");
    out.into_iter()
        .map(|e| Event {
            event: e.event,
            data: e.data,
        })
        .collect()
}

/// The body of a chat/messages/responses request in the client format of `path`.
pub fn request(path: &str, model: &str, text: &str, stream: bool) -> Value {
    match path {
        "/v1/chat/completions" => serde_json::json!({
            "model": model, "stream": stream,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        }),
        "/v1/responses" => serde_json::json!({
            "model": model, "stream": stream, "instructions": "Be brief.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}],
        }),
        "/v1/messages" => serde_json::json!({
            "model": model, "stream": stream, "max_tokens": 256, "system": "Be brief.",
            "messages": [{"role": "user", "content": text}],
        }),
        other => panic!("no request shape for {other}"),
    }
}

/// A tool definition in the client format of `path`.
pub fn with_weather_tool(path: &str, mut body: Value) -> Value {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    });
    let tool = match path {
        "/v1/chat/completions" => {
            serde_json::json!({"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": schema}})
        }
        "/v1/responses" => {
            serde_json::json!({"type": "function", "name": "get_weather", "description": "Weather for a city", "parameters": schema})
        }
        _ => {
            serde_json::json!({"name": "get_weather", "description": "Weather for a city", "input_schema": schema})
        }
    };
    body["tools"] = serde_json::json!([tool]);
    body
}

/// The text of a complete answer in the client format of `path`.
pub fn answer_text(path: &str, v: &Value) -> String {
    match path {
        "/v1/chat/completions" => v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        "/v1/responses" => v["output"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["type"] == "message")
            .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["text"].as_str().map(str::to_owned))
            .collect(),
        _ => v["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str().map(str::to_owned))
            .collect(),
    }
}

/// The text of a streamed answer in the client format of `path`, and
/// whether the stream ended with its format's proper last event.
pub fn stream_text(path: &str, events: &[Event]) -> (String, bool) {
    let mut text = String::new();
    let mut complete = false;
    for e in events {
        match path {
            "/v1/chat/completions" => {
                if e.data == "[DONE]" {
                    complete = true;
                    continue;
                }
                if let Some(t) = e.json()["choices"][0]["delta"]["content"].as_str() {
                    text.push_str(t);
                }
            }
            "/v1/responses" => match e.event.as_deref() {
                Some("response.output_text.delta") => {
                    text.push_str(e.json()["delta"].as_str().unwrap_or_default())
                }
                Some("response.completed") => complete = true,
                _ => {}
            },
            _ => match e.event.as_deref() {
                Some("content_block_delta") => {
                    if let Some(t) = e.json()["delta"]["text"].as_str() {
                        text.push_str(t);
                    }
                }
                Some("message_stop") => complete = true,
                _ => {}
            },
        }
    }
    (text, complete)
}

/// The log written while the returned guard lives.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    pub fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything a client receives: status, and headers and body as text
/// (for tests that no secret reaches a client).
pub async fn everything(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let mut text = String::new();
    for (k, v) in resp.headers() {
        text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&resp.bytes().await.unwrap()));
    (status, text)
}
