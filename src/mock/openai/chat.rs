//! `POST /v1/chat/completions`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::super::script::{
    content_text, failure, next_id, reply_text, split_args, split_pieces, unix_now, LastTurn,
    ToolDef, Usage,
};
use super::super::stream::{json_response, sse_frame, sse_raw, stream_response, StreamPlan};
use super::super::{Api, AppState};
use super::{accept, tool_calls_or_400, SSE};

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = match accept(&st, &uri, &headers, &raw).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let tools = chat_tools(&req.body);
    let calls = match tool_calls_or_400(&req, &tools) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let text = if calls.is_empty() {
        reply_text(
            Api::OpenAi.label(),
            &req.d,
            &raw,
            &chat_last_turn(&req.body),
        )
    } else {
        String::new()
    };
    let stream = req.body.get("stream") == Some(&Value::Bool(true));
    let id = format!("chatcmpl-mock-{}", next_id());
    let created = unix_now();
    let call_ids: Vec<String> = calls
        .iter()
        .map(|_| format!("call_mock_{}", next_id()))
        .collect();
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };

    if !stream {
        let usage = Usage::compute(raw.len(), &req.d, &text, &calls);
        let mut message = json!({
            "role": "assistant",
            "content": if calls.is_empty() { json!(text) } else { Value::Null },
            "refusal": null,
            "annotations": [],
        });
        if !calls.is_empty() {
            message["tool_calls"] = calls
                .iter()
                .zip(&call_ids)
                .map(|(c, id)| {
                    json!({"id": id, "type": "function",
                           "function": {"name": c.name, "arguments": c.args_text()}})
                })
                .collect();
        }
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": chat_usage(&usage),
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
        });
        return req.ctx.finish(json_response(StatusCode::OK, &body));
    }

    let include_usage = req
        .body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        == Some(&Value::Bool(true));
    let pieces = if calls.is_empty() {
        split_pieces(&text, req.d.chunk_count())
    } else {
        Vec::new()
    };
    let streamed = pieces.concat();
    let usage = Usage::compute(raw.len(), &req.d, &streamed, &calls);
    let chunk = |choices: Value| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": req.model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": choices,
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let delta = |d: Value, finish: Value| {
        chunk(json!([{"index": 0, "delta": d, "logprobs": null, "finish_reason": finish}]))
    };
    let mut frames = Vec::new();
    let first_content = if calls.is_empty() {
        json!("")
    } else {
        Value::Null
    };
    frames.push(delta(
        json!({"role": "assistant", "content": first_content, "refusal": null}),
        Value::Null,
    ));
    for p in &pieces {
        frames.push(delta(json!({"content": p}), Value::Null));
    }
    for (i, (c, cid)) in calls.iter().zip(&call_ids).enumerate() {
        frames.push(delta(
            json!({"tool_calls": [{"index": i, "id": cid, "type": "function",
                                   "function": {"name": c.name, "arguments": ""}}]}),
            Value::Null,
        ));
        for frag in split_args(&c.args_text()) {
            frames.push(delta(
                json!({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}),
                Value::Null,
            ));
        }
    }
    frames.push(delta(json!({}), json!(finish)));
    if include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = chat_usage(&usage);
        frames.push(last);
    }
    let mut frames: Vec<Bytes> = frames.iter().map(|f| sse_frame(None, f)).collect();
    let terminal = frames.len();
    frames.push(sse_raw(None, "[DONE]"));
    let fail = req.d.fail_after.map(|_| {
        let (message, code) = failure(&req.d, "stream failed by directive");
        let err = json!({"error": {"message": message, "type": "server_error", "param": null,
                                   "code": code}});
        sse_frame(None, &err)
    });
    let plan = StreamPlan {
        frames,
        start: 1,
        terminal,
        fail,
    };
    req.ctx
        .finish(stream_response(plan, &req.d, &st.shutdown, SSE))
}

fn chat_usage(u: &Usage) -> Value {
    let prompt = u.input + u.cached;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output,
        "total_tokens": prompt + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    })
}

