//! Streams: a provider's SSE events to canonical events, canonical events to
//! a client's SSE stream.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use bytes::BytesMut;
use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{error_from_body, finish_from_wire, finish_to_wire, WireUsage};
use crate::canonical::{BlockKind, Delta, StreamEvent, Usage};
use crate::error::GatewayError;
use crate::format::{error_body, StreamDecode, StreamEncode, WireFormat};
use crate::sse::{write_event, SseEvent};

/// Decodes a provider's Anthropic Messages stream.
///
/// Each event's `data` is read into small typed structs that borrow their
/// strings from the event (no `serde_json::Value` per event); only `error`
/// events are read as a `Value`.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    finished: bool,
    /// Upstream block index to canonical index; `None` for skipped blocks.
    blocks: HashMap<u64, Option<usize>>,
    next_index: usize,
    /// The canonical block open now, if any, and its kind.
    open: Option<(usize, OpenKind)>,
    usage: WireUsage,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
}

/// What a block takes as deltas (a redacted thinking block takes none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    ToolCall,
    Reasoning,
    RedactedReasoning,
}

impl OpenKind {
    fn of(block: &BlockKind) -> Self {
        match block {
            BlockKind::Text => OpenKind::Text,
            BlockKind::ToolCall { .. } => OpenKind::ToolCall,
            BlockKind::Reasoning => OpenKind::Reasoning,
            BlockKind::RedactedReasoning { .. } => OpenKind::RedactedReasoning,
        }
    }

    fn takes(self, delta: &Delta) -> bool {
        matches!(
            (self, delta),
            (OpenKind::Text, Delta::Text(_))
                | (OpenKind::ToolCall, Delta::ToolArguments(_))
                | (
                    OpenKind::Reasoning,
                    Delta::Reasoning(_) | Delta::Signature(_)
                )
        )
    }
}

/// A JSON string, borrowed from the input unless it holds escapes.
///
/// (`Option<Cow<str>>` with `#[serde(borrow)]` would always allocate: serde
/// borrows only a bare `Cow<str>` field.)
#[derive(Debug, Default)]
struct Str<'a>(Cow<'a, str>);

impl Str<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The text of an optional string field; empty when absent.
fn text<'s>(s: &'s Option<Str<'_>>) -> &'s str {
    s.as_ref().map(Str::as_str).unwrap_or_default()
}

/// One event's `data`: the fields the decoder reads, of every event kind.
#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    index: Option<u64>,
    /// `message_start`.
    #[serde(borrow)]
    message: Option<WireMessage<'a>>,
    /// `content_block_start`.
    #[serde(borrow)]
    content_block: Option<WireBlock<'a>>,
    /// `content_block_delta` and `message_delta`.
    #[serde(borrow)]
    delta: Option<WireDelta<'a>>,
    /// `message_delta`.
    usage: Option<WireUsageIn>,
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    usage: Option<WireUsageIn>,
}

/// A `content_block` (all kinds in one).
#[derive(Deserialize, Default)]
struct WireBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    thinking: Option<Str<'a>>,
    #[serde(borrow)]
    signature: Option<Str<'a>>,
    #[serde(borrow)]
    data: Option<Str<'a>>,
}

/// A `delta`: a block's (`type` and its text field) or the message's
/// (`stop_reason`, `stop_sequence`).
#[derive(Deserialize, Default)]
struct WireDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    partial_json: Option<Str<'a>>,
    #[serde(borrow)]
    thinking: Option<Str<'a>>,
    #[serde(borrow)]
    signature: Option<Str<'a>>,
    #[serde(borrow)]
    stop_reason: Option<Str<'a>>,
    #[serde(borrow)]
    stop_sequence: Option<Str<'a>>,
}

/// A wire `usage` object; absent or `null` counts leave ours as they are.
#[derive(Deserialize)]
struct WireUsageIn {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreationIn>,
}

