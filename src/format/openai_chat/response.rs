//! Complete (non-streamed) Chat Completions answers: a provider's to
//! canonical, canonical to a client's.

use serde_json::{json, Map, Value};

use super::{
    finish_reason_from, finish_reason_str, reasoning_details, unix_now, usage_from, usage_json,
};
use crate::canonical::{ChatResponse, FinishReason, Part};
use crate::error::GatewayError;
use crate::format::{parse_upstream_error, WireFormat};

/// Decodes a provider's Chat Completions response (`chat.completion`).
///
/// Reads the first choice: reasoning (`reasoning_content`, or `reasoning`
/// as some servers name it), text (a `refusal` becomes text too), tool
/// calls. A body that is not a completion is a 502.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        GatewayError::bad_upstream(format!("provider answer is not valid JSON: {e}"))
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| GatewayError::bad_upstream("provider answer is not a JSON object"))?;
    if obj.get("error").is_some_and(|e| !e.is_null()) {
        return Err(parse_upstream_error(
            WireFormat::OpenAiChat,
            http::StatusCode::BAD_GATEWAY,
            &http::HeaderMap::new(),
            body,
        ));
    }
    let choice = obj
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| GatewayError::bad_upstream("provider answer has no `choices`"))?;
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| GatewayError::bad_upstream("provider answer has no `choices[0].message`"))?;

    let mut content = Vec::new();
    if let Some(r) = message
        .get("reasoning_content")
        .and_then(Value::as_str)
        .or_else(|| message.get("reasoning").and_then(Value::as_str))
    {
        if !r.is_empty() {
            content.push(Part::Reasoning {
                text: r.to_string(),
                signature: None,
            });
        }
    }
    match message.get("content") {
        Some(Value::String(s)) if !s.is_empty() => content.push(Part::text(s.clone())),
        Some(Value::Array(parts)) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    content.push(Part::text(t));
                }
            }
        }
        _ => {}
    }
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        if !refusal.is_empty() {
            content.push(Part::text(refusal));
        }
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for (i, call) in calls.iter().enumerate() {
            let func = call.get("function");
            let name = func
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::bad_upstream(format!(
                        "provider tool call {i} has no `function.name`"
                    ))
                })?;
            let arguments = match func.and_then(|f| f.get("arguments")) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ Value::Object(_)) => v.to_string(),
                _ => String::new(),
            };
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("call_{}", uuid::Uuid::new_v4().simple()));
            content.push(Part::ToolCall {
                id,
                name: name.to_string(),
                arguments,
            });
        }
    }

    let finish_reason = match choice.get("finish_reason").and_then(Value::as_str) {
        Some(r) => finish_reason_from(r)?,
        None => FinishReason::Other("unknown".into()),
    };
    let usage = obj
        .get("usage")
        .filter(|u| u.is_object())
        .map(usage_from)
        .unwrap_or_default();
    let text_field = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(ChatResponse {
        id: text_field("id"),
        model: text_field("model"),
        content,
        finish_reason,
        usage,
    })
}

