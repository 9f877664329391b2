//! Whole answers: a provider's message JSON to canonical, canonical to a client's.

use serde_json::{json, Map, Value};

use super::{finish_from_wire, finish_to_wire, WireUsage};
use crate::canonical::{ChatResponse, Part};
use crate::error::GatewayError;

/// Decodes a provider's Anthropic Messages response.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_upstream(format!("Anthropic answer is not JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| GatewayError::bad_upstream("Anthropic answer is not a JSON object"))?;
    if o.get("type").and_then(Value::as_str) == Some("error") {
        return Err(super::error_from_body(&v));
    }
    let blocks = o
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| GatewayError::bad_upstream("Anthropic answer has no `content` array"))?;
    let mut content = Vec::with_capacity(blocks.len());
    for b in blocks {
        if let Some(p) = decode_block(b)? {
            content.push(p);
        }
    }
    let str_field = |k: &str| o.get(k).and_then(Value::as_str);
    let mut usage = WireUsage::default();
    usage.update(o.get("usage"));
    Ok(ChatResponse {
        id: str_field("id").unwrap_or_default().to_owned(),
        model: str_field("model").unwrap_or_default().to_owned(),
        content,
        finish_reason: finish_from_wire(str_field("stop_reason"), str_field("stop_sequence")),
        usage: usage.to_canonical(),
    })
}

/// One block of an answer; `None` for the kinds dropped knowingly.
fn decode_block(b: &Value) -> Result<Option<Part>, GatewayError> {
    let s = |k: &str| b.get(k).and_then(Value::as_str);
    let missing = |what: &str| GatewayError::bad_upstream(format!("Anthropic {what} is malformed"));
    Ok(Some(match s("type") {
        Some("text") => Part::text(s("text").ok_or_else(|| missing("text block"))?),
        Some("tool_use") => Part::ToolCall {
            id: s("id").ok_or_else(|| missing("tool_use block"))?.to_owned(),
            name: s("name")
                .ok_or_else(|| missing("tool_use block"))?
                .to_owned(),
            arguments: match b.get("input") {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(input) => input.to_string(),
            },
        },
        Some("thinking") => Part::Reasoning {
            text: s("thinking").unwrap_or_default().to_owned(),
            signature: s("signature").filter(|x| !x.is_empty()).map(str::to_owned),
        },
        Some("redacted_thinking") => Part::RedactedReasoning {
            data: s("data")
                .ok_or_else(|| missing("redacted_thinking block"))?
                .to_owned(),
        },
        Some(_) => return Ok(None),
        None => return Err(missing("content block")),
    }))
}

