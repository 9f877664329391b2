//! The meter's tally: usage and finish reasons read out of a stream's
//! chunks, canonical events or SSE events already in the client's wire
//! format (complete JSON answers are read in `wire`).
//!
//! Nothing here re-encodes what the client gets. A stream's events are
//! looked at with one pass over their keys first ([`keys`], which steps
//! over the text of a delta and allows spaces around colons); only the few
//! that carry usage, a finish reason or an error (a handful per stream)
//! are parsed, and then into small structs that read only those fields.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use super::scan::{content_keys, keys, string_len};
use super::wire::{AnthropicEvent, ChatAnswer, ResponsesEvent};
use crate::canonical::{Delta, FinishReason, StreamEvent, Usage};
use crate::format::{anthropic, openai_chat, WireFormat};
use crate::response::StreamChunk;
use crate::sse::{SseEvent, SseParser};

/// What a meter has seen of a stream so far.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// The provider's counts so far (totals).
    pub usage: Usage,
    /// Whether the provider's input count was seen.
    pub input_seen: bool,
    /// Whether the provider's final output count was seen.
    pub output_seen: bool,
    /// Why generation stopped, when the stream said.
    pub finish: Option<FinishReason>,
    /// An in-band error passed through: its status and type.
    pub failed: Option<(u16, Arc<str>)>,
    /// Bytes of text, tool arguments and reasoning sent to the client.
    pub sent_bytes: u64,
}

impl Tally {
    /// Counts `chunk`; `true` when it changed the usage.
    pub fn observe(&mut self, format: WireFormat, chunk: &StreamChunk) -> bool {
        match chunk {
            StreamChunk::Raw(bytes) => self.raw(format, bytes),
            StreamChunk::Event(ev) => self.event(ev),
            StreamChunk::Usage(u) => self.counted(*u),
        }
    }

    /// The provider's final counts, input and output: `true`, the usage
    /// changed.
    fn counted(&mut self, usage: Usage) -> bool {
        self.usage = usage;
        self.input_seen = true;
        self.output_seen = true;
        true
    }

    fn event(&mut self, ev: &StreamEvent) -> bool {
        match ev {
            StreamEvent::Delta { delta, .. } => {
                if let Delta::Text(s) | Delta::ToolArguments(s) | Delta::Reasoning(s) = delta {
                    self.sent_bytes += s.len() as u64;
                }
                false
            }
            StreamEvent::Usage(u) => {
                self.usage = *u;
                self.input_seen |= u.input_tokens > 0;
                true
            }
            StreamEvent::Finish { reason, usage } => {
                self.finish = Some(reason.clone());
                // A provider that sent no counts ends with zeros: those
                // are not counts, and the estimate stands in for them.
                if usage.input_tokens > 0 || usage.output_tokens > 0 {
                    return self.counted(*usage);
                }
                false
            }
            StreamEvent::Start { .. }
            | StreamEvent::BlockStart { .. }
            | StreamEvent::BlockStop { .. } => false,
        }
    }

    fn raw(&mut self, format: WireFormat, bytes: &[u8]) -> bool {
        // One pass over the event's keys tells all the rest needs.
        let content = content_keys(format, true);
        let (mut usage, mut finish, mut error) = (false, false, false);
        for (key, value) in keys(bytes) {
            match key {
                b"usage" => usage |= value.starts_with(b"{"),
                b"finish_reason" => {
                    finish |= format == WireFormat::OpenAiChat && value.starts_with(b"\"");
                }
                // Chat's `{"error": {…}}`, Anthropic's error event,
                // Responses' `response.failed`.
                b"error" => error |= value.starts_with(b"{"),
                // Responses' error event.
                b"type" => {
                    error |=
                        format == WireFormat::OpenAiResponses && value.starts_with(b"\"error\"");
                }
                k if content.contains(&k) => {
                    if let Some(text) = value.strip_prefix(b"\"") {
                        self.sent_bytes += string_len(text);
                    }
                }
                _ => {}
            }
        }
        if !(usage || finish || error) {
            return false;
        }
        let Some(data) = data_of(bytes) else {
            return false;
        };
        let data = data.as_bytes();
        if error {
            self.failed = Some(in_band_error(data));
        }
        if !(usage || finish) {
            return false;
        }
        match format {
            WireFormat::OpenAiChat => self.chat(data),
            WireFormat::Anthropic => self.anthropic(data),
            WireFormat::OpenAiResponses => self.responses(data),
            // Not a client format: nothing reaches a client in it.
            WireFormat::Gemini => false,
        }
    }

