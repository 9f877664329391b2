//! The usage fields of each wire format's JSON, and nothing else: small
//! structs that serde fills while it skips the messages.

use std::borrow::Cow;

use serde::Deserialize;

use crate::canonical::{FinishReason, Usage};
use crate::format::{anthropic, openai_chat, WireFormat};

/// The usage and finish reason of a complete JSON answer in `format`,
/// when it carries usage. Only those fields are read: the messages are
/// skipped, not decoded.
pub(crate) fn read_complete(
    format: WireFormat,
    body: &[u8],
) -> Option<(Usage, Option<FinishReason>)> {
    match format {
        WireFormat::OpenAiChat => {
            let a: ChatAnswer = serde_json::from_slice(body).ok()?;
            let finish = a
                .choices
                .iter()
                .find_map(|c| c.finish_reason.as_deref())
                .and_then(|r| openai_chat::finish_reason_from(r).ok());
            Some((a.usage?.canonical(), finish))
        }
        WireFormat::OpenAiResponses => {
            let r: ResponsesAnswer = serde_json::from_slice(body).ok()?;
            let finish = r.finish();
            Some((r.usage?.canonical(), finish))
        }
        WireFormat::Anthropic => {
            let m: AnthropicMessage = serde_json::from_slice(body).ok()?;
            let finish =
                anthropic::finish_from_wire(m.stop_reason.as_deref(), m.stop_sequence.as_deref());
            let mut usage = Usage::default();
            m.usage?.merge_into(&mut usage);
            Some((usage, Some(finish)))
        }
        WireFormat::Gemini => {
            let g: GeminiAnswer = serde_json::from_slice(body).ok()?;
            Some((g.usage_metadata?.canonical(), None))
        }
    }
}

/// The usage of OpenAI's `include_usage` chunk (`data` is its JSON);
/// `None` for a chunk with choices.
pub(crate) fn chat_usage(data: &str) -> Option<Usage> {
    let chunk: ChatAnswer = serde_json::from_str(data).ok()?;
    if !chunk.choices.is_empty() {
        return None;
    }
    Some(chunk.usage?.canonical())
}

#[derive(Deserialize)]
pub(super) struct ChatAnswer<'a> {
    #[serde(default, borrow)]
    pub(super) choices: Vec<ChatChoice<'a>>,
    pub(super) usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
pub(super) struct ChatChoice<'a> {
    #[serde(borrow)]
    pub(super) finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct ChatUsage {
    pub(super) prompt_tokens: Option<u64>,
    pub(super) completion_tokens: Option<u64>,
    pub(super) prompt_tokens_details: Option<CachedTokens>,
    /// DeepSeek's name for cached input.
    pub(super) prompt_cache_hit_tokens: Option<u64>,
    pub(super) completion_tokens_details: Option<ReasoningTokens>,
}

