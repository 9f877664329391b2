//! Canonical events as the Responses event stream.

use bytes::BytesMut;
use serde::Serialize;
use serde_json::{json, Value};

use super::response::{
    function_call_item, message_item, new_item_id, now_secs, output_text, reasoning_item,
    response_id, response_object, status_for, summary_text, Carried, Envelope,
};
use crate::canonical::{BlockKind, Delta, StreamEvent, Usage};
use crate::error::GatewayError;
use crate::format::errors::openai_type;
use crate::format::StreamEncode;
use crate::sse;

/// Encodes canonical events as a Responses stream.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    /// The next `sequence_number`.
    seq: u64,
    started: bool,
    /// A terminal event (`response.completed`, `.incomplete`, `.failed`) was sent.
    done: bool,
    env: Envelope,
    /// Completed output items, in order.
    output: Vec<Value>,
    open: Option<OpenItem>,
    /// The canonical index of a block that has no output item (dropped).
    skipped: Option<usize>,
    usage: Option<Usage>,
    /// Reused buffer for each delta event's JSON.
    scratch: Vec<u8>,
}

/// A `*.delta` event, written from borrowed parts (the per-token path).
#[derive(Serialize)]
struct DeltaEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    delta: &'a str,
    /// `[]` on text deltas.
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
}

#[derive(Debug)]
struct OpenItem {
    block: usize,
    item_id: String,
    kind: OpenKind,
    /// Text, arguments or reasoning received so far.
    buf: String,
}

#[derive(Debug)]
enum OpenKind {
    Message,
    FunctionCall {
        call_id: String,
        name: String,
    },
    /// With the signature, once it has come.
    Reasoning(Option<String>),
}