    fn chat(&mut self, data: &[u8]) -> bool {
        let Ok(chunk) = serde_json::from_slice::<ChatAnswer>(data) else {
            return false;
        };
        if let Some(reason) = chunk
            .choices
            .iter()
            .find_map(|c| c.finish_reason.as_deref())
        {
            self.finish = openai_chat::finish_reason_from(reason).ok();
        }
        match chunk.usage {
            Some(u) => self.counted(u.canonical()),
            None => false,
        }
    }

    fn anthropic(&mut self, data: &[u8]) -> bool {
        let Ok(ev) = serde_json::from_slice::<AnthropicEvent>(data) else {
            return false;
        };
        let (usage, last) = match (ev.message, ev.usage) {
            (_, Some(u)) => (u, true),
            (Some(m), None) => match m.usage {
                Some(u) => (u, false),
                None => return false,
            },
            (None, None) => return false,
        };
        if let Some(d) = ev.delta.filter(|d| d.stop_reason.is_some()) {
            self.finish = Some(anthropic::finish_from_wire(
                d.stop_reason.as_deref(),
                d.stop_sequence.as_deref(),
            ));
        }
        usage.merge_into(&mut self.usage);
        self.input_seen |= usage.input_tokens.is_some();
        // `message_start` counts the first output token only.
        self.output_seen |= last && usage.output_tokens.is_some();
        true
    }

    fn responses(&mut self, data: &[u8]) -> bool {
        let Ok(ev) = serde_json::from_slice::<ResponsesEvent>(data) else {
            return false;
        };
        let Some(resp) = ev.response else {
            return false;
        };
        if resp.status.as_deref() != Some("in_progress") {
            self.finish = resp.finish();
        }
        match resp.usage {
            Some(u) => self.counted(u.canonical()),
            None => false,
        }
    }
}

/// The `data` of one raw SSE event.
fn data_of(raw: &[u8]) -> Option<String> {
    let mut parser = SseParser::new();
    let mut events: Vec<SseEvent> = Vec::with_capacity(1);
    parser.feed(raw, &mut events);
    if events.is_empty() {
        events.extend(parser.finish());
    }
    events.pop().map(|e| e.data)
}