fn chat_tools(body: &Value) -> Vec<ToolDef> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| {
                    let f = t.get("function")?;
                    Some(ToolDef {
                        name: f.get("name")?.as_str()?.to_string(),
                        schema: f.get("parameters").cloned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn chat_last_turn(body: &Value) -> LastTurn {
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if let Some(last) = msgs.last() {
        if last.get("role").and_then(Value::as_str) == Some("tool") {
            return LastTurn::ToolResult(content_text(last.get("content").unwrap_or(&Value::Null)));
        }
    }
    let text = msgs
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    LastTurn::User(text)
}

#[cfg(test)]
mod tests {
    use super::super::super::testutil::*;
    use super::super::super::{spawn, MockUpstream};
    use serde_json::{json, Value};

    async fn post(mock: &MockUpstream, path: &str, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}{path}", mock.base_url()))
            .bearer_auth("sk-test")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    fn weather_tools_chat() -> Value {
        json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"]}}},
            {"type": "function", "function": {"name": "get_time", "parameters": {
                "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}
        ])
    }

    #[tokio::test]
    async fn chat_json_shape_and_usage() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4o~cached=4~think", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi there"}]}]});
        let len = body.to_string().len() as u64;
        let r = post(&mock, "/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-mock-received-model"],
            "gpt-4o~cached=4~think"
        );
        assert_eq!(r.headers()["x-mock-path"], "/v1/chat/completions");
        let v = json_of(&r.bytes().await.unwrap());
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-4o");
        let text = "Hello from the mock openai upstream. You said: hi there";
        assert_eq!(v["choices"][0]["message"]["content"], text);
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let u = &v["usage"];
        let reasoning = u["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap();
        assert!(reasoning > 0);
        assert_eq!(u["prompt_tokens"], len.div_ceil(4) + 4);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 4);
        assert_eq!(u["completion_tokens"], 10 + reasoning);
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
        );
    }

    #[tokio::test]
    async fn chat_tool_result_turn() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]});
        let v = json_of(
            &post(&mock, "/v1/chat/completions", &body)
                .await
                .bytes()
                .await
                .unwrap(),
        );
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Tool result received: sunny"
        );
    }

    #[tokio::test]
    async fn chat_stream_chunks_and_usage() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4o~chunks=7", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]});
        let r = post(&mock, "/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let b = read_body(r).await;
        assert!(b.clean);
        let events = sse_events(&b.bytes);
        assert_eq!(events.last().unwrap().data, "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let deltas: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(deltas.len(), 7);
        assert_eq!(
            deltas.concat(),
            "Hello from the mock openai upstream. You said: hi"
        );
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert!(finish["usage"].is_null());
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["completion_tokens"], 9);
        assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gpt-4o"));
    }

    #[tokio::test]
    async fn chat_stream_without_include_usage_has_no_usage() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4o", "stream": true, "messages": []});
        let b = read_body(post(&mock, "/v1/chat/completions", &body).await).await;
        let events = sse_json(&b.bytes);
        assert!(events.iter().all(|(_, c)| c.get("usage").is_none()));
        assert_eq!(
            events.last().unwrap().1["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[tokio::test]
    async fn chat_stream_parallel_tool_calls_stream_arguments() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4o~tool~parallel", "stream": true,
            "tools": weather_tools_chat(), "messages": [{"role": "user", "content": "go"}]});
        let b = read_body(post(&mock, "/v1/chat/completions", &body).await).await;
        assert!(b.clean);
        let chunks = sse_json(&b.bytes);
        let mut args = [String::new(), String::new()];
        let mut frags = [0, 0];
        let mut names = Vec::new();
        for (_, c) in &chunks {
            for tc in c["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let i = tc["index"].as_u64().unwrap() as usize;
                if let Some(n) = tc["function"]["name"].as_str() {
                    names.push(n.to_string());
                    assert!(tc["id"].as_str().unwrap().starts_with("call_mock_"));
                }
                let a = tc["function"]["arguments"].as_str().unwrap();
                if !a.is_empty() {
                    frags[i] += 1;
                }
                args[i].push_str(a);
            }
        }
        assert_eq!(names, ["get_weather", "get_time"]);
        assert!(frags[0] >= 2 && frags[1] >= 2);
        let a0: Value = serde_json::from_str(&args[0]).unwrap();
        assert_eq!(a0, json!({"city": "sample", "days": 1}));
        let a1: Value = serde_json::from_str(&args[1]).unwrap();
        assert_eq!(a1, json!({"tz": "sample"}));
        let finish = chunks
            .iter()
            .find_map(|(_, c)| c["choices"][0]["finish_reason"].as_str());
        assert_eq!(finish, Some("tool_calls"));
    }

    #[tokio::test]
    async fn chat_json_named_tool() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4o~tool=get_time", "tools": weather_tools_chat(),
            "messages": [{"role": "user", "content": "go"}]});
        let v = json_of(
            &post(&mock, "/v1/chat/completions", &body)
                .await
                .bytes()
                .await
                .unwrap(),
        );
        let msg = &v["choices"][0]["message"];
        assert!(msg["content"].is_null());
        assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_time");
        assert_eq!(
            msg["tool_calls"][0]["function"]["arguments"],
            r#"{"tz":"sample"}"#
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[tokio::test]
    async fn cut_ends_stream_without_done() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4o~cut=2~chunks=5", "stream": true, "messages": []});
        let b = read_body(post(&mock, "/v1/chat/completions", &body).await).await;
        assert!(!b.clean, "cut stream ended cleanly");
        let events = sse_events(&b.bytes);
        assert_eq!(events.len(), 3, "role chunk + 2");
        assert!(events.iter().all(|e| e.data != "[DONE]"));
    }

    #[tokio::test]
    async fn echo_request_returns_exact_body() {
        let mock = spawn().await.unwrap();
        let raw = r#"{"model":"gpt-4o~echo-request",  "messages":[{"role":"user","content":"é"}]}"#;
        let r = client()
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .bearer_auth("k")
            .body(raw)
            .send()
            .await
            .unwrap();
        let v = json_of(&r.bytes().await.unwrap());
        assert_eq!(v["choices"][0]["message"]["content"], raw);
        let streamed = raw.replace("\"messages\"", "\"stream\":true,\"messages\"");
        let r = client()
            .post(format!("{}/v1/responses", mock.base_url()))
            .bearer_auth("k")
            .body(streamed.clone())
            .send()
            .await
            .unwrap();
        let events = sse_json(&read_body(r).await.bytes);
        let text: String = events
            .iter()
            .filter(|(e, _)| e.as_deref() == Some("response.output_text.delta"))
            .map(|(_, v)| v["delta"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(text, streamed);
    }
}
