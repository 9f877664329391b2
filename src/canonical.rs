//! The canonical conversation: the one representation every client wire format
//! decodes into and every provider encodes from, so that any client format
//! reaches any provider.
//!
//! Conventions every translator keeps:
//!
//! - `ChatRequest::system` holds the top-level system prompt (OpenAI `system`
//!   / `developer` messages at the head of `messages`, Anthropic `system`,
//!   Responses `instructions`). A system message in the *middle* of the
//!   conversation (which Claude Code sends) stays in `messages` with
//!   [`Role::System`]; encoders for formats that cannot express it fold it
//!   into the nearest user turn as text.
//! - Tool results are [`Part::ToolResult`] inside a [`Role::User`] message
//!   (Anthropic's shape). OpenAI encoders split them into `role: "tool"`
//!   messages, in order.
//! - Tool call arguments are JSON *text* (`arguments`), as OpenAI sends them;
//!   Anthropic encoders parse them into `input` (an unparsable string becomes
//!   `{}` and is documented as dropped).
//! - [`Usage::input_tokens`] counts *all* input tokens, cached ones included
//!   (OpenAI's convention). Anthropic's `input_tokens` excludes cache reads
//!   and writes; its translator adds and subtracts them.
//! - [`Usage::output_tokens`] includes reasoning tokens.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A chat request in canonical form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name the request asks for (as the client sent it).
    pub model: String,
    /// The top-level system prompt, as one or more text blocks.
    pub system: Vec<TextBlock>,
    /// The conversation turns, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// How the model must use the tools.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic, Gemini).
    pub top_k: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Structured output / JSON mode.
    pub response_format: Option<ResponseFormat>,
    /// Reasoning / extended thinking settings.
    pub reasoning: Option<Reasoning>,
    /// An end-user identifier (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
}

/// A text block with an optional prompt-cache marker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    /// The text.
    pub text: String,
    /// Anthropic `cache_control`, kept for Anthropic targets.
    pub cache_control: Option<CacheControl>,
}

/// A prompt-cache marker (Anthropic `cache_control`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheControl {
    /// Always `ephemeral` today.
    #[serde(rename = "type")]
    pub kind: String,
    /// Optional time to live, such as `5m` or `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A system message in the middle of the conversation.
    System,
    /// The user (tool results travel in user messages).
    User,
    /// The model.
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said, in order.
    pub content: Vec<Part>,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
        /// Anthropic prompt-cache marker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// An image, by URL or inline.
    Image {
        /// Where the image is.
        source: ImageSource,
        /// Anthropic prompt-cache marker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// A call the model made to a tool (assistant messages).
    ToolCall {
        /// The call's ID; tool results refer to it.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments as JSON text.
        arguments: String,
    },
    /// The result of a tool call (user messages).
    ToolResult {
        /// The ID of the call this answers.
        call_id: String,
        /// The result: text and images.
        content: Vec<Part>,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
        /// Anthropic prompt-cache marker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// The model's visible reasoning, with Anthropic's signature when it has one.
    Reasoning {
        /// The reasoning text.
        text: String,
        /// Anthropic's `signature`, which must be sent back unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider returned encrypted (Anthropic `redacted_thinking`).
    RedactedReasoning {
        /// The opaque data.
        data: String,
    },
}

impl Part {
    /// A text part without a cache marker.
    pub fn text(text: impl Into<String>) -> Self {
        Part::Text {
            text: text.into(),
            cache_control: None,
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// A URL (http(s) or a `data:` URL as OpenAI clients send it).
    Url {
        /// The URL.
        url: String,
    },
    /// Inline base64 data.
    Base64 {
        /// MIME type, such as `image/png`.
        media_type: String,
        /// Base64 data without a `data:` prefix.
        data: String,
    },
}

impl ImageSource {
    /// Splits a `data:<mime>;base64,<data>` URL into an inline source;
    /// any other URL stays a URL.
    pub fn from_url(url: &str) -> Self {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((meta, data)) = rest.split_once(',') {
                if let Some(media_type) = meta.strip_suffix(";base64") {
                    return ImageSource::Base64 {
                        media_type: media_type.to_string(),
                        data: data.to_string(),
                    };
                }
            }
        }
        ImageSource::Url {
            url: url.to_string(),
        }
    }

    /// The image as a URL: inline data becomes a `data:` URL.
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Url { url } => url.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The tool's name.
    pub name: String,
    /// What the tool does.
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// OpenAI strict schema adherence.
    pub strict: Option<bool>,
    /// Anthropic prompt-cache marker.
    pub cache_control: Option<CacheControl>,
}

/// How the model must use tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool, by name.
    Tool(String),
}

/// Structured output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Plain text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// Strict adherence.
        strict: Option<bool>,
    },
}

