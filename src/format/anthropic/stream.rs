//! Streams: a provider's SSE events to canonical events, canonical events to
//! a client's SSE stream.

use std::collections::HashMap;

use bytes::BytesMut;
use serde_json::{json, Value};

use super::{error_from_body, finish_from_wire, finish_to_wire, WireUsage};
use crate::canonical::{BlockKind, Delta, StreamEvent, Usage};
use crate::error::GatewayError;
use crate::format::{error_body, StreamDecode, StreamEncode, WireFormat};
use crate::json::quote;
use crate::sse::{write_event, SseEvent};

/// Decodes a provider's Anthropic Messages stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    finished: bool,
    /// Upstream block index to canonical index; `None` for skipped blocks.
    blocks: HashMap<u64, Option<usize>>,
    next_index: usize,
    /// The canonical block open now, if any.
    open: Option<usize>,
    usage: WireUsage,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn start_block(&mut self, upstream: u64, block: &Value, out: &mut Vec<StreamEvent>) {
        let s = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or_default();
        let (kind, initial) = match s("type") {
            "text" => (BlockKind::Text, non_empty(s("text")).map(Delta::Text)),
            "tool_use" => {
                let input = match block.get("input") {
                    Some(Value::Object(m)) if !m.is_empty() => {
                        Some(Delta::ToolArguments(Value::Object(m.clone()).to_string()))
                    }
                    _ => None,
                };
                (
                    BlockKind::ToolCall {
                        id: s("id").to_owned(),
                        name: s("name").to_owned(),
                    },
                    input,
                )
            }
            "thinking" => (
                BlockKind::Reasoning,
                non_empty(s("thinking")).map(Delta::Reasoning),
            ),
            "redacted_thinking" => (
                BlockKind::RedactedReasoning {
                    data: s("data").to_owned(),
                },
                None,
            ),
            _ => {
                self.blocks.insert(upstream, None);
                return;
            }
        };
        // Keep the grammar: at most one open block.
        if let Some(prev) = self.open.take() {
            out.push(StreamEvent::BlockStop { index: prev });
        }
        let index = self.next_index;
        self.next_index += 1;
        self.blocks.insert(upstream, Some(index));
        self.open = Some(index);
        out.push(StreamEvent::BlockStart { index, block: kind });
        if let Some(delta) = initial {
            out.push(StreamEvent::Delta { index, delta });
        }
        if s("type") == "thinking" {
            if let Some(sig) = non_empty(s("signature")) {
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

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl StreamDecode for StreamDecoder {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        if self.finished {
            return Ok(());
        }
        let name = event.event.as_deref();
        if name == Some("ping") {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&event.data).map_err(|e| {
            GatewayError::bad_upstream(format!("Anthropic stream event is not JSON: {e}"))
        })?;
        let ty = name
            .or_else(|| data.get("type").and_then(Value::as_str))
            .unwrap_or_default();
        let index = || {
            data.get("index").and_then(Value::as_u64).ok_or_else(|| {
                GatewayError::bad_upstream(format!("Anthropic `{ty}` event has no index"))
            })
        };
        if !self.started && !matches!(ty, "message_start" | "error" | "ping") {
            return Err(GatewayError::bad_upstream(format!(
                "Anthropic stream sent `{ty}` before `message_start`"
            )));
        }
        match ty {
            "error" => return Err(error_from_body(&data)),
            "ping" => {}
            "message_start" => {
                let msg = data.get("message").unwrap_or(&Value::Null);
                let s = |k: &str| msg.get(k).and_then(Value::as_str).unwrap_or_default();
                if self.started {
                    return Err(GatewayError::bad_upstream(
                        "Anthropic stream sent `message_start` twice",
                    ));
                }
                self.started = true;
                self.usage.update(msg.get("usage"));
                out.push(StreamEvent::Start {
                    id: s("id").to_owned(),
                    model: s("model").to_owned(),
                });
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                self.start_block(index()?, block, out);
            }
            "content_block_delta" => {
                let Some(idx) = self.lookup(index()?)? else {
                    return Ok(());
                };
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let s = |k: &str| delta.get(k).and_then(Value::as_str).map(str::to_owned);
                let d = match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => s("text").map(Delta::Text),
                    Some("input_json_delta") => s("partial_json").map(Delta::ToolArguments),
                    Some("thinking_delta") => s("thinking").map(Delta::Reasoning),
                    Some("signature_delta") => s("signature").map(Delta::Signature),
                    _ => None, // citations_delta and future kinds
                };
                if let Some(delta) = d.filter(|d| !delta_is_empty(d)) {
                    out.push(StreamEvent::Delta { index: idx, delta });
                }
            }
            "content_block_stop" => {
                if let Some(idx) = self.lookup(index()?)? {
                    if self.open == Some(idx) {
                        self.open = None;
                        out.push(StreamEvent::BlockStop { index: idx });
                    }
                }
            }
            "message_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                if let Some(r) = delta.get("stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_owned());
                }
                if let Some(q) = delta.get("stop_sequence").and_then(Value::as_str) {
                    self.stop_sequence = Some(q.to_owned());
                }
                self.usage.update(data.get("usage"));
            }
            "message_stop" => {
                if let Some(idx) = self.open.take() {
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

fn delta_is_empty(d: &Delta) -> bool {
    match d {
        Delta::Text(s) | Delta::ToolArguments(s) | Delta::Reasoning(s) | Delta::Signature(s) => {
            s.is_empty()
        }
    }
}

/// Encodes canonical events as an Anthropic Messages stream.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    started: bool,
    usage: Option<Usage>,
}

impl StreamEncoder {
    /// An encoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn message_start(&mut self, id: &str, model: &str, out: &mut BytesMut) {
        self.started = true;
        let usage = WireUsage::from_canonical(&self.usage.unwrap_or_default());
        let body = json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage.to_json(),
            },
        });
        write_event(out, "message_start", body.to_string().as_bytes());
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
                let cb = match block {
                    BlockKind::Text => json!({"type": "text", "text": ""}),
                    BlockKind::ToolCall { id, name } => {
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}})
                    }
                    BlockKind::Reasoning => {
                        json!({"type": "thinking", "thinking": "", "signature": ""})
                    }
                    BlockKind::RedactedReasoning { data } => {
                        json!({"type": "redacted_thinking", "data": data})
                    }
                };
                let body =
                    json!({"type": "content_block_start", "index": index, "content_block": cb});
                write_event(out, "content_block_start", body.to_string().as_bytes());
            }
            StreamEvent::Delta { index, delta } => {
                let (kind, field, text) = match delta {
                    Delta::Text(t) => ("text_delta", "text", t),
                    Delta::ToolArguments(t) => ("input_json_delta", "partial_json", t),
                    Delta::Reasoning(t) => ("thinking_delta", "thinking", t),
                    Delta::Signature(t) => ("signature_delta", "signature", t),
                };
                let body = format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"{kind}","{field}":{}}}}}"#,
                    quote(text)
                );
                write_event(out, "content_block_delta", body.as_bytes());
            }
            StreamEvent::BlockStop { index } => {
                let body = format!(r#"{{"type":"content_block_stop","index":{index}}}"#);
                write_event(out, "content_block_stop", body.as_bytes());
            }
            StreamEvent::Finish { reason, usage } => {
                let (stop_reason, stop_sequence) = finish_to_wire(reason);
                let body = json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": WireUsage::from_canonical(usage).to_json(),
                });
                write_event(out, "message_delta", body.to_string().as_bytes());
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
