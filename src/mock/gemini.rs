//! The Gemini routes: `generateContent`, `streamGenerateContent`,
//! `countTokens` and the model list.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::script::{
    failure, input_tokens, next_id, plan_tool_calls, reply_text, split_pieces, Directives,
    LastTurn, ToolDef, Usage, THINKING_TEXT,
};
use super::stream::{json_response, sse_frame, stream_response, StreamPlan};
use super::{header, parse_object, prelude, Api, AppState, Ctx};

/// The `google.rpc.Code` name for an HTTP status.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// An error in Gemini's shape: `{"error": {code, message, status}}`, with a
/// `RetryInfo` detail when `retry_after` is given.
pub(super) fn error(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let mut err = json!({
        "code": status.as_u16(),
        "message": message,
        "status": status_name(status),
    });
    if let Some(secs) = retry_after {
        err["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{secs}s"),
        }]);
    }
    json_response(status, &json!({"error": err}))
}

fn has_key(headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    header(headers, "x-goog-api-key").is_some()
        || query.get("key").is_some_and(|k| !k.trim().is_empty())
}

const NO_KEY: &str = "Method doesn't allow unregistered callers (callers without established \
                      identity). Please use API Key or other form of API consumer identity to \
                      call this API.";

/// `POST /v1beta/models/{model}:{method}`.
pub(super) async fn dispatch(
    State(st): State<AppState>,
    Path(action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let mut ctx = Ctx::new(Api::Gemini, &uri);
    let Some((full, method)) = action.rsplit_once(':') else {
        return ctx.error(
            StatusCode::NOT_FOUND,
            &format!("mock upstream: no method in `{action}`"),
        );
    };
    ctx.model = Some(full.to_string());
    if !has_key(&headers, &query) {
        return ctx.error(StatusCode::FORBIDDEN, NO_KEY);
    }
    let body = match parse_object(&raw) {
        Ok(b) => b,
        Err(msg) => return ctx.error(StatusCode::BAD_REQUEST, &msg),
    };
    let (model, d) = match Directives::from_request(full, &uri, &headers) {
        Ok((m, d)) => (m.to_string(), d),
        Err(msg) => return ctx.error(StatusCode::BAD_REQUEST, &msg),
    };
    ctx.set_leak(&d, &headers);
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        "countTokens" => {
            if let Some(resp) = prelude(Api::Gemini, &d, &st.shutdown).await {
                return ctx.finish(resp);
            }
            let n = input_tokens(raw.len());
            let body = json!({"totalTokens": n,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]});
            return ctx.finish(json_response(StatusCode::OK, &body));
        }
        other => {
            return ctx.error(
                StatusCode::NOT_FOUND,
                &format!("mock upstream: unknown method `{other}`"),
            )
        }
    };
    if let Some(resp) = prelude(Api::Gemini, &d, &st.shutdown).await {
        return ctx.finish(resp);
    }
    let calls = match plan_tool_calls(&d, &tools(&body)) {
        Ok(c) => c,
        Err(msg) => return ctx.error(StatusCode::BAD_REQUEST, &msg),
    };
    let mut text = if calls.is_empty() {
        reply_text(Api::Gemini.label(), &d, &raw, &last_turn(&body))
    } else {
        String::new()
    };
    let pieces = if stream && calls.is_empty() {
        let p = split_pieces(&text, d.chunk_count());
        text = p.concat();
        p
    } else {
        Vec::new()
    };
    let usage = Usage::compute(raw.len(), &d, &text, &calls);
    let response_id = format!("gemini_mock_{}", next_id());
    let prompt = usage.input + usage.cached;
    let candidates = usage.output - usage.reasoning;
    let mut usage_json = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + usage.output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    });
    if usage.cached > 0 {
        usage_json["cachedContentTokenCount"] = json!(usage.cached);
    }
    if usage.reasoning > 0 {
        usage_json["thoughtsTokenCount"] = json!(usage.reasoning);
    }
    let thought_part = json!({"text": THINKING_TEXT, "thought": true});
    let call_parts: Vec<Value> = calls
        .iter()
        .map(|c| json!({"functionCall": {"name": c.name, "args": c.args}}))
        .collect();
    let response = |parts: Vec<Value>, last: bool| {
        let mut cand = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        let mut r = json!({"candidates": [], "modelVersion": model, "responseId": response_id});
        if last {
            cand["finishReason"] = json!("STOP");
            r["usageMetadata"] = usage_json.clone();
        }
        r["candidates"] = json!([cand]);
        r
    };

    if !stream {
        let mut parts = Vec::new();
        if d.think {
            parts.push(thought_part);
        }
        if calls.is_empty() {
            parts.push(json!({"text": text}));
        }
        parts.extend(call_parts);
        return ctx.finish(json_response(StatusCode::OK, &response(parts, true)));
    }

    let mut event_parts: Vec<Value> = Vec::new();
    if d.think {
        event_parts.push(thought_part);
    }
    event_parts.extend(pieces.iter().map(|p| json!({"text": p})));
    event_parts.extend(call_parts);
    let n = event_parts.len();
    let events: Vec<Value> = event_parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| response(vec![part], i + 1 == n))
        .collect();
    let sse = query.get("alt").map(String::as_str) == Some("sse");
    let (frames, terminal, content_type) = if sse {
        let frames: Vec<Bytes> = events.iter().map(|e| sse_frame(None, e)).collect();
        (frames, n.saturating_sub(1), "text/event-stream")
    } else {
        // Without `alt=sse` the API streams one JSON array.
        let mut frames: Vec<Bytes> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let sep = if i == 0 { "[" } else { ",\r\n" };
                Bytes::from(format!("{sep}{e}"))
            })
            .collect();
        frames.push(Bytes::from_static(b"]"));
        (frames, n, "application/json; charset=UTF-8")
    };
    let fail = d.fail_after.map(|n| {
        let (message, code) = failure(&d, "stream failed by directive");
        let err = json!({"error": {"code": code.map_or(json!(500), Value::from),
                                   "message": message, "status": "INTERNAL"}});
        if sse {
            sse_frame(None, &err)
        } else {
            let sep = if n.min(terminal) == 0 { "[" } else { ",\r\n" };
            Bytes::from(format!("{sep}{err}]"))
        }
    });
    let plan = StreamPlan {
        frames,
        start: 0,
        terminal,
        fail,
    };
    ctx.finish(stream_response(plan, &d, &st.shutdown, content_type))
}

