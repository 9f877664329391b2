//! The Anthropic routes: Messages, token counting and the model list.
//!
//! `POST /v1/messages` refuses, with a 400 `invalid_request_error` and the
//! API's own message, the conversations the real API refuses and a
//! translator can produce: a repeated `tool_use` id, an unsigned `thinking`
//! block, and (with thinking on) a tool loop whose last assistant turn does
//! not start with a `thinking` or `redacted_thinking` block.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::script::{
    content_text, failure, input_tokens, next_id, plan_tool_calls, reply_text, split_args,
    split_pieces, Directives, LastTurn, ToolDef, Usage, THINKING_TEXT,
};
use super::stream::{json_response, sse_frame, stream_response, StreamPlan};
use super::{bearer, header, parse_object, prelude, Api, AppState, Ctx};

/// The error type Anthropic uses for `status`.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An error in Anthropic's shape:
/// `{"type": "error", "error": {"type", "message"}}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    });
    json_response(status, &body)
}

/// The in-band `error` event that `fail-after` ends a stream with.
fn stream_error(d: &Directives) -> Bytes {
    let (message, code) = failure(d, "stream failed by directive");
    let mut err = json!({"type": "api_error", "message": message});
    if let Some(code) = code {
        err["code"] = json!(code);
    }
    sse_frame(Some("error"), &json!({"type": "error", "error": err}))
}

/// Checks the auth and version headers: the error response, if any.
fn check_headers(ctx: &Ctx, headers: &HeaderMap) -> Option<Response> {
    if header(headers, "x-api-key").is_none() && bearer(headers).is_none() {
        return Some(ctx.error(StatusCode::UNAUTHORIZED, "x-api-key header is required"));
    }
    if header(headers, "anthropic-version").is_none() {
        return Some(ctx.error(
            StatusCode::BAD_REQUEST,
            "anthropic-version: header is required",
        ));
    }
    None
}

/// A parsed and authorized request, or the response to send instead.
struct Request {
    ctx: Ctx,
    body: Value,
    model: String,
    d: Directives,
}

async fn accept(
    st: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    raw: &[u8],
    need_max_tokens: bool,
) -> Result<Request, Response> {
    let mut ctx = Ctx::new(Api::Anthropic, uri);
    if let Some(resp) = check_headers(&ctx, headers) {
        return Err(resp);
    }
    let body = parse_object(raw).map_err(|msg| ctx.error(StatusCode::BAD_REQUEST, &msg))?;
    let Some(full) = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(ctx.error(StatusCode::BAD_REQUEST, "model: Field required"));
    };
    ctx.model = Some(full.clone());
    if !body.get("messages").is_some_and(Value::is_array) {
        return Err(ctx.error(StatusCode::BAD_REQUEST, "messages: Field required"));
    }
    if need_max_tokens && !body.get("max_tokens").is_some_and(Value::is_u64) {
        return Err(ctx.error(StatusCode::BAD_REQUEST, "max_tokens: Field required"));
    }
    let (model, d) = match Directives::from_request(&full, uri, headers) {
        Ok((m, d)) => (m.to_string(), d),
        Err(msg) => return Err(ctx.error(StatusCode::BAD_REQUEST, &msg)),
    };
    ctx.set_leak(&d, headers);
    if let Some(resp) = prelude(Api::Anthropic, &d, &st.shutdown).await {
        return Err(ctx.finish(resp));
    }
    Ok(Request {
        ctx,
        body,
        model,
        d,
    })
}