/// The split of a wire `usage`'s cache writes by lifetime.
#[derive(Deserialize)]
struct CacheCreationIn {
    ephemeral_1h_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Overwrites each count that `usage` carries.
    fn apply(&mut self, usage: Option<WireUsageIn>) {
        let Some(u) = usage else { return };
        let set = |dst: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut self.input, u.input_tokens);
        set(&mut self.output, u.output_tokens);
        set(&mut self.cache_read, u.cache_read_input_tokens);
        set(&mut self.cache_write, u.cache_creation_input_tokens);
        set(
            &mut self.cache_write_1h,
            u.cache_creation.and_then(|c| c.ephemeral_1h_input_tokens),
        );
    }
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn start_block(&mut self, upstream: u64, block: WireBlock<'_>, out: &mut Vec<StreamEvent>) {
        let thinking = text(&block.kind) == "thinking";
        let (kind, initial) = match text(&block.kind) {
            "text" => (BlockKind::Text, non_empty(block.text).map(Delta::Text)),
            "tool_use" => {
                // Anthropic sends `input: {}`; arguments come as deltas.
                let input = block
                    .input
                    .filter(|raw| raw.get().starts_with('{'))
                    .and_then(|raw| serde_json::from_str::<Map<String, Value>>(raw.get()).ok())
                    .filter(|m| !m.is_empty())
                    .map(|m| Delta::ToolArguments(Value::Object(m).to_string()));
                (
                    BlockKind::ToolCall {
                        id: text(&block.id).to_owned(),
                        name: text(&block.name).to_owned(),
                    },
                    input,
                )
            }
            "thinking" => (
                BlockKind::Reasoning,
                non_empty(block.thinking).map(Delta::Reasoning),
            ),
            "redacted_thinking" => (
                BlockKind::RedactedReasoning {
                    data: text(&block.data).to_owned(),
                },
                None,
            ),
            _ => {
                self.blocks.insert(upstream, None);
                return;
            }
        };
        // Keep the grammar: at most one open block.
        if let Some((prev, _)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index: prev });
        }
        let index = self.next_index;
        self.next_index += 1;
        self.blocks.insert(upstream, Some(index));
        self.open = Some((index, OpenKind::of(&kind)));
        out.push(StreamEvent::BlockStart { index, block: kind });
        if let Some(delta) = initial {
            out.push(StreamEvent::Delta { index, delta });
        }
        if thinking {
            if let Some(sig) = non_empty(block.signature) {
                out.push(StreamEvent::Delta {
                    index,
                    delta: Delta::Signature(sig),
                });
            }
        }
    }

    /// The canonical index of upstream block `upstream`; `Ok(None)` when skipped.
    fn lookup(&self, upstream: u64) -> Result<Option<usize>, GatewayError> {
        self.blocks.get(&upstream).copied().ok_or_else(|| {
            GatewayError::bad_upstream(format!(
                "Anthropic stream refers to block {upstream} before it started"
            ))
        })
    }
}

/// The string, owned, unless absent or empty.
fn non_empty(s: Option<Str<'_>>) -> Option<String> {
    s.filter(|s| !s.0.is_empty()).map(|s| s.0.into_owned())
}

/// An `error` event's body as the gateway error it reports.
fn error_event(data: &str) -> GatewayError {
    match serde_json::from_str::<Value>(data) {
        Ok(body) => error_from_body(&body),
        Err(e) => not_json(e),
    }
}

fn not_json(e: serde_json::Error) -> GatewayError {
    GatewayError::bad_upstream(format!("Anthropic stream event is not JSON: {e}"))
}

