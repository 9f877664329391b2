//! Every answer summarised and costed to the nano-dollar: streamed and
//! not, in every client format against every provider kind, same- and
//! cross-format, against the mock's known token counts; a client that
//! leaves mid-stream is costed from what it was sent; OpenAI clients see
//! `usage.cost`; the end of a stream waits for its record to be durable;
//! `/v1/generation` answers what the summary says.
//!
//! The gateway is the binary's routing stack with a real ledger on a
//! temporary store, and prices from the test config's `[prices]`.
//!
//! The mock's `echo-request` directive makes the reply the exact body it
//! received, so its counts are known from what the client reads: the
//! uncached input is `ceil(reply bytes / 4)`, the output the reply's
//! words (plus the reasoning words with `think`), and `cached=N` adds N
//! cached input tokens.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::assembled::Assembled;
use common::{answer_text, sse, stream_text};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tollgate::auth::AuthLayer;
use tollgate::canonical::FinishReason;
use tollgate::edge::EdgeConfig;
use tollgate::provider::Providers;
use tollgate::routing::CredentialKind;
use tollgate::usage::{Durable, Nanos, Outcome, Price, Settlement, Summary};
use tower::ServiceBuilder;

/// The price the test config sets (`[prices]`) for each model a test
/// uses, in USD per million tokens: $3 input, $15 output, $0.30 cache
/// read, $3.75 cache write, $20 reasoning.
const PRICE: &str =
    "{ input = 3.0, output = 15.0, cache_read = 0.3, cache_write = 3.75, reasoning = 20.0 }";

/// [`PRICE`] in nano-dollars, for the expected costs: every token a
/// whole number of nano-dollars.
fn price() -> Price {
    Price {
        input: Nanos(3_000_000_000),
        output: Nanos(15_000_000_000),
        cache_read: Some(Nanos(300_000_000)),
        cache_write: Some(Nanos(3_750_000_000)),
        reasoning: Some(Nanos(20_000_000_000)),
        max_output_tokens: None,
        ..Price::default()
    }
}

/// Words of the mock's reasoning text ("The mock upstream is thinking
/// about the request before it answers.").
const THINKING_WORDS: u64 = 11;
const CACHED: u64 = 4;

/// A hook to run on every settlement the gateway's usage layer produces.
type Observe = Arc<dyn Fn(&Settlement) + Send + Sync>;

struct Gateway {
    server: Assembled,
    summaries: mpsc::UnboundedReceiver<Summary>,
}

/// The mock and the binary's gateway (its routing stack, ledger and
/// `/v1/generation`), whose config prices `models` at [`PRICE`], with a
/// layer outside the routing stack that sends every summary to the test
/// (and runs `extra` on each settlement).
async fn gateway(models: &[&str], extra: Option<Observe>) -> Gateway {
    let prices: String = models
        .iter()
        .map(|m| format!("\"{m}\" = {PRICE}\n"))
        .collect();
    let (tx, summaries) = mpsc::unbounded_channel();
    let observe = move |resp: tollgate::response::GatewayResponse| {
        if let Some(s) = resp.extensions.get::<Settlement>() {
            let tx = tx.clone();
            s.on_settle(move |summary| {
                let _ = tx.send(summary.clone());
                None
            });
            if let Some(extra) = &extra {
                extra(s);
            }
        }
        resp
    };
    let server = Assembled::start_with(&format!("[prices]\n{prices}"), |config, auth, control| {
        let providers = Providers::from_config(config).unwrap();
        let ledger = control.metering.ledger.clone().expect("a ledger");
        let service = ServiceBuilder::new()
            .map_response(observe)
            .service(tollgate::server::routing_stack(config, providers, &control));
        let app = tollgate::edge::router(service, EdgeConfig::from_config(config))
            .merge(tollgate::usage::api::router(ledger.store().clone()));
        match auth {
            Some(auth) => app.layer(AuthLayer::new(auth)),
            None => app,
        }
    })
    .await;
    Gateway { server, summaries }
}

impl Gateway {
    /// The next summary, waiting at most 10 s for it.
    async fn summary(&mut self) -> Summary {
        tokio::time::timeout(Duration::from_secs(10), self.summaries.recv())
            .await
            .expect("a summary within 10 s")
            .expect("the gateway is running")
    }
}

/// The token counts and cost the mock's answer must have.
struct Expected {
    input: u64,
    output: u64,
    reasoning: u64,
    cost: Nanos,
}

