//! `POST /v1/responses`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::super::script::{
    content_text, failure, next_id, reply_text, split_args, split_pieces, unix_now, LastTurn,
    ToolDef, Usage, THINKING_TEXT,
};
use super::super::stream::{json_response, sse_frame, stream_response, StreamPlan};
use super::super::{Api, AppState};
use super::{accept, tool_calls_or_400, SSE};

/// `POST /v1/responses`.
pub(crate) async fn responses(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = match accept(&st, &uri, &headers, &raw).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let tools = responses_tools(&req.body);
    let calls = match tool_calls_or_400(&req, &tools) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let mut text = if calls.is_empty() {
        reply_text(
            Api::OpenAi.label(),
            &req.d,
            &raw,
            &responses_last_turn(&req.body),
        )
    } else {
        String::new()
    };
    let stream = req.body.get("stream") == Some(&Value::Bool(true));
    let pieces = if stream && calls.is_empty() {
        let p = split_pieces(&text, req.d.chunk_count());
        text = p.concat();
        p
    } else {
        Vec::new()
    };
    let usage = Usage::compute(raw.len(), &req.d, &text, &calls);
    let rid = format!("resp_mock_{}", next_id());
    let created = unix_now();
    let reasoning_id = format!("rs_mock_{}", next_id());
    let msg_id = format!("msg_mock_{}", next_id());
    let fc_ids: Vec<(String, String)> = calls
        .iter()
        .map(|_| {
            (
                format!("fc_mock_{}", next_id()),
                format!("call_mock_{}", next_id()),
            )
        })
        .collect();

    // The finished output items.
    let reasoning_item =
        |summary: Value| json!({"type": "reasoning", "id": reasoning_id, "summary": summary});
    let text_part =
        |t: &str| json!({"type": "output_text", "text": t, "annotations": [], "logprobs": []});
    let message_item = |status: &str, content: Value| {
        json!({"type": "message", "id": msg_id, "status": status, "role": "assistant",
               "content": content})
    };
    let call_item = |i: usize, status: &str, args: &str| {
        let (fc, call) = &fc_ids[i];
        json!({"type": "function_call", "id": fc, "call_id": call, "name": calls[i].name,
               "arguments": args, "status": status})
    };
    let summary_part = json!({"type": "summary_text", "text": THINKING_TEXT});
    let mut output = Vec::new();
    if req.d.think {
        output.push(reasoning_item(json!([summary_part])));
    }
    if calls.is_empty() {
        output.push(message_item("completed", json!([text_part(&text)])));
    }
    for (i, c) in calls.iter().enumerate() {
        output.push(call_item(i, "completed", &c.args_text()));
    }
    let envelope = |status: &str, output: Value, usage: Value| {
        json!({
            "id": rid,
            "object": "response",
            "created_at": created,
            "status": status,
            "error": null,
            "incomplete_details": null,
            "instructions": req.body.get("instructions").cloned().unwrap_or(Value::Null),
            "max_output_tokens": req.body.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "model": req.model,
            "output": output,
            "parallel_tool_calls": req.body.get("parallel_tool_calls").cloned().unwrap_or(json!(true)),
            "previous_response_id": req.body.get("previous_response_id").cloned().unwrap_or(Value::Null),
            "reasoning": {"effort": null, "summary": null},
            "store": req.body.get("store").cloned().unwrap_or(json!(true)),
            "temperature": req.body.get("temperature").cloned().unwrap_or(json!(1.0)),
            "text": {"format": {"type": "text"}},
            "tool_choice": req.body.get("tool_choice").cloned().unwrap_or(json!("auto")),
            "tools": req.body.get("tools").cloned().unwrap_or(json!([])),
            "top_p": req.body.get("top_p").cloned().unwrap_or(json!(1.0)),
            "truncation": "disabled",
            "usage": usage,
            "user": null,
            "metadata": req.body.get("metadata").cloned().unwrap_or(json!({})),
        })
    };
    let usage_json = responses_usage(&usage);

    if !stream {
        let body = envelope("completed", Value::Array(output), usage_json);
        return req.ctx.finish(json_response(StatusCode::OK, &body));
    }

    let mut events: Vec<(&str, Value)> = Vec::new();
    let in_progress = envelope("in_progress", json!([]), Value::Null);
    events.push(("response.created", json!({"response": in_progress})));
    events.push(("response.in_progress", json!({"response": in_progress})));
    let mut idx = 0usize;
    if req.d.think {
        let item_id = &reasoning_id;
        events.push((
            "response.output_item.added",
            json!({"output_index": idx, "item": reasoning_item(json!([]))}),
        ));
        events.push((
            "response.reasoning_summary_part.added",
            json!({"item_id": item_id, "output_index": idx, "summary_index": 0,
                   "part": {"type": "summary_text", "text": ""}}),
        ));
        events.push((
            "response.reasoning_summary_text.delta",
            json!({"item_id": item_id, "output_index": idx, "summary_index": 0,
                   "delta": THINKING_TEXT}),
        ));
        events.push((
            "response.reasoning_summary_text.done",
            json!({"item_id": item_id, "output_index": idx, "summary_index": 0,
                   "text": THINKING_TEXT}),
        ));
        events.push((
            "response.reasoning_summary_part.done",
            json!({"item_id": item_id, "output_index": idx, "summary_index": 0,
                   "part": summary_part}),
        ));
        events.push((
            "response.output_item.done",
            json!({"output_index": idx, "item": output[idx]}),
        ));
        idx += 1;
    }
    if calls.is_empty() {
        let empty_part = text_part("");
        events.push((
            "response.output_item.added",
            json!({"output_index": idx, "item": message_item("in_progress", json!([]))}),
        ));
        events.push((
            "response.content_part.added",
            json!({"item_id": msg_id, "output_index": idx, "content_index": 0, "part": empty_part}),
        ));
        for p in &pieces {
            events.push((
                "response.output_text.delta",
                json!({"item_id": msg_id, "output_index": idx, "content_index": 0,
                       "delta": p, "logprobs": []}),
            ));
        }
        events.push((
            "response.output_text.done",
            json!({"item_id": msg_id, "output_index": idx, "content_index": 0,
                   "text": text, "logprobs": []}),
        ));
        events.push((
            "response.content_part.done",
            json!({"item_id": msg_id, "output_index": idx, "content_index": 0,
                   "part": text_part(&text)}),
        ));
        events.push((
            "response.output_item.done",
            json!({"output_index": idx, "item": output[idx]}),
        ));
    }
    for (i, c) in calls.iter().enumerate() {
        let out_index = idx + i;
        let args = c.args_text();
        let item_id = &fc_ids[i].0;
        events.push((
            "response.output_item.added",
            json!({"output_index": out_index, "item": call_item(i, "in_progress", "")}),
        ));
        for frag in split_args(&args) {
            events.push((
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": out_index, "delta": frag}),
            ));
        }
        events.push((
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": out_index, "name": c.name,
                   "arguments": args}),
        ));
        events.push((
            "response.output_item.done",
            json!({"output_index": out_index, "item": output[out_index]}),
        ));
    }
    let completed = envelope("completed", Value::Array(output.clone()), usage_json);
    events.push(("response.completed", json!({"response": completed})));

    let terminal = events.len() - 1;
    let frames = events
        .into_iter()
        .enumerate()
        .map(|(seq, (name, mut data))| {
            data["type"] = json!(name);
            data["sequence_number"] = json!(seq);
            sse_frame(Some(name), &data)
        })
        .collect();
    // `fail-after`: the stream fails the way the API reports it.
    let fail = req.d.fail_after.map(|n| {
        let (message, code) = failure(&req.d, "stream failed by directive");
        let mut failed = envelope("failed", json!([]), Value::Null);
        failed["error"] = json!({"code": code.as_deref().unwrap_or("server_error"),
                                 "message": message});
        let data = json!({"type": "response.failed", "sequence_number": (2 + n).min(terminal),
                          "response": failed});
        sse_frame(Some("response.failed"), &data)
    });
    let plan = StreamPlan {
        frames,
        start: 2,
        terminal,
        fail,
    };
    req.ctx
        .finish(stream_response(plan, &req.d, &st.shutdown, SSE))
}