/// Encodes a canonical response for an Anthropic Messages client.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let content: Vec<Value> = resp.content.iter().filter_map(encode_block).collect();
    let has_calls = resp
        .content
        .iter()
        .any(|p| matches!(p, Part::ToolCall { .. }));
    let (stop_reason, stop_sequence) = finish_to_wire(&resp.finish_reason, has_calls);
    let body = json!({
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": WireUsage::from_canonical(&resp.usage).to_json(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One answer part as a block; parts an answer cannot hold give `None`.
fn encode_block(p: &Part) -> Option<Value> {
    Some(match p {
        Part::Text { text, .. } => json!({"type": "text", "text": text}),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => {
            let input = match serde_json::from_str::<Value>(arguments) {
                Ok(v @ Value::Object(_)) => v,
                _ => Value::Object(Map::new()),
            };
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
        Part::Reasoning { text, signature } => json!({
            "type": "thinking",
            "thinking": text,
            "signature": signature.as_deref().unwrap_or(""),
        }),
        Part::RedactedReasoning { data } => json!({"type": "redacted_thinking", "data": data}),
        Part::Image { .. } | Part::ToolResult { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{FinishReason, Usage};
    use crate::error::ErrorKind;

    const ANSWER: &str = r#"{
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Let me check.", "signature": "sig=="},
            {"type": "text", "text": "Checking the weather.", "citations": null},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "redacted_thinking", "data": "opaque"}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 200,
                  "cache_read_input_tokens": 3000, "output_tokens": 42,
                  "cache_creation": {"ephemeral_5m_input_tokens": 50, "ephemeral_1h_input_tokens": 150}}
    }"#;

    #[test]
    fn decodes_a_provider_answer() {
        let r = decode_response(ANSWER.as_bytes()).unwrap();
        assert_eq!(r.id, "msg_01");
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert_eq!(
            r.content,
            vec![
                Part::Reasoning {
                    text: "Let me check.".into(),
                    signature: Some("sig==".into())
                },
                Part::text("Checking the weather."),
                Part::ToolCall {
                    id: "toolu_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into()
                },
                Part::RedactedReasoning {
                    data: "opaque".into()
                },
            ]
        );
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 3210,
                output_tokens: 42,
                cache_read_tokens: 3000,
                cache_write_tokens: 200,
                reasoning_tokens: 0,
                cache_write_1h_tokens: 150,
            }
        );
    }

    #[test]
    fn maps_every_stop_reason() {
        let cases = [
            ("\"end_turn\"", FinishReason::Stop),
            ("\"max_tokens\"", FinishReason::Length),
            ("\"model_context_window_exceeded\"", FinishReason::Length),
            ("\"tool_use\"", FinishReason::ToolCalls),
            ("\"pause_turn\"", FinishReason::PauseTurn),
            ("\"refusal\"", FinishReason::ContentFilter),
            ("\"brand_new\"", FinishReason::Other("brand_new".into())),
        ];
        for (wire, want) in cases {
            let body = format!(
                r#"{{"id":"m","model":"c","content":[],"stop_reason":{wire},"stop_sequence":null,"usage":{{"input_tokens":1,"output_tokens":1}}}}"#
            );
            assert_eq!(
                decode_response(body.as_bytes()).unwrap().finish_reason,
                want
            );
        }
        let body = br#"{"id":"m","model":"c","content":[],"stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":1,"output_tokens":1}}"#;
        assert_eq!(
            decode_response(body).unwrap().finish_reason,
            FinishReason::StopSequence(Some("END".into()))
        );
    }

    #[test]
    fn garbage_is_a_bad_upstream() {
        for body in [
            &b"not json"[..],
            b"[1]",
            br#"{"id":"m"}"#,
            br#"{"content":[{"text":"x"}]}"#,
        ] {
            let e = decode_response(body).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse, "{body:?}");
            assert_eq!(e.status().as_u16(), 502);
        }
    }

    #[test]
    fn encodes_for_a_client_with_cache_arithmetic() {
        let resp = ChatResponse {
            id: "chatcmpl-9".into(),
            model: "gpt-4o".into(),
            content: vec![
                Part::Reasoning {
                    text: "hm".into(),
                    signature: None,
                },
                Part::text("Hi"),
                Part::ToolCall {
                    id: "call_abc".into(),
                    name: "f".into(),
                    arguments: r#"{"a":[1,2]}"#.into(),
                },
                Part::ToolCall {
                    id: "call_def".into(),
                    name: "g".into(),
                    arguments: "not json".into(),
                },
            ],
            finish_reason: FinishReason::StopSequence(Some("##".into())),
            usage: Usage {
                input_tokens: 1000,
                output_tokens: 7,
                cache_read_tokens: 900,
                cache_write_tokens: 50,
                reasoning_tokens: 3,
                cache_write_1h_tokens: 0,
            },
        };
        let v: Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "chatcmpl-9", "type": "message", "role": "assistant", "model": "gpt-4o",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": ""},
                    {"type": "text", "text": "Hi"},
                    {"type": "tool_use", "id": "call_abc", "name": "f", "input": {"a": [1, 2]}},
                    {"type": "tool_use", "id": "call_def", "name": "g", "input": {}},
                ],
                "stop_reason": "stop_sequence", "stop_sequence": "##",
                "usage": {"input_tokens": 50, "output_tokens": 7,
                          "cache_creation_input_tokens": 50, "cache_read_input_tokens": 900},
            })
        );
    }

    #[test]
    fn usage_subtraction_saturates_and_round_trips() {
        let mut resp = decode_response(ANSWER.as_bytes()).unwrap();
        let back = decode_response(&encode_response(&resp)).unwrap();
        assert_eq!(back.usage, resp.usage);
        assert_eq!(back.content, resp.content);
        assert_eq!(back.finish_reason, resp.finish_reason);
        resp.usage = Usage {
            input_tokens: 5,
            cache_read_tokens: 10,
            ..Usage::default()
        };
        let v: Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
        assert_eq!(v["usage"]["input_tokens"], 0);
        assert_eq!(v["usage"]["cache_read_input_tokens"], 10);
    }

    #[test]
    fn other_finish_reasons_become_end_turn() {
        let resp = ChatResponse {
            id: "x".into(),
            model: "m".into(),
            content: vec![],
            finish_reason: FinishReason::Other("weird".into()),
            usage: Usage::default(),
        };
        let v: Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["stop_sequence"], Value::Null);
        assert_eq!(v["content"], json!([]));
    }
}