fn expected(reply: &str, provider: &str, think: bool) -> Expected {
    let uncached = (reply.len() as u64).div_ceil(4);
    let thinking = if think { THINKING_WORDS } else { 0 };
    let output = reply.split_whitespace().count() as u64 + thinking;
    // Anthropic counts thinking in its output without saying how much.
    let reasoning = if provider == "mock-anthropic" {
        0
    } else {
        thinking
    };
    let p = price();
    let cost = uncached * p.input.0
        + CACHED * p.cache_read.unwrap().0
        + (output - reasoning) * p.output.0
        + reasoning * p.reasoning.unwrap().0;
    Expected {
        input: uncached + CACHED,
        output,
        reasoning,
        cost: Nanos(cost / 1_000_000),
    }
}

/// The text of `"cost":` in a body, as sent.
fn cost_field(text: &str) -> Option<String> {
    number_field(text, "cost")
}

/// The text of the first `"name":` value in a body, as sent (a number
/// exactly as printed, not as a float would read it).
fn number_field(text: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":");
    let at = text.find(&key)? + key.len();
    let rest = &text[at..];
    let end = rest.find([',', '}'])?;
    Some(rest[..end].to_string())
}

/// `/v1/generation?id=` for the answer whose `x-tollgate-request-id`
/// is `id`: the body's text and its JSON.
async fn generation(gw: &Gateway, id: &str) -> (String, Value) {
    let stack = &gw.server.stack;
    let resp = stack
        .client
        .get(stack.url(&format!("/v1/generation?id={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// Asserts that the ledger's record of request `id`, as
/// `/v1/generation` answers it, says what the summary `s` says.
async fn assert_generation_agrees(gw: &Gateway, id: &str, s: &Summary) {
    let (text, v) = generation(gw, id).await;
    let d = &v["data"];
    let cost = s.cost.map_or("null".to_string(), |c| c.to_string());
    assert_eq!(
        number_field(&text, "total_cost"),
        Some(cost.clone()),
        "{text}"
    );
    assert_eq!(number_field(&text, "usage"), Some(cost), "{text}");
    let u = &s.usage;
    assert_eq!(
        (
            &d["id"],
            &d["native_tokens_prompt"],
            &d["native_tokens_completion"],
            &d["native_tokens_reasoning"],
            &d["native_tokens_cached"],
            &d["native_tokens_cache_creation"],
        ),
        (
            &json!(id),
            &json!(u.input_tokens),
            &json!(u.output_tokens),
            &json!(u.reasoning_tokens),
            &json!(u.cache_read_tokens),
            &json!(u.cache_write_tokens),
        ),
        "{text}"
    );
    assert_eq!(d["is_byok"], false, "{text}");
    assert_eq!(d["streamed"], s.streamed, "{text}");
    assert_eq!(d["provider_name"].as_str(), s.provider.as_deref(), "{text}");
    assert_eq!(d["model"].as_str(), s.model.as_deref(), "{text}");
    let ttft = s.ttft.map(|t| t.as_millis() as u64);
    assert_eq!(d["latency"].as_u64(), ttft, "{text}");
    assert_eq!(
        d["generation_time"].as_u64(),
        Some(s.duration.as_millis() as u64),
        "{text}"
    );
}

/// The `x-tollgate-request-id` of an answer.
fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

fn model_for(provider: &str, think: bool) -> String {
    let base = match provider {
        "mock-openai" => "gpt-4o",
        "mock-compat" => "local-model",
        "mock-anthropic" => "claude-sonnet-4-5",
        "mock-gemini" => "gemini-2.5-flash",
        other => panic!("{other}"),
    };
    let think = if think { "~think" } else { "" };
    format!("{base}~echo-request~cached={CACHED}{think}")
}

async fn check(path: &str, provider: &str, stream: bool) {
    let think = true;
    let model = model_for(provider, think);
    let mut gw = gateway(&[&model], None).await;
    let mut body = common::request(path, &format!("{provider}/{model}"), "What is 2+2?", stream);
    if stream && path == "/v1/chat/completions" {
        body["stream_options"] = json!({"include_usage": true});
    }
    let resp = gw.server.stack.post(path, &body).await;
    assert_eq!(resp.status(), 200);
    let id = request_id(&resp);
    let (reply, raw_text) = if stream {
        let events = sse(resp).await;
        let (text, complete) = stream_text(path, &events);
        assert!(complete, "{events:?}");
        let raw: Vec<String> = events.iter().map(|e| e.data.clone()).collect();
        (text, raw.join("\n"))
    } else {
        let bytes = resp.bytes().await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        (
            answer_text(path, &v),
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    };
    assert!(reply.contains("What is 2+2?"), "{reply}");
    let want = expected(&reply, provider, think);
    let s = gw.summary().await;
    assert_eq!(s.usage.input_tokens, want.input, "input");
    assert_eq!(s.usage.cache_read_tokens, CACHED, "cache read");
    assert_eq!(s.usage.cache_write_tokens, 0, "cache write");
    assert_eq!(s.usage.output_tokens, want.output, "output");
    assert_eq!(s.usage.reasoning_tokens, want.reasoning, "reasoning");
    assert_eq!(s.cost, Some(want.cost), "cost");
    assert_eq!(s.list_cost, Some(want.cost), "list cost");
    assert_eq!(s.finish, Some(FinishReason::Stop));
    assert_eq!(s.outcome, Outcome::Complete);
    assert_eq!(s.streamed, stream);
    assert!(!s.estimated);
    assert_eq!(s.credential, Some(CredentialKind::Gateway));
    assert_eq!(s.provider.as_deref(), Some(provider));
    assert_eq!(s.model.as_deref(), Some(model.as_str()));
    assert!(s.ttft.is_some() && s.ttft <= Some(s.duration));
    assert_eq!(s.attempts.len(), 1);
    // OpenAI clients see the same cost in `usage.cost`; Anthropic's
    // format has no place for it.
    let cost = cost_field(&raw_text);
    if path == "/v1/messages" {
        assert_eq!(cost, None, "{raw_text}");
    } else {
        assert_eq!(cost, Some(want.cost.to_string()), "{raw_text}");
    }
    // The ledger has it, durably, by the time the client has the answer.
    assert_generation_agrees(&gw, &id, &s).await;
    assert_eq!(
        generation(&gw, &id).await.1["data"]["finish_reason"],
        "stop"
    );
}

macro_rules! matrix {
    ($($name:ident: $path:literal, $provider:literal;)*) => {
        mod complete {
            $(#[tokio::test]
            async fn $name() {
                super::check($path, $provider, false).await;
            })*
        }
        mod streamed {
            $(#[tokio::test]
            async fn $name() {
                super::check($path, $provider, true).await;
            })*
        }
    };
}

matrix! {
    chat_openai: "/v1/chat/completions", "mock-openai";
    chat_compat: "/v1/chat/completions", "mock-compat";
    chat_anthropic: "/v1/chat/completions", "mock-anthropic";
    chat_gemini: "/v1/chat/completions", "mock-gemini";
    responses_openai: "/v1/responses", "mock-openai";
    responses_compat: "/v1/responses", "mock-compat";
    responses_anthropic: "/v1/responses", "mock-anthropic";
    responses_gemini: "/v1/responses", "mock-gemini";
    anthropic_openai: "/v1/messages", "mock-openai";
    anthropic_compat: "/v1/messages", "mock-compat";
    anthropic_anthropic: "/v1/messages", "mock-anthropic";
    anthropic_gemini: "/v1/messages", "mock-gemini";
}

#[tokio::test]
async fn the_usage_chunk_the_gateway_asked_for_is_counted_but_not_sent() {
    let model = model_for("mock-openai", false);
    let mut gw = gateway(&[&model], None).await;
    let body = common::request(
        "/v1/chat/completions",
        &format!("mock-openai/{model}"),
        "hi",
        true,
    );
    let events = sse(gw.server.stack.post("/v1/chat/completions", &body).await).await;
    let (reply, complete) = stream_text("/v1/chat/completions", &events);
    assert!(complete);
    assert!(
        events.iter().all(|e| !e.data.contains("\"usage\":{")),
        "{events:?}"
    );
    let want = expected(&reply, "mock-openai", false);
    let s = gw.summary().await;
    assert_eq!(
        (s.usage.input_tokens, s.usage.output_tokens),
        (want.input, want.output)
    );
    assert_eq!(s.cost, Some(want.cost));
    assert!(!s.estimated);
}

#[tokio::test]
async fn an_unknown_price_is_no_cost_not_zero() {
    // An OpenAI-compatible server's model: no shipped price, none in
    // the config.
    let mut gw = gateway(&[], None).await;
    let body = common::request(
        "/v1/chat/completions",
        "mock-compat/local-model~cached=2",
        "hi",
        false,
    );
    let resp = gw.server.stack.post("/v1/chat/completions", &body).await;
    let id = request_id(&resp);
    let text = resp.text().await.unwrap();
    assert_eq!(cost_field(&text), None, "{text}");
    let s = gw.summary().await;
    assert!(s.usage.output_tokens > 0);
    assert_eq!((s.cost, s.list_cost), (None, None));
    // The ledger keeps the tokens and says the cost is unknown.
    assert_generation_agrees(&gw, &id, &s).await;
    assert_eq!(
        generation(&gw, &id).await.1["data"]["total_cost"],
        Value::Null
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_costed_from_what_it_was_sent() {
    let model = "gpt-4o~stall-after=2";
    let mut gw = gateway(&[model], None).await;
    let body = common::request(
        "/v1/chat/completions",
        &format!("mock-openai/{model}"),
        "Tell me a story",
        true,
    );
    let input_estimate = (body.to_string().len() as u64).div_ceil(4);
    let mut resp = gw.server.stack.post("/v1/chat/completions", &body).await;
    let id = request_id(&resp);
    // Read until both text pieces before the stall are in, then leave.
    let mut received = String::new();
    let mut parser = tollgate::sse::SseParser::new();
    let mut events = Vec::new();
    let mut pieces = Vec::new();
    while pieces.len() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("chunks before the stall")
            .unwrap()
            .expect("the stream is still open");
        received.push_str(&String::from_utf8_lossy(&chunk));
        parser.feed(&chunk, &mut events);
        for e in events.drain(..) {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                if !t.is_empty() {
                    pieces.push(t.to_string());
                }
            }
        }
    }
    drop(resp);
    let s = gw.summary().await;
    assert_eq!(s.outcome, Outcome::Disconnected);
    assert!(s.estimated);
    assert!(s.streamed);
    assert_eq!(s.usage.input_tokens, input_estimate);
    let sent: usize = pieces.iter().map(String::len).sum();
    assert_eq!(s.usage.output_tokens, (sent as u64).div_ceil(4));
    let p = price();
    let cost = (input_estimate * p.input.0 + s.usage.output_tokens * p.output.0) / 1_000_000;
    assert_eq!(s.cost, Some(Nanos(cost)));
    assert!(s.finish.is_none());
    // The ledger has the same estimate (no client waits for this row).
    gw.server.ledger.flush().await;
    assert_generation_agrees(&gw, &id, &s).await;
}

#[tokio::test]
async fn the_last_event_waits_until_the_record_is_durable() {
    let (durable_tx, durable_rx) = oneshot::channel::<()>();
    let durable_rx = Arc::new(Mutex::new(Some(durable_rx)));
    let hook: Observe = Arc::new(move |s: &Settlement| {
        let rx = durable_rx.lock().unwrap().take();
        s.on_settle(move |_| {
            let rx = rx?;
            Some(Durable(Box::pin(async move {
                let _ = rx.await;
            })))
        });
    });
    let model = "claude-sonnet-4-5";
    let mut gw = gateway(&[model], Some(hook)).await;
    let body = common::request(
        "/v1/messages",
        &format!("mock-anthropic/{model}"),
        "hi",
        true,
    );
    let resp = gw.server.stack.post("/v1/messages", &body).await;
    let (chunks_tx, mut chunks) = mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut resp = resp;
        while let Ok(Some(chunk)) = resp.chunk().await {
            let _ = chunks_tx.send(String::from_utf8_lossy(&chunk).into_owned());
        }
    });
    // The stream has settled: everything up to the last event is free to go.
    let s = gw.summary().await;
    assert_eq!(s.outcome, Outcome::Complete);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, chunks.recv()).await {
        seen.push_str(&chunk);
    }
    assert!(seen.contains("message_delta"), "{seen}");
    assert!(
        !seen.contains("message_stop"),
        "the last event went out before the record was durable: {seen}"
    );
    durable_tx.send(()).unwrap();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(10), chunks.recv()).await {
        seen.push_str(&chunk);
        if seen.contains("message_stop") {
            break;
        }
    }
    assert!(seen.contains("message_stop"), "{seen}");
    reader.abort();
}
