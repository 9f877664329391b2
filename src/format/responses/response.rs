//! The Response object, shared by [`encode_response`] and the stream's
//! `response.*` lifecycle events.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::canonical::{ChatResponse, FinishReason, Part, Usage};

/// Encodes a canonical response for a Responses client.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let mut output = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    for part in &resp.content {
        match part {
            Part::Text { text, .. } => texts.push(text),
            other => {
                flush_message(&mut output, &mut texts);
                match other {
                    Part::ToolCall {
                        id,
                        name,
                        arguments,
                    } => output.push(function_call_item(
                        &new_item_id("fc"),
                        id,
                        name,
                        arguments,
                        "completed",
                    )),
                    Part::Reasoning { text, signature } => output.push(reasoning_item(
                        &new_item_id("rs"),
                        Some(text),
                        signature.as_deref().map(Carried::Signature),
                    )),
                    Part::RedactedReasoning { data } => output.push(reasoning_item(
                        &new_item_id("rs"),
                        None,
                        Some(Carried::Redacted(data)),
                    )),
                    // Images in answers and tool results have no output item.
                    _ => {}
                }
            }
        }
    }
    flush_message(&mut output, &mut texts);
    let (status, reason) = status_for(&resp.finish_reason);
    let body = response_object(
        &Envelope {
            id: response_id(&resp.id),
            model: resp.model.clone(),
            created_at: now_secs(),
        },
        status,
        reason,
        None,
        output,
        Some(&resp.usage),
    );
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A run of text parts becomes one message item, one `output_text` each.
fn flush_message(output: &mut Vec<Value>, texts: &mut Vec<&str>) {
    if !texts.is_empty() {
        output.push(message_item(&new_item_id("msg"), texts, "completed"));
        texts.clear();
    }
}

/// What identifies a response across its events.
#[derive(Debug, Clone, Default)]
pub(super) struct Envelope {
    /// `resp_...`
    pub id: String,
    /// The model that answers.
    pub model: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// The full Response object.
pub(super) fn response_object(
    env: &Envelope,
    status: &str,
    incomplete_reason: Option<&str>,
    error: Option<Value>,
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    json!({
        "id": env.id,
        "object": "response",
        "created_at": env.created_at,
        "status": status,
        "background": false,
        "error": error,
        "incomplete_details": incomplete_reason.map(|r| json!({ "reason": r })),
        "instructions": null,
        "max_output_tokens": null,
        "max_tool_calls": null,
        "model": env.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null },
        "service_tier": "default",
        "store": false,
        "temperature": null,
        "text": { "format": { "type": "text" } },
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(usage_json),
        "user": null,
        "metadata": {},
    })
}

/// `status` and `incomplete_details.reason` for a finish reason.
pub(super) fn status_for(reason: &FinishReason) -> (&'static str, Option<&'static str>) {
    match reason {
        FinishReason::Length => ("incomplete", Some("max_output_tokens")),
        FinishReason::ContentFilter => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The Responses `usage` object.
pub(super) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": { "cached_tokens": u.cache_read_tokens },
        "output_tokens": u.output_tokens,
        "output_tokens_details": { "reasoning_tokens": u.reasoning_tokens },
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

/// An `output_text` content part.
pub(super) fn output_text(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

/// An assistant message item.
pub(super) fn message_item(id: &str, texts: &[&str], status: &str) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": status,
        "role": "assistant",
        "content": texts.iter().map(|t| output_text(t)).collect::<Vec<_>>(),
    })
}

/// A function call item.
pub(super) fn function_call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

/// A `summary_text` part.
pub(super) fn summary_text(text: &str) -> Value {
    json!({ "type": "summary_text", "text": text })
}