/// The status and type of an in-band error event.
fn in_band_error(data: &[u8]) -> (u16, Arc<str>) {
    #[derive(Deserialize)]
    struct Wrapper<'a> {
        #[serde(borrow)]
        error: Option<Inner<'a>>,
        #[serde(borrow)]
        response: Option<Failed<'a>>,
    }
    #[derive(Deserialize)]
    struct Failed<'a> {
        #[serde(borrow)]
        error: Option<Inner<'a>>,
    }
    #[derive(Deserialize)]
    struct Inner<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow)]
        code: Option<Cow<'a, str>>,
    }
    let kind = serde_json::from_slice::<Wrapper<'_>>(data)
        .ok()
        .and_then(|w| w.error.or(w.response.and_then(|r| r.error)))
        .and_then(|e| e.kind.or(e.code))
        .map_or_else(|| "api_error".to_owned(), Cow::into_owned);
    let status = match kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" | "rate_limit_exceeded" => 429,
        "overloaded_error" => 529,
        "timeout" | "timeout_error" => 504,
        _ => 500,
    };
    (status, kind.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn raw(format: WireFormat, t: &mut Tally, s: &'static str) -> bool {
        t.observe(format, &StreamChunk::Raw(Bytes::from_static(s.as_bytes())))
    }

    #[test]
    fn anthropic_counts_come_from_message_start_and_message_delta() {
        let mut t = Tally::default();
        let f = WireFormat::Anthropic;
        assert!(raw(f, &mut t, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n"));
        assert_eq!(t.usage.input_tokens, 17);
        assert!(t.input_seen && !t.output_seen);
        // Text that looks like usage is escaped in a delta: not parsed.
        assert!(!raw(f, &mut t, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a \\\"usage\\\":{} b\"}}\n\n"));
        assert_eq!(t.sent_bytes, 16);
        assert!(raw(f, &mut t, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n"));
        assert_eq!(
            t.usage,
            Usage {
                input_tokens: 17,
                output_tokens: 42,
                cache_read_tokens: 5,
                cache_write_tokens: 2,
                reasoning_tokens: 0,
                cache_write_1h_tokens: 0,
            }
        );
        assert!(t.output_seen);
        assert_eq!(t.finish, Some(FinishReason::Length));
        assert!(t.failed.is_none());
    }

    #[test]
    fn anthropic_hour_long_cache_writes_are_counted_apart() {
        let mut t = Tally::default();
        let f = WireFormat::Anthropic;
        assert!(raw(f, &mut t, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":300,\"cache_creation\":{\"ephemeral_5m_input_tokens\":100,\"ephemeral_1h_input_tokens\":200},\"output_tokens\":1}}}\n\n"));
        assert_eq!(t.usage.cache_write_tokens, 300);
        assert_eq!(t.usage.cache_write_1h_tokens, 200);
        // `message_delta` does not repeat the split: it stands.
        assert!(raw(f, &mut t, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n"));
        assert_eq!(t.usage.cache_write_1h_tokens, 200);
        // At Sonnet's rates ($3 input, $3.75 and $6 cache writes, $15
        // output per MTok): 10 × 3 + 100 × 3.75 + 200 × 6 + 9 × 15.
        let sonnet = crate::usage::Price {
            cache_write: Some(crate::usage::Nanos(3_750_000_000)),
            cache_write_1h: Some(crate::usage::Nanos(6_000_000_000)),
            ..crate::usage::Price::new(
                crate::usage::Nanos(3_000_000_000),
                crate::usage::Nanos(15_000_000_000),
            )
        };
        assert_eq!(
            sonnet.cost(&t.usage),
            crate::usage::Nanos(30_000 + 375_000 + 1_200_000 + 135_000)
        );
    }

    #[test]
    fn events_written_with_spaces_are_read_too() {
        // Some OpenAI-compatible servers (Python's json.dumps) write
        // `"key": value`.
        let mut t = Tally::default();
        let f = WireFormat::OpenAiChat;
        assert!(!raw(f, &mut t, "data: {\"choices\": [{\"index\": 0, \"delta\": {\"content\": \"Hey\"}, \"finish_reason\": \"stop\"}]}\n\n"));
        assert_eq!(t.sent_bytes, 3);
        assert_eq!(t.finish, Some(FinishReason::Stop));
        assert!(raw(f, &mut t, "data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 9, \"completion_tokens\": 4}}\n\n"));
        assert_eq!((t.usage.input_tokens, t.usage.output_tokens), (9, 4));
        raw(
            f,
            &mut t,
            "data: {\"error\": {\"type\": \"rate_limit_exceeded\", \"message\": \"x\"}}\n\n",
        );
        assert_eq!(t.failed, Some((429, "rate_limit_exceeded".into())));

        let mut t = Tally::default();
        let f = WireFormat::Anthropic;
        assert!(raw(f, &mut t, "event: message_delta\ndata: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\"}, \"usage\": {\"output_tokens\": 42}}\n\n"));
        assert_eq!(t.usage.output_tokens, 42);

        let mut t = Tally::default();
        raw(WireFormat::OpenAiResponses, &mut t, "event: error\ndata: {\"type\": \"error\", \"code\": \"rate_limit_exceeded\", \"message\": \"x\"}\n\n");
        assert!(t.failed.is_some());
    }

    #[test]
    fn chat_finish_and_usage_chunks() {
        let mut t = Tally::default();
        let f = WireFormat::OpenAiChat;
        assert!(!raw(f, &mut t, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n"));
        assert_eq!(t.sent_bytes, 5);
        assert!(!raw(f, &mut t, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n"));
        assert_eq!(t.finish, Some(FinishReason::ToolCalls));
        assert!(raw(f, &mut t, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":3},\"completion_tokens_details\":{\"reasoning_tokens\":2}}}\n\n"));
        assert_eq!(
            t.usage,
            Usage {
                input_tokens: 9,
                output_tokens: 4,
                cache_read_tokens: 3,
                cache_write_tokens: 0,
                reasoning_tokens: 2,
                cache_write_1h_tokens: 0,
            }
        );
        assert!(!raw(f, &mut t, "data: [DONE]\n\n"));
    }

    #[test]
    fn responses_completed_and_in_band_errors() {
        let mut t = Tally::default();
        let f = WireFormat::OpenAiResponses;
        assert!(!raw(f, &mut t, "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"status\":\"in_progress\",\"usage\":null}}\n\n"));
        assert!(raw(f, &mut t, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"output\":[],\"usage\":{\"input_tokens\":7,\"output_tokens\":3,\"input_tokens_details\":{\"cached_tokens\":1},\"output_tokens_details\":{\"reasoning_tokens\":0}}}}\n\n"));
        assert_eq!(t.usage.input_tokens, 7);
        assert_eq!(t.finish, Some(FinishReason::Length));

        let mut t = Tally::default();
        raw(WireFormat::Anthropic, &mut t, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}\n\n");
        assert_eq!(t.failed, Some((529, "overloaded_error".into())));
    }
}