#[derive(Deserialize)]
pub(super) struct CachedTokens {
    pub(super) cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct ReasoningTokens {
    pub(super) reasoning_tokens: Option<u64>,
}

impl ChatUsage {
    pub(super) fn canonical(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens.unwrap_or(0),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cache_read_tokens: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .or(self.prompt_cache_hit_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            cache_write_1h_tokens: 0,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ResponsesEvent<'a> {
    #[serde(borrow)]
    pub(super) response: Option<ResponsesAnswer<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ResponsesAnswer<'a> {
    #[serde(borrow)]
    pub(super) status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) incomplete_details: Option<Incomplete<'a>>,
    pub(super) usage: Option<ResponsesUsage>,
    #[serde(default, borrow)]
    pub(super) output: Vec<OutputItem<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Incomplete<'a> {
    #[serde(borrow)]
    pub(super) reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct OutputItem<'a> {
    #[serde(borrow, rename = "type")]
    pub(super) kind: Option<Cow<'a, str>>,
}

impl ResponsesAnswer<'_> {
    pub(super) fn finish(&self) -> Option<FinishReason> {
        match self.status.as_deref()? {
            "completed" => {
                let calls = self
                    .output
                    .iter()
                    .any(|i| i.kind.as_deref() == Some("function_call"));
                Some(if calls {
                    FinishReason::ToolCalls
                } else {
                    FinishReason::Stop
                })
            }
            "incomplete" => Some(
                match self
                    .incomplete_details
                    .as_ref()
                    .and_then(|d| d.reason.as_deref())
                {
                    Some("max_output_tokens") => FinishReason::Length,
                    Some("content_filter") => FinishReason::ContentFilter,
                    Some(other) => FinishReason::Other(other.to_owned()),
                    None => FinishReason::Other("incomplete".to_owned()),
                },
            ),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ResponsesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<CachedTokens>,
    output_tokens_details: Option<ReasoningTokens>,
}

impl ResponsesUsage {
    pub(super) fn canonical(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens.unwrap_or(0),
            output_tokens: self.output_tokens.unwrap_or(0),
            cache_read_tokens: self
                .input_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            cache_write_1h_tokens: 0,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct AnthropicEvent<'a> {
    #[serde(borrow)]
    pub(super) message: Option<AnthropicMessage<'a>>,
    pub(super) usage: Option<AnthropicUsage>,
    #[serde(borrow)]
    pub(super) delta: Option<AnthropicDelta<'a>>,
}

#[derive(Deserialize)]
pub(super) struct AnthropicMessage<'a> {
    pub(super) usage: Option<AnthropicUsage>,
    #[serde(default, borrow)]
    pub(super) stop_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) stop_sequence: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct AnthropicDelta<'a> {
    #[serde(borrow)]
    pub(super) stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) stop_sequence: Option<Cow<'a, str>>,
}

/// Anthropic counts input apart from what it read from and wrote to the
/// cache; `message_delta` repeats only some of the counts.
#[derive(Deserialize)]
pub(super) struct AnthropicUsage {
    pub(super) input_tokens: Option<u64>,
    pub(super) output_tokens: Option<u64>,
    pub(super) cache_read_input_tokens: Option<u64>,
    pub(super) cache_creation_input_tokens: Option<u64>,
    /// The writes split by lifetime; only the hour's differ in price.
    pub(super) cache_creation: Option<CacheCreation>,
}

#[derive(Deserialize)]
pub(super) struct CacheCreation {
    pub(super) ephemeral_1h_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Overwrites the counts this event carries, keeping the others.
    pub(super) fn merge_into(&self, u: &mut Usage) {
        let plain = u
            .input_tokens
            .saturating_sub(u.cache_read_tokens)
            .saturating_sub(u.cache_write_tokens);
        let plain = self.input_tokens.unwrap_or(plain);
        if let Some(n) = self.cache_read_input_tokens {
            u.cache_read_tokens = n;
        }
        if let Some(n) = self.cache_creation_input_tokens {
            u.cache_write_tokens = n;
        }
        if let Some(n) = self
            .cache_creation
            .as_ref()
            .and_then(|c| c.ephemeral_1h_input_tokens)
        {
            u.cache_write_1h_tokens = n;
        }
        u.cache_write_1h_tokens = u.cache_write_1h_tokens.min(u.cache_write_tokens);
        u.input_tokens = plain + u.cache_read_tokens + u.cache_write_tokens;
        if let Some(n) = self.output_tokens {
            u.output_tokens = n;
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiAnswer {
    pub(super) usage_metadata: Option<GeminiUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiUsage {
    pub(super) prompt_token_count: Option<u64>,
    pub(super) candidates_token_count: Option<u64>,
    pub(super) thoughts_token_count: Option<u64>,
    pub(super) cached_content_token_count: Option<u64>,
}

impl GeminiUsage {
    /// Gemini counts thoughts apart from the candidates' tokens.
    pub(super) fn canonical(&self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        Usage {
            input_tokens: self.prompt_token_count.unwrap_or(0),
            output_tokens: self.candidates_token_count.unwrap_or(0) + thoughts,
            cache_read_tokens: self.cached_content_token_count.unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: thoughts,
            cache_write_1h_tokens: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_answers() {
        let (u, f) = read_complete(WireFormat::Anthropic, br#"{"content":[{"type":"text","text":"\"usage\":{}"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"cache_read_input_tokens":4,"output_tokens":5}}"#).unwrap();
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens),
            (7, 4, 5)
        );
        assert_eq!(f, Some(FinishReason::Stop));
        let (u, _) = read_complete(WireFormat::Anthropic, br#"{"content":[],"usage":{"input_tokens":1,"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20},"output_tokens":5}}"#).unwrap();
        assert_eq!((u.cache_write_tokens, u.cache_write_1h_tokens), (30, 20));
        assert!(read_complete(WireFormat::OpenAiChat, b"{\"choices\":[]}").is_none());
    }
}
