//! Canonical events to a client's `chat.completion.chunk` stream.

use bytes::BytesMut;
use serde::Serialize;
use serde_json::Value;

use super::finish_reason_str;
use super::reasoning_details;
use super::response::response_id;
use super::unix_now;
use crate::canonical::{BlockKind, Delta, StreamEvent, Usage};
use crate::error::GatewayError;
use crate::format::{error_body, StreamEncode, WireFormat};
use crate::sse::write_data;

/// Encodes canonical events as a Chat Completions stream, as the official
/// SDKs parse it: `data: {chunk}` events, then `data: [DONE]`.
///
/// The first chunk carries `role: "assistant"`; text goes in
/// `delta.content`, reasoning in `delta.reasoning_content` (the DeepSeek /
/// vLLM extension), tool calls in `delta.tool_calls` numbered from 0. A
/// signed reasoning block, once complete, and a redacted one are also sent
/// whole as one `delta.reasoning_details` entry (see `reasoning_details`),
/// so that the client can send them back. `Finish` sends the
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
    /// The open reasoning block: its index, text and signature so far.
    reasoning: Option<(usize, String, Option<String>)>,
    /// `reasoning_details` entries sent so far.
    details: usize,
    /// Reused buffer for each chunk's JSON.
    scratch: Vec<u8>,
}

/// One `chat.completion.chunk`, fields in the order OpenAI sends them.
#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [Choice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<ChunkUsage>,
}

/// `choices[0]` of a chunk.
#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: ChoiceDelta<'a>,
    /// Always `null`.
    logprobs: (),
    finish_reason: Option<&'static str>,
}

/// A chunk's `delta`: only the fields set are written.
#[derive(Serialize, Default)]
struct ChoiceDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_details: Option<[Value; 1]>,
}

/// One `delta.tool_calls` entry: the first carries `id`, `type` and the
/// function's `name`; later ones only argument text.
#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// The usage chunk's `usage`.
#[derive(Serialize)]
struct ChunkUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
    completion_tokens_details: ReasoningTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

