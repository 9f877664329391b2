//! OpenAI Chat Completions (`/v1/chat/completions`), on both sides of the
//! gateway: client requests, responses and streams in, provider requests,
//! responses and streams out.
//!
//! - [`decode_request`] / [`encode_response`] / [`StreamEncoder`]: the client side.
//! - [`encode_request`] / [`decode_response`] / [`StreamDecoder`]: the provider side.
//!
//! Choices made where the format leaves room:
//!
//! - `system` / `developer` messages before any other role become
//!   [`ChatRequest::system`](crate::canonical::ChatRequest::system); later ones
//!   stay in place as [`Role::System`](crate::canonical::Role::System) messages.
//! - Consecutive `tool` messages merge into one user message of tool results.
//! - The legacy function-calling API (`functions`, `function_call`, the
//!   `function` role, an assistant `function_call`) is rejected with a 400
//!   naming the field: it has no call IDs to carry through, and `tools`
//!   replaces it.
//! - `input_audio` and `file` content parts, `audio` output, `n` > 1 and
//!   non-function tools are rejected with a 400: no translation exists.
//! - A thinking budget becomes `reasoning_effort`: up to 2048 tokens `low`,
//!   up to 16384 `medium`, more `high`. Thinking explicitly disabled sends no
//!   `reasoning_effort` (the provider's default applies).
//! - Finish reasons the format has no name for: a stop sequence and
//!   Anthropic's `pause_turn` become `stop`; any other reason becomes the
//!   closest official value (`length`, `tool_calls`, `content_filter`, else
//!   `stop`).
//!
//! Dropped knowingly, because Chat Completions cannot express it:
//!
//! - prompt-cache markers (`cache_control`) on text, images, tools;
//! - `top_k`;
//! - reasoning in requests (assistant reasoning, its signatures and
//!   redacted reasoning are not sent back to a provider); redacted reasoning
//!   in responses and streams, and reasoning signatures;
//! - a tool result's `is_error` flag (the result text is sent as is);
//! - images inside tool results: a `tool` message holds text only, so they
//!   travel in the user message that follows the tool messages;
//! - an image's `detail` on decode;
//! - in client requests: `logprobs`, `top_logprobs`, `logit_bias`, `seed`,
//!   `presence_penalty`, `frequency_penalty`, `modalities`, `audio`,
//!   `prediction`, `service_tier`, `store`, `metadata`, `web_search_options`,
//!   message `name`s, and any other unknown field (they pass through only in
//!   same-format mode).

mod decode_messages;
mod decode_request;
mod encode_request;
mod response;
mod stream_decode;
mod stream_encode;

pub use decode_request::decode_request;
pub use encode_request::encode_request;
pub use response::{decode_response, encode_response};
pub use stream_decode::StreamDecoder;
pub use stream_encode::StreamEncoder;

use serde_json::Value;

use crate::canonical::{FinishReason, Usage};

/// Which field carries the token limit when encoding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens` (OpenAI; required by its reasoning models).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens` (what most OpenAI-compatible servers read).
    MaxTokens,
}

/// A provider's `finish_reason` in canonical form.
fn finish_reason_from(s: &str) -> FinishReason {
    match s {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

/// The official `finish_reason` closest to `reason`.
fn finish_reason_str(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::PauseTurn => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(other) => {
            let o = other.to_ascii_lowercase();
            if o.contains("length") || o.contains("max_tokens") {
                "length"
            } else if o.contains("tool") || o.contains("function") {
                "tool_calls"
            } else if [
                "filter",
                "safety",
                "refusal",
                "recitation",
                "blocklist",
                "prohibited",
                "spii",
            ]
            .iter()
            .any(|k| o.contains(k))
            {
                "content_filter"
            } else {
                "stop"
            }
        }
    }
}

/// Reads a Chat Completions `usage` object. DeepSeek's
/// `prompt_cache_hit_tokens` stands in for `cached_tokens` when that is absent.
fn usage_from(v: &Value) -> Usage {
    let num = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64);
    let cached = v
        .get("prompt_tokens_details")
        .and_then(|d| num(d, "cached_tokens"))
        .or_else(|| num(v, "prompt_cache_hit_tokens"))
        .unwrap_or(0);
    Usage {
        input_tokens: num(v, "prompt_tokens").unwrap_or(0),
        output_tokens: num(v, "completion_tokens").unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        reasoning_tokens: v
            .get("completion_tokens_details")
            .and_then(|d| num(d, "reasoning_tokens"))
            .unwrap_or(0),
    }
}

/// A `usage` object for a client.
fn usage_json(u: &Usage) -> Value {
    serde_json::json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": { "cached_tokens": u.cache_read_tokens },
        "completion_tokens_details": { "reasoning_tokens": u.reasoning_tokens },
    })
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_map_to_official_values() {
        assert_eq!(finish_reason_from("tool_calls"), FinishReason::ToolCalls);
        assert_eq!(finish_reason_from("function_call"), FinishReason::ToolCalls);
        assert_eq!(
            finish_reason_from("eos"),
            FinishReason::Other("eos".to_string())
        );
        let cases = [
            (FinishReason::StopSequence(Some("END".into())), "stop"),
            (FinishReason::PauseTurn, "stop"),
            (FinishReason::Other("MAX_TOKENS".into()), "length"),
            (FinishReason::Other("SAFETY".into()), "content_filter"),
            (FinishReason::Other("refusal".into()), "content_filter"),
            (FinishReason::Other("eos".into()), "stop"),
            (FinishReason::ContentFilter, "content_filter"),
        ];
        for (reason, want) in cases {
            assert_eq!(finish_reason_str(&reason), want, "{reason:?}");
        }
    }

    #[test]
    fn reads_usage_details() {
        let u = usage_from(&serde_json::json!({
            "prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 30}
        }));
        assert_eq!(
            u,
            Usage {
                input_tokens: 100,
                output_tokens: 40,
                cache_read_tokens: 64,
                cache_write_tokens: 0,
                reasoning_tokens: 30
            }
        );
        let u = usage_from(&serde_json::json!({
            "prompt_tokens": 10, "completion_tokens": 1, "prompt_cache_hit_tokens": 8
        }));
        assert_eq!(u.cache_read_tokens, 8);
    }
}