/// Reasoning / extended-thinking settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// OpenAI-style effort: `minimal`, `low`, `medium`, `high`.
    pub effort: Option<String>,
    /// Anthropic / Gemini thinking budget in tokens.
    pub budget_tokens: Option<u64>,
    /// Thinking explicitly disabled.
    pub disabled: bool,
}

/// A complete (non-streamed) answer in canonical form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The provider's response ID.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// What the model produced: text, reasoning, tool calls.
    pub content: Vec<Part>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end of turn.
    Stop,
    /// A stop sequence matched (which one, when known).
    StopSequence(Option<String>),
    /// The token limit was reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// Content was filtered or refused.
    ContentFilter,
    /// Anthropic `pause_turn`: a long-running turn was paused.
    PauseTurn,
    /// A reason the provider's decoder does not know, by the provider's own
    /// name (decoders map every documented reason explicitly). Client
    /// encoders give it their normal end of turn (`stop`, `completed`,
    /// `end_turn`).
    Other(String),
}

/// Token counts. See the module docs for the conventions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All input tokens, cached ones included.
    pub input_tokens: u64,
    /// All output tokens, reasoning included.
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Of `cache_write_tokens`, those written for an hour rather than the
    /// default five minutes (Anthropic's
    /// `cache_creation.ephemeral_1h_input_tokens`), which cost more.
    #[serde(default)]
    pub cache_write_1h_tokens: u64,
}

/// One event of a canonical stream.
///
/// Decoders produce, and encoders may rely on, this grammar:
/// `Start (BlockStart Delta* BlockStop | Usage)* Finish`. Block indexes count
/// every block of the answer from 0 in the order they start; at most one block
/// is open at a time. `Finish` comes exactly once, last, and carries the final
/// usage. A stream that ends without `Finish` ended in error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StreamEvent {
    /// The answer begins.
    Start {
        /// The provider's response ID.
        id: String,
        /// The model that answers.
        model: String,
    },
    /// A content block begins.
    BlockStart {
        /// The block's index in the answer.
        index: usize,
        /// What kind of block.
        block: BlockKind,
    },
    /// More content for the open block.
    Delta {
        /// The block's index.
        index: usize,
        /// The new content.
        delta: Delta,
    },
    /// The open block is complete.
    BlockStop {
        /// The block's index.
        index: usize,
    },
    /// Usage so far (totals, not increments).
    Usage(Usage),
    /// The answer is complete.
    Finish {
        /// Why generation stopped.
        reason: FinishReason,
        /// Final token counts.
        usage: Usage,
    },
}

/// The kind of a streamed content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BlockKind {
    /// Text.
    Text,
    /// A tool call; arguments follow as [`Delta::ToolArguments`].
    ToolCall {
        /// The call's ID.
        id: String,
        /// The tool's name.
        name: String,
    },
    /// Reasoning text; a signature may follow as [`Delta::Signature`].
    Reasoning,
    /// Encrypted reasoning, complete in the start event.
    RedactedReasoning {
        /// The opaque data.
        data: String,
    },
}

/// Incremental content of a streamed block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Delta {
    /// Text.
    Text(String),
    /// A fragment of a tool call's JSON arguments.
    ToolArguments(String),
    /// Reasoning text.
    Reasoning(String),
    /// The reasoning block's signature (Anthropic).
    Signature(String),
}