impl StreamDecode for StreamDecoder {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        if self.finished {
            return Ok(());
        }
        let name = event.event.as_deref();
        match name {
            Some("ping") => return Ok(()),
            Some("error") => return Err(error_event(&event.data)),
            // Events this decoder does not read are skipped (as the SDKs
            // do) without parsing, once the message has started.
            Some(
                "message_start"
                | "content_block_start"
                | "content_block_delta"
                | "content_block_stop"
                | "message_delta"
                | "message_stop",
            )
            | None => {}
            Some(_) if self.started => return Ok(()),
            Some(other) => {
                return Err(GatewayError::bad_upstream(format!(
                    "Anthropic stream sent `{other}` before `message_start`"
                )))
            }
        }
        let data: WireEvent = serde_json::from_str(&event.data).map_err(|e| {
            if e.is_data() {
                GatewayError::bad_upstream(format!(
                    "Anthropic `{}` event is malformed: {e}",
                    name.unwrap_or("unnamed")
                ))
            } else {
                not_json(e)
            }
        })?;
        let ty = name
            .or_else(|| data.kind.as_ref().map(Str::as_str))
            .unwrap_or_default();
        let index = || {
            data.index.ok_or_else(|| {
                GatewayError::bad_upstream(format!("Anthropic `{ty}` event has no index"))
            })
        };
        if !self.started && !matches!(ty, "message_start" | "error" | "ping") {
            return Err(GatewayError::bad_upstream(format!(
                "Anthropic stream sent `{ty}` before `message_start`"
            )));
        }
        match ty {
            "error" => return Err(error_event(&event.data)),
            "ping" => {}
            "message_start" => {
                if self.started {
                    return Err(GatewayError::bad_upstream(
                        "Anthropic stream sent `message_start` twice",
                    ));
                }
                self.started = true;
                let (id, model) = match data.message {
                    Some(msg) => {
                        self.usage.apply(msg.usage);
                        (text(&msg.id).to_owned(), text(&msg.model).to_owned())
                    }
                    None => (String::new(), String::new()),
                };
                out.push(StreamEvent::Start { id, model });
            }
            "content_block_start" => {
                let upstream = index()?;
                self.start_block(upstream, data.content_block.unwrap_or_default(), out);
            }
            "content_block_delta" => {
                let Some(idx) = self.lookup(index()?)? else {
                    return Ok(());
                };
                let wire = data.delta.unwrap_or_default();
                let d = match text(&wire.kind) {
                    "text_delta" => non_empty(wire.text).map(Delta::Text),
                    "input_json_delta" => non_empty(wire.partial_json).map(Delta::ToolArguments),
                    "thinking_delta" => non_empty(wire.thinking).map(Delta::Reasoning),
                    "signature_delta" => non_empty(wire.signature).map(Delta::Signature),
                    _ => None, // citations_delta and future kinds
                };
                if let Some(delta) = d {
                    // Content for a block that is not open, or that does
                    // not fit it, would reach the client as a broken
                    // stream: the upstream is at fault, say so.
                    match self.open {
                        Some((open, kind)) if open == idx && kind.takes(&delta) => {}
                        Some((open, _)) if open == idx => {
                            return Err(GatewayError::bad_upstream(format!(
                                "Anthropic stream sent a `{}` for block {} of another kind",
                                text(&wire.kind),
                                index()?
                            )))
                        }
                        _ => {
                            return Err(GatewayError::bad_upstream(format!(
                                "Anthropic stream sent a delta for block {} after it stopped",
                                index()?
                            )))
                        }
                    }
                    out.push(StreamEvent::Delta { index: idx, delta });
                }
            }
            "content_block_stop" => {
                if let Some(idx) = self.lookup(index()?)? {
                    if self.open.is_some_and(|(open, _)| open == idx) {
                        self.open = None;
                        out.push(StreamEvent::BlockStop { index: idx });
                    }
                }
            }
            "message_delta" => {
                if let Some(delta) = data.delta {
                    if let Some(r) = delta.stop_reason {
                        self.stop_reason = Some(r.0.into_owned());
                    }
                    if let Some(q) = delta.stop_sequence {
                        self.stop_sequence = Some(q.0.into_owned());
                    }
                }
                self.usage.apply(data.usage);
            }
            "message_stop" => {
                if let Some((idx, _)) = self.open.take() {
                    out.push(StreamEvent::BlockStop { index: idx });
                }
                self.finished = true;
                out.push(StreamEvent::Finish {
                    reason: finish_from_wire(
                        self.stop_reason.as_deref(),
                        self.stop_sequence.as_deref(),
                    ),
                    usage: self.usage.to_canonical(),
                });
            }
            _ => {} // unknown events are skipped, as the SDKs do
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        if self.finished {
            Ok(())
        } else {
            Err(GatewayError::bad_upstream("stream ended before completion"))
        }
    }
}

/// Encodes canonical events as an Anthropic Messages stream.
///
/// Each event's JSON is written from small typed structs that borrow from
/// the canonical event, fields in the order the API sends them.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    started: bool,
    usage: Option<Usage>,
    /// A `tool_use` block was sent.
    has_calls: bool,
    /// Reused buffer for each event's JSON.
    scratch: Vec<u8>,
}

/// `message_start`.
#[derive(Serialize)]
struct MessageStartOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: StartMessageOut<'a>,
}

#[derive(Serialize)]
struct StartMessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    /// Always `[]`.
    content: [(); 0],
    /// Always `null`.
    stop_reason: (),
    /// Always `null`.
    stop_sequence: (),
    usage: UsageOut,
}

/// A wire `usage` object.
#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    /// Only when some writes were for an hour: the rest are the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation: Option<CacheCreationOut>,
}

