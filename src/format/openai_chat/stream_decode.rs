//! A provider's `chat.completion.chunk` stream to canonical events.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::finish_reason_from;
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
///
/// Each chunk is read into small typed structs that borrow their strings
/// from the event (no `serde_json::Value` per chunk). OpenAI-compatible
/// servers vary, so every field is read loosely: a field of another JSON
/// type than expected counts as absent, as it did when chunks were read as
/// a `Value`.
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

/// Any JSON value; the text when it is a string, borrowed from the input
/// unless it holds escapes.
#[derive(Debug, Default)]
struct LooseStr<'a>(Option<Cow<'a, str>>);

/// Any JSON value; the number when it is a non-negative integer.
#[derive(Debug, Default, Clone, Copy)]
struct LooseU64(Option<u64>);

/// Any JSON value; `T` when it is an object.
#[derive(Debug)]
struct Obj<T>(Option<T>);

/// Any JSON value; the elements when it is an array (else none).
#[derive(Debug)]
struct Arr<T>(Vec<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<T> Default for Arr<T> {
    fn default() -> Self {
        Arr(Vec::new())
    }
}

impl LooseStr<'_> {
    fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// Implements the visitor methods for JSON values a loose type ignores.
macro_rules! ignore_other_values {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}

/// Implements `visit_str`/`visit_borrowed_str`/`visit_string`/`visit_u64`
/// as ignored, for loose types that are not strings or numbers.
macro_rules! ignore_strings_and_numbers {
    () => {
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}

/// Implements `visit_map`/`visit_seq` as ignored (the value is skipped).
macro_rules! ignore_containers {
    () => {
        fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for LooseStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Owned(v))))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(LooseStr(None))
            }
            ignore_other_values!();
            ignore_containers!();
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for LooseU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseU64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LooseU64(Some(v)))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(LooseU64(None))
            }
            ignore_other_values!();
            ignore_containers!();
        }
        d.deserialize_any(V)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<Self::Value, M::Error> {
                T::deserialize(MapAccessDeserializer::new(m)).map(|t| Obj(Some(t)))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj(None))
            }
            ignore_other_values!();
            ignore_strings_and_numbers!();
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Arr<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, s: S) -> Result<Self::Value, S::Error> {
                Vec::<T>::deserialize(SeqAccessDeserializer::new(s)).map(Arr)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Arr(Vec::new()))
            }
            ignore_other_values!();
            ignore_strings_and_numbers!();
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// One chunk: the fields the decoder reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WireChunk<'a> {
    #[serde(borrow)]
    id: LooseStr<'a>,
    #[serde(borrow)]
    model: LooseStr<'a>,
    #[serde(borrow)]
    choices: FirstChoice<'a>,
    /// Present and not `null` in an error chunk.
    error: Option<IgnoredAny>,
    usage: Obj<WireUsage>,
}

