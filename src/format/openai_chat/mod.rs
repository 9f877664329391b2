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
//! - Reasoning that must come back unchanged (Anthropic's signed and
//!   redacted thinking) reaches a client in the answer's (or stream's)
//!   `reasoning_details`, besides `reasoning_content`, and comes back from
//!   the assistant message's `reasoning_details` in the next request (see
//!   `reasoning_details` for the shape), so tool loops with thinking keep
//!   working at Anthropic. A signature from another provider's entry is
//!   dropped.
//! - A thinking budget becomes `reasoning_effort`: up to 2048 tokens `low`,
//!   up to 16384 `medium`, more `high`. Thinking explicitly disabled sends no
//!   `reasoning_effort` (the provider's default applies).
//! - Finish reasons, both ways, by an explicit table (no guessing from
//!   names): the providers' values are listed on `finish_reason_from`;
//!   ones that say generation broke off (`error`,
//!   `insufficient_system_resource`) are a retryable bad answer. To a
//!   client: a length reason is `length`, a refusal or filter
//!   `content_filter`, `tool_calls` only when the answer holds tool calls;
//!   everything else (a stop sequence, Anthropic's `pause_turn`, a tool-calls
//!   reason without calls, a reason no decoder knows) is `stop`.
//!
//! Dropped knowingly, because Chat Completions cannot express it:
//!
//! - prompt-cache markers (`cache_control`) on text, images, tools;
//! - `top_k`;
//! - reasoning in requests to a Chat Completions provider (assistant
//!   reasoning, its signatures and redacted reasoning are not sent back to
//!   it), and `reasoning_details` in its answers (a Chat provider's
//!   signatures are not Anthropic's);
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
mod reasoning_details;
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
use crate::error::GatewayError;

/// Which field carries the token limit when encoding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens` (OpenAI; required by its reasoning models).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens` (what most OpenAI-compatible servers read).
    MaxTokens,
}

/// A provider's `finish_reason` in canonical form, or the error it reports.
///
/// OpenAI's values and those OpenAI-compatible servers add: Mistral's
/// `model_length` (the context window is full) and `error`, DeepSeek's
/// `insufficient_system_resource` (generation interrupted), TGI's
/// `eos_token` and `stop_sequence`. A reason that says generation broke
/// off is an error (a retryable bad answer), not a finished turn. Any other
/// value is kept as [`FinishReason::Other`].
pub(crate) fn finish_reason_from(s: &str) -> Result<FinishReason, GatewayError> {
    Ok(match s {
        "stop" | "eos" | "eos_token" | "end_turn" => FinishReason::Stop,
        "stop_sequence" => FinishReason::StopSequence(None),
        "length" | "model_length" | "max_tokens" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        "error" | "insufficient_system_resource" => {
            return Err(GatewayError::bad_upstream(format!(
                "the provider stopped generating with finish_reason `{s}`"
            )))
        }
        other => FinishReason::Other(other.to_string()),
    })
}

/// The official `finish_reason` for `reason`. `tool_calls` only when the
/// answer holds tool calls (`has_calls`): a client told to run tools finds
/// none otherwise. A reason the provider's decoder did not know
/// ([`FinishReason::Other`]) is `stop`, as are a stop sequence and
/// Anthropic's `pause_turn`.
fn finish_reason_str(reason: &FinishReason, has_calls: bool) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::ToolCalls if has_calls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Stop
        | FinishReason::StopSequence(_)
        | FinishReason::PauseTurn
        | FinishReason::ToolCalls
        | FinishReason::Other(_) => "stop",
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
        cache_write_1h_tokens: 0,
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
        for (wire, want) in [
            ("stop", FinishReason::Stop),
            ("eos_token", FinishReason::Stop),
            ("stop_sequence", FinishReason::StopSequence(None)),
            ("length", FinishReason::Length),
            ("model_length", FinishReason::Length),
            ("tool_calls", FinishReason::ToolCalls),
            ("function_call", FinishReason::ToolCalls),
            ("content_filter", FinishReason::ContentFilter),
            ("something_new", FinishReason::Other("something_new".into())),
        ] {
            assert_eq!(finish_reason_from(wire).unwrap(), want, "{wire}");
        }
        for wire in ["error", "insufficient_system_resource"] {
            let e = finish_reason_from(wire).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::BadUpstreamResponse);
            assert!(e.message().contains(wire), "{}", e.message());
        }
        let cases = [
            (FinishReason::Stop, true, "stop"),
            (
                FinishReason::StopSequence(Some("END".into())),
                false,
                "stop",
            ),
            (FinishReason::PauseTurn, false, "stop"),
            (FinishReason::Length, false, "length"),
            (FinishReason::ContentFilter, false, "content_filter"),
            (FinishReason::ToolCalls, true, "tool_calls"),
            // Never `tool_calls` without a call to run.
            (FinishReason::ToolCalls, false, "stop"),
            // Unknown reasons get the documented default, whatever they say.
            (
                FinishReason::Other("malformed_function_call".into()),
                false,
                "stop",
            ),
            (FinishReason::Other("max_tokens_ish".into()), false, "stop"),
        ];
        for (reason, has_calls, want) in cases {
            assert_eq!(finish_reason_str(&reason, has_calls), want, "{reason:?}");
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
                reasoning_tokens: 30,
                cache_write_1h_tokens: 0,
            }
        );
        let u = usage_from(&serde_json::json!({
            "prompt_tokens": 10, "completion_tokens": 1, "prompt_cache_hit_tokens": 8
        }));
        assert_eq!(u.cache_read_tokens, 8);
    }
}
