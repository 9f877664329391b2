//! A provider's `chat.completion.chunk` stream to canonical events.

use serde_json::Value;

use super::{finish_reason_from, usage_from};
use crate::canonical::{BlockKind, Delta, FinishReason, StreamEvent, Usage};
use crate::error::GatewayError;
use crate::format::{parse_upstream_error, StreamDecode, WireFormat};
use crate::sse::SseEvent;

/// Decodes a provider's Chat Completions stream.
///
/// Keeps the canonical grammar: text, reasoning (`reasoning_content`, or
/// `reasoning` as some servers name it) and each tool call (a new
/// `tool_calls[].index`) are blocks numbered from 0, one open at a time.
/// A `finish_reason` closes the open block; `data: [DONE]` emits `Finish`
/// with the last usage seen. Only the first choice is read.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    finished: bool,
    next_index: usize,
    open: Option<Open>,
    /// Upstream `tool_calls[].index` values whose block is closed.
    closed_tools: Vec<u64>,
    /// Tool calls seen, for upstreams that send no `index`.
    tool_count: u64,
    finish_reason: Option<FinishReason>,
    usage: Usage,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    index: usize,
    kind: OpenKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OpenKind {
    Text,
    Reasoning,
    Tool(u64),
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            if let OpenKind::Tool(i) = open.kind {
                self.closed_tools.push(i);
            }
            out.push(StreamEvent::BlockStop { index: open.index });
        }
    }

    /// Opens a block of `kind` unless one is already open; returns its index.
    fn ensure(&mut self, kind: OpenKind, block: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        if let Some(open) = self.open {
            if open.kind == kind {
                return open.index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(Open { index, kind });
        out.push(StreamEvent::BlockStart { index, block });
        index
    }

    fn text(&mut self, kind: OpenKind, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let (block, delta) = match kind {
            OpenKind::Reasoning => (BlockKind::Reasoning, Delta::Reasoning(text.to_string())),
            _ => (BlockKind::Text, Delta::Text(text.to_string())),
        };
        let index = self.ensure(kind, block, out);
        out.push(StreamEvent::Delta { index, delta });
    }

    fn tool_call(&mut self, tc: &Value, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        let id = tc
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let func = tc.get("function");
        let upstream = match tc.get("index").and_then(Value::as_u64) {
            Some(i) => i,
            None => match (id, self.open) {
                // No index: a fragment without an ID continues the open call.
                (
                    None,
                    Some(Open {
                        kind: OpenKind::Tool(i),
                        ..
                    }),
                ) => i,
                _ => u64::MAX - self.tool_count,
            },
        };
        let index = match self.open {
            Some(Open {
                index,
                kind: OpenKind::Tool(i),
            }) if i == upstream => index,
            _ => {
                if self.closed_tools.contains(&upstream) {
                    return Err(GatewayError::bad_upstream(format!(
                        "provider stream resumed tool call {upstream} after another block started"
                    )));
                }
                self.tool_count += 1;
                let block = BlockKind::ToolCall {
                    id: id
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("call_{}", uuid::Uuid::new_v4().simple())),
                    name: func
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                };
                self.close(out);
                self.ensure(OpenKind::Tool(upstream), block, out)
            }
        };
        let args = match func.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => String::new(),
        };
        if !args.is_empty() {
            out.push(StreamEvent::Delta {
                index,
                delta: Delta::ToolArguments(args),
            });
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.close(out);
        self.finished = true;
        out.push(StreamEvent::Finish {
            reason: self
                .finish_reason
                .take()
                .unwrap_or_else(|| FinishReason::Other("unknown".into())),
            usage: self.usage,
        });
    }
}