/// A wire `usage`'s cache writes by lifetime.
#[derive(Serialize)]
struct CacheCreationOut {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

impl From<WireUsage> for UsageOut {
    fn from(u: WireUsage) -> Self {
        let hour = u.cache_write_1h.min(u.cache_write);
        UsageOut {
            input_tokens: u.input,
            cache_creation_input_tokens: u.cache_write,
            cache_read_input_tokens: u.cache_read,
            output_tokens: u.output,
            cache_creation: (hour > 0).then(|| CacheCreationOut {
                ephemeral_5m_input_tokens: u.cache_write - hour,
                ephemeral_1h_input_tokens: hour,
            }),
        }
    }
}

/// `content_block_start`.
#[derive(Serialize)]
struct BlockStartOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    content_block: BlockOut<'a>,
}

/// A `content_block` as it starts: empty, filled by deltas.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

/// `{}`.
#[derive(Serialize)]
struct EmptyObject {}

/// `content_block_delta`.
#[derive(Serialize)]
struct BlockDeltaOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    delta: DeltaOut<'a>,
}

/// A block's `delta`, tagged `text_delta`, `input_json_delta`, ...
#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaOut<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
}

/// `content_block_stop`.
#[derive(Serialize)]
struct BlockStopOut {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
}

/// `message_delta`.
#[derive(Serialize)]
struct MessageDeltaOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopOut<'a>,
    usage: UsageOut,
}

#[derive(Serialize)]
struct StopOut<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

impl StreamEncoder {
    /// An encoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends event `name` with `body` as its data.
    fn emit(&mut self, name: &str, body: &impl Serialize, out: &mut BytesMut) {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, body).expect("an event always serializes");
        write_event(out, name, &self.scratch);
    }

    fn message_start(&mut self, id: &str, model: &str, out: &mut BytesMut) {
        self.started = true;
        let usage = WireUsage::from_canonical(&self.usage.unwrap_or_default());
        let body = MessageStartOut {
            kind: "message_start",
            message: StartMessageOut {
                id,
                kind: "message",
                role: "assistant",
                model,
                content: [],
                stop_reason: (),
                stop_sequence: (),
                usage: usage.into(),
            },
        };
        self.emit("message_start", &body, out);
    }
}

impl StreamEncode for StreamEncoder {
    fn event(&mut self, event: &StreamEvent, out: &mut BytesMut) {
        if !self.started {
            match event {
                StreamEvent::Start { id, model } => {
                    self.message_start(id, model, out);
                    return;
                }
                StreamEvent::Usage(u) => {
                    self.usage = Some(*u);
                    return;
                }
                _ => {
                    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                    self.message_start(&id, "", out);
                }
            }
        }
        match event {
            StreamEvent::Start { .. } => {} // only once
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::BlockStart { index, block } => {
                let content_block = match block {
                    BlockKind::Text => BlockOut::Text { text: "" },
                    BlockKind::ToolCall { id, name } => {
                        self.has_calls = true;
                        BlockOut::ToolUse {
                            id,
                            name,
                            input: EmptyObject {},
                        }
                    }
                    BlockKind::Reasoning => BlockOut::Thinking {
                        thinking: "",
                        signature: "",
                    },
                    BlockKind::RedactedReasoning { data } => BlockOut::RedactedThinking { data },
                };
                let body = BlockStartOut {
                    kind: "content_block_start",
                    index: *index,
                    content_block,
                };
                self.emit("content_block_start", &body, out);
            }
            StreamEvent::Delta { index, delta } => {
                let delta = match delta {
                    Delta::Text(t) => DeltaOut::Text { text: t },
                    Delta::ToolArguments(t) => DeltaOut::InputJson { partial_json: t },
                    Delta::Reasoning(t) => DeltaOut::Thinking { thinking: t },
                    Delta::Signature(t) => DeltaOut::Signature { signature: t },
                };
                let body = BlockDeltaOut {
                    kind: "content_block_delta",
                    index: *index,
                    delta,
                };
                self.emit("content_block_delta", &body, out);
            }
            StreamEvent::BlockStop { index } => {
                let body = BlockStopOut {
                    kind: "content_block_stop",
                    index: *index,
                };
                self.emit("content_block_stop", &body, out);
            }
            StreamEvent::Finish { reason, usage } => {
                let (stop_reason, stop_sequence) = finish_to_wire(reason, self.has_calls);
                let body = MessageDeltaOut {
                    kind: "message_delta",
                    delta: StopOut {
                        stop_reason,
                        stop_sequence,
                    },
                    usage: WireUsage::from_canonical(usage).into(),
                };
                self.emit("message_delta", &body, out);
                write_event(out, "message_stop", br#"{"type":"message_stop"}"#);
            }
        }
    }

    fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        write_event(out, "error", &error_body(WireFormat::Anthropic, error));
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
