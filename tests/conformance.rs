//! The conformance suite: every client format against every provider kind,
//! through the mock upstream, streaming and not, with tools and errors.

mod common;

use common::*;
use serde_json::{json, Value};

const CLIENTS: &[&str] = &["/v1/chat/completions", "/v1/responses", "/v1/messages"];

#[tokio::test]
async fn text_reply_every_client_every_provider() {
    let stack = Stack::start().await;
    for path in CLIENTS {
        for provider in PROVIDERS {
            let ctx = format!("{path} -> {provider}");
            let resp = stack
                .post(
                    path,
                    &request(path, &format!("{provider}/m1"), "ping 42", false),
                )
                .await;
            assert_eq!(resp.headers()["x-tollgate-provider"], *provider, "{ctx}");
            assert!(
                resp.headers().contains_key("x-tollgate-request-id"),
                "{ctx}"
            );
            let (status, v) = json(resp).await;
            assert_eq!(status, 200, "{ctx}: {v}");
            let text = answer_text(path, &v);
            assert!(text.contains("You said: ping 42"), "{ctx}: {text:?} in {v}");
            match *path {
                "/v1/chat/completions" => {
                    assert_eq!(v["object"], "chat.completion", "{ctx}");
                    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{ctx}");
                    assert!(
                        v["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
                        "{ctx}: {v}"
                    );
                    assert!(
                        v["usage"]["completion_tokens"].as_u64().unwrap() > 0,
                        "{ctx}"
                    );
                }
                "/v1/responses" => {
                    assert_eq!(v["object"], "response", "{ctx}");
                    assert_eq!(v["status"], "completed", "{ctx}");
                    assert!(
                        v["usage"]["input_tokens"].as_u64().unwrap() > 0,
                        "{ctx}: {v}"
                    );
                }
                _ => {
                    assert_eq!(v["type"], "message", "{ctx}");
                    assert_eq!(v["stop_reason"], "end_turn", "{ctx}");
                    assert!(
                        v["usage"]["output_tokens"].as_u64().unwrap() > 0,
                        "{ctx}: {v}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn streamed_reply_every_client_every_provider() {
    let stack = Stack::start().await;
    for path in CLIENTS {
        for provider in PROVIDERS {
            let ctx = format!("{path} -> {provider}");
            let resp = stack
                .post(
                    path,
                    &request(path, &format!("{provider}/m1~chunks=7"), "stream me", true),
                )
                .await;
            assert_eq!(resp.status(), 200, "{ctx}");
            let events = sse(resp).await;
            let (text, complete) = stream_text(path, &events);
            assert!(complete, "{ctx}: stream not complete: {events:?}");
            assert!(text.contains("You said: stream me"), "{ctx}: {text:?}");
            let deltas = events
                .iter()
                .filter(|e| {
                    e.event.as_deref() == Some("content_block_delta")
                        || e.event.as_deref() == Some("response.output_text.delta")
                        || e.json()["choices"][0]["delta"]["content"].is_string()
                })
                .count();
            assert!(deltas >= 7, "{ctx}: chunks were merged: {deltas} deltas");
            match *path {
                "/v1/messages" => {
                    assert_eq!(events[0].event.as_deref(), Some("message_start"), "{ctx}");
                    let delta = events
                        .iter()
                        .find(|e| e.event.as_deref() == Some("message_delta"))
                        .expect("message_delta");
                    assert_eq!(delta.json()["delta"]["stop_reason"], "end_turn", "{ctx}");
                    assert!(
                        delta.json()["usage"]["output_tokens"].as_u64().unwrap() > 0,
                        "{ctx}"
                    );
                }
                "/v1/responses" => {
                    assert_eq!(
                        events[0].event.as_deref(),
                        Some("response.created"),
                        "{ctx}"
                    );
                    let done = events.last().unwrap().json();
                    assert!(
                        done["response"]["usage"]["output_tokens"].as_u64().unwrap() > 0,
                        "{ctx}"
                    );
                }
                _ => {
                    // The client did not ask for usage: no usage-only chunk.
                    assert!(
                        events.iter().all(|e| e.data == "[DONE]"
                            || !e.json()["choices"].as_array().unwrap().is_empty()),
                        "{ctx}: usage chunk leaked: {events:?}"
                    );
                    let fin = events
                        .iter()
                        .rev()
                        .find(|e| e.json()["choices"][0]["finish_reason"].is_string())
                        .expect("a finish chunk");
                    assert_eq!(fin.json()["choices"][0]["finish_reason"], "stop", "{ctx}");
                }
            }
        }
    }
}

#[tokio::test]
async fn chat_stream_usage_when_asked() {
    let stack = Stack::start().await;
    for provider in PROVIDERS {
        let mut body = request(
            "/v1/chat/completions",
            &format!("{provider}/m"),
            "count",
            true,
        );
        body["stream_options"] = json!({"include_usage": true});
        let events = sse(stack.post("/v1/chat/completions", &body).await).await;
        let usage = events
            .iter()
            .find(|e| e.json()["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0)
            .unwrap_or_else(|| panic!("{provider}: no usage chunk in {events:?}"));
        assert!(
            usage.json()["choices"].as_array().unwrap().is_empty(),
            "{provider}"
        );
        assert!(usage.json()["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        assert_eq!(events.last().unwrap().data, "[DONE]", "{provider}");
    }
}

#[tokio::test]
async fn tool_calls_every_client_every_provider() {
    let stack = Stack::start().await;
    for path in CLIENTS {
        for provider in PROVIDERS {
            for stream in [false, true] {
                let ctx = format!("{path} -> {provider} stream={stream}");
                let body = with_weather_tool(
                    path,
                    request(path, &format!("{provider}/m~tool"), "weather?", stream),
                );
                let resp = stack.post(path, &body).await;
                assert_eq!(resp.status(), 200, "{ctx}");
                let (name, args, id) = if stream {
                    tool_call_from_stream(path, &sse(resp).await)
                } else {
                    tool_call_from_json(path, &json(resp).await.1)
                };
                assert_eq!(name, "get_weather", "{ctx}");
                let args: Value = serde_json::from_str(&args)
                    .unwrap_or_else(|e| panic!("{ctx}: arguments not JSON ({e}): {args:?}"));
                assert_eq!(args["city"], "sample", "{ctx}: {args}");
                assert!(!id.is_empty(), "{ctx}: no call id");
            }
        }
    }
}

fn tool_call_from_json(path: &str, v: &Value) -> (String, String, String) {
    match path {
        "/v1/chat/completions" => {
            assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
            let c = &v["choices"][0]["message"]["tool_calls"][0];
            (
                s(&c["function"]["name"]),
                s(&c["function"]["arguments"]),
                s(&c["id"]),
            )
        }
        "/v1/responses" => {
            let c = v["output"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["type"] == "function_call")
                .unwrap_or_else(|| panic!("no function_call in {v}"));
            (s(&c["name"]), s(&c["arguments"]), s(&c["call_id"]))
        }
        _ => {
            assert_eq!(v["stop_reason"], "tool_use", "{v}");
            let c = v["content"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["type"] == "tool_use")
                .unwrap_or_else(|| panic!("no tool_use in {v}"));
            (s(&c["name"]), c["input"].to_string(), s(&c["id"]))
        }
    }
}

fn tool_call_from_stream(path: &str, events: &[Event]) -> (String, String, String) {
    let (mut name, mut args, mut id) = (String::new(), String::new(), String::new());
    for e in events {
        let v = e.json();
        match path {
            "/v1/chat/completions" => {
                if let Some(c) = v["choices"][0]["delta"]["tool_calls"].get(0) {
                    if let Some(n) = c["function"]["name"].as_str() {
                        name = n.into();
                    }
                    if let Some(i) = c["id"].as_str() {
                        id = i.into();
                    }
                    args.push_str(c["function"]["arguments"].as_str().unwrap_or_default());
                }
            }
            "/v1/responses" => match e.event.as_deref() {
                Some("response.output_item.added") if v["item"]["type"] == "function_call" => {
                    name = s(&v["item"]["name"]);
                    id = s(&v["item"]["call_id"]);
                }
                Some("response.function_call_arguments.delta") => {
                    args.push_str(v["delta"].as_str().unwrap_or_default())
                }
                _ => {}
            },
            _ => match e.event.as_deref() {
                Some("content_block_start") if v["content_block"]["type"] == "tool_use" => {
                    name = s(&v["content_block"]["name"]);
                    id = s(&v["content_block"]["id"]);
                }
                Some("content_block_delta") if v["delta"]["type"] == "input_json_delta" => {
                    args.push_str(v["delta"]["partial_json"].as_str().unwrap_or_default())
                }
                _ => {}
            },
        }
    }
    (name, args, id)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn tool_result_round_trip_keeps_ids() {
    let stack = Stack::start().await;
    for provider in PROVIDERS {
        // OpenAI client: the tool call, then the result.
        let body = json!({
            "model": format!("{provider}/m"),
            "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": null, "refusal": null, "annotations": [],
                 "tool_calls": [{"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_abc", "content": "sunny, 21C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
        });
        let (status, v) = json(stack.post("/v1/chat/completions", &body).await).await;
        assert_eq!(status, 200, "{provider}: {v}");
        let text = answer_text("/v1/chat/completions", &v);
        assert!(
            text.contains("Tool result received: sunny, 21C"),
            "{provider}: {text}"
        );

        // Anthropic client: the same conversation.
        let body = json!({
            "model": format!("{provider}/m"), "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rainy"}]}
            ],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
        });
        let (status, v) = json(stack.post("/v1/messages", &body).await).await;
        assert_eq!(status, 200, "{provider}: {v}");
        let text = answer_text("/v1/messages", &v);
        assert!(
            text.contains("Tool result received: rainy"),
            "{provider}: {text}"
        );
    }
}

/// A Chat Completions answer as an openai SDK leaves it for the caller to
/// send back: the message of a complete answer, or a stream's deltas
/// merged the way the SDKs' accumulators merge them (strings joined, list
/// entries by their `index`).
fn chat_message(stream: bool, resp_events: Result<Vec<Event>, Value>) -> Value {
    match resp_events {
        Err(v) => v["choices"][0]["message"].clone(),
        Ok(events) => {
            assert!(stream);
            let mut acc = json!({});
            for e in events.iter().filter(|e| e.data != "[DONE]") {
                merge_delta(&mut acc, &e.json()["choices"][0]["delta"]);
            }
            acc
        }
    }
}

fn merge_delta(acc: &mut Value, delta: &Value) {
    let Some(fields) = delta.as_object() else {
        return;
    };
    for (k, v) in fields {
        let slot = &mut acc[k.as_str()];
        match (slot.clone(), v) {
            (Value::String(a), Value::String(b)) if k != "index" && k != "type" => {
                *slot = Value::String(a + b)
            }
            (Value::Array(_), Value::Array(entries)) => {
                for entry in entries {
                    let i = entry["index"]
                        .as_u64()
                        .expect("list entries carry an index") as usize;
                    let list = slot.as_array_mut().unwrap();
                    if i < list.len() {
                        merge_delta(&mut list[i], entry);
                    } else {
                        list.push(entry.clone());
                    }
                }
            }
            (Value::Object(_), Value::Object(_)) => merge_delta(slot, v),
            _ => *slot = v.clone(),
        }
    }
}

/// Reads a response as JSON (`Err`) or as its stream's events (`Ok`).
async fn answer(resp: reqwest::Response, stream: bool) -> Result<Vec<Event>, Value> {
    assert_eq!(resp.status(), 200);
    if stream {
        Ok(sse(resp).await)
    } else {
        Err(json(resp).await.1)
    }
}

/// The two-turn tool loop with reasoning on, from each OpenAI-format client
/// to Anthropic, whose mock refuses (as the API does) a tool loop whose
/// calling turn lost its signed thinking: the signature travels through the
/// client's format and back, and the second turn keeps thinking. A client
/// that drops it still gets an answer, without thinking.
#[tokio::test]
async fn thinking_survives_a_tool_loop_from_openai_clients_to_anthropic() {
    let stack = Stack::start().await;
    let model = |directives: &str| format!("mock-anthropic/claude-x~think{directives}");
    for path in ["/v1/chat/completions", "/v1/responses"] {
        for stream in [false, true] {
            for keep_reasoning in [true, false] {
                let ctx = format!("{path} stream={stream} keep_reasoning={keep_reasoning}");
                let user = json!({"role": "user", "content": "weather in Paris?"});
                let mut first = json!({"model": model("~tool"), "stream": stream});
                if path == "/v1/chat/completions" {
                    first["messages"] = json!([user]);
                    first["reasoning_effort"] = json!("high");
                } else {
                    first["input"] = json!([user]);
                    first["reasoning"] = json!({"effort": "high"});
                }
                let first = with_weather_tool(path, first);
                let got = answer(stack.post(path, &first).await, stream).await;

                // The second turn: the answer sent back as the client got
                // it, then the tool's result.
                let mut second = first.clone();
                second["model"] = json!(model("~echo-request"));
                second["stream"] = json!(false);
                let signature;
                if path == "/v1/chat/completions" {
                    let mut msg = chat_message(stream, got);
                    let call_id = s(&msg["tool_calls"][0]["id"]);
                    signature = s(&msg["reasoning_details"][0]["signature"]);
                    if !keep_reasoning {
                        msg.as_object_mut().unwrap().remove("reasoning_details");
                    }
                    second["messages"] = json!([user, msg,
                        {"role": "tool", "tool_call_id": call_id, "content": "18C"}]);
                } else {
                    let output: Vec<Value> = match got {
                        Err(v) => v["output"].as_array().unwrap().clone(),
                        Ok(events) => events
                            .iter()
                            .filter(|e| e.event.as_deref() == Some("response.output_item.done"))
                            .map(|e| e.json()["item"].clone())
                            .collect(),
                    };
                    let reasoning = output.iter().find(|i| i["type"] == "reasoning");
                    signature = reasoning
                        .map(|r| s(&r["encrypted_content"]))
                        .unwrap_or_default();
                    let call = output
                        .iter()
                        .find(|i| i["type"] == "function_call")
                        .unwrap();
                    let mut input = vec![user.clone()];
                    input.extend(
                        output
                            .iter()
                            .filter(|i| keep_reasoning || i["type"] != "reasoning")
                            .cloned(),
                    );
                    input.push(json!({"type": "function_call_output",
                                      "call_id": call["call_id"], "output": "18C"}));
                    second["input"] = Value::Array(input);
                }
                assert!(
                    signature.contains("mock-signature-"),
                    "{ctx}: no signature carried"
                );

                let (status, v) = json(stack.post(path, &second).await).await;
                assert_eq!(status, 200, "{ctx}: {v}");
                let sent: Value = serde_json::from_str(&answer_text(path, &v))
                    .unwrap_or_else(|_| panic!("{ctx}: not the echoed request: {v}"));
                let caller = &sent["messages"][1]["content"];
                if keep_reasoning {
                    assert_eq!(sent["thinking"]["type"], "enabled", "{ctx}: {sent}");
                    assert_eq!(caller[0]["type"], "thinking", "{ctx}: {sent}");
                    let sent_signature = s(&caller[0]["signature"]);
                    assert!(
                        sent_signature.starts_with("mock-signature-")
                            && signature.ends_with(&sent_signature),
                        "{ctx}: the signature changed: {sent}"
                    );
                } else {
                    assert!(sent.get("thinking").is_none(), "{ctx}: {sent}");
                    assert_eq!(caller[0]["type"], "tool_use", "{ctx}: {sent}");
                }
            }
        }
    }
}

/// Gemini sends no call IDs: each turn's calls get fresh ones, so a
/// conversation built from two Gemini answers holds no ID twice, and
/// Anthropic (which refuses repeated `tool_use` ids) takes it over.
#[tokio::test]
async fn gemini_call_ids_stay_unique_across_turns() {
    let stack = Stack::start().await;
    let path = "/v1/chat/completions";
    for stream in [false, true] {
        let mut messages = vec![json!({"role": "user", "content": "weather in Paris, then Rome?"})];
        let mut ids = Vec::new();
        for result in ["18C", "21C"] {
            let body = with_weather_tool(
                path,
                json!({"model": "mock-gemini/gemini-x~tool", "stream": stream, "messages": messages}),
            );
            let resp = stack.post(path, &body).await;
            assert_eq!(resp.status(), 200, "stream={stream}");
            let (name, args, id) = if stream {
                tool_call_from_stream(path, &sse(resp).await)
            } else {
                tool_call_from_json(path, &json(resp).await.1)
            };
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": name, "arguments": args}}]}));
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": result}));
            ids.push(id);
        }
        assert_ne!(ids[0], ids[1], "stream={stream}: Gemini call IDs repeat");
        let body = with_weather_tool(
            path,
            json!({"model": "mock-anthropic/claude-x", "messages": messages}),
        );
        let (status, v) = json(stack.post(path, &body).await).await;
        assert_eq!(
            status, 200,
            "stream={stream}: Anthropic refused the conversation: {v}"
        );
        assert!(
            answer_text(path, &v).contains("Tool result received: 21C"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn same_format_passes_unknown_fields_and_rewrites_only_the_model() {
    let stack = Stack::start().await;
    let cases = [
        ("/v1/chat/completions", "mock-openai"),
        ("/v1/chat/completions", "mock-compat"),
        ("/v1/responses", "mock-openai"),
        ("/v1/messages", "mock-anthropic"),
    ];
    for (path, provider) in cases {
        let mut body = request(
            path,
            &format!("{provider}/real-model~echo-request"),
            "x",
            false,
        );
        body["future_feature"] = json!({"nested": [1, 2, {"deep": true}]});
        body["providerOptions"] = json!({"gateway": {"order": ["x"]}});
        let (status, v) = json(stack.post(path, &body).await).await;
        assert_eq!(status, 200, "{path}: {v}");
        let sent: Value = serde_json::from_str(&answer_text(path, &v)).expect("echoed request");
        assert_eq!(sent["model"], "real-model~echo-request", "{path}");
        assert_eq!(sent["future_feature"], body["future_feature"], "{path}");
        assert!(
            sent.get("providerOptions").is_none(),
            "{path}: gateway field leaked"
        );
    }
}

/// What an Anthropic client sends beside its body (the beta endpoint, its
/// betas, its API version) is what the upstream receives, as the upstream
/// itself reports it (`echo-head`).
#[tokio::test]
async fn anthropic_beta_and_query_pass_through() {
    let stack = Stack::start().await;
    for stream in [false, true] {
        let body = request("/v1/messages", "mock-anthropic/m~echo-head", "hi", stream);
        let resp = stack
            .client
            .post(stack.url("/v1/messages?beta=true"))
            .header("authorization", "Bearer client-key")
            .header("anthropic-version", "2023-06-02")
            .header(
                "anthropic-beta",
                "context-management-2025-06-27,oauth-2025-04-20",
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "stream={stream}");
        let text = if stream {
            let (text, complete) = stream_text("/v1/messages", &sse(resp).await);
            assert!(complete, "stream={stream}");
            text
        } else {
            answer_text("/v1/messages", &json(resp).await.1)
        };
        let head: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("stream={stream}: not the echoed head ({e}): {text}"));
        assert_eq!(head["path"], "/v1/messages?beta=true", "stream={stream}");
        assert_eq!(
            head["headers"]["anthropic-beta"], "context-management-2025-06-27,oauth-2025-04-20",
            "stream={stream}: {head}"
        );
        assert_eq!(
            head["headers"]["anthropic-version"], "2023-06-02",
            "stream={stream}: {head}"
        );
    }
}

#[tokio::test]
async fn client_errors_in_the_client_format() {
    let stack = Stack::start().await;
    // Malformed JSON.
    let (st, v) = json(
        stack
            .post_raw("/v1/chat/completions", b"{not json".to_vec())
            .await,
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (st, v) = json(stack.post_raw("/v1/messages", b"{not json".to_vec()).await).await;
    assert_eq!(st, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // Missing model; wrong types.
    let (st, v) = json(
        stack
            .post("/v1/chat/completions", &json!({"messages": []}))
            .await,
    )
    .await;
    assert_eq!(
        (st, v["error"]["param"].as_str()),
        (400, Some("model")),
        "{v}"
    );
    let (st, v) = json(
        stack
            .post("/v1/messages", &json!({"model": 5, "messages": []}))
            .await,
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("model"));
    let (st, v) = json(
        stack
            .post(
                "/v1/chat/completions",
                &json!({"model": "fast", "messages": "hi"}),
            )
            .await,
    )
    .await;
    assert_eq!(
        (st, v["error"]["param"].as_str()),
        (400, Some("messages")),
        "{v}"
    );
    let (st, v) = json(
        stack
            .post(
                "/v1/messages",
                &json!({"model": "fast", "messages": [], "stream": "yes"}),
            )
            .await,
    )
    .await;
    assert_eq!(st, 400, "{v}");
    // A bad message shape in a cross-format request.
    let (st, v) = json(
        stack
            .post(
                "/v1/chat/completions",
                &json!({"model": "mock-anthropic/m", "messages": [{"content": "no role"}]}),
            )
            .await,
    )
    .await;
    assert_eq!(st, 400, "{v}");
    // Unknown model.
    let (st, v) = json(
        stack
            .post(
                "/v1/messages",
                &request("/v1/messages", "nope/x", "hi", false),
            )
            .await,
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["type"], "not_found_error");
    let (st, v) = json(
        stack
            .post(
                "/v1/chat/completions",
                &request("/v1/chat/completions", "unknown-model", "hi", false),
            )
            .await,
    )
    .await;
    assert_eq!(st, 404);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown-model"));
    // Body over the cap (1 MiB in the test config).
    let big =
        json!({"model": "fast", "messages": [{"role": "user", "content": "x".repeat(1_100_000)}]});
    let (st, v) = json(stack.post("/v1/chat/completions", &big).await).await;
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // Unknown route and wrong method.
    let (st, v) = json(stack.post("/v1/nope", &json!({})).await).await;
    assert_eq!(st, 404);
    assert!(v["error"]["message"].as_str().unwrap().contains("/v1/nope"));
    let resp = stack
        .client
        .get(stack.url("/v1/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn upstream_errors_pass_status_message_and_retry_after() {
    let stack = Stack::start().await;
    for path in CLIENTS {
        for provider in PROVIDERS {
            let ctx = format!("{path} -> {provider}");
            let resp = stack
                .post(
                    path,
                    &request(
                        path,
                        &format!("{provider}/m~status=429~retry-after=7"),
                        "hi",
                        false,
                    ),
                )
                .await;
            assert_eq!(resp.status(), 429, "{ctx}");
            assert_eq!(resp.headers()["retry-after"], "7", "{ctx}");
            let (_, v) = json(resp).await;
            let body = v.to_string();
            assert!(
                !body.contains("SECRET"),
                "{ctx}: provider key leaked: {body}"
            );
            // Both error shapes call it `rate_limit_error`.
            assert_eq!(v["error"]["type"], "rate_limit_error", "{ctx}: {v}");
            if *path == "/v1/messages" {
                assert_eq!(v["type"], "error", "{ctx}: {v}");
            }
            let resp = stack
                .post(
                    path,
                    &request(path, &format!("{provider}/m~status=500"), "hi", true),
                )
                .await;
            assert_eq!(resp.status(), 500, "{ctx}");
        }
    }
    // Anthropic's 529 reaches an Anthropic client as overloaded_error.
    let (st, v) = json(
        stack
            .post(
                "/v1/messages",
                &request("/v1/messages", "mock-anthropic/m~status=529", "hi", false),
            )
            .await,
    )
    .await;
    assert_eq!(st, 529);
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn stream_cut_after_first_byte_is_an_in_band_error() {
    let stack = Stack::start().await;
    for path in CLIENTS {
        for provider in PROVIDERS {
            let ctx = format!("{path} -> {provider}");
            let resp = stack
                .post(
                    path,
                    &request(path, &format!("{provider}/m~chunks=10~cut=4"), "hi", true),
                )
                .await;
            assert_eq!(resp.status(), 200, "{ctx}");
            let events = sse(resp).await;
            let (_, complete) = stream_text(path, &events);
            assert!(
                !complete,
                "{ctx}: a cut stream must not look complete: {events:?}"
            );
            let last = events.last().unwrap_or_else(|| panic!("{ctx}: no events"));
            match *path {
                "/v1/chat/completions" => {
                    assert!(
                        last.json()["error"]["message"].is_string(),
                        "{ctx}: {last:?}"
                    );
                    assert!(
                        events
                            .iter()
                            .all(|e| e.json()["choices"][0]["finish_reason"].is_null()),
                        "{ctx}: fake finish_reason"
                    );
                }
                "/v1/responses" => {
                    // An `error` event, then `response.failed` for clients
                    // that wait for a terminal response event.
                    let n = events.len();
                    assert_eq!(events[n - 2].event.as_deref(), Some("error"), "{ctx}");
                    assert_eq!(
                        last.event.as_deref(),
                        Some("response.failed"),
                        "{ctx}: {last:?}"
                    );
                    assert!(
                        last.json()["response"]["error"]["message"].is_string(),
                        "{ctx}"
                    );
                    // One response: the same ID from created to failed, and
                    // sequence numbers that keep counting.
                    let ids: Vec<_> = events
                        .iter()
                        .filter_map(|e| e.json()["response"]["id"].as_str().map(str::to_owned))
                        .collect();
                    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ctx}: {ids:?}");
                    let seqs: Vec<_> = events
                        .iter()
                        .map(|e| e.json()["sequence_number"].as_u64().unwrap())
                        .collect();
                    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{ctx}: {seqs:?}");
                }
                _ => {
                    assert_eq!(last.event.as_deref(), Some("error"), "{ctx}: {last:?}");
                    assert!(
                        !events
                            .iter()
                            .any(|e| e.event.as_deref() == Some("message_delta")),
                        "{ctx}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn count_tokens_on_every_provider() {
    let stack = Stack::start().await;
    for provider in PROVIDERS {
        let body = json!({
            "model": format!("{provider}/m"),
            "system": [{"type": "text", "text": "You are a coding agent."}],
            "messages": [{"role": "user", "content": "count these tokens please"}],
        });
        let (st, v) = json(
            stack
                .post("/v1/messages/count_tokens?beta=true", &body)
                .await,
        )
        .await;
        assert_eq!(st, 200, "{provider}: {v}");
        assert!(v["input_tokens"].as_u64().unwrap() > 0, "{provider}: {v}");
    }
}

#[tokio::test]
async fn models_health_and_probe() {
    let stack = Stack::start().await;
    let (st, v) = json(
        stack
            .client
            .get(stack.url("/v1/models"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["object"], "list");
    let ids: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(&m["id"]))
        .collect();
    assert!(ids.contains(&"fast".to_string()), "{ids:?}");
    assert!(ids.contains(&"mock-openai/gpt-4o".to_string()), "{ids:?}");
    let head = stack.client.head(stack.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let health = stack.client.get(stack.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn aliases_route_to_their_provider() {
    let stack = Stack::start().await;
    let resp = stack
        .post(
            "/v1/messages",
            &request(
                "/v1/messages",
                "claude-sonnet-4-5~echo-request",
                "hi",
                false,
            ),
        )
        .await;
    assert_eq!(resp.headers()["x-tollgate-provider"], "mock-anthropic");
    let (_, v) = json(resp).await;
    let sent: Value = serde_json::from_str(&answer_text("/v1/messages", &v)).unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5~echo-request");
    let resp = stack
        .post(
            "/v1/chat/completions",
            &request("/v1/chat/completions", "fast", "hi", false),
        )
        .await;
    assert_eq!(resp.headers()["x-tollgate-provider"], "mock-openai");
}

/// What the provider received for a Claude-Code-shaped Anthropic request,
/// as the mock echoes it.
async fn echoed_upstream_body(stack: &Stack, model: &str) -> Value {
    let body = json!({
        "model": model, "max_tokens": 64000,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Long instructions.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "list files"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Running ls."},
                {"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"command": "ls"}}
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "a.txt"}]},
            {"role": "system", "content": "Mid-conversation reminder."},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}],
        "temperature": 0.5,
        "stop_sequences": ["STOP"],
        "metadata": {"user_id": "u-1"}
    });
    let (st, v) = json(stack.post("/v1/messages", &body).await).await;
    assert_eq!(st, 200, "{model}: {v}");
    serde_json::from_str(&answer_text("/v1/messages", &v)).expect("the mock echoes the request")
}

#[tokio::test]
async fn anthropic_client_to_openai_provider_sends_a_faithful_chat_request() {
    let stack = Stack::start().await;
    for provider in ["mock-openai", "mock-compat"] {
        let sent = echoed_upstream_body(&stack, &format!("{provider}/gpt-x~echo-request")).await;
        let msgs = sent["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["role"], "system", "{sent}");
        assert!(msgs[0]["content"]
            .as_str()
            .unwrap()
            .contains("Long instructions."));
        let call = msgs
            .iter()
            .find(|m| m["tool_calls"].is_array())
            .unwrap_or_else(|| panic!("no tool call sent: {sent}"));
        assert_eq!(call["tool_calls"][0]["id"], "toolu_9");
        assert_eq!(call["tool_calls"][0]["function"]["name"], "Bash");
        let args: Value = serde_json::from_str(
            call["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"command": "ls"}));
        let result = msgs
            .iter()
            .find(|m| m["role"] == "tool")
            .expect("tool message");
        assert_eq!(result["tool_call_id"], "toolu_9");
        assert_eq!(result["content"], "a.txt");
        assert!(
            sent.to_string().contains("Mid-conversation reminder."),
            "{sent}"
        );
        assert_eq!(sent["tools"][0]["function"]["name"], "Bash");
        assert_eq!(sent["temperature"], 0.5);
        assert_eq!(sent["stop"], json!(["STOP"]));
        let limit = if provider == "mock-openai" {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        assert_eq!(sent[limit], 64000, "{provider}: {sent}");
    }
}

#[tokio::test]
async fn anthropic_client_to_gemini_provider_sends_a_faithful_request() {
    let stack = Stack::start().await;
    let sent = echoed_upstream_body(&stack, "mock-gemini/gemini-x~echo-request").await;
    let system = sent["systemInstruction"]["parts"].to_string();
    assert!(
        system.contains("You are Claude Code.") && system.contains("Long instructions."),
        "{sent}"
    );
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(contents[0]["role"], "user");
    let call = contents
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .find(|p| p["functionCall"].is_object())
        .unwrap_or_else(|| panic!("no functionCall: {sent}"));
    assert_eq!(call["functionCall"]["name"], "Bash");
    assert_eq!(call["functionCall"]["args"], json!({"command": "ls"}));
    let resp = contents
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .find(|p| p["functionResponse"].is_object())
        .expect("functionResponse");
    assert_eq!(resp["functionResponse"]["name"], "Bash");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 64000);
    assert_eq!(sent["generationConfig"]["stopSequences"], json!(["STOP"]));
}

#[tokio::test]
async fn openai_client_to_anthropic_provider_sends_a_faithful_request() {
    let stack = Stack::start().await;
    let body = json!({
        "model": "mock-anthropic/claude-x~echo-request",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "one"},
            {"role": "tool", "tool_call_id": "call_2", "content": "two"}
        ],
        "max_tokens": 300
    });
    let (st, v) = json(stack.post("/v1/chat/completions", &body).await).await;
    assert_eq!(st, 200, "{v}");
    let sent: Value = serde_json::from_str(&answer_text("/v1/chat/completions", &v)).unwrap();
    assert_eq!(sent["max_tokens"], 300);
    assert!(sent["system"].to_string().contains("Be terse."), "{sent}");
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["content"][1]["type"], "image", "{sent}");
    assert_eq!(msgs[0]["content"][1]["source"]["media_type"], "image/png");
    let uses: Vec<_> = msgs[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses.len(), 2, "parallel calls kept: {sent}");
    // Both results in one user turn, in order, ids kept.
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results[0]["tool_use_id"], "call_1");
    assert_eq!(results[1]["tool_use_id"], "call_2");
}

/// A Responses function tool is strict unless the client says `false`; a
/// Chat Completions provider only knows that if `strict` is sent.
#[tokio::test]
async fn responses_tools_stay_strict_at_a_chat_provider() {
    let stack = Stack::start().await;
    for (strict, want) in [
        (Value::Null, true),
        (json!(true), true),
        (json!(false), false),
    ] {
        let mut tool = json!({"type": "function", "name": "get_weather",
                              "parameters": {"type": "object", "properties": {}}});
        if !strict.is_null() {
            tool["strict"] = strict.clone();
        }
        let mut body = request("/v1/responses", "mock-compat/m~echo-request", "hi", false);
        body["tools"] = json!([tool]);
        let (status, v) = json(stack.post("/v1/responses", &body).await).await;
        assert_eq!(status, 200, "{v}");
        let sent: Value = serde_json::from_str(&answer_text("/v1/responses", &v)).unwrap();
        assert_eq!(
            sent["tools"][0]["function"]["strict"], want,
            "client strict = {strict}: {sent}"
        );
    }
}

#[tokio::test]
async fn odd_input_is_a_client_error_never_a_server_error() {
    let stack = Stack::start().await;
    let odd_fields: Vec<(&str, Value)> = vec![
        ("messages", json!([1, 2])),
        ("messages", json!([{"role": "user", "content": {"x": 1}}])),
        ("messages", json!([{"role": "wizard", "content": "hi"}])),
        (
            "messages",
            json!([{"role": "user", "content": [{"type": "mystery"}]}]),
        ),
        (
            "messages",
            json!([{"role": "user", "content": [{"text": "no type"}]}]),
        ),
        (
            "messages",
            json!([{"role": "assistant", "content": [{"type": "tool_use", "id": 3}]}]),
        ),
        ("input", json!(7)),
        ("input", json!([{"type": "function_call_output"}])),
        ("tools", json!("all of them")),
        ("tools", json!([{"type": "function"}])),
        ("tool_choice", json!(5)),
        ("max_tokens", json!(-1)),
        ("max_tokens", json!("ten")),
        ("temperature", json!("hot")),
        ("stop", json!(12)),
        ("system", json!(12)),
        ("response_format", json!({"type": "json_schema"})),
        (
            "thinking",
            json!({"type": "enabled", "budget_tokens": "lots"}),
        ),
    ];
    for path in CLIENTS {
        for provider in ["mock-openai", "mock-anthropic", "mock-gemini"] {
            for (field, value) in &odd_fields {
                let mut body = request(path, &format!("{provider}/m"), "hi", false);
                body[*field] = value.clone();
                let resp = stack.post(path, &body).await;
                let status = resp.status().as_u16();
                let (_, v) = json(resp).await;
                let ctx = format!("{path} -> {provider}, {field} = {value}: {status} {v}");
                assert!(status == 200 || (400..500).contains(&status), "{ctx}");
                if status != 200 {
                    // Both error shapes keep the message at error.message.
                    let message = &v["error"]["message"];
                    assert!(message.as_str().is_some_and(|m| !m.is_empty()), "{ctx}");
                }
            }
        }
    }
}

/// What reasoning a streamed answer carries, as a client of `path` reads it.
#[derive(Debug, Default)]
struct StreamedReasoning {
    /// The reasoning text.
    text: String,
    /// Anthropic's signature, where the format carries it.
    signature: String,
    /// The reasoning token count, where the format reports it.
    tokens: u64,
}

fn streamed_reasoning(path: &str, events: &[Event]) -> StreamedReasoning {
    let mut r = StreamedReasoning::default();
    for e in events {
        let v = e.json();
        match path {
            "/v1/chat/completions" => {
                let delta = &v["choices"][0]["delta"];
                r.text
                    .push_str(delta["reasoning_content"].as_str().unwrap_or_default());
                for d in delta["reasoning_details"].as_array().into_iter().flatten() {
                    r.signature
                        .push_str(d["signature"].as_str().unwrap_or_default());
                }
                r.tokens += v["usage"]["completion_tokens_details"]["reasoning_tokens"]
                    .as_u64()
                    .unwrap_or(0);
            }
            "/v1/responses" => match e.event.as_deref() {
                Some("response.reasoning_summary_text.delta") => {
                    r.text.push_str(v["delta"].as_str().unwrap_or_default())
                }
                Some("response.output_item.done") if v["item"]["type"] == "reasoning" => r
                    .signature
                    .push_str(v["item"]["encrypted_content"].as_str().unwrap_or_default()),
                Some("response.completed") => {
                    r.tokens = v["response"]["usage"]["output_tokens_details"]["reasoning_tokens"]
                        .as_u64()
                        .unwrap_or(0)
                }
                _ => {}
            },
            _ => match v["delta"]["type"].as_str() {
                Some("thinking_delta") => r
                    .text
                    .push_str(v["delta"]["thinking"].as_str().unwrap_or_default()),
                Some("signature_delta") => r
                    .signature
                    .push_str(v["delta"]["signature"].as_str().unwrap_or_default()),
                _ => {}
            },
        }
    }
    r
}

/// The mock's reasoning (`~think`) reaches every client whose format can
/// carry what the provider gives: the text from Anthropic and Gemini (and
/// from OpenAI's Responses API, passed through), Anthropic's signature
/// wherever the client format has a place for it, and, from OpenAI Chat
/// Completions (which returns no reasoning text), the reasoning token count
/// in the Chat and Responses usage. An Anthropic client of an OpenAI or
/// compatible provider has nothing to receive: its format has no reasoning
/// token count, and no text came.
#[tokio::test]
async fn reasoning_streams_reach_every_client() {
    const THINKING: &str = "The mock upstream is thinking about the request before it answers.";
    let stack = Stack::start().await;
    let mut checked = 0;
    for path in CLIENTS {
        for provider in PROVIDERS {
            let ctx = format!("{path} -> {provider}");
            let mut body = request(path, &format!("{provider}/m~think"), "think hard", true);
            if *path == "/v1/chat/completions" {
                body["stream_options"] = json!({"include_usage": true});
            }
            let resp = stack.post(path, &body).await;
            assert_eq!(resp.status(), 200, "{ctx}");
            let events = sse(resp).await;
            let (text, complete) = stream_text(path, &events);
            assert!(complete, "{ctx}: {events:?}");
            assert!(text.contains("You said: think hard"), "{ctx}: {text:?}");
            let got = streamed_reasoning(path, &events);
            let chat_provider = matches!(*provider, "mock-openai" | "mock-compat");
            let passed_through = *path == "/v1/responses" && *provider == "mock-openai";
            match (*path, chat_provider && !passed_through) {
                ("/v1/messages", true) => continue,
                (_, true) => assert!(got.tokens > 0, "{ctx}: no reasoning tokens: {events:?}"),
                (_, false) => assert_eq!(got.text, THINKING, "{ctx}: {events:?}"),
            }
            if *provider == "mock-anthropic" {
                assert!(
                    got.signature.contains("mock-signature-"),
                    "{ctx}: the signature is lost: {events:?}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked, 10,
        "every pair that can carry reasoning is checked"
    );
}

/// A Responses conversation that had a Claude turn carries the reasoning
/// items the gateway wrote for it (`encrypted_content` marked
/// `tollgate.anthropic.`). Sent on to OpenAI they would be refused, so the
/// pass-through leaves them out, and only them: OpenAI's own reasoning
/// items and everything else go as sent.
#[tokio::test]
async fn responses_history_from_claude_reaches_openai_without_the_gateways_reasoning() {
    let stack = Stack::start().await;
    let input = json!([
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [],
         "encrypted_content": "tollgate.anthropic.signature:sig-1"},
        {"type": "reasoning", "id": "rs_2", "summary": [],
         "encrypted_content": "tollgate.anthropic.redacted:opaque"},
        {"type": "reasoning", "id": "rs_3", "summary": [], "encrypted_content": "gAAAA-openai"},
        {"type": "function_call", "call_id": "toolu_1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "18C"},
        {"role": "user", "content": "and tomorrow?"}
    ]);
    let body = json!({"model": "mock-openai/real-model~echo-request", "input": input});
    let (status, v) = json(stack.post("/v1/responses", &body).await).await;
    assert_eq!(status, 200, "{v}");
    let sent: Value =
        serde_json::from_str(&answer_text("/v1/responses", &v)).expect("echoed request");
    let kept: Vec<Value> = input
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            !i["encrypted_content"]
                .as_str()
                .is_some_and(|c| c.starts_with("tollgate."))
        })
        .cloned()
        .collect();
    assert_eq!(sent["input"], Value::Array(kept), "{sent}");

    // Without such items the input goes byte for byte as sent.
    let plain = json!({"model": "mock-openai/real-model~echo-request",
                       "input": [{"role": "user", "content": "hi"}]});
    let (_, v) = json(stack.post("/v1/responses", &plain).await).await;
    let sent: Value = serde_json::from_str(&answer_text("/v1/responses", &v)).unwrap();
    assert_eq!(sent["input"], plain["input"]);
}