impl StreamDecode for StreamDecoder {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        if self.finished {
            return Ok(());
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            if !self.started {
                return Err(GatewayError::bad_upstream(
                    "provider stream ended before any chunk",
                ));
            }
            self.finish(out);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            GatewayError::bad_upstream(format!("provider stream chunk is not valid JSON: {e}"))
        })?;
        if event.event.as_deref() == Some("error")
            || chunk.get("error").is_some_and(|e| !e.is_null())
        {
            return Err(parse_upstream_error(
                WireFormat::OpenAiChat,
                http::StatusCode::BAD_GATEWAY,
                &http::HeaderMap::new(),
                data.as_bytes(),
            ));
        }
        if !chunk.is_object() {
            return Err(GatewayError::bad_upstream(
                "provider stream chunk is not a JSON object",
            ));
        }
        if !self.started {
            self.started = true;
            let field = |k: &str| {
                chunk
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            out.push(StreamEvent::Start {
                id: field("id"),
                model: field("model"),
            });
        }

        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        if let Some(choice) = choice {
            if let Some(delta) = choice.get("delta") {
                let reasoning = delta
                    .get("reasoning_content")
                    .and_then(Value::as_str)
                    .or_else(|| delta.get("reasoning").and_then(Value::as_str));
                if let Some(r) = reasoning {
                    self.text(OpenKind::Reasoning, r, out);
                }
                if let Some(t) = delta.get("content").and_then(Value::as_str) {
                    self.text(OpenKind::Text, t, out);
                }
                if let Some(t) = delta.get("refusal").and_then(Value::as_str) {
                    self.text(OpenKind::Text, t, out);
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    for tc in calls {
                        self.tool_call(tc, out)?;
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(finish_reason_from(reason));
                self.close(out);
            }
        }

        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = usage_from(usage);
            // The grammar has no usage inside a block; Finish carries it anyway.
            if self.open.is_none() {
                out.push(StreamEvent::Usage(self.usage));
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        if self.finished {
            return Ok(());
        }
        if self.started && self.finish_reason.is_some() {
            self.finish(out);
            return Ok(());
        }
        Err(GatewayError::bad_upstream("stream ended before completion"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::sse::SseParser;

    /// A stream as OpenAI sends it: text, two parallel tool calls with
    /// argument fragments, the finish chunk, the usage chunk, `[DONE]`.
    const RECORDED: &str = concat!(
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Checking \"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"both \\u00e9t\\u00e9 cities.\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_P\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\": \\\"Paris\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_R\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"city\\\": \\\"Rome\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[],\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":40,\"total_tokens\":122,\"prompt_tokens_details\":{\"cached_tokens\":64,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn decode_in_pieces(
        input: &[u8],
        sizes: &[usize],
    ) -> (Vec<StreamEvent>, Result<(), GatewayError>) {
        let mut parser = SseParser::new();
        let mut dec = StreamDecoder::new();
        let mut out = Vec::new();
        let mut rest = input;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            i += 1;
            let mut events = Vec::new();
            parser.feed(&rest[..n], &mut events);
            rest = &rest[n..];
            for ev in &events {
                if let Err(e) = dec.event(ev, &mut out) {
                    return (out, Err(e));
                }
            }
        }
        if let Some(ev) = parser.finish() {
            if let Err(e) = dec.event(&ev, &mut out) {
                return (out, Err(e));
            }
        }
        let end = dec.end(&mut out);
        (out, end)
    }

    fn expected() -> Vec<StreamEvent> {
        use StreamEvent as E;
        let usage = Usage {
            input_tokens: 82,
            output_tokens: 40,
            cache_read_tokens: 64,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        };
        vec![
            E::Start {
                id: "chatcmpl-B9".into(),
                model: "gpt-4.1-2025-04-14".into(),
            },
            E::BlockStart {
                index: 0,
                block: BlockKind::Text,
            },
            E::Delta {
                index: 0,
                delta: Delta::Text("Checking ".into()),
            },
            E::Delta {
                index: 0,
                delta: Delta::Text("both \u{e9}t\u{e9} cities.".into()),
            },
            E::BlockStop { index: 0 },
            E::BlockStart {
                index: 1,
                block: BlockKind::ToolCall {
                    id: "call_P".into(),
                    name: "weather".into(),
                },
            },
            E::Delta {
                index: 1,
                delta: Delta::ToolArguments("{\"ci".into()),
            },
            E::Delta {
                index: 1,
                delta: Delta::ToolArguments("ty\": \"Paris\"}".into()),
            },
            E::BlockStop { index: 1 },
            E::BlockStart {
                index: 2,
                block: BlockKind::ToolCall {
                    id: "call_R".into(),
                    name: "weather".into(),
                },
            },
            E::Delta {
                index: 2,
                delta: Delta::ToolArguments("{\"city\": \"Rome\"}".into()),
            },
            E::BlockStop { index: 2 },
            E::Usage(usage),
            E::Finish {
                reason: FinishReason::ToolCalls,
                usage,
            },
        ]
    }

    #[test]
    fn decodes_a_recorded_stream_split_anywhere() {
        let input = RECORDED.as_bytes();
        for sizes in [
            &[input.len()][..],
            &[1],
            &[2],
            &[3, 7, 1],
            &[17, 64, 5],
            &[250],
        ] {
            let (events, end) = decode_in_pieces(input, sizes);
            assert!(end.is_ok(), "{sizes:?}: {end:?}");
            assert_eq!(events, expected(), "pieces {sizes:?}");
        }
    }

    #[test]
    fn a_stream_cut_before_done_fails_at_end() {
        let cut = RECORDED.find("data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{},").unwrap();
        let (events, end) = decode_in_pieces(&RECORDED.as_bytes()[..cut], &[13]);
        let err = end.expect_err("no finish_reason, no [DONE]");
        assert_eq!(err.kind(), ErrorKind::BadUpstreamResponse);
        assert!(!events
            .iter()
            .any(|e| matches!(e, StreamEvent::Finish { .. })));
    }

    #[test]
    fn finish_reason_without_done_still_finishes_at_end() {
        let cut = RECORDED.find("data: [DONE]").unwrap();
        let (events, end) = decode_in_pieces(&RECORDED.as_bytes()[..cut], &[9]);
        assert!(end.is_ok());
        assert_eq!(events, expected());
    }

    #[test]
    fn reasoning_then_text_and_a_usage_in_the_last_choice_chunk() {
        let input = concat!(
            "data: {\"id\":\"ds-1\",\"model\":\"deepseek-reasoner\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"Hm\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"ds-1\",\"model\":\"deepseek-reasoner\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"m.\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"ds-1\",\"model\":\"deepseek-reasoner\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"42\",\"reasoning_content\":null},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"ds-1\",\"model\":\"deepseek-reasoner\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9,\"completion_tokens_details\":{\"reasoning_tokens\":7}}}\n\n",
            "data: [DONE]\n\n",
        );
        let (events, end) = decode_in_pieces(input.as_bytes(), &[31]);
        assert!(end.is_ok());
        let usage = Usage {
            input_tokens: 5,
            output_tokens: 9,
            reasoning_tokens: 7,
            ..Usage::default()
        };
        assert_eq!(
            events,
            vec![
                StreamEvent::Start {
                    id: "ds-1".into(),
                    model: "deepseek-reasoner".into()
                },
                StreamEvent::BlockStart {
                    index: 0,
                    block: BlockKind::Reasoning
                },
                StreamEvent::Delta {
                    index: 0,
                    delta: Delta::Reasoning("Hm".into())
                },
                StreamEvent::Delta {
                    index: 0,
                    delta: Delta::Reasoning("m.".into())
                },
                StreamEvent::BlockStop { index: 0 },
                StreamEvent::BlockStart {
                    index: 1,
                    block: BlockKind::Text
                },
                StreamEvent::Delta {
                    index: 1,
                    delta: Delta::Text("42".into())
                },
                StreamEvent::BlockStop { index: 1 },
                StreamEvent::Usage(usage),
                StreamEvent::Finish {
                    reason: FinishReason::Length,
                    usage
                },
            ]
        );
    }

    #[test]
    fn an_error_chunk_is_an_error() {
        let input = concat!(
            "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n",
        );
        let (_, end) = decode_in_pieces(input.as_bytes(), &[input.len()]);
        let err = end.expect_err("error chunk");
        assert_eq!(err.message(), "The server had an error");
        assert!(err.status().is_server_error());
        assert!(err.is_retryable());
    }

    #[test]
    fn garbage_and_empty_streams_fail() {
        let (_, end) = decode_in_pieces(b"data: {not json\n\n", &[64]);
        assert_eq!(end.unwrap_err().kind(), ErrorKind::BadUpstreamResponse);
        let (events, end) = decode_in_pieces(b"data: [DONE]\n\n", &[64]);
        assert!(events.is_empty());
        assert_eq!(end.unwrap_err().kind(), ErrorKind::BadUpstreamResponse);
        let (_, end) = decode_in_pieces(b"", &[64]);
        assert_eq!(end.unwrap_err().message(), "stream ended before completion");
    }
}