/// Encodes a canonical response for a Chat Completions client.
///
/// Text parts are concatenated into `content` (`null` when there is none),
/// reasoning goes in `reasoning_content`, and signed or redacted reasoning
/// also in `reasoning_details`, from where the client's next request
/// brings it back.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut has_text = false;
    let mut calls = Vec::new();
    let mut details = Vec::new();
    for part in &resp.content {
        if let Some(entry) = reasoning_details::entry(part, details.len()) {
            details.push(entry);
        }
        match part {
            Part::Text { text: t, .. } => {
                has_text = true;
                text.push_str(t);
            }
            Part::Reasoning { text: t, .. } => reasoning.push_str(t),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            _ => {}
        }
    }
    let has_calls = !calls.is_empty();
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        if has_text { json!(text) } else { Value::Null },
    );
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    if !details.is_empty() {
        message.insert("reasoning_details".into(), Value::Array(details));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    message.insert("refusal".into(), Value::Null);
    message.insert("annotations".into(), json!([]));

    let body = json!({
        "id": response_id(&resp.id),
        "object": "chat.completion",
        "created": unix_now(),
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason_str(&resp.finish_reason, has_calls),
        }],
        "usage": usage_json(&resp.usage),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The provider's ID, or a fresh one when it gave none.
pub(super) fn response_id(id: &str) -> String {
    if id.is_empty() {
        format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Usage;
    use crate::error::ErrorKind;

    #[test]
    fn decodes_a_tool_call_completion() {
        let body = br#"{
          "id": "chatcmpl-abc", "object": "chat.completion", "created": 1741569952, "model": "gpt-4.1-2025-04-14",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
            "tool_calls": [
              {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
              {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ], "refusal": null, "annotations": []},
            "logprobs": null, "finish_reason": "tool_calls"}],
          "usage": {"prompt_tokens": 82, "completion_tokens": 40, "total_tokens": 122,
            "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0}},
          "service_tier": "default"
        }"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.id, "chatcmpl-abc");
        assert_eq!(r.model, "gpt-4.1-2025-04-14");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            r.content,
            vec![
                Part::ToolCall {
                    id: "call_1".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into()
                },
                Part::ToolCall {
                    id: "call_2".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Rome\"}".into()
                },
            ]
        );
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 82,
                output_tokens: 40,
                cache_read_tokens: 64,
                cache_write_tokens: 0,
                reasoning_tokens: 12,
                cache_write_1h_tokens: 0,
            }
        );
    }

    #[test]
    fn decodes_reasoning_text_refusal_and_finish_reasons() {
        let body = br#"{"id":"x","model":"deepseek-reasoner","choices":[{"index":0,
            "message":{"role":"assistant","content":"42","reasoning_content":"Let me think."},
            "finish_reason":"length"}]}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(
            r.content,
            vec![
                Part::Reasoning {
                    text: "Let me think.".into(),
                    signature: None
                },
                Part::text("42")
            ]
        );
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert_eq!(r.usage, Usage::default());

        let body = br#"{"id":"y","model":"m","choices":[{"index":0,
            "message":{"role":"assistant","content":null,"refusal":"I can't help with that."},
            "finish_reason":"content_filter"}]}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.content, vec![Part::text("I can't help with that.")]);
        assert_eq!(r.finish_reason, FinishReason::ContentFilter);

        let body = br#"{"id":"z","model":"m","choices":[{"index":0,
            "message":{"role":"assistant","content":"hi"},"finish_reason":"eos"}]}"#;
        assert_eq!(
            decode_response(body).unwrap().finish_reason,
            FinishReason::Stop
        );

        // Mistral's full context window is a length finish, not a stop.
        let body = br#"{"id":"z","model":"m","choices":[{"index":0,
            "message":{"role":"assistant","content":"hi"},"finish_reason":"model_length"}]}"#;
        assert_eq!(
            decode_response(body).unwrap().finish_reason,
            FinishReason::Length
        );
    }

    #[test]
    fn garbage_is_a_bad_upstream_answer() {
        for body in [
            &b"<html>oops</html>"[..],
            b"[1,2]",
            b"{}",
            b"{\"choices\":[]}",
            b"{\"choices\":[{\"index\":0}]}",
        ] {
            let e = decode_response(body).expect_err("must fail");
            assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse, "{body:?}");
            assert_eq!(e.status().as_u16(), 502);
        }
        let e =
            decode_response(br#"{"error":{"message":"model overloaded","type":"server_error"}}"#)
                .expect_err("must fail");
        assert_eq!(e.message(), "model overloaded");
        assert_eq!(e.status().as_u16(), 502);
    }

    #[test]
    fn encodes_exact_client_fields() {
        let resp = ChatResponse {
            id: "msg_01".into(),
            model: "claude-sonnet-4".into(),
            content: vec![
                Part::Reasoning {
                    text: "hmm".into(),
                    signature: Some("sig".into()),
                },
                Part::RedactedReasoning { data: "xx".into() },
                Part::text("Checking "),
                Part::text("now."),
                Part::ToolCall {
                    id: "toolu_1".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                },
            ],
            finish_reason: FinishReason::ToolCalls,
            usage: Usage {
                input_tokens: 100,
                output_tokens: 20,
                cache_read_tokens: 80,
                cache_write_tokens: 5,
                reasoning_tokens: 3,
                cache_write_1h_tokens: 0,
            },
        };
        let v: Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
        assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
        let mut v = v;
        v.as_object_mut().unwrap().remove("created");
        assert_eq!(
            v,
            json!({
                "id": "msg_01",
                "object": "chat.completion",
                "model": "claude-sonnet-4",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Checking now.",
                        "reasoning_content": "hmm",
                        "reasoning_details": [
                            {"type": "reasoning.text", "text": "hmm", "signature": "sig",
                             "format": "anthropic-claude-v1", "index": 0},
                            {"type": "reasoning.encrypted", "data": "xx",
                             "format": "anthropic-claude-v1", "index": 1}
                        ],
                        "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}],
                        "refusal": null,
                        "annotations": []
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls"
                }],
                "usage": {
                    "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                    "prompt_tokens_details": {"cached_tokens": 80},
                    "completion_tokens_details": {"reasoning_tokens": 3}
                }
            })
        );
    }

    #[test]
    fn content_is_null_without_text_and_stop_sequence_is_stop() {
        let resp = ChatResponse {
            id: String::new(),
            model: "m".into(),
            content: vec![],
            finish_reason: FinishReason::StopSequence(Some("END".into())),
            usage: Usage::default(),
        };
        let v: Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
        assert!(v["choices"][0]["message"]["content"].is_null());
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    }

    #[test]
    fn round_trips_through_decode_response() {
        let resp = ChatResponse {
            id: "chatcmpl-1".into(),
            model: "m".into(),
            content: vec![
                Part::Reasoning {
                    text: "r".into(),
                    signature: None,
                },
                Part::text("answer"),
                Part::ToolCall {
                    id: "call_9".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                },
            ],
            finish_reason: FinishReason::ToolCalls,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_tokens: 2,
                cache_write_tokens: 0,
                reasoning_tokens: 1,
                cache_write_1h_tokens: 0,
            },
        };
        assert_eq!(decode_response(&encode_response(&resp)).unwrap(), resp);
    }
}