fn responses_usage(u: &Usage) -> Value {
    let input = u.input + u.cached;
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cached},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": input + u.output,
    })
}

fn responses_tools(body: &Value) -> Vec<ToolDef> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
                .filter_map(|t| {
                    Some(ToolDef {
                        name: t.get("name")?.as_str()?.to_string(),
                        schema: t.get("parameters").cloned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn responses_last_turn(body: &Value) -> LastTurn {
    let items = match body.get("input") {
        Some(Value::String(s)) => return LastTurn::User(s.clone()),
        Some(Value::Array(items)) => items.as_slice(),
        _ => &[],
    };
    if let Some(last) = items.last() {
        if last.get("type").and_then(Value::as_str) == Some("function_call_output") {
            return LastTurn::ToolResult(content_text(last.get("output").unwrap_or(&Value::Null)));
        }
    }
    let text = items
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

    #[tokio::test]
    async fn responses_json_shape() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4.1~cached=2", "instructions": "be nice",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "yo"}]}]});
        let r = post(&mock, "/v1/responses", &body).await;
        assert_eq!(r.status(), 200);
        let v = json_of(&r.bytes().await.unwrap());
        assert!(v["id"].as_str().unwrap().starts_with("resp_mock_"));
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["model"], "gpt-4.1");
        assert_eq!(v["instructions"], "be nice");
        let item = &v["output"][0];
        assert_eq!(item["type"], "message");
        assert_eq!(item["role"], "assistant");
        assert_eq!(item["content"][0]["type"], "output_text");
        assert_eq!(
            item["content"][0]["text"],
            "Hello from the mock openai upstream. You said: yo"
        );
        assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(v["usage"]["output_tokens"], 9);
    }

    #[tokio::test]
    async fn responses_stream_event_sequence() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "gpt-4.1~chunks=3", "stream": true, "input": "hello"});
        let b = read_body(post(&mock, "/v1/responses", &body).await).await;
        assert!(b.clean);
        let events = sse_json(&b.bytes);
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (name, v)) in events.iter().enumerate() {
            assert_eq!(v["sequence_number"], i);
            assert_eq!(v["type"], name.as_deref().unwrap());
        }
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        let done = &events[7].1;
        assert_eq!(
            done["text"],
            "Hello from the mock openai upstream. You said: hello"
        );
        let completed = &events[10].1["response"];
        assert_eq!(completed["status"], "completed");
        assert_eq!(completed["output"][0]["content"][0]["text"], done["text"]);
        assert_eq!(completed["usage"]["output_tokens"], 9);
    }

    #[tokio::test]
    async fn responses_stream_tool_call_and_reasoning() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "o3~tool~think", "stream": true,
            "tools": [{"type": "function", "name": "lookup", "parameters": {
                "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}],
            "input": [{"role": "user", "content": "x"},
                      {"type": "function_call_output", "call_id": "c", "output": "42"}]});
        let b = read_body(post(&mock, "/v1/responses", &body).await).await;
        let events = sse_json(&b.bytes);
        let of = |n: &str| -> Vec<&Value> {
            events
                .iter()
                .filter(|(e, _)| e.as_deref() == Some(n))
                .map(|(_, v)| v)
                .collect()
        };
        let deltas = of("response.function_call_arguments.delta");
        assert!(deltas.len() >= 2);
        let joined: String = deltas
            .iter()
            .map(|d| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(joined, r#"{"q":"sample"}"#);
        let done = of("response.function_call_arguments.done");
        assert_eq!(done[0]["arguments"], joined);
        assert_eq!(of("response.reasoning_summary_text.delta").len(), 1);
        let completed = &of("response.completed")[0]["response"];
        assert_eq!(completed["output"][0]["type"], "reasoning");
        let call = &completed["output"][1];
        assert_eq!(call["type"], "function_call");
        assert_eq!(call["name"], "lookup");
        assert!(call["call_id"].as_str().unwrap().starts_with("call_mock_"));
        assert!(
            completed["usage"]["output_tokens_details"]["reasoning_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
    }

    #[tokio::test]
    async fn responses_tool_result_turn_and_cut() {
        let mock = spawn().await.unwrap();
        let body = json!({"model": "m~cut=1", "stream": true,
            "input": [{"type": "function_call_output", "call_id": "c", "output": "42"}]});
        let b = read_body(post(&mock, "/v1/responses", &body).await).await;
        assert!(!b.clean);
        let events = sse_json(&b.bytes);
        assert_eq!(events.len(), 3);
        assert!(events
            .iter()
            .all(|(e, _)| e.as_deref() != Some("response.completed")));
        let body = json!({"model": "m",
            "input": [{"type": "function_call_output", "call_id": "c", "output": "42"}]});
        let v = json_of(
            &post(&mock, "/v1/responses", &body)
                .await
                .bytes()
                .await
                .unwrap(),
        );
        assert_eq!(
            v["output"][0]["content"][0]["text"],
            "Tool result received: 42"
        );
    }
}
