//! Decoding `streamGenerateContent?alt=sse` streams.

use super::response::{arguments, finish_reason, new_id, parse, CallIds};
use crate::canonical::{BlockKind, Delta, FinishReason, StreamEvent, Usage};
use crate::error::GatewayError;
use crate::format::StreamDecode;
use crate::sse::SseEvent;

/// Decodes a `streamGenerateContent?alt=sse` stream.
///
/// Each event is a whole `GenerateContentResponse` carrying the next
/// pieces. Text extends an open text block (thoughts a reasoning block);
/// each function call arrives complete and becomes a block of its own.
/// `Finish` is emitted by [`end`](StreamDecode::end) once a `finishReason`
/// was seen, with the latest usage.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    model: String,
    started: bool,
    /// The open block: its index, and whether it is reasoning.
    open: Option<(usize, bool)>,
    next_index: usize,
    ids: CallIds,
    /// Gemini's `finishReason` and `finishMessage`, or `None` with
    /// `blocked` for a blocked prompt.
    finish: Option<(String, Option<String>)>,
    blocked: bool,
    usage: Usage,
    finished: bool,
}

impl StreamDecoder {
    /// A decoder for one stream of `model`.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            ..Self::default()
        }
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    fn text(&mut self, text: String, thought: bool, out: &mut Vec<StreamEvent>) {
        let index = match self.open {
            Some((index, open_thought)) if open_thought == thought => index,
            _ => {
                self.close(out);
                let index = self.next_index;
                self.next_index += 1;
                let block = if thought {
                    BlockKind::Reasoning
                } else {
                    BlockKind::Text
                };
                out.push(StreamEvent::BlockStart { index, block });
                self.open = Some((index, thought));
                index
            }
        };
        let delta = if thought {
            Delta::Reasoning(text)
        } else {
            Delta::Text(text)
        };
        out.push(StreamEvent::Delta { index, delta });
    }
}

