//! Anthropic Messages (`/v1/messages`), both sides of the gateway.
//!
//! - Client side: [`decode_request`], [`encode_response`], [`StreamEncoder`].
//! - Provider side: [`encode_request`], [`encode_count_tokens`],
//!   [`decode_response`], [`StreamDecoder`].
//!
//! # Usage arithmetic
//!
//! Anthropic's `input_tokens` excludes prompt-cache reads and writes; the
//! canonical [`Usage::input_tokens`] includes them. Decoders add
//! `cache_read_input_tokens` and `cache_creation_input_tokens` to it; encoders
//! subtract them again (saturating at zero).
//!
//! # What the translation drops knowingly
//!
//! Decoding a client's request:
//! - Content blocks with no canonical form: `document`, `search_result`,
//!   `server_tool_use`, `web_search_tool_result`, `web_fetch_tool_result`,
//!   `code_execution_tool_result` (and the `bash_`/`text_editor_` variants),
//!   `mcp_tool_use`, `mcp_tool_result`, `container_upload`, `tool_reference`,
//!   `tool_search_tool_result`, and any block type not known here. Inside a
//!   `tool_result`, only `text` and `image` blocks are kept.
//! - Images whose `source` is neither `base64` nor `url` (e.g. `file`).
//! - `citations` on text blocks; `cache_control` on `tool_use`, `thinking`
//!   and `redacted_thinking` blocks (kept on text, image, tool result).
//! - Server tools (a `tools` entry whose `type` is set and is not `custom`,
//!   such as `web_search_20250305` or `bash_20250124`), and `strict` on tools.
//! - A message whose content is empty once dropped blocks are gone.
//! - `thinking: {type: "adaptive"}` becomes a [`Reasoning`] with nothing set
//!   (the provider decides); `output_config.effort` is not carried.
//! - Structured output: `output_config.format` (GA) or `output_format` (beta)
//!   `{type: "json_schema", schema}` becomes [`ResponseFormat::JsonSchema`]
//!   named `response` with `strict: None` (Anthropic's format has no name).
//! - Everything else unknown (`container`, `mcp_servers`, `service_tier`,
//!   `context_management`, ...) is ignored; it only survives same-format
//!   pass-through.
//!
//! Encoding a request for an Anthropic provider:
//! - [`Role::System`] messages in the conversation are not accepted by the
//!   API: their text is folded, as text blocks, to the front of the next user
//!   turn, or to the end of the previous one when no user turn follows (a
//!   user turn of its own when there is no user turn at all).
//! - Consecutive messages of the same role are merged (the API wants
//!   alternation); in a user turn, `tool_result` blocks move first.
//! - Empty text blocks (the API rejects them) and messages left empty.
//! - [`Part::Reasoning`] without a signature (from another provider): the API
//!   rejects unsigned `thinking` blocks.
//! - Tool-call arguments that are empty, not JSON, or not a JSON object
//!   become `input: {}`.
//! - `max_tokens` is required by the API: 4096 when the request has none.
//!   When thinking has a budget that is not below `max_tokens`, `max_tokens`
//!   becomes budget + the requested maximum (thinking counts against it).
//! - Thinking is left out (and `max_tokens` not raised for it) when the
//!   conversation is inside a tool loop whose tool-calling assistant turn
//!   does not start with signed thinking: the API refuses that request with
//!   thinking on, and the signed block cannot always come back (a client
//!   format with no place for it, a client that dropped it, another
//!   provider's answer). Chat and Responses clients do bring it back (see
//!   their modules), so their tool loops keep thinking.
//! - Reasoning effort becomes a thinking budget: `low` 2048, `medium` 8192,
//!   `high` 24576, `xhigh`/`max` 32768, other values 8192; `minimal`/`none`
//!   and `disabled` leave thinking out. A [`Reasoning`] with nothing set
//!   becomes `{type: "adaptive"}`.
//! - `temperature` is clamped to Anthropic's range `0..=1`.
//! - [`ResponseFormat::JsonObject`] and [`ResponseFormat::Text`] (the API
//!   has no schema-less JSON mode); a JSON schema becomes
//!   `output_config.format`. [`Tool::strict`] is dropped.
//! - `tool_choice` is left out when there are no tools;
//!   `parallel_tool_calls: false` becomes `disable_parallel_tool_use`
//!   (with `tool_choice: auto` when no choice was given).
//!
//! Decoding a provider's answer (whole or streamed): server-tool blocks
//! (`server_tool_use`, `*_tool_result`, ...) and `citations` /
//! `citations_delta`. Stream block indexes are remapped so the canonical
//! ones stay contiguous.
//!
//! Encoding an answer for a client: [`FinishReason::Other`] (a reason the
//! provider's decoder does not know) becomes `end_turn`, and so does a
//! tool-calls finish without any `tool_use` block; image and tool-result parts (which an answer cannot hold) are
//! left out; reasoning without a signature gets `signature: ""`.
//!
//! [`Usage::input_tokens`]: crate::canonical::Usage::input_tokens
//! [`Reasoning`]: crate::canonical::Reasoning
//! [`ResponseFormat::JsonSchema`]: crate::canonical::ResponseFormat::JsonSchema
//! [`ResponseFormat::JsonObject`]: crate::canonical::ResponseFormat::JsonObject
//! [`ResponseFormat::Text`]: crate::canonical::ResponseFormat::Text
//! [`Role::System`]: crate::canonical::Role::System
//! [`Part::Reasoning`]: crate::canonical::Part::Reasoning
//! [`Tool::strict`]: crate::canonical::Tool::strict
//! [`FinishReason::Other`]: crate::canonical::FinishReason::Other