impl ChunkUsage {
    fn new(u: &Usage) -> Self {
        ChunkUsage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
            prompt_tokens_details: CachedTokens {
                cached_tokens: u.cache_read_tokens,
            },
            completion_tokens_details: ReasoningTokens {
                reasoning_tokens: u.reasoning_tokens,
            },
        }
    }
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
            ChoiceDelta {
                role: Some("assistant"),
                content: Some(""),
                ..ChoiceDelta::default()
            },
            None,
            out,
        );
    }

    /// Sends one `reasoning_details` entry.
    fn detail(&mut self, entry: Value, out: &mut BytesMut) {
        self.details += 1;
        let delta = ChoiceDelta {
            reasoning_details: Some([entry]),
            ..ChoiceDelta::default()
        };
        self.chunk(delta, None, out);
    }

    fn chunk(
        &mut self,
        delta: ChoiceDelta<'_>,
        finish_reason: Option<&'static str>,
        out: &mut BytesMut,
    ) {
        let choice = Choice {
            index: 0,
            delta,
            logprobs: (),
            finish_reason,
        };
        self.write(Some(choice), None, out);
    }

    /// Writes one chunk: with `choices: [choice]`, or `choices: []` and
    /// the usage.
    fn write(&mut self, choice: Option<Choice<'_>>, usage: Option<ChunkUsage>, out: &mut BytesMut) {
        self.scratch.clear();
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: choice.as_slice(),
            usage,
        };
        serde_json::to_writer(&mut self.scratch, &chunk).expect("a chunk always serializes");
        write_data(out, &self.scratch);
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
                let call = ToolCallDelta {
                    index: n,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(name),
                        arguments: "",
                    },
                };
                self.chunk(
                    ChoiceDelta {
                        tool_calls: Some([call]),
                        ..ChoiceDelta::default()
                    },
                    None,
                    out,
                );
            }
            StreamEvent::BlockStart {
                index,
                block: BlockKind::Reasoning,
            } => self.reasoning = Some((*index, String::new(), None)),
            StreamEvent::BlockStart {
                block: BlockKind::RedactedReasoning { data },
                ..
            } => self.detail(reasoning_details::redacted(data, self.details), out),
            StreamEvent::BlockStart { .. } => {}
            StreamEvent::BlockStop { index } => {
                if let Some((block, text, Some(sig))) = self.reasoning.take() {
                    if block == *index {
                        let entry = reasoning_details::signed(&text, &sig, self.details);
                        self.detail(entry, out);
                    }
                }
            }
            StreamEvent::Delta { index, delta } => match delta {
                Delta::Text(t) if !t.is_empty() => self.chunk(
                    ChoiceDelta {
                        content: Some(t),
                        ..ChoiceDelta::default()
                    },
                    None,
                    out,
                ),
                Delta::Reasoning(t) if !t.is_empty() => {
                    if let Some((_, text, _)) = self.reasoning.as_mut().filter(|r| r.0 == *index) {
                        text.push_str(t);
                    }
                    self.chunk(
                        ChoiceDelta {
                            reasoning_content: Some(t),
                            ..ChoiceDelta::default()
                        },
                        None,
                        out,
                    )
                }
                Delta::Signature(s) => {
                    if let Some((_, _, sig)) = self.reasoning.as_mut().filter(|r| r.0 == *index) {
                        sig.get_or_insert_with(String::new).push_str(s);
                    }
                }
                Delta::ToolArguments(a) if !a.is_empty() => {
                    if let Some((block, n)) = self.tool_block {
                        if block == *index {
                            let call = ToolCallDelta {
                                index: n,
                                id: None,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: a,
                                },
                            };
                            self.chunk(
                                ChoiceDelta {
                                    tool_calls: Some([call]),
                                    ..ChoiceDelta::default()
                                },
                                None,
                                out,
                            );
                        }
                    }
                }
                _ => {}
            },
            StreamEvent::Finish { reason, usage } => {
                let finish = finish_reason_str(reason, self.tool_count > 0);
                self.chunk(ChoiceDelta::default(), Some(finish), out);
                if self.include_usage {
                    self.write(None, Some(ChunkUsage::new(usage)), out);
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
    use crate::canonical::FinishReason;
    use crate::format::openai_chat::StreamDecoder;
    use crate::format::StreamDecode;
    use crate::sse::SseParser;
    use serde_json::{json, Value};

    fn events() -> Vec<StreamEvent> {
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 30,
            cache_read_tokens: 4,
            cache_write_tokens: 0,
            reasoning_tokens: 6,
            cache_write_1h_tokens: 0,
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
                // The signed block, whole, once it is complete.
                json!({"reasoning_details": [{"type": "reasoning.text", "text": "think",
                    "signature": "sig", "format": "anthropic-claude-v1", "index": 0}]}),
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
        // The provider-side decoder does not read `reasoning_details` (a
        // Chat provider's signatures would not be Anthropic's), so the
        // signature is gone; the rest comes back event for event.
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

    #[test]
    fn chunks_carry_exactly_the_sdk_fields_in_openai_order() {
        let evs = [
            StreamEvent::Start {
                id: "msg_1".into(),
                model: "m".into(),
            },
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Text,
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Text("say \"hi\"\n".into()),
            },
            StreamEvent::Finish {
                reason: FinishReason::Stop,
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 2,
                    ..Usage::default()
                },
            },
        ];
        let lines = data_lines(&encode(true, &evs));
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        let created = first["created"].as_u64().unwrap();
        let head = format!(
            r#"{{"id":"msg_1","object":"chat.completion.chunk","created":{created},"model":"m","#
        );
        let choice = |delta: &str, finish: &str| {
            format!(
                r#"{head}"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#
            )
        };
        assert_eq!(
            lines,
            vec![
                choice(r#"{"role":"assistant","content":""}"#, "null"),
                choice(r#"{"content":"say \"hi\"\n"}"#, "null"),
                choice("{}", r#""stop""#),
                format!(
                    r#"{head}"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{{"cached_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0}}}}}}"#
                ),
                "[DONE]".to_string(),
            ]
        );
    }
}