impl StreamEncoder {
    /// An encoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(&mut self, out: &mut BytesMut, ty: &str, mut data: Value) {
        if let Value::Object(map) = &mut data {
            map.insert("type".into(), Value::from(ty));
            map.insert("sequence_number".into(), Value::from(self.seq));
        }
        self.seq += 1;
        let bytes = serde_json::to_vec(&data).unwrap_or_default();
        sse::write_event(out, ty, &bytes);
    }

    fn start(&mut self, id: &str, model: &str, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        self.env = Envelope {
            id: response_id(id),
            model: model.to_string(),
            created_at: now_secs(),
        };
        let resp = response_object(&self.env, "in_progress", None, None, Vec::new(), None);
        self.emit(out, "response.created", json!({ "response": resp }));
        let resp = response_object(&self.env, "in_progress", None, None, Vec::new(), None);
        self.emit(out, "response.in_progress", json!({ "response": resp }));
    }

    fn open_block(&mut self, block: usize, kind: &BlockKind, out: &mut BytesMut) {
        self.close_block(out);
        let output_index = self.output.len();
        let (item_id, kind) = match kind {
            BlockKind::Text => (new_item_id("msg"), OpenKind::Message),
            BlockKind::ToolCall { id, name } => (
                new_item_id("fc"),
                OpenKind::FunctionCall {
                    call_id: id.clone(),
                    name: name.clone(),
                },
            ),
            BlockKind::Reasoning => (new_item_id("rs"), OpenKind::Reasoning(None)),
            BlockKind::RedactedReasoning { data } => {
                // Complete as it starts: an item with nothing to stream.
                let item = reasoning_item(&new_item_id("rs"), None, Some(Carried::Redacted(data)));
                for ty in ["response.output_item.added", "response.output_item.done"] {
                    self.emit(
                        out,
                        ty,
                        json!({ "output_index": output_index, "item": item }),
                    );
                }
                self.output.push(item);
                self.skipped = Some(block);
                return;
            }
        };
        match &kind {
            OpenKind::Message => {
                let item = message_item(&item_id, &[], "in_progress");
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({ "output_index": output_index, "item": item }),
                );
                self.emit(
                    out,
                    "response.content_part.added",
                    json!({
                        "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "part": output_text(""),
                    }),
                );
            }
            OpenKind::FunctionCall { call_id, name } => {
                let item = function_call_item(&item_id, call_id, name, "", "in_progress");
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({ "output_index": output_index, "item": item }),
                );
            }
            OpenKind::Reasoning(_) => {
                let item = reasoning_item(&item_id, None, None);
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({ "output_index": output_index, "item": item }),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({
                        "item_id": item_id, "output_index": output_index,
                        "summary_index": 0, "part": summary_text(""),
                    }),
                );
            }
        }
        self.open = Some(OpenItem {
            block,
            item_id,
            kind,
            buf: String::new(),
        });
    }

    fn delta(&mut self, block: usize, delta: &Delta, out: &mut BytesMut) {
        let output_index = self.output.len();
        let Some(open) = self.open.as_mut().filter(|o| o.block == block) else {
            return;
        };
        let mut data = DeltaEvent {
            kind: "",
            sequence_number: self.seq,
            item_id: &open.item_id,
            output_index,
            content_index: None,
            summary_index: None,
            delta: "",
            logprobs: None,
        };
        match (&mut open.kind, delta) {
            (OpenKind::Message, Delta::Text(t)) => {
                open.buf.push_str(t);
                data.kind = "response.output_text.delta";
                data.content_index = Some(0);
                data.delta = t;
                data.logprobs = Some([]);
            }
            (OpenKind::FunctionCall { .. }, Delta::ToolArguments(a)) => {
                open.buf.push_str(a);
                data.kind = "response.function_call_arguments.delta";
                data.delta = a;
            }
            (OpenKind::Reasoning(sig), Delta::Signature(s)) => {
                sig.get_or_insert_with(String::new).push_str(s);
                return;
            }
            (OpenKind::Reasoning(_), Delta::Reasoning(t)) => {
                open.buf.push_str(t);
                data.kind = "response.reasoning_summary_text.delta";
                data.summary_index = Some(0);
                data.delta = t;
            }
            // Mismatched deltas have nowhere to go.
            _ => return,
        }
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, &data).expect("a delta event always serializes");
        sse::write_event(out, data.kind, &self.scratch);
        self.seq += 1;
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        let Some(open) = self.open.take() else {
            return;
        };
        let output_index = self.output.len();
        let OpenItem {
            item_id, kind, buf, ..
        } = open;
        let item = match kind {
            OpenKind::Message => {
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({
                        "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "text": buf, "logprobs": [],
                    }),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({
                        "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "part": output_text(&buf),
                    }),
                );
                message_item(&item_id, &[&buf], "completed")
            }
            OpenKind::FunctionCall { call_id, name } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({
                        "item_id": item_id, "output_index": output_index,
                        "name": name, "arguments": buf,
                    }),
                );
                function_call_item(&item_id, &call_id, &name, &buf, "completed")
            }
            OpenKind::Reasoning(signature) => {
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({
                        "item_id": item_id, "output_index": output_index,
                        "summary_index": 0, "text": buf,
                    }),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({
                        "item_id": item_id, "output_index": output_index,
                        "summary_index": 0, "part": summary_text(&buf),
                    }),
                );
                let carried = signature.as_deref().map(Carried::Signature);
                reasoning_item(&item_id, Some(&buf), carried)
            }
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({ "output_index": output_index, "item": item }),
        );
        self.output.push(item);
    }
}

impl StreamEncode for StreamEncoder {
    fn event(&mut self, event: &StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        if let StreamEvent::Start { id, model } = event {
            self.start(id, model, out);
            return;
        }
        // Tolerate a missing Start: the stream still opens properly.
        self.start("", "", out);
        match event {
            StreamEvent::Start { .. } => {}
            StreamEvent::BlockStart { index, block } => self.open_block(*index, block, out),
            StreamEvent::Delta { index, delta } => self.delta(*index, delta, out),
            StreamEvent::BlockStop { index } => {
                if self.skipped == Some(*index) {
                    self.skipped = None;
                } else if self.open.as_ref().is_some_and(|o| o.block == *index) {
                    self.close_block(out);
                }
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Finish { reason, usage } => {
                self.close_block(out);
                let (status, incomplete) = status_for(reason);
                let output = std::mem::take(&mut self.output);
                let resp =
                    response_object(&self.env, status, incomplete, None, output, Some(usage));
                let ty = if status == "completed" {
                    "response.completed"
                } else {
                    "response.incomplete"
                };
                self.emit(out, ty, json!({ "response": resp }));
                self.done = true;
            }
        }
    }

    fn passed_through(&mut self, event: &crate::sse::SseEvent) {
        let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
            return;
        };
        if let Some(n) = v.get("sequence_number").and_then(Value::as_u64) {
            self.seq = n + 1;
        }
        if let Some(resp) = v.get("response") {
            if let Some(id) = resp.get("id").and_then(Value::as_str) {
                self.started = true;
                self.env.id = id.to_string();
                self.env.model = resp
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.env.created_at = resp
                    .get("created_at")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(now_secs);
            }
        }
    }

    fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.start("", "", out);
        let code = error
            .code()
            .map(str::to_owned)
            .unwrap_or_else(|| openai_type(error).to_string());
        self.emit(
            out,
            "error",
            json!({ "code": code, "message": error.message(), "param": error.param() }),
        );
        let output = std::mem::take(&mut self.output);
        let err = json!({ "code": code, "message": error.message() });
        let resp = response_object(
            &self.env,
            "failed",
            None,
            Some(err),
            output,
            self.usage.as_ref(),
        );
        self.emit(out, "response.failed", json!({ "response": resp }));
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::FinishReason;
    use crate::sse::{SseEvent, SseParser};

    fn run(events: &[StreamEvent], error: Option<GatewayError>) -> Vec<(String, Value)> {
        let mut enc = StreamEncoder::new();
        let mut out = BytesMut::new();
        for e in events {
            enc.event(e, &mut out);
        }
        if let Some(err) = error {
            enc.error(&err, &mut out);
            // Nothing after the error.
            enc.event(
                &StreamEvent::Finish {
                    reason: FinishReason::Stop,
                    usage: Usage::default(),
                },
                &mut out,
            );
        }
        let mut parsed: Vec<SseEvent> = Vec::new();
        let mut p = SseParser::new();
        p.feed(&out, &mut parsed);
        assert!(!p.has_pending());
        let evs: Vec<(String, Value)> = parsed
            .into_iter()
            .map(|e| {
                let v: Value = serde_json::from_str(&e.data).unwrap();
                let name = e.event.unwrap();
                assert_eq!(v["type"], name.as_str(), "event line matches type");
                (name, v)
            })
            .collect();
        for (i, (_, v)) in evs.iter().enumerate() {
            assert_eq!(
                v["sequence_number"], i as u64,
                "sequence numbers count from 0"
            );
        }
        evs
    }

    fn names(evs: &[(String, Value)]) -> Vec<&str> {
        evs.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn text_reasoning_and_tool_call_stream() {
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 2,
            cache_write_tokens: 0,
            reasoning_tokens: 1,
            cache_write_1h_tokens: 0,
        };
        let events = vec![
            StreamEvent::Start {
                id: "abc".into(),
                model: "gemini-x".into(),
            },
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Reasoning,
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Reasoning("Hmm".into()),
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Signature("sig".into()),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                block: BlockKind::RedactedReasoning { data: "x".into() },
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::BlockStart {
                index: 2,
                block: BlockKind::Text,
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::Text("Hel".into()),
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::Text("lo".into()),
            },
            StreamEvent::BlockStop { index: 2 },
            StreamEvent::Usage(usage),
            StreamEvent::BlockStart {
                index: 3,
                block: BlockKind::ToolCall {
                    id: "call_1".into(),
                    name: "weather".into(),
                },
            },
            StreamEvent::Delta {
                index: 3,
                delta: Delta::ToolArguments("{\"city\":".into()),
            },
            StreamEvent::Delta {
                index: 3,
                delta: Delta::ToolArguments("\"Paris\"}".into()),
            },
            StreamEvent::BlockStop { index: 3 },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage,
            },
        ];
        let evs = run(&events, None);
        assert_eq!(
            names(&evs),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let created = &evs[0].1["response"];
        assert_eq!(created["id"], "resp_abc");
        assert_eq!(created["model"], "gemini-x");
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["output"], json!([]));