mod encode;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod test_fixtures;

pub use encode::{encode_count_tokens, encode_request};
pub(crate) use encode::{max_tokens_sent, thinking_budget};
pub use request::decode_request;
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

use serde_json::{json, Map, Value};

use crate::canonical::{CacheControl, FinishReason, Usage};
use crate::error::{ErrorKind, GatewayError};

/// Anthropic's `stop_reason` (and `stop_sequence`) as canonical.
pub(crate) fn finish_from_wire(
    stop_reason: Option<&str>,
    stop_sequence: Option<&str>,
) -> FinishReason {
    match stop_reason {
        None | Some("end_turn") => FinishReason::Stop,
        Some("max_tokens") | Some("model_context_window_exceeded") => FinishReason::Length,
        Some("stop_sequence") => FinishReason::StopSequence(stop_sequence.map(str::to_owned)),
        Some("tool_use") => FinishReason::ToolCalls,
        Some("pause_turn") => FinishReason::PauseTurn,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

/// A canonical finish reason as Anthropic's `(stop_reason, stop_sequence)`.
/// `tool_use` only when the answer holds a `tool_use` block (`has_calls`):
/// a client told to run tools finds none otherwise.
fn finish_to_wire(reason: &FinishReason, has_calls: bool) -> (&'static str, Option<&str>) {
    match reason {
        FinishReason::Stop | FinishReason::Other(_) => ("end_turn", None),
        FinishReason::StopSequence(seq) => ("stop_sequence", seq.as_deref()),
        FinishReason::Length => ("max_tokens", None),
        FinishReason::ToolCalls if has_calls => ("tool_use", None),
        FinishReason::ToolCalls => ("end_turn", None),
        FinishReason::ContentFilter => ("refusal", None),
        FinishReason::PauseTurn => ("pause_turn", None),
    }
}

/// Anthropic's token counts as they appear on the wire (cache excluded from input).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WireUsage {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    /// Of `cache_write`, the writes for an hour
    /// (`cache_creation.ephemeral_1h_input_tokens`).
    cache_write_1h: u64,
}

impl WireUsage {
    /// Overwrites each count that `usage` (a wire `usage` object) carries.
    fn update(&mut self, usage: Option<&Value>) {
        let Some(u) = usage else { return };
        let get = |k: &str| u.get(k).and_then(Value::as_u64);
        if let Some(v) = get("input_tokens") {
            self.input = v;
        }
        if let Some(v) = get("output_tokens") {
            self.output = v;
        }
        if let Some(v) = get("cache_read_input_tokens") {
            self.cache_read = v;
        }
        if let Some(v) = get("cache_creation_input_tokens") {
            self.cache_write = v;
        }
        if let Some(v) = u
            .get("cache_creation")
            .and_then(|c| c.get("ephemeral_1h_input_tokens"))
            .and_then(Value::as_u64)
        {
            self.cache_write_1h = v;
        }
    }

    fn from_canonical(u: &Usage) -> Self {
        WireUsage {
            input: u
                .input_tokens
                .saturating_sub(u.cache_read_tokens)
                .saturating_sub(u.cache_write_tokens),
            output: u.output_tokens,
            cache_read: u.cache_read_tokens,
            cache_write: u.cache_write_tokens,
            cache_write_1h: u.cache_write_1h_tokens,
        }
    }

    fn to_canonical(self) -> Usage {
        Usage {
            input_tokens: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_write),
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            reasoning_tokens: 0,
            cache_write_1h_tokens: self.cache_write_1h.min(self.cache_write),
        }
    }

    fn to_json(self) -> Value {
        let mut v = json!({
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
        });
        let hour = self.cache_write_1h.min(self.cache_write);
        if hour > 0 {
            v["cache_creation"] = json!({
                "ephemeral_5m_input_tokens": self.cache_write - hour,
                "ephemeral_1h_input_tokens": hour,
            });
        }
        v
    }
}

/// The error kind for an Anthropic error `type`.
fn error_kind(ty: &str) -> ErrorKind {
    match ty {
        "overloaded_error" => ErrorKind::Overloaded,
        "rate_limit_error" => ErrorKind::RateLimited,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::PayloadTooLarge,
        "timeout_error" => ErrorKind::Timeout,
        "invalid_request_error" => ErrorKind::UpstreamClient,
        _ => ErrorKind::UpstreamServer,
    }
}

/// Reads a `{type:"error", error:{type, message}}` body as an error.
fn error_from_body(body: &Value) -> GatewayError {
    let e = body.get("error").unwrap_or(body);
    let ty = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the provider reported an error")
        .to_owned();
    let mut err = GatewayError::new(error_kind(ty), message);
    if ty == "invalid_request_error"
        && err
            .message()
            .to_ascii_lowercase()
            .contains("prompt is too long")
    {
        err = err.with_kind(ErrorKind::ContextLengthExceeded);
    }
    err
}

/// A `cache_control` marker as JSON.
fn cache_control_json(cc: &CacheControl) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String(cc.kind.clone()));
    if let Some(ttl) = &cc.ttl {
        m.insert("ttl".into(), Value::String(ttl.clone()));
    }
    Value::Object(m)
}

/// Adds `cache_control` to a block when there is one.
fn with_cache_control(mut block: Map<String, Value>, cc: &Option<CacheControl>) -> Value {
    if let Some(cc) = cc {
        block.insert("cache_control".into(), cache_control_json(cc));
    }
    Value::Object(block)
}