/// `GET /v1beta/models`.
pub(super) async fn models(
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = Ctx::new(Api::Gemini, &uri);
    if !has_key(&headers, &query) {
        return ctx.error(StatusCode::FORBIDDEN, NO_KEY);
    }
    let models: Vec<Value> = ["gemini-2.5-flash", "gemini-2.5-pro"]
        .iter()
        .map(|m| {
            json!({"name": format!("models/{m}"), "displayName": m,
                   "supportedGenerationMethods": ["generateContent", "countTokens"]})
        })
        .collect();
    ctx.finish(json_response(StatusCode::OK, &json!({"models": models})))
}

fn tools(body: &Value) -> Vec<ToolDef> {
    let mut out = Vec::new();
    for tool in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for f in tool
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = f.get("name").and_then(Value::as_str) {
                out.push(ToolDef {
                    name: name.to_string(),
                    schema: f
                        .get("parameters")
                        .or_else(|| f.get("parametersJsonSchema"))
                        .cloned(),
                });
            }
        }
    }
    out
}

fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter(|p| p.get("thought") != Some(&Value::Bool(true)))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("")
}

fn last_turn(body: &Value) -> LastTurn {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let parts_of = |c: &Value| {
        c.get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if let Some(last) = contents.last() {
        let results: Vec<String> = parts_of(last)
            .iter()
            .filter_map(|p| p.get("functionResponse"))
            .map(|fr| {
                let resp = fr.get("response").unwrap_or(&Value::Null);
                ["result", "output", "content"]
                    .iter()
                    .find_map(|k| resp.get(*k).and_then(Value::as_str))
                    .map(str::to_string)
                    .unwrap_or_else(|| resp.to_string())
            })
            .collect();
        if !results.is_empty() {
            return LastTurn::ToolResult(results.join("\n"));
        }
    }
    let text = contents
        .iter()
        .rev()
        .find(|c| matches!(c.get("role").and_then(Value::as_str), None | Some("user")))
        .map(|c| parts_text(&parts_of(c)))
        .unwrap_or_default();
    LastTurn::User(text)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{spawn, MockUpstream};
    use serde_json::{json, Value};

    async fn post(mock: &MockUpstream, path: &str, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}{path}", mock.base_url()))
            .header("x-goog-api-key", "AIza-test")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    fn user(text: &str) -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
    }

    #[tokio::test]
    async fn generate_content_json_shape() {
        let mock = spawn().await.unwrap();
        let body = user("hola");
        let len = body.to_string().len() as u64;
        let r = post(
            &mock,
            "/v1beta/models/gemini-2.5-flash~think~cached=5:generateContent",
            &body,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-mock-received-model"],
            "gemini-2.5-flash~think~cached=5"
        );
        assert_eq!(
            r.headers()["x-mock-path"],
            "/v1beta/models/gemini-2.5-flash~think~cached=5:generateContent"
        );
        let v = json_of(&r.bytes().await.unwrap());
        let cand = &v["candidates"][0];
        assert_eq!(cand["content"]["role"], "model");
        assert_eq!(cand["content"]["parts"][0]["thought"], true);
        assert_eq!(
            cand["content"]["parts"][1]["text"],
            "Hello from the mock gemini upstream. You said: hola"
        );
        assert_eq!(cand["finishReason"], "STOP");
        assert_eq!(v["modelVersion"], "gemini-2.5-flash");
        let u = &v["usageMetadata"];
        assert_eq!(u["promptTokenCount"], len.div_ceil(4) + 5);
        assert_eq!(u["cachedContentTokenCount"], 5);
        assert_eq!(u["candidatesTokenCount"], 9);
        let thoughts = u["thoughtsTokenCount"].as_u64().unwrap();
        assert_eq!(u["totalTokenCount"], len.div_ceil(4) + 5 + 9 + thoughts);
    }

    #[tokio::test]
    async fn stream_sse_splits_text_and_finishes_last() {
        let mock = spawn().await.unwrap();
        let r = post(
            &mock,
            "/v1beta/models/gemini-2.5-flash~chunks=6:streamGenerateContent?alt=sse",
            &user("hola"),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let b = read_body(r).await;
        assert!(b.clean);
        let events = sse_json(&b.bytes);
        assert_eq!(events.len(), 6);
        let text: String = events
            .iter()
            .map(|(_, v)| {
                v["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(text, "Hello from the mock gemini upstream. You said: hola");
        for (_, v) in &events[..5] {
            assert!(v["candidates"][0].get("finishReason").is_none());
            assert!(v.get("usageMetadata").is_none());
        }
        let last = &events[5].1;
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 9);
    }

    #[tokio::test]
    async fn stream_without_sse_is_a_json_array() {
        let mock = spawn().await.unwrap();
        let r = client()
            .post(format!(
                "{}/v1beta/models/g~chunks=2:streamGenerateContent?key=abc",
                mock.base_url()
            ))
            .body(user("x").to_string())
            .send()
            .await
            .unwrap();
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["candidates"][0]["finishReason"], "STOP");
    }

    #[tokio::test]
    async fn function_calls_whole_in_stream() {
        let mock = spawn().await.unwrap();
        let body = json!({
            "contents": [{"role": "user", "parts": [{"text": "go"}]}],
            "tools": [{"functionDeclarations": [
                {"name": "find", "parameters": {"type": "OBJECT",
                    "properties": {"q": {"type": "STRING"}, "n": {"type": "NUMBER"}},
                    "required": ["q", "n"]}},
                {"name": "other", "parametersJsonSchema": {"type": "object"}}]}]});
        let r = post(
            &mock,
            "/v1beta/models/g~tool~parallel:streamGenerateContent?alt=sse",
            &body,
        )
        .await;
        let events = sse_json(&read_body(r).await.bytes);
        assert_eq!(events.len(), 2);
        let fc0 = &events[0].1["candidates"][0]["content"]["parts"][0]["functionCall"];
        assert_eq!(
            *fc0,
            json!({"name": "find", "args": {"q": "sample", "n": 1}})
        );
        let fc1 = &events[1].1["candidates"][0]["content"]["parts"][0]["functionCall"];
        assert_eq!(fc1["name"], "other");
        assert_eq!(events[1].1["candidates"][0]["finishReason"], "STOP");
    }

    #[tokio::test]
    async fn function_response_turn() {
        let mock = spawn().await.unwrap();
        let body = json!({"contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "done"}}}]}]});
        let r = post(&mock, "/v1beta/models/g:generateContent", &body).await;
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["text"],
            "Tool result received: done"
        );
    }

    #[tokio::test]
    async fn auth_bad_json_status_and_count() {
        let mock = spawn().await.unwrap();
        let url = format!("{}/v1beta/models/g:generateContent", mock.base_url());
        let r = client()
            .post(&url)
            .body(user("x").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["code"], 403);
        assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
        let r = client()
            .post(&url)
            .header("x-goog-api-key", "k")
            .body("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(
            json_of(&r.bytes().await.unwrap())["error"]["status"],
            "INVALID_ARGUMENT"
        );
        let r = post(
            &mock,
            "/v1beta/models/g~status=429~retry-after=7:generateContent",
            &user("x"),
        )
        .await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["details"][0]["retryDelay"], "7s");
        let body = user("count me");
        let r = post(&mock, "/v1beta/models/g:countTokens", &body).await;
        let n = (body.to_string().len() as u64).div_ceil(4);
        assert_eq!(json_of(&r.bytes().await.unwrap())["totalTokens"], n);
    }

    #[tokio::test]
    async fn cut_drops_the_finishing_event_and_echo() {
        let mock = spawn().await.unwrap();
        let r = post(
            &mock,
            "/v1beta/models/g~cut=10~chunks=3:streamGenerateContent?alt=sse",
            &user("x"),
        )
        .await;
        let b = read_body(r).await;
        assert!(!b.clean);
        let events = sse_json(&b.bytes);
        assert_eq!(events.len(), 2);
        assert!(events
            .iter()
            .all(|(_, v)| v["candidates"][0].get("finishReason").is_none()));
        let body = user("echo");
        let r = post(
            &mock,
            "/v1beta/models/g~echo-request:generateContent",
            &body,
        )
        .await;
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["text"],
            body.to_string()
        );
    }
}