        let reasoning_id = evs[2].1["item"]["id"].as_str().unwrap().to_string();
        assert!(reasoning_id.starts_with("rs_"));
        assert_eq!(evs[4].1["delta"], "Hmm");
        assert_eq!(evs[4].1["item_id"], reasoning_id.as_str());
        assert_eq!(evs[5].1["text"], "Hmm");

        // The reasoning item carries its signature; the redacted block is
        // an item of its own, complete at once, carrying its data.
        assert_eq!(evs[7].1["item"]["summary"][0]["text"], "Hmm");
        assert_eq!(
            evs[7].1["item"]["encrypted_content"],
            "tollgate.anthropic.signature:sig"
        );
        assert_eq!(evs[8].1["output_index"], 1);
        assert_eq!(evs[9].1["item"]["summary"], json!([]));
        assert_eq!(
            evs[9].1["item"]["encrypted_content"],
            "tollgate.anthropic.redacted:x"
        );
        let added = &evs[10].1;
        assert_eq!(added["output_index"], 2);
        assert_eq!(added["item"]["type"], "message");
        assert_eq!(added["item"]["status"], "in_progress");
        assert_eq!(added["item"]["content"], json!([]));
        let msg_id = added["item"]["id"].as_str().unwrap().to_string();
        assert_eq!(evs[11].1["part"]["text"], "");
        assert_eq!(evs[12].1["item_id"], msg_id.as_str());
        assert_eq!(evs[12].1["content_index"], 0);
        assert_eq!(evs[12].1["output_index"], 2);
        assert_eq!(evs[12].1["delta"], "Hel");
        assert_eq!(evs[14].1["text"], "Hello");
        assert_eq!(evs[15].1["part"]["text"], "Hello");
        assert_eq!(evs[16].1["item"]["status"], "completed");
        assert_eq!(evs[16].1["item"]["content"][0]["text"], "Hello");

        let fc = &evs[17].1;
        assert_eq!(fc["output_index"], 3);
        assert_eq!(fc["item"]["type"], "function_call");
        assert_eq!(fc["item"]["call_id"], "call_1");
        assert_eq!(fc["item"]["name"], "weather");
        assert_eq!(fc["item"]["arguments"], "");
        assert_eq!(evs[20].1["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(evs[21].1["item"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(evs[21].1["item"]["status"], "completed");

        let done = &evs[22].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["id"], "resp_abc");
        let output = done["output"].as_array().unwrap();
        assert_eq!(output.len(), 4);
        assert_eq!(output[0]["summary"][0]["text"], "Hmm");
        assert_eq!(
            output[0]["encrypted_content"],
            "tollgate.anthropic.signature:sig"
        );
        assert_eq!(
            output[1]["encrypted_content"],
            "tollgate.anthropic.redacted:x"
        );
        assert_eq!(output[2]["id"], msg_id.as_str());
        assert_eq!(output[3]["call_id"], "call_1");
        assert_eq!(done["usage"]["input_tokens"], 10);
        assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(
            done["usage"]["output_tokens_details"]["reasoning_tokens"],
            1
        );
        assert_eq!(done["usage"]["total_tokens"], 15);
    }