/// What a reasoning item's `encrypted_content` carries for the provider
/// that issued it: Anthropic's signature of the summary text, or its
/// redacted (encrypted) thinking. A prefix tells them apart, and apart from
/// OpenAI's own encrypted content, which only OpenAI can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Carried<'a> {
    /// The signature of a `thinking` block.
    Signature(&'a str),
    /// The data of a `redacted_thinking` block.
    Redacted(&'a str),
}

/// What every `encrypted_content` the gateway writes starts with.
pub(crate) const GATEWAY_PREFIX: &str = "tollgate.anthropic.";
const SIGNATURE_PREFIX: &str = "tollgate.anthropic.signature:";
const REDACTED_PREFIX: &str = "tollgate.anthropic.redacted:";

impl<'a> Carried<'a> {
    /// The `encrypted_content` string.
    pub(super) fn encode(self) -> String {
        match self {
            Carried::Signature(s) => format!("{SIGNATURE_PREFIX}{s}"),
            Carried::Redacted(d) => format!("{REDACTED_PREFIX}{d}"),
        }
    }

    /// Reads an `encrypted_content`; `None` when the gateway did not write it.
    pub(super) fn decode(content: &'a str) -> Option<Self> {
        let nonempty = |s: &'a str| (!s.is_empty()).then_some(s);
        if let Some(s) = content.strip_prefix(SIGNATURE_PREFIX) {
            nonempty(s).map(Carried::Signature)
        } else {
            content
                .strip_prefix(REDACTED_PREFIX)
                .and_then(nonempty)
                .map(Carried::Redacted)
        }
    }
}

/// A reasoning item; `text` is `None` while its summary is still streaming
/// (or for redacted reasoning, which has none).
pub(super) fn reasoning_item(id: &str, text: Option<&str>, carried: Option<Carried>) -> Value {
    let mut item = json!({
        "type": "reasoning",
        "id": id,
        "summary": text.map(summary_text).into_iter().collect::<Vec<_>>(),
    });
    if let Some(c) = carried {
        item["encrypted_content"] = Value::String(c.encode());
    }
    item
}

/// A Responses ID for a provider's response ID.
pub(super) fn response_id(provider_id: &str) -> String {
    if provider_id.starts_with("resp_") {
        provider_id.to_string()
    } else if provider_id.is_empty() {
        new_item_id("resp")
    } else {
        format!("resp_{provider_id}")
    }
}

/// A fresh item ID such as `msg_<32 hex>`.
pub(super) fn new_item_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Now, in Unix seconds.
pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> Usage {
        Usage {
            input_tokens: 100,
            output_tokens: 40,
            cache_read_tokens: 30,
            cache_write_tokens: 0,
            reasoning_tokens: 12,
            cache_write_1h_tokens: 0,
        }
    }

    fn encode(content: Vec<Part>, finish_reason: FinishReason) -> Value {
        let resp = ChatResponse {
            id: "msg_123".into(),
            model: "claude-x".into(),
            content,
            finish_reason,
            usage: usage(),
        };
        serde_json::from_slice(&encode_response(&resp)).unwrap()
    }

    #[test]
    fn full_response_object() {
        let v = encode(
            vec![
                Part::Reasoning {
                    text: "Think.".into(),
                    signature: Some("sig".into()),
                },
                Part::text("Hello"),
                Part::text(" world"),
                Part::ToolCall {
                    id: "toolu_1".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                },
                Part::RedactedReasoning { data: "x".into() },
            ],
            FinishReason::ToolCalls,
        );
        assert_eq!(v["id"], "resp_msg_123");
        assert_eq!(v["object"], "response");
        assert!(v["created_at"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(v["status"], "completed");
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["incomplete_details"], Value::Null);
        assert_eq!(v["model"], "claude-x");
        assert_eq!(v["tools"], json!([]));
        assert_eq!(v["metadata"], json!({}));
        assert_eq!(v["parallel_tool_calls"], true);
        let out = v["output"].as_array().unwrap();
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0]["type"], "reasoning");
        assert!(out[0]["id"].as_str().unwrap().starts_with("rs_"));
        assert_eq!(
            out[0]["summary"],
            json!([{"type": "summary_text", "text": "Think."}])
        );
        // The signature and the redacted reasoning travel where the client
        // sends them back from.
        assert_eq!(
            out[0]["encrypted_content"],
            "tollgate.anthropic.signature:sig"
        );
        assert_eq!(out[3]["type"], "reasoning");
        assert_eq!(out[3]["summary"], json!([]));
        assert_eq!(out[3]["encrypted_content"], "tollgate.anthropic.redacted:x");
        assert_eq!(out[1]["type"], "message");
        assert!(out[1]["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(out[1]["status"], "completed");
        assert_eq!(out[1]["role"], "assistant");
        assert_eq!(out[1]["content"][0]["type"], "output_text");
        assert_eq!(out[1]["content"][0]["text"], "Hello");
        assert_eq!(out[1]["content"][0]["annotations"], json!([]));
        assert_eq!(out[1]["content"][1]["text"], " world");
        assert_eq!(out[2]["type"], "function_call");
        assert!(out[2]["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(out[2]["call_id"], "toolu_1");
        assert_eq!(out[2]["name"], "weather");
        assert_eq!(out[2]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(out[2]["status"], "completed");
        assert_eq!(
            v["usage"],
            json!({
                "input_tokens": 100, "input_tokens_details": {"cached_tokens": 30},
                "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 12},
                "total_tokens": 140
            })
        );
        assert!(v.get("output_text").is_none());
    }

    #[test]
    fn incomplete_statuses() {
        let v = encode(vec![Part::text("cut")], FinishReason::Length);
        assert_eq!(v["status"], "incomplete");
        assert_eq!(
            v["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        let v = encode(vec![], FinishReason::ContentFilter);
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"], json!({"reason": "content_filter"}));
        assert_eq!(v["output"], json!([]));
        let v = encode(vec![], FinishReason::StopSequence(Some("END".into())));
        assert_eq!(v["status"], "completed");
    }

    #[test]
    fn keeps_resp_ids() {
        assert_eq!(response_id("resp_abc"), "resp_abc");
        assert!(response_id("").starts_with("resp_"));
    }
}