/// `POST /v1/messages`.
pub(super) async fn messages(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = match accept(&st, &uri, &headers, &raw, true).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(msg) = check_conversation(&req.body) {
        return req.ctx.error(StatusCode::BAD_REQUEST, &msg);
    }
    let calls = match plan_tool_calls(&req.d, &tools(&req.body)) {
        Ok(c) => c,
        Err(msg) => return req.ctx.error(StatusCode::BAD_REQUEST, &msg),
    };
    let stream = req.body.get("stream") == Some(&Value::Bool(true));
    let mut text = if calls.is_empty() {
        reply_text(Api::Anthropic.label(), &req.d, &raw, &last_turn(&req.body))
    } else {
        String::new()
    };
    let pieces = if stream && calls.is_empty() {
        let p = split_pieces(&text, req.d.chunk_count());
        text = p.concat();
        p
    } else {
        Vec::new()
    };
    let usage = Usage::compute(raw.len(), &req.d, &text, &calls);
    let id = format!("msg_mock_{}", next_id());
    let signature = format!("mock-signature-{}", next_id());
    let tool_ids: Vec<String> = calls
        .iter()
        .map(|_| format!("toolu_mock_{}", next_id()))
        .collect();
    let stop_reason = if calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let usage_json = |output: u64| {
        json!({
            "input_tokens": usage.input,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached,
            "output_tokens": output,
            "service_tier": "standard",
        })
    };

    if !stream {
        let mut content = Vec::new();
        if req.d.think {
            content.push(json!({"type": "thinking", "thinking": THINKING_TEXT,
                                "signature": signature}));
        }
        if calls.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
        for (c, tid) in calls.iter().zip(&tool_ids) {
            content.push(json!({"type": "tool_use", "id": tid, "name": c.name, "input": c.args}));
        }
        let body = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage_json(usage.output),
        });
        return req.ctx.finish(json_response(StatusCode::OK, &body));
    }

    let mut events: Vec<(&str, Value)> = Vec::new();
    events.push((
        "message_start",
        json!({"message": {
            "id": id, "type": "message", "role": "assistant", "model": req.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage_json(1),
        }}),
    ));
    events.push(("ping", json!({})));
    let mut index = 0usize;
    let block_delta = |index: usize, delta: Value| {
        (
            "content_block_delta",
            json!({"index": index, "delta": delta}),
        )
    };
    if req.d.think {
        events.push((
            "content_block_start",
            json!({"index": index,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ));
        for piece in split_pieces(THINKING_TEXT, 2) {
            events.push(block_delta(
                index,
                json!({"type": "thinking_delta", "thinking": piece}),
            ));
        }
        events.push(block_delta(
            index,
            json!({"type": "signature_delta", "signature": signature}),
        ));
        events.push(("content_block_stop", json!({"index": index})));
        index += 1;
    }
    if calls.is_empty() {
        events.push((
            "content_block_start",
            json!({"index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        for p in &pieces {
            events.push(block_delta(index, json!({"type": "text_delta", "text": p})));
        }
        events.push(("content_block_stop", json!({"index": index})));
    }
    for (c, tid) in calls.iter().zip(&tool_ids) {
        events.push((
            "content_block_start",
            json!({"index": index, "content_block":
                   {"type": "tool_use", "id": tid, "name": c.name, "input": {}}}),
        ));
        for frag in split_args(&c.args_text()) {
            events.push(block_delta(
                index,
                json!({"type": "input_json_delta", "partial_json": frag}),
            ));
        }
        events.push(("content_block_stop", json!({"index": index})));
        index += 1;
    }
    let mut final_usage = usage_json(usage.output);
    if let Some(o) = final_usage.as_object_mut() {
        o.remove("service_tier");
    }
    events.push((
        "message_delta",
        json!({"delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": final_usage}),
    ));
    events.push(("message_stop", json!({})));
    let terminal = events.len() - 1;
    let frames = events
        .into_iter()
        .map(|(name, mut data)| {
            // `type` first, as the API sends it.
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), json!(name));
            if let Some(fields) = data.as_object_mut() {
                obj.append(fields);
            }
            sse_frame(Some(name), &Value::Object(obj))
        })
        .collect();
    let plan = StreamPlan {
        frames,
        start: 2,
        terminal,
        fail: req.d.fail_after.map(|_| stream_error(&req.d)),
    };
    req.ctx.finish(stream_response(
        plan,
        &req.d,
        &st.shutdown,
        "text/event-stream; charset=utf-8",
    ))
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": ceil(bytes / 4)}`.
pub(super) async fn count_tokens(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = match accept(&st, &uri, &headers, &raw, false).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let body = json!({"input_tokens": input_tokens(raw.len())});
    req.ctx.finish(json_response(StatusCode::OK, &body))
}

/// `GET /v1/models` with `anthropic-version`: Anthropic's model list.
pub(super) fn models(uri: &Uri, headers: &HeaderMap) -> Response {
    let ctx = Ctx::new(Api::Anthropic, uri);
    if let Some(resp) = check_headers(&ctx, headers) {
        return resp;
    }
    let data: Vec<Value> = [
        ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
        ("claude-haiku-4-5", "Claude Haiku 4.5"),
    ]
    .iter()
    .map(|(id, name)| {
        json!({"type": "model", "id": id, "display_name": name,
               "created_at": "2025-01-01T00:00:00Z"})
    })
    .collect();
    let body = json!({"data": data, "has_more": false,
                      "first_id": "claude-sonnet-4-5", "last_id": "claude-haiku-4-5"});
    ctx.finish(json_response(StatusCode::OK, &body))
}

/// The rules the Messages API enforces on a conversation that a translator
/// can break, with the API's own messages:
///
/// - every `tool_use` id is unique in the conversation;
/// - a `thinking` block carries a signature;
/// - with thinking on (`enabled` or `adaptive`), when the last user turn
///   holds tool results, the assistant turn before it starts with a
///   `thinking` or `redacted_thinking` block.
fn check_conversation(body: &Value) -> Result<(), String> {
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let blocks = |m: &Value| -> Vec<Value> {
        m.get("content")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let kind = |b: &Value| {
        b.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let mut seen = std::collections::HashSet::new();
    for (i, m) in msgs.iter().enumerate() {
        for (j, b) in blocks(m).iter().enumerate() {
            match kind(b).as_str() {
                "tool_use" => {
                    let id = b.get("id").and_then(Value::as_str).unwrap_or_default();
                    if !seen.insert(id.to_owned()) {
                        return Err(format!(
                            "messages.{i}.content.{j}: `tool_use` ids must be unique"
                        ));
                    }
                }
                "thinking" => {
                    let signed = b
                        .get("signature")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty());
                    if !signed {
                        return Err(format!(
                            "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    let thinking_on = matches!(
        body.pointer("/thinking/type").and_then(Value::as_str),
        Some("enabled" | "adaptive")
    );
    let role = |m: &Value| {
        m.get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let Some(u) = msgs.iter().rposition(|m| role(m) == "user") else {
        return Ok(());
    };
    let in_tool_loop = blocks(&msgs[u]).iter().any(|b| kind(b) == "tool_result");
    if !thinking_on || !in_tool_loop || u == 0 || role(&msgs[u - 1]) != "assistant" {
        return Ok(());
    }
    let first = blocks(&msgs[u - 1]).first().map(kind).unwrap_or_default();
    if first == "thinking" || first == "redacted_thinking" {
        return Ok(());
    }
    Err(format!(
        "messages.{a}.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
         `{first}`. When `thinking` is enabled, a final `assistant` message must start with a \
         thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). \
         We recommend you include thinking blocks from previous turns. To avoid this \
         requirement, disable `thinking`. Please consult our documentation at \
         https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
        a = u - 1
    ))
}

fn tools(body: &Value) -> Vec<ToolDef> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter(|t| {
                    t.get("input_schema").is_some()
                        || matches!(t.get("type").and_then(Value::as_str), None | Some("custom"))
                })
                .filter_map(|t| {
                    Some(ToolDef {
                        name: t.get("name")?.as_str()?.to_string(),
                        schema: t.get("input_schema").cloned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn last_turn(body: &Value) -> LastTurn {
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(last) = msgs
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return LastTurn::User(String::new());
    };
    let content = last.get("content").unwrap_or(&Value::Null);
    if let Some(blocks) = content.as_array() {
        let results: Vec<String> = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .map(|b| content_text(b.get("content").unwrap_or(&Value::Null)))
            .collect();
        if !results.is_empty() {
            return LastTurn::ToolResult(results.join("\n"));
        }
    }
    LastTurn::User(content_text(content))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{spawn, MockUpstream};
    use serde_json::{json, Value};

    async fn post(mock: &MockUpstream, path: &str, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}{path}", mock.base_url()))
            .header("x-api-key", "sk-ant-test")
            .header("anthropic-version", "2023-06-01")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    fn tools() -> Value {
        json!([{"name": "get_weather", "description": "w", "input_schema": {
            "type": "object", "properties": {"city": {"type": "string"}, "metric": {"type": "boolean"}},
            "required": ["city", "metric"]}}])
    }

    #[tokio::test]
    async fn json_shape_with_thinking_and_cache() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "claude-sonnet-4-5~think~cached=11", "max_tokens": 100,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hey"}]}]});
        let len = body.to_string().len() as u64;
        let r = post(&mock, "/v1/messages", &body).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("request-id"));
        let v = json_of(&r.bytes().await.unwrap());
        assert!(v["id"].as_str().unwrap().starts_with("msg_mock_"));
        assert_eq!(v["type"], "message");
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(v["content"][0]["type"], "thinking");
        assert!(v["content"][0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("mock-signature-"));
        assert_eq!(
            v["content"][1],
            json!({"type": "text", "text": "Hello from the mock anthropic upstream. You said: hey"})
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["input_tokens"], len.div_ceil(4));
        assert_eq!(v["usage"]["cache_read_input_tokens"], 11);
        assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 9);
    }

    #[tokio::test]
    async fn stream_event_sequence_with_thinking() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "claude~chunks=4~think", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "hey"}]});
        let b = read_body(post(&mock, "/v1/messages", &body).await).await;
        assert!(b.clean);
        let events = sse_json(&b.bytes);
        for (name, v) in &events {
            assert_eq!(v["type"], name.as_deref().unwrap());
        }
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
        assert_eq!(&names[..2], ["message_start", "ping"]);
        assert_eq!(names.last(), Some(&"message_stop"));
        assert_eq!(names[names.len() - 2], "message_delta");
        let deltas: Vec<&Value> = events
            .iter()
            .filter(|(e, _)| e.as_deref() == Some("content_block_delta"))
            .map(|(_, v)| &v["delta"])
            .collect();
        let sig = deltas
            .iter()
            .find(|d| d["type"] == "signature_delta")
            .unwrap();
        assert!(sig["signature"]
            .as_str()
            .unwrap()
            .starts_with("mock-signature-"));
        let text: Vec<&str> = deltas
            .iter()
            .filter(|d| d["type"] == "text_delta")
            .map(|d| d["text"].as_str().unwrap())
            .collect();
        assert_eq!(text.len(), 4);
        assert_eq!(
            text.concat(),
            "Hello from the mock anthropic upstream. You said: hey"
        );
        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert!(start["stop_reason"].is_null());
        let md = &events[events.len() - 2].1;
        assert_eq!(md["delta"]["stop_reason"], "end_turn");
        assert!(md["usage"]["output_tokens"].as_u64().unwrap() > 9);
    }

    #[tokio::test]
    async fn stream_tool_use_with_streamed_input() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "claude~tool", "max_tokens": 100, "stream": true,
            "tools": tools(), "messages": [{"role": "user", "content": "weather?"}]});
        let events = sse_json(
            &read_body(post(&mock, "/v1/messages", &body).await)
                .await
                .bytes,
        );
        let start = events
            .iter()
            .find(|(e, _)| e.as_deref() == Some("content_block_start"))
            .unwrap();
        let block = &start.1["content_block"];
        assert_eq!(block["type"], "tool_use");
        assert_eq!(block["name"], "get_weather");
        assert!(block["id"].as_str().unwrap().starts_with("toolu_mock_"));
        let frags: Vec<&str> = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
            .collect();
        assert!(frags.len() >= 2);
        let input: Value = serde_json::from_str(&frags.concat()).unwrap();
        assert_eq!(input, json!({"city": "sample", "metric": true}));
        let md = events
            .iter()
            .find(|(e, _)| e.as_deref() == Some("message_delta"))
            .unwrap();
        assert_eq!(md.1["delta"]["stop_reason"], "tool_use");
    }

    #[tokio::test]
    async fn tool_result_turn_json() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "claude", "max_tokens": 10, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "text", "text": "rainy"}]}]}]});
        let v = json_of(
            &post(&mock, "/v1/messages", &body)
                .await
                .bytes()
                .await
                .unwrap(),
        );
        assert_eq!(v["content"][0]["text"], "Tool result received: rainy");
    }

    /// A tool loop's second turn: `first` is the assistant turn's blocks.
    fn tool_loop(first: Value, thinking: Value) -> Value {
        json!({"model": "claude", "max_tokens": 2000, "thinking": thinking, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": first},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "rainy"}]}]})
    }

    #[tokio::test]
    async fn enforces_the_thinking_rule_of_tool_loops() {
        let mock = spawn().await.unwrap();
        let call = json!({"type": "tool_use", "id": "t", "name": "w", "input": {}});
        let enabled = json!({"type": "enabled", "budget_tokens": 1024});
        for thinking in [enabled.clone(), json!({"type": "adaptive"})] {
            let r = post(&mock, "/v1/messages", &tool_loop(json!([call]), thinking)).await;
            assert_eq!(r.status(), 400);
            let v = json_of(&r.bytes().await.unwrap());
            assert_eq!(v["error"]["type"], "invalid_request_error");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(
                msg.starts_with("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`."),
                "{msg}"
            );
        }
        let text_first = json!([{"type": "text", "text": "Checking."}, call]);
        let r = post(
            &mock,
            "/v1/messages",
            &tool_loop(text_first, enabled.clone()),
        )
        .await;
        assert_eq!(r.status(), 400);

        // Signed thinking first, redacted thinking first, or thinking off: accepted.
        let signed = json!({"type": "thinking", "thinking": "hm", "signature": "sig"});
        let redacted = json!({"type": "redacted_thinking", "data": "opaque"});
        for (first, thinking) in [
            (json!([signed, call]), enabled.clone()),
            (json!([redacted, call]), enabled.clone()),
            (json!([call]), json!({"type": "disabled"})),
            (json!([call]), Value::Null),
        ] {
            let r = post(&mock, "/v1/messages", &tool_loop(first.clone(), thinking)).await;
            assert_eq!(r.status(), 200, "{first}");
        }
        // An unsigned thinking block is refused.
        let unsigned = json!({"type": "thinking", "thinking": "hm", "signature": ""});
        let r = post(
            &mock,
            "/v1/messages",
            &tool_loop(json!([unsigned, call]), enabled),
        )
        .await;
        assert_eq!(r.status(), 400);
        let v = json_of(&r.bytes().await.unwrap());
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature"));
    }

    #[tokio::test]
    async fn refuses_repeated_tool_use_ids() {
        let mock = spawn().await.unwrap();
        let call = json!({"type": "tool_use", "id": "call_0", "name": "w", "input": {}});
        let result = json!({"type": "tool_result", "tool_use_id": "call_0", "content": "x"});
        let body = json!({"model": "claude", "max_tokens": 10, "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]}]});
        let r = post(&mock, "/v1/messages", &body).await;
        assert_eq!(r.status(), 400);
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(
            v["error"]["message"],
            "messages.3.content.0: `tool_use` ids must be unique"
        );
    }

    #[tokio::test]
    async fn auth_version_and_body_errors() {
        let mock = spawn().await.unwrap();
        let url = format!("{}/v1/messages", mock.base_url());
        let body = r#"{"model":"claude","max_tokens":5,"messages":[]}"#;
        let r = client()
            .post(&url)
            .header("anthropic-version", "2023-06-01")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        let r = client()
            .post(&url)
            .bearer_auth("k")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(
            json_of(&r.bytes().await.unwrap())["error"]["type"],
            "invalid_request_error"
        );
        let r = client()
            .post(&url)
            .header("x-api-key", "k")
            .header("anthropic-version", "2023-06-01")
            .body("[1,")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let r = post(
            &mock,
            "/v1/messages",
            &json!({"model": "c", "messages": []}),
        )
        .await;
        assert_eq!(r.status(), 400);
        let v = json_of(&r.bytes().await.unwrap());
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"));
    }

    #[tokio::test]
    async fn overloaded_and_rate_limited() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "claude~status=529", "max_tokens": 5, "messages": []});
        let r = post(&mock, "/v1/messages", &body).await;
        assert_eq!(r.status(), 529);
        assert_eq!(
            json_of(&r.bytes().await.unwrap())["error"]["type"],
            "overloaded_error"
        );
        let body =
            json!({"model": "claude~status=429~retry-after=3", "max_tokens": 5, "messages": []});
        let r = post(&mock, "/v1/messages", &body).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3");
        let reset = r.headers()["anthropic-ratelimit-requests-reset"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(reset.len(), 20);
        assert!(reset.ends_with('Z') && reset.as_bytes()[10] == b'T');
        assert_eq!(
            json_of(&r.bytes().await.unwrap())["error"]["type"],
            "rate_limit_error"
        );
    }

    #[tokio::test]
    async fn cut_stops_before_message_stop() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "claude~cut=3", "max_tokens": 5, "stream": true,
            "messages": [{"role": "user", "content": "x"}]});
        let b = read_body(post(&mock, "/v1/messages", &body).await).await;
        assert!(!b.clean);
        let events = sse_json(&b.bytes);
        assert_eq!(events.len(), 5);
        assert!(events
            .iter()
            .all(|(e, _)| e.as_deref() != Some("message_stop")));
    }

    #[tokio::test]
    async fn echo_request_and_count_tokens() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "claude~echo-request", "max_tokens": 5, "messages": []});
        let r = post(&mock, "/v1/messages", &body).await;
        assert_eq!(r.headers()["x-mock-received-model"], "claude~echo-request");
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["content"][0]["text"], body.to_string());
        let body = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
        let r = post(&mock, "/v1/messages/count_tokens", &body).await;
        assert_eq!(r.status(), 200);
        let n = (body.to_string().len() as u64).div_ceil(4);
        assert_eq!(
            json_of(&r.bytes().await.unwrap()),
            json!({"input_tokens": n})
        );
    }

    #[tokio::test]
    async fn anthropic_models_list() {
        let mock = spawn().await.unwrap();
        let r = client()
            .get(format!("{}/v1/models", mock.base_url()))
            .header("x-api-key", "k")
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .unwrap();
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["data"][0]["type"], "model");
        assert_eq!(v["has_more"], false);
    }
}