    #[test]
    fn length_finish_is_incomplete() {
        let evs = run(
            &[
                StreamEvent::Start {
                    id: "resp_1".into(),
                    model: "m".into(),
                },
                StreamEvent::BlockStart {
                    index: 0,
                    block: BlockKind::Text,
                },
                StreamEvent::Delta {
                    index: 0,
                    delta: Delta::Text("cut".into()),
                },
                // Finish with the block still open: it is closed first.
                StreamEvent::Finish {
                    reason: FinishReason::Length,
                    usage: Usage::default(),
                },
            ],
            None,
        );
        let last = evs.last().unwrap();
        assert_eq!(last.0, "response.incomplete");
        assert_eq!(last.1["response"]["status"], "incomplete");
        assert_eq!(
            last.1["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(last.1["response"]["output"][0]["content"][0]["text"], "cut");
        assert_eq!(evs[evs.len() - 2].0, "response.output_item.done");
    }

    #[test]
    fn an_error_after_pass_through_continues_that_response() {
        let mut enc = StreamEncoder::new();
        enc.passed_through(&SseEvent {
            event: Some("response.created".into()),
            data: r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_up_1","model":"gpt-x","created_at":5}}"#.into(),
        });
        enc.passed_through(&SseEvent {
            event: Some("response.output_text.delta".into()),
            data: r#"{"type":"response.output_text.delta","sequence_number":4,"delta":"hi"}"#
                .into(),
        });
        let mut out = BytesMut::new();
        enc.error(&GatewayError::bad_upstream("cut"), &mut out);
        let mut events = Vec::new();
        SseParser::new().feed(&out, &mut events);
        let names: Vec<_> = events.iter().map(|e| e.event.clone().unwrap()).collect();
        assert_eq!(names, ["error", "response.failed"]);
        let failed: Value = serde_json::from_str(&events[1].data).unwrap();
        assert_eq!(failed["response"]["id"], "resp_up_1");
        assert_eq!(failed["response"]["model"], "gpt-x");
        let first: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(first["sequence_number"], 5);
        assert_eq!(failed["sequence_number"], 6);
    }

    #[test]
    fn error_then_failed_then_nothing() {
        let evs = run(
            &[
                StreamEvent::Start {
                    id: "r".into(),
                    model: "m".into(),
                },
                StreamEvent::BlockStart {
                    index: 0,
                    block: BlockKind::Text,
                },
            ],
            Some(GatewayError::bad_upstream("stream ended before completion")),
        );
        assert_eq!(
            names(&evs),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "error",
                "response.failed",
            ]
        );
        let err = &evs[4].1;
        assert_eq!(err["code"], "server_error");
        assert_eq!(err["message"], "stream ended before completion");
        assert_eq!(err["param"], Value::Null);
        let failed = &evs[5].1["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"]["code"], "server_error");
        assert_eq!(failed["error"]["message"], "stream ended before completion");
    }

    #[test]
    fn delta_events_carry_exactly_their_fields() {
        let evs = run(
            &[
                StreamEvent::Start {
                    id: "r".into(),
                    model: "m".into(),
                },
                StreamEvent::BlockStart {
                    index: 0,
                    block: BlockKind::Reasoning,
                },
                StreamEvent::Delta {
                    index: 0,
                    delta: Delta::Reasoning("think \"hard\"".into()),
                },
                StreamEvent::BlockStop { index: 0 },
                StreamEvent::BlockStart {
                    index: 1,
                    block: BlockKind::Text,
                },
                StreamEvent::Delta {
                    index: 1,
                    delta: Delta::Text("Hi\n".into()),
                },
                StreamEvent::BlockStop { index: 1 },
                StreamEvent::BlockStart {
                    index: 2,
                    block: BlockKind::ToolCall {
                        id: "call_1".into(),
                        name: "f".into(),
                    },
                },
                StreamEvent::Delta {
                    index: 2,
                    delta: Delta::ToolArguments("{}".into()),
                },
                StreamEvent::BlockStop { index: 2 },
            ],
            None,
        );
        let deltas: Vec<&Value> = evs
            .iter()
            .filter(|(n, _)| n.ends_with(".delta"))
            .map(|(_, v)| v)
            .collect();
        let item_id = |ty: &str| {
            evs.iter()
                .find(|(n, v)| n == "response.output_item.added" && v["item"]["type"] == ty)
                .map(|(_, v)| v["item"]["id"].clone())
                .unwrap()
        };
        let seq = |v: &Value| v["sequence_number"].clone();
        assert_eq!(
            deltas,
            [
                &json!({"type": "response.reasoning_summary_text.delta", "sequence_number": seq(deltas[0]),
                        "item_id": item_id("reasoning"), "output_index": 0, "summary_index": 0,
                        "delta": "think \"hard\""}),
                &json!({"type": "response.output_text.delta", "sequence_number": seq(deltas[1]),
                        "item_id": item_id("message"), "output_index": 1, "content_index": 0,
                        "delta": "Hi\n", "logprobs": []}),
                &json!({"type": "response.function_call_arguments.delta", "sequence_number": seq(deltas[2]),
                        "item_id": item_id("function_call"), "output_index": 2, "delta": "{}"}),
            ]
        );
    }
}