/// The choice with `index` 0 (or none) of a `choices` array.
#[derive(Default)]
struct FirstChoice<'a>(Option<WireChoice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
                let mut first = None;
                while let Some(Obj(c)) = s.next_element::<Obj<WireChoice<'a>>>()? {
                    // A choice that is not an object has index 0 too, and nothing in it.
                    let c = c.unwrap_or_default();
                    if first.is_none() && c.index.0.unwrap_or(0) == 0 {
                        first = Some(c);
                    }
                }
                Ok(FirstChoice(first))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(None))
            }
            ignore_other_values!();
            ignore_strings_and_numbers!();
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireChoice<'a> {
    index: LooseU64,
    #[serde(borrow)]
    delta: Obj<WireDelta<'a>>,
    #[serde(borrow)]
    finish_reason: LooseStr<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireDelta<'a> {
    #[serde(borrow)]
    reasoning_content: LooseStr<'a>,
    #[serde(borrow)]
    reasoning: LooseStr<'a>,
    #[serde(borrow)]
    content: LooseStr<'a>,
    #[serde(borrow)]
    refusal: LooseStr<'a>,
    #[serde(borrow)]
    tool_calls: Arr<Obj<WireToolCall<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireToolCall<'a> {
    index: LooseU64,
    #[serde(borrow)]
    id: LooseStr<'a>,
    #[serde(borrow)]
    function: Obj<WireFunction<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireFunction<'a> {
    #[serde(borrow)]
    name: LooseStr<'a>,
    /// A string of JSON text, or (some servers) the JSON object itself.
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// A `usage` object. DeepSeek's `prompt_cache_hit_tokens` stands in for
/// `cached_tokens` when that is absent.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WireUsage {
    prompt_tokens: LooseU64,
    completion_tokens: LooseU64,
    prompt_tokens_details: Obj<CachedTokens>,
    prompt_cache_hit_tokens: LooseU64,
    completion_tokens_details: Obj<ReasoningTokens>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CachedTokens {
    cached_tokens: LooseU64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReasoningTokens {
    reasoning_tokens: LooseU64,
}

impl WireUsage {
    fn to_canonical(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .0
            .as_ref()
            .and_then(|d| d.cached_tokens.0)
            .or(self.prompt_cache_hit_tokens.0)
            .unwrap_or(0);
        Usage {
            input_tokens: self.prompt_tokens.0.unwrap_or(0),
            output_tokens: self.completion_tokens.0.unwrap_or(0),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .0
                .as_ref()
                .and_then(|d| d.reasoning_tokens.0)
                .unwrap_or(0),
            cache_write_1h_tokens: 0,
        }
    }
}

/// A tool call's `arguments` as text: the string, or an object's JSON.
fn arguments_text(raw: Option<&RawValue>) -> String {
    let Some(raw) = raw else {
        return String::new();
    };
    match raw.get().as_bytes().first() {
        Some(b'"') => serde_json::from_str::<LooseStr>(raw.get())
            .ok()
            .and_then(|s| s.0)
            .map(Cow::into_owned)
            .unwrap_or_default(),
        Some(b'{') => serde_json::from_str::<Value>(raw.get())
            .map(|v| v.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
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

    fn text(&mut self, kind: OpenKind, text: Cow<'_, str>, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let text = text.into_owned();
        let (block, delta) = match kind {
            OpenKind::Reasoning => (BlockKind::Reasoning, Delta::Reasoning(text)),
            _ => (BlockKind::Text, Delta::Text(text)),
        };
        let index = self.ensure(kind, block, out);
        out.push(StreamEvent::Delta { index, delta });
    }

    fn tool_call(
        &mut self,
        tc: WireToolCall<'_>,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), GatewayError> {
        let id = tc.id.get().filter(|s| !s.is_empty());
        let func = tc.function.0.unwrap_or_default();
        let upstream = match tc.index.0 {
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
                    name: func.name.get().unwrap_or_default().to_string(),
                };
                self.close(out);
                self.ensure(OpenKind::Tool(upstream), block, out)
            }
        };
        let args = arguments_text(func.arguments);
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

/// An error chunk (or `event: error`) as the gateway error it reports.
fn upstream_error(data: &str) -> GatewayError {
    parse_upstream_error(
        WireFormat::OpenAiChat,
        http::StatusCode::BAD_GATEWAY,
        &http::HeaderMap::new(),
        data.as_bytes(),
    )
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
        let is_error_event = event.event.as_deref() == Some("error");
        let chunk: WireChunk = match serde_json::from_str(data) {
            Ok(chunk) if data.starts_with('{') => chunk,
            // Not an object, or a shape the loose structs do not take
            // (duplicate keys): read it as a `Value` to say what it is.
            _ => {
                let v: Value = serde_json::from_str(data).map_err(|e| {
                    GatewayError::bad_upstream(format!(
                        "provider stream chunk is not valid JSON: {e}"
                    ))
                })?;
                if is_error_event || v.get("error").is_some_and(|e| !e.is_null()) {
                    return Err(upstream_error(data));
                }
                return Err(GatewayError::bad_upstream(if v.is_object() {
                    "provider stream chunk is malformed"
                } else {
                    "provider stream chunk is not a JSON object"
                }));
            }
        };
        if is_error_event || chunk.error.is_some() {
            return Err(upstream_error(data));
        }
        if !self.started {
            self.started = true;
            let field = |s: &LooseStr| s.get().unwrap_or_default().to_string();
            out.push(StreamEvent::Start {
                id: field(&chunk.id),
                model: field(&chunk.model),
            });
        }

        if let Some(choice) = chunk.choices.0 {
            if let Some(delta) = choice.delta.0 {
                if let Some(r) = delta.reasoning_content.0.or(delta.reasoning.0) {
                    self.text(OpenKind::Reasoning, r, out);
                }
                if let Some(t) = delta.content.0 {
                    self.text(OpenKind::Text, t, out);
                }
                if let Some(t) = delta.refusal.0 {
                    self.text(OpenKind::Text, t, out);
                }
                for tc in delta.tool_calls.0 {
                    self.tool_call(tc.0.unwrap_or_default(), out)?;
                }
            }
            if let Some(reason) = choice.finish_reason.get() {
                self.finish_reason = Some(finish_reason_from(reason)?);
                self.close(out);
            }
        }

        if let Some(usage) = chunk.usage.0 {
            self.usage = usage.to_canonical();
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
            cache_write_1h_tokens: 0,
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

    #[test]
    fn fields_of_unexpected_types_are_ignored_as_before() {
        // What OpenAI-compatible servers send in the wild: content as an
        // array (ignored), `reasoning` instead of `reasoning_content`, a
        // second choice (ignored), arguments as an object, tool calls with
        // no index, DeepSeek's `prompt_cache_hit_tokens`, odd `usage` members.
        let input = concat!(
            "data: {\"id\":7,\"model\":\"m\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"}},{\"delta\":{\"content\":[{\"type\":\"thinking\"}],\"reasoning\":\"a\\nb\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\",\"tool_calls\":null}}],\"usage\":\"none\"}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":{\"b\":1,\"a\":2}}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":7}}, 5]},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":-1,\"prompt_tokens_details\":null,\"prompt_cache_hit_tokens\":4}}\n\n",
            "data: [DONE]\n\n",
        );
        let (events, end) = decode_in_pieces(input.as_bytes(), &[17]);
        end.unwrap();
        let usage = Usage {
            input_tokens: 10,
            cache_read_tokens: 4,
            ..Usage::default()
        };
        assert_eq!(
            events,
            vec![
                StreamEvent::Start {
                    id: "".into(),
                    model: "m".into()
                },
                StreamEvent::BlockStart {
                    index: 0,
                    block: BlockKind::Reasoning
                },
                StreamEvent::Delta {
                    index: 0,
                    delta: Delta::Reasoning("a\nb".into())
                },
                StreamEvent::BlockStop { index: 0 },
                StreamEvent::BlockStart {
                    index: 1,
                    block: BlockKind::Text
                },
                StreamEvent::Delta {
                    index: 1,
                    delta: Delta::Text("x".into())
                },
                StreamEvent::BlockStop { index: 1 },
                StreamEvent::BlockStart {
                    index: 2,
                    block: BlockKind::ToolCall {
                        id: "c1".into(),
                        name: "f".into()
                    }
                },
                StreamEvent::Delta {
                    index: 2,
                    delta: Delta::ToolArguments(r#"{"a":2,"b":1}"#.into())
                },
                StreamEvent::BlockStop { index: 2 },
                StreamEvent::Usage(usage),
                StreamEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    usage
                },
            ]
        );
        // Not an object.
        let (_, end) = decode_in_pieces(b"data: [1, 2]\n\n", &[64]);
        assert_eq!(
            end.unwrap_err().message(),
            "provider stream chunk is not a JSON object"
        );
    }
}
