//! Canonical events to a client's `chat.completion.chunk` stream.

use bytes::BytesMut;
use serde_json::{json, Value};

use super::response::response_id;
use super::{finish_reason_str, unix_now, usage_json};
use crate::canonical::{BlockKind, Delta, StreamEvent};
use crate::error::GatewayError;
use crate::format::{error_body, StreamEncode, WireFormat};
use crate::sse::write_data;

/// Encodes canonical events as a Chat Completions stream, as the official
/// SDKs parse it: `data: {chunk}` events, then `data: [DONE]`.
///
/// The first chunk carries `role: "assistant"`; text goes in
/// `delta.content`, reasoning in `delta.reasoning_content` (the DeepSeek /
/// vLLM extension), tool calls in `delta.tool_calls` numbered from 0.
/// Signatures and redacted reasoning are dropped. `Finish` sends the
/// `finish_reason` chunk, the usage chunk (`choices: []`) when the client
/// asked for usage, and `[DONE]`.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    started: bool,
    done: bool,
    /// Tool calls started so far.
    tool_count: usize,
    /// The open block: its index and, for a tool call, its number.
    tool_block: Option<(usize, usize)>,
}

impl StreamEncoder {
    /// An encoder for one stream; `include_usage` is the client's
    /// `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        StreamEncoder {
            include_usage,
            ..Self::default()
        }
    }

    fn start(&mut self, id: &str, model: &str, out: &mut BytesMut) {
        self.started = true;
        self.id = response_id(id);
        self.model = model.to_string();
        self.created = unix_now();
        self.chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
            out,
        );
    }

    fn chunk(&self, delta: Value, finish_reason: Value, out: &mut BytesMut) {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        write_data(out, &serde_json::to_vec(&chunk).unwrap_or_default());
    }
}