impl StreamDecode for StreamDecoder {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        let data = event.data.trim();
        if data.is_empty() || self.finished {
            return Ok(());
        }
        let resp = parse(data.as_bytes())?;
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: resp.response_id.clone().unwrap_or_else(new_id),
                model: resp
                    .model_version
                    .clone()
                    .unwrap_or_else(|| self.model.clone()),
            });
        }
        if let Some(u) = resp.usage_metadata {
            self.usage = u.to_usage();
        }
        if resp.candidates.is_empty()
            && resp
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            self.blocked = true;
        }
        let Some(candidate) = resp.candidates.into_iter().next() else {
            return Ok(());
        };
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(call) = &part.function_call {
                self.close(out);
                let index = self.next_index;
                self.next_index += 1;
                let id = self.ids.next(call.id.as_deref());
                out.push(StreamEvent::BlockStart {
                    index,
                    block: BlockKind::ToolCall {
                        id,
                        name: call.name.clone(),
                    },
                });
                out.push(StreamEvent::Delta {
                    index,
                    delta: Delta::ToolArguments(arguments(call)),
                });
                out.push(StreamEvent::BlockStop { index });
            } else if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                self.text(text, part.thought, out);
            }
        }
        if let Some(reason) = candidate.finish_reason {
            self.finish = Some((reason, candidate.finish_message));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        if self.finished {
            return Ok(());
        }
        let reason = match (&self.finish, self.blocked) {
            (Some((r, message)), _) => finish_reason(r, message.as_deref(), self.ids.any())?,
            (None, true) => FinishReason::ContentFilter,
            (None, false) => {
                return Err(GatewayError::bad_upstream("stream ended before completion"))
            }
        };
        self.close(out);
        self.finished = true;
        out.push(StreamEvent::Finish {
            reason,
            usage: self.usage,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::sse::SseParser;
    use serde_json::{json, Value};

    fn sse(events: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(e.to_string().as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
        }
        out
    }

    /// Feeds `bytes` in pieces of `piece` bytes through the SSE parser.
    fn decode(bytes: &[u8], piece: usize) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut parser = SseParser::new();
        let mut dec = StreamDecoder::new("gemini-2.5-flash");
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece) {
            let mut evs = Vec::new();
            parser.feed(chunk, &mut evs);
            for e in &evs {
                dec.event(e, &mut out)?;
            }
        }
        if let Some(e) = parser.finish() {
            dec.event(&e, &mut out)?;
        }
        dec.end(&mut out)?;
        Ok(out)
    }

    fn usage_json(prompt: u64, cand: u64, thoughts: u64) -> Value {
        json!({ "promptTokenCount": prompt, "candidatesTokenCount": cand,
                "thoughtsTokenCount": thoughts, "totalTokenCount": prompt + cand + thoughts })
    }

    #[test]
    fn thoughts_text_and_tool_calls_in_any_pieces() {
        let bytes = sse(&[
            json!({ "candidates": [{ "content": { "role": "model", "parts": [
                        { "text": "Plan", "thought": true }] } }],
                    "usageMetadata": usage_json(10, 0, 3),
                    "modelVersion": "gemini-2.5-flash", "responseId": "r1" }),
            json!({ "candidates": [{ "content": { "role": "model", "parts": [
                        { "text": "ning.", "thought": true }, { "text": "Héllo" }] } }] }),
            json!({ "candidates": [{ "content": { "role": "model", "parts": [
                        { "text": " 😀" },
                        { "functionCall": { "name": "weather", "args": { "city": "Paris" } } },
                        { "functionCall": { "name": "time", "args": {}, "id": "fc-9" } }] },
                    "finishReason": "STOP" }],
                    "usageMetadata": usage_json(10, 6, 3) }),
        ]);
        let want = vec![
            StreamEvent::Start {
                id: "r1".into(),
                model: "gemini-2.5-flash".into(),
            },
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Reasoning,
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Reasoning("Plan".into()),
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Reasoning("ning.".into()),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                block: BlockKind::Text,
            },
            StreamEvent::Delta {
                index: 1,
                delta: Delta::Text("Héllo".into()),
            },
            StreamEvent::Delta {
                index: 1,
                delta: Delta::Text(" 😀".into()),
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::BlockStart {
                index: 2,
                block: BlockKind::ToolCall {
                    id: "call_0".into(),
                    name: "weather".into(),
                },
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::ToolArguments("{\"city\":\"Paris\"}".into()),
            },
            StreamEvent::BlockStop { index: 2 },
            StreamEvent::BlockStart {
                index: 3,
                block: BlockKind::ToolCall {
                    id: "fc-9".into(),
                    name: "time".into(),
                },
            },
            StreamEvent::Delta {
                index: 3,
                delta: Delta::ToolArguments("{}".into()),
            },
            StreamEvent::BlockStop { index: 3 },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 9,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    reasoning_tokens: 3,
                    cache_write_1h_tokens: 0,
                },
            },
        ];
        // Gemini sent no ID for the first call: each decoding of the
        // answer (each turn of a conversation) gives it a fresh one.
        let mut ids = Vec::new();
        for piece in [1, 2, 3, 7, 64, bytes.len()] {
            let mut got = decode(&bytes, piece).unwrap();
            let StreamEvent::BlockStart {
                block: BlockKind::ToolCall { id, .. },
                ..
            } = &mut got[9]
            else {
                panic!("{:?}", got[9]);
            };
            assert!(id.starts_with("call_") && id.len() > 20, "{id}");
            ids.push(std::mem::replace(id, "call_0".into()));
            assert_eq!(got, want, "piece size {piece}");
        }
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "a generated call ID repeats");
    }

    #[test]
    fn text_then_max_tokens() {
        let bytes = sse(&[
            json!({ "candidates": [{ "content": { "parts": [{ "text": "Once" }] } }] }),
            json!({ "candidates": [{ "content": { "parts": [{ "text": "" }] },
                                     "finishReason": "MAX_TOKENS" }],
                    "usageMetadata": usage_json(4, 2, 0) }),
        ]);
        let evs = decode(&bytes, 5).unwrap();
        assert!(matches!(&evs[0], StreamEvent::Start { model, .. } if model == "gemini-2.5-flash"));
        assert_eq!(
            evs[1..],
            [
                StreamEvent::BlockStart {
                    index: 0,
                    block: BlockKind::Text
                },
                StreamEvent::Delta {
                    index: 0,
                    delta: Delta::Text("Once".into())
                },
                StreamEvent::BlockStop { index: 0 },
                StreamEvent::Finish {
                    reason: FinishReason::Length,
                    usage: Usage {
                        input_tokens: 4,
                        output_tokens: 2,
                        ..Default::default()
                    }
                },
            ]
        );
    }

    #[test]
    fn blocked_prompt_finishes_with_content_filter() {
        let bytes = sse(&[
            json!({ "promptFeedback": { "blockReason": "PROHIBITED_CONTENT" },
                                  "usageMetadata": usage_json(3, 0, 0) }),
        ]);
        let evs = decode(&bytes, 4).unwrap();
        assert_eq!(evs.len(), 2);
        assert!(matches!(
            &evs[1],
            StreamEvent::Finish { reason: FinishReason::ContentFilter, usage } if usage.input_tokens == 3
        ));
    }

    #[test]
    fn a_malformed_function_call_ends_the_stream_in_error() {
        let bytes = sse(&[
            json!({ "candidates": [{ "content": { "parts": [{ "text": "Calling." }] } }] }),
            json!({ "candidates": [{ "finishReason": "MALFORMED_FUNCTION_CALL" }],
                    "usageMetadata": usage_json(4, 2, 0) }),
        ]);
        let e = decode(&bytes, 7).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse);
        assert!(
            e.message().contains("MALFORMED_FUNCTION_CALL"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn cut_stream_errors() {
        let bytes =
            sse(&[json!({ "candidates": [{ "content": { "parts": [{ "text": "Hal" }] } }] })]);
        let e = decode(&bytes, 3).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse);
        assert_eq!(e.message(), "stream ended before completion");
        let e = decode(b"", 1).unwrap_err();
        assert_eq!(e.message(), "stream ended before completion");
    }

    #[test]
    fn error_events_and_garbage_fail() {
        let bytes = sse(&[
            json!({ "candidates": [{ "content": { "parts": [{ "text": "a" }] } }] }),
            json!({ "error": { "code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE" } }),
        ]);
        let e = decode(&bytes, 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        assert_eq!(e.message(), "The model is overloaded.");
        let e = decode(b"data: {not json\n\n", 4).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse);
    }
}
