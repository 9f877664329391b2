//! Decoding Gemini `GenerateContentResponse` bodies (whole, or one stream
//! event at a time).

use serde::Deserialize;
use serde_json::Value;

use crate::canonical::{ChatResponse, FinishReason, Part, Usage};
use crate::error::GatewayError;

/// One `GenerateContentResponse`, as far as we read it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub model_version: Option<String>,
    pub response_id: Option<String>,
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    pub content: Option<Content>,
    pub finish_reason: Option<String>,
    /// Gemini's explanation of some finish reasons (a malformed call's text).
    pub finish_message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Content {
    #[serde(default)]
    pub parts: Vec<GPart>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GPart {
    pub text: Option<String>,
    #[serde(default)]
    pub thought: bool,
    pub function_call: Option<FunctionCall>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub args: Option<Value>,
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    pub block_reason: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
}

impl UsageMetadata {
    /// Canonical usage: output counts thoughts too.
    pub fn to_usage(self) -> Usage {
        Usage {
            input_tokens: self.prompt_token_count,
            output_tokens: self.candidates_token_count + self.thoughts_token_count,
            cache_read_tokens: self.cached_content_token_count,
            cache_write_tokens: 0,
            reasoning_tokens: self.thoughts_token_count,
            cache_write_1h_tokens: 0,
        }
    }
}

/// Parses one response body; an `error` object is the upstream's error.
pub(super) fn parse(body: &[u8]) -> Result<GenResponse, GatewayError> {
    let parsed: GenResponse = serde_json::from_slice(body).map_err(|e| {
        GatewayError::bad_upstream(format!("Gemini answered with an unreadable body: {e}"))
    })?;
    if let Some(err) = &parsed.error {
        return Err(upstream_error(err));
    }
    Ok(parsed)
}

/// The error for an `{"error": {"code", "message", "status"}}` object.
fn upstream_error(err: &Value) -> GatewayError {
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("Gemini reported an error")
        .to_string();
    let status = err
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .filter(|s| s.is_client_error() || s.is_server_error());
    match status {
        Some(status) => GatewayError::from_upstream_status(status, message),
        None => GatewayError::bad_upstream(message),
    }
}

/// The canonical finish reason for Gemini's `finishReason`, or the error
/// it reports.
///
/// Every value of the API's `FinishReason` enum is placed: a normal stop
/// (tool calls when the answer has some), the token limit, the safety and
/// policy filters (`LANGUAGE` too: the candidate was withheld); a function
/// call Gemini could not produce (`MALFORMED_FUNCTION_CALL`,
/// `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`, `MISSING_THOUGHT_SIGNATURE`,
/// `MALFORMED_RESPONSE`) is an error, a retryable bad answer, since the
/// answer holds no call to run. `OTHER`, the image-generation reasons and
/// values newer than this list stay [`FinishReason::Other`].
pub(super) fn finish_reason(
    reason: &str,
    message: Option<&str>,
    has_tool_calls: bool,
) -> Result<FinishReason, GatewayError> {
    Ok(match reason {
        "STOP" | "FINISH_REASON_UNSPECIFIED" if has_tool_calls => FinishReason::ToolCalls,
        "STOP" | "FINISH_REASON_UNSPECIFIED" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        "MALFORMED_FUNCTION_CALL"
        | "UNEXPECTED_TOOL_CALL"
        | "TOO_MANY_TOOL_CALLS"
        | "MISSING_THOUGHT_SIGNATURE"
        | "MALFORMED_RESPONSE" => {
            let mut msg =
                format!("Gemini could not produce a valid answer (finishReason {reason})");
            if let Some(m) = message.filter(|m| !m.is_empty()) {
                let m: String = m.chars().take(300).collect();
                msg.push_str(": ");
                msg.push_str(&m);
            }
            return Err(GatewayError::bad_upstream(msg));
        }
        other => FinishReason::Other(other.to_ascii_lowercase()),
    })
}

/// Hands out tool call IDs: Gemini's own when it sends one, else a fresh
/// random `call_<32 hex>`.
///
/// Gemini usually sends no IDs; numbering each answer's calls from
/// `call_0` would repeat IDs across the turns of one conversation, which
/// clients keyed by ID and Anthropic (`tool_use` ids must be unique)
/// refuse. Each call gets its ID once, when it is decoded, so a streamed
/// call keeps it from its first event to its last.
#[derive(Debug, Default)]
pub(super) struct CallIds {
    used: Vec<String>,
}

impl CallIds {
    pub fn next(&mut self, given: Option<&str>) -> String {
        let id = match given {
            Some(g) if !g.is_empty() && !self.used.iter().any(|u| u == g) => g.to_string(),
            _ => format!("call_{}", uuid::Uuid::new_v4().simple()),
        };
        self.used.push(id.clone());
        id
    }

    pub fn any(&self) -> bool {
        !self.used.is_empty()
    }
}

/// The arguments of a function call as JSON text.
pub(super) fn arguments(call: &FunctionCall) -> String {
    match &call.args {
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".to_string(),
    }
}

/// A fresh response ID when Gemini sent none.
pub(super) fn new_id() -> String {
    format!("gemini-{}", uuid::Uuid::new_v4().simple())
}

/// Decodes a `generateContent` response.
pub fn decode_response(body: &[u8], model: &str) -> Result<ChatResponse, GatewayError> {
    let resp = parse(body)?;
    let usage = resp.usage_metadata.unwrap_or_default().to_usage();
    let id = resp.response_id.clone().unwrap_or_else(new_id);
    let model = resp
        .model_version
        .clone()
        .unwrap_or_else(|| model.to_string());
    let Some(candidate) = resp.candidates.into_iter().next() else {
        if resp
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some())
        {
            return Ok(ChatResponse {
                id,
                model,
                content: Vec::new(),
                finish_reason: FinishReason::ContentFilter,
                usage,
            });
        }
        return Err(GatewayError::bad_upstream(
            "Gemini answered without candidates",
        ));
    };
    let mut content: Vec<Part> = Vec::new();
    let mut ids = CallIds::default();
    for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
        if let Some(call) = &part.function_call {
            content.push(Part::ToolCall {
                id: ids.next(call.id.as_deref()),
                name: call.name.clone(),
                arguments: arguments(call),
            });
        } else if let Some(text) = part.text.filter(|t| !t.is_empty()) {
            // Adjacent pieces of the same kind join.
            match (content.last_mut(), part.thought) {
                (Some(Part::Reasoning { text: t, .. }), true) => t.push_str(&text),
                (Some(Part::Text { text: t, .. }), false) => t.push_str(&text),
                (_, true) => content.push(Part::Reasoning {
                    text,
                    signature: None,
                }),
                (_, false) => content.push(Part::text(text)),
            }
        }
    }
    let finish_reason = match candidate.finish_reason.as_deref() {
        Some(r) => finish_reason(r, candidate.finish_message.as_deref(), ids.any())?,
        None if ids.any() => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    Ok(ChatResponse {
        id,
        model,
        content,
        finish_reason,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    fn decode(v: Value) -> Result<ChatResponse, GatewayError> {
        decode_response(&serde_json::to_vec(&v).unwrap(), "gemini-2.5-flash")
    }

    #[test]
    fn text_thoughts_and_usage() {
        let r = decode(json!({
            "candidates": [{
                "content": { "role": "model", "parts": [
                    { "text": "Let me think", "thought": true },
                    { "text": "...", "thought": true },
                    { "text": "Hello", "thoughtSignature": "c2ln" },
                    { "text": " there" }
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": { "promptTokenCount": 20, "candidatesTokenCount": 5,
                               "thoughtsTokenCount": 7, "cachedContentTokenCount": 8,
                               "totalTokenCount": 32 },
            "modelVersion": "gemini-2.5-flash-001",
            "responseId": "abc123"
        }))
        .unwrap();
        assert_eq!(r.id, "abc123");
        assert_eq!(r.model, "gemini-2.5-flash-001");
        assert_eq!(
            r.content,
            vec![
                Part::Reasoning {
                    text: "Let me think...".into(),
                    signature: None
                },
                Part::text("Hello there"),
            ]
        );
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 20,
                output_tokens: 12,
                cache_read_tokens: 8,
                cache_write_tokens: 0,
                reasoning_tokens: 7,
                cache_write_1h_tokens: 0,
            }
        );
    }

    #[test]
    fn function_calls_get_unique_ids() {
        let body = json!({
            "candidates": [{
                "content": { "role": "model", "parts": [
                    { "functionCall": { "name": "weather", "args": { "city": "Paris" } } },
                    { "functionCall": { "name": "weather", "args": { "city": "Rome" } } },
                    { "functionCall": { "name": "now", "id": "g-7" } },
                    { "functionCall": { "name": "now", "id": "g-7" } }
                ]},
                "finishReason": "STOP"
            }]
        });
        let calls = |r: &ChatResponse| -> Vec<(String, String, String)> {
            r.content
                .iter()
                .map(|p| match p {
                    Part::ToolCall {
                        id,
                        name,
                        arguments,
                    } => (id.clone(), name.clone(), arguments.clone()),
                    _ => panic!("{p:?}"),
                })
                .collect()
        };
        let r = decode(body.clone()).unwrap();
        assert!(r.id.starts_with("gemini-"));
        assert_eq!(r.model, "gemini-2.5-flash");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        let first = calls(&r);
        let names: Vec<_> = first
            .iter()
            .map(|(_, n, a)| (n.as_str(), a.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("weather", "{\"city\":\"Paris\"}"),
                ("weather", "{\"city\":\"Rome\"}"),
                ("now", "{}"),
                ("now", "{}"),
            ]
        );
        // Gemini's own ID is kept; a repeated one is replaced.
        assert_eq!(first[2].0, "g-7");
        // The same answer again (the next turn of a conversation): none of
        // the IDs Gemini did not give repeats.
        let second = calls(&decode(body).unwrap());
        let mut ids: Vec<&str> = first
            .iter()
            .chain(&second)
            .map(|(id, ..)| id.as_str())
            .filter(|id| *id != "g-7")
            .collect();
        assert_eq!(ids.len(), 6);
        assert!(ids.iter().all(|id| id.starts_with("call_")
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 6, "IDs repeat: {first:?} {second:?}");
    }

    #[test]
    fn finish_reasons() {
        for (raw, want) in [
            ("STOP", FinishReason::Stop),
            ("FINISH_REASON_UNSPECIFIED", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("SAFETY", FinishReason::ContentFilter),
            ("RECITATION", FinishReason::ContentFilter),
            ("LANGUAGE", FinishReason::ContentFilter),
            ("BLOCKLIST", FinishReason::ContentFilter),
            ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
            ("SPII", FinishReason::ContentFilter),
            ("IMAGE_SAFETY", FinishReason::ContentFilter),
            ("OTHER", FinishReason::Other("other".into())),
        ] {
            let r = decode(json!({"candidates": [{"finishReason": raw}]})).unwrap();
            assert_eq!(r.finish_reason, want, "{raw}");
            assert!(r.content.is_empty());
        }
    }

    /// A call Gemini failed to make leaves an answer without a call to run:
    /// an error naming the reason, never a tool-calls finish.
    #[test]
    fn failed_function_calls_are_errors() {
        for raw in [
            "MALFORMED_FUNCTION_CALL",
            "UNEXPECTED_TOOL_CALL",
            "TOO_MANY_TOOL_CALLS",
        ] {
            let e = decode(json!({"candidates": [{
                "content": {"role": "model", "parts": [{"text": "Let me call it."}]},
                "finishReason": raw,
                "finishMessage": "Malformed function call: print(default_api.f(x=))"
            }]}))
            .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse, "{raw}");
            assert!(e.kind().is_retryable());
            assert!(e.message().contains(raw), "{}", e.message());
            assert!(e.message().contains("print(default_api.f(x=))"));
        }
    }

    #[test]
    fn blocked_prompt_is_content_filter() {
        let r = decode(json!({
            "promptFeedback": { "blockReason": "SAFETY" },
            "usageMetadata": { "promptTokenCount": 9 }
        }))
        .unwrap();
        assert!(r.content.is_empty());
        assert_eq!(r.finish_reason, FinishReason::ContentFilter);
        assert_eq!(r.usage.input_tokens, 9);
    }

    #[test]
    fn garbage_and_errors() {
        let e = decode_response(b"<html>oops</html>", "m").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse);
        assert_eq!(e.status().as_u16(), 502);
        let e = decode(json!({})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse);
        let e = decode(json!({"candidates": "x"})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse);
        let e = decode(
            json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.message(), "quota");
    }
}