impl StreamEncode for StreamEncoder {
    fn event(&mut self, event: &StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        if let StreamEvent::Start { id, model } = event {
            if !self.started {
                self.start(id, model, out);
            }
            return;
        }
        if !self.started {
            // The grammar starts with Start; be safe if it did not.
            self.start("", "", out);
        }
        match event {
            StreamEvent::Start { .. } | StreamEvent::Usage(_) => {}
            StreamEvent::BlockStart {
                index,
                block: BlockKind::ToolCall { id, name },
            } => {
                let n = self.tool_count;
                self.tool_count += 1;
                self.tool_block = Some((*index, n));
                self.chunk(
                    json!({"tool_calls": [{
                        "index": n,
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }]}),
                    Value::Null,
                    out,
                );
            }
            StreamEvent::BlockStart { .. } | StreamEvent::BlockStop { .. } => {}
            StreamEvent::Delta { index, delta } => match delta {
                Delta::Text(t) if !t.is_empty() => {
                    self.chunk(json!({"content": t}), Value::Null, out)
                }
                Delta::Reasoning(t) if !t.is_empty() => {
                    self.chunk(json!({"reasoning_content": t}), Value::Null, out)
                }
                Delta::ToolArguments(a) if !a.is_empty() => {
                    if let Some((block, n)) = self.tool_block {
                        if block == *index {
                            self.chunk(
                                json!({"tool_calls": [{"index": n, "function": {"arguments": a}}]}),
                                Value::Null,
                                out,
                            );
                        }
                    }
                }
                _ => {}
            },
            StreamEvent::Finish { reason, usage } => {
                self.chunk(json!({}), json!(finish_reason_str(reason)), out);
                if self.include_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_json(usage),
                    });
                    write_data(out, &serde_json::to_vec(&chunk).unwrap_or_default());
                }
                write_data(out, b"[DONE]");
                self.done = true;
            }
        }
    }

    fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        if self.done {
            return;
        }
        write_data(out, &error_body(WireFormat::OpenAiChat, error));
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{FinishReason, Usage};
    use crate::format::openai_chat::StreamDecoder;
    use crate::format::StreamDecode;
    use crate::sse::SseParser;

    fn events() -> Vec<StreamEvent> {
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 30,
            cache_read_tokens: 4,
            cache_write_tokens: 0,
            reasoning_tokens: 6,
        };
        vec![
            StreamEvent::Start {
                id: "msg_1".into(),
                model: "claude-x".into(),
            },
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Reasoning,
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Reasoning("think".into()),
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Signature("sig".into()),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                block: BlockKind::Text,
            },
            StreamEvent::Delta {
                index: 1,
                delta: Delta::Text("Hello".into()),
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::BlockStart {
                index: 2,
                block: BlockKind::ToolCall {
                    id: "toolu_a".into(),
                    name: "read".into(),
                },
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::ToolArguments("{\"path\":".into()),
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::ToolArguments("\"a\"}".into()),
            },
            StreamEvent::BlockStop { index: 2 },
            StreamEvent::BlockStart {
                index: 3,
                block: BlockKind::ToolCall {
                    id: "toolu_b".into(),
                    name: "read".into(),
                },
            },
            StreamEvent::Delta {
                index: 3,
                delta: Delta::ToolArguments("{}".into()),
            },
            StreamEvent::BlockStop { index: 3 },
            StreamEvent::Usage(usage),
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage,
            },
        ]
    }

    fn encode(include_usage: bool, events: &[StreamEvent]) -> BytesMut {
        let mut enc = StreamEncoder::new(include_usage);
        let mut out = BytesMut::new();
        for e in events {
            enc.event(e, &mut out);
        }
        out
    }

    fn data_lines(bytes: &[u8]) -> Vec<String> {
        let mut parser = SseParser::new();
        let mut evs = Vec::new();
        parser.feed(bytes, &mut evs);
        assert!(!parser.has_pending());
        evs.into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn writes_chunks_as_the_sdks_parse_them() {
        let out = encode(true, &events());
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("data: {"));
        assert!(text.ends_with("data: [DONE]\n\n"));
        let lines = data_lines(&out);
        let chunks: Vec<Value> = lines[..lines.len() - 1]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for c in &chunks {
            assert_eq!(c["id"], "msg_1");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["model"], "claude-x");
            assert!(c["created"].as_u64().unwrap() > 1_700_000_000);
        }
        let deltas: Vec<Value> = chunks[..chunks.len() - 1]
            .iter()
            .map(|c| {
                assert_eq!(c["choices"][0]["index"], 0);
                assert!(c["choices"][0]["logprobs"].is_null());
                c["choices"][0]["delta"].clone()
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!({"role": "assistant", "content": ""}),
                json!({"reasoning_content": "think"}),
                json!({"content": "Hello"}),
                json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "read", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":"}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"a\"}"}}]}),
                json!({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "read", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                json!({}),
            ]
        );
        let finish_chunk = &chunks[chunks.len() - 2];
        assert_eq!(finish_chunk["choices"][0]["finish_reason"], "tool_calls");
        assert!(chunks[..chunks.len() - 2]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null()));
        let usage_chunk = &chunks[chunks.len() - 1];
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(
            usage_chunk["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
                   "prompt_tokens_details": {"cached_tokens": 4},
                   "completion_tokens_details": {"reasoning_tokens": 6}})
        );
    }

    #[test]
    fn no_usage_chunk_unless_asked() {
        let lines = data_lines(&encode(false, &events()));
        assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
        let last_chunk: Value = serde_json::from_str(&lines[lines.len() - 2]).unwrap();
        assert_eq!(last_chunk["choices"][0]["finish_reason"], "tool_calls");
        assert!(!lines.iter().any(|l| l.contains("\"usage\"")));
    }

    #[test]
    fn parses_back_with_our_decoder() {
        let out = encode(true, &events());
        let mut parser = SseParser::new();
        let mut sse = Vec::new();
        parser.feed(&out, &mut sse);
        let mut dec = StreamDecoder::new();
        let mut back = Vec::new();
        for ev in &sse {
            dec.event(ev, &mut back).unwrap();
        }
        dec.end(&mut back).unwrap();
        // What Chat Completions cannot carry (the signature) is gone; the
        // rest comes back event for event.
        let want: Vec<StreamEvent> = events()
            .into_iter()
            .filter(|e| {
                !matches!(
                    e,
                    StreamEvent::Delta {
                        delta: Delta::Signature(_),
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(back, want);
    }

    #[test]
    fn error_ends_the_stream() {
        let mut enc = StreamEncoder::new(true);
        let mut out = BytesMut::new();
        let evs = events();
        enc.event(&evs[0], &mut out);
        enc.event(&evs[5], &mut out);
        enc.event(&evs[6], &mut out);
        enc.error(
            &GatewayError::bad_upstream("stream ended before completion"),
            &mut out,
        );
        let len = out.len();
        enc.event(&evs[7], &mut out);
        enc.event(evs.last().unwrap(), &mut out);
        enc.error(&GatewayError::internal("again"), &mut out);
        assert_eq!(out.len(), len, "nothing after the error");
        let lines = data_lines(&out);
        let err: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(err["error"]["message"], "stream ended before completion");
        assert_eq!(err["error"]["type"], "server_error");
        assert!(!lines.iter().any(|l| l == "[DONE]"));
    }

    #[test]
    fn stop_sequence_finishes_as_stop() {
        let evs = [
            StreamEvent::Start {
                id: "".into(),
                model: "m".into(),
            },
            StreamEvent::Finish {
                reason: FinishReason::StopSequence(Some("END".into())),
                usage: Usage::default(),
            },
        ];
        let lines = data_lines(&encode(false, &evs));
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert!(first["id"].as_str().unwrap().starts_with("chatcmpl-"));
        let fin: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(fin["choices"][0]["finish_reason"], "stop");
        assert_eq!(lines.len(), 3);
    }
}
