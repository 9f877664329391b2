//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`).
//!
//! Each function runs one decoder on untrusted bytes the way the gateway
//! does (and then what the gateway does next with what it decoded), and
//! panics when something that must hold does not: a panic is what the
//! fuzzer reports. Living in the crate, the targets reach internals without
//! widening the public API; see `docs/FUZZING.md` for how to run them.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::canonical::{BlockKind, Delta, StreamEvent};
use crate::config::Config;
use crate::error::GatewayError;
use crate::format::{
    anthropic, gemini, openai_chat, parse_upstream_error, responses, StreamDecode, StreamEncode,
    WireFormat,
};
use crate::json::RawObject;
use crate::request::{GatewayRequest, Operation};
use crate::sse::{SseEvent, SseParser};

/// A client's request body in `format`, as the edge and then every provider
/// see it: parsed, validated, decoded to canonical form, and encoded for
/// every provider kind (and passed through for the client's own).
///
/// The same-format body must be a JSON object again, with `model` replaced.
///
/// Bad input must be a 4xx; whatever is accepted must encode to JSON.
pub fn request(format: WireFormat, body: &[u8]) {
    for operation in [Operation::Generate, Operation::CountTokens] {
        let Some(req) = client_ok(RawObject::parse(body))
            .and_then(|raw| client_ok(GatewayRequest::new(format, operation, raw)))
        else {
            return;
        };
        // JSON syntax, as the edge accepted it: a number out of `f64`'s
        // range is the client's to send and the provider's to refuse.
        let passed = req.passthrough_body("fuzz-model", &[]);
        match RawObject::parse(&passed).map(|raw| raw.get_as::<String>("model")) {
            Ok(Ok(Some(model))) if model == "fuzz-model" => {}
            other => panic!("{other:?}: {}", String::from_utf8_lossy(&passed)),
        }
        let Some(canonical) = client_ok(req.canonical().cloned()) else {
            return;
        };
        let model = req.model.as_str();
        assert_json(&anthropic::encode_request(&canonical, model));
        assert_json(&anthropic::encode_count_tokens(&canonical, model));
        for field in [
            openai_chat::MaxTokensField::MaxCompletionTokens,
            openai_chat::MaxTokensField::MaxTokens,
        ] {
            assert_json(&openai_chat::encode_request(&canonical, model, field));
        }
        assert_json(&gemini::encode_request(&canonical));
        assert_json(&gemini::encode_count_tokens(&canonical, model));
    }
}

/// The SSE parser on `data`, whose first byte says how many split points
/// follow (one byte each, as gaps between them); the rest is the stream.
///
/// Fed in those chunks, the parser must yield the same events as fed
/// whole, and each event's raw bytes must parse back to that event.
pub fn sse(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (gaps, input) = rest.split_at(n);

    let whole = parse_sse(&[input]);
    let mut chunks = Vec::with_capacity(n + 1);
    let mut tail = input;
    for &gap in gaps {
        let at = usize::from(gap).min(tail.len());
        let (head, t) = tail.split_at(at);
        chunks.push(head);
        tail = t;
    }
    chunks.push(tail);
    let split = parse_sse(&chunks);
    assert_eq!(whole.0, split.0, "events differ when the input is split");
    assert_eq!(whole.1, split.1, "the unterminated last event differs");

    // `feed_raw` hands out the same events, each with bytes that a fresh
    // parser reads back as that event (what a pass-through client sees).
    let mut parser = SseParser::new();
    let mut raw = Vec::new();
    for chunk in &chunks {
        parser.feed_raw(chunk, &mut raw);
    }
    let events: Vec<SseEvent> = raw.iter().map(|(ev, _)| ev.clone()).collect();
    assert_eq!(events, whole.0, "feed_raw and feed disagree");
    for (ev, bytes) in &raw {
        let (again, rest) = parse_sse(&[bytes]);
        assert!(rest.is_none(), "raw bytes of {ev:?} leave a partial event");
        assert_eq!(
            again,
            std::slice::from_ref(ev),
            "raw bytes do not parse back"
        );
    }
}

fn parse_sse(chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<SseEvent>) {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, &mut out);
    }
    let last = parser.finish();
    assert!(!parser.has_pending(), "pending bytes after finish");
    (out, last)
}

/// A provider's SSE stream in `format` (Anthropic, OpenAI Chat or Gemini),
/// decoded as the provider client does and encoded for every client format
/// as the edge does.
///
/// The decoded events must keep the grammar of [`StreamEvent`]; a failure
/// must be a 4xx/5xx error; every encoder must write SSE whose data is JSON.
pub fn stream(format: WireFormat, data: &[u8]) {
    let decoder: Box<dyn StreamDecode> = match format {
        WireFormat::Anthropic => Box::new(anthropic::StreamDecoder::new()),
        WireFormat::OpenAiChat => Box::new(openai_chat::StreamDecoder::new()),
        WireFormat::Gemini => Box::new(gemini::StreamDecoder::new("gemini-fuzz")),
        WireFormat::OpenAiResponses => return,
    };
    let (events, result) = decode_stream(decoder, data);
    check_grammar(&events, result.is_ok());
    if let Err(e) = &result {
        assert_error_status(e);
    }

    let encoders: [Box<dyn StreamEncode>; 4] = [
        Box::new(anthropic::StreamEncoder::new()),
        Box::new(openai_chat::StreamEncoder::new(false)),
        Box::new(openai_chat::StreamEncoder::new(true)),
        Box::new(responses::StreamEncoder::new()),
    ];
    for mut enc in encoders {
        let mut out = bytes::BytesMut::new();
        for ev in &events {
            enc.event(ev, &mut out);
        }
        if let Err(e) = &result {
            enc.error(e, &mut out);
        }
        assert_sse_json(&out);
    }
}

/// Mirrors `provider::stream::UpstreamStream` in decode mode: events until
/// `Finish` or an error, then the end of input.
fn decode_stream(
    mut decoder: Box<dyn StreamDecode>,
    data: &[u8],
) -> (Vec<StreamEvent>, Result<(), GatewayError>) {
    let mut parser = SseParser::new();
    let mut sse = Vec::new();
    parser.feed(data, &mut sse);
    sse.extend(parser.finish());
    let mut events = Vec::new();
    let finished =
        |events: &[StreamEvent]| matches!(events.last(), Some(StreamEvent::Finish { .. }));
    for ev in &sse {
        if let Err(e) = decoder.event(ev, &mut events) {
            return (events, Err(e));
        }
        if finished(&events) {
            return (events, Ok(()));
        }
    }
    let result = decoder.end(&mut events);
    (events, result)
}

/// Panics unless `events` follow `Start (BlockStart Delta* BlockStop |
/// Usage)* Finish`, or a prefix of it when the stream failed.
fn check_grammar(events: &[StreamEvent], complete: bool) {
    let mut started = false;
    let mut finished = false;
    let mut next_block = 0usize;
    let mut open: Option<(usize, &BlockKind)> = None;
    for (i, ev) in events.iter().enumerate() {
        assert!(!finished, "event {i} after Finish: {events:?}");
        if !started {
            assert!(
                matches!(ev, StreamEvent::Start { .. }),
                "event {i} before Start: {events:?}"
            );
            started = true;
            continue;
        }
        match ev {
            StreamEvent::Start { .. } => panic!("second Start at {i}: {events:?}"),
            StreamEvent::BlockStart { index, block } => {
                assert!(
                    open.is_none(),
                    "block {index} starts inside another: {events:?}"
                );
                assert_eq!(*index, next_block, "block index out of order: {events:?}");
                next_block += 1;
                open = Some((*index, block));
            }
            StreamEvent::Delta { index, delta } => {
                let Some((at, kind)) = open else {
                    panic!("delta outside a block at {i}: {events:?}");
                };
                assert_eq!(*index, at, "delta for a block that is not open: {events:?}");
                let fits = matches!(
                    (kind, delta),
                    (BlockKind::Text, Delta::Text(_))
                        | (BlockKind::ToolCall { .. }, Delta::ToolArguments(_))
                        | (
                            BlockKind::Reasoning,
                            Delta::Reasoning(_) | Delta::Signature(_)
                        )
                );
                assert!(fits, "{delta:?} in a {kind:?} block: {events:?}");
            }
            StreamEvent::BlockStop { index } => {
                assert_eq!(
                    open.map(|(at, _)| at),
                    Some(*index),
                    "stop of a block that is not open: {events:?}"
                );
                open = None;
            }
            StreamEvent::Usage(_) => {
                assert!(open.is_none(), "usage inside a block: {events:?}");
            }
            StreamEvent::Finish { .. } => {
                assert!(open.is_none(), "Finish inside a block: {events:?}");
                finished = true;
            }
        }
    }
    if complete {
        assert!(
            finished,
            "a stream that ended without error has no Finish: {events:?}"
        );
    }
}

/// A provider's error answer with a fuzzed format, status, headers and
/// body. `data`: the format (one byte, see [`provider_format`]), the status
/// (two bytes, folded onto 100..=999), header lines `name: value` up to a
/// blank line, then the body.
///
/// Whatever the provider sends, the client must get a 4xx or 5xx, and a
/// wait the routing layers can add to the clock.
pub fn upstream_error(data: &[u8]) {
    let [pick, hi, lo, rest @ ..] = data else {
        return;
    };
    let format = provider_format(*pick);
    let status = StatusCode::from_u16(100 + u16::from_be_bytes([*hi, *lo]) % 900)
        .expect("100..=999 is a status");
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (&[][..], rest),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let err = parse_upstream_error(format, status, &headers, body);
    assert_error_status(&err);
    if let Some(after) = err.retry_after() {
        // What the cooldowns do with it.
        assert!(
            std::time::Instant::now().checked_add(after).is_some(),
            "a retry-after past the clock: {after:?}"
        );
    }
    let resp = crate::edge::error_response(format, &err, "fuzz");
    assert_eq!(resp.status(), err.status());
    assert_json(&crate::format::error_body(format, &err));
}

/// A provider's complete (non-stream) answer, decoded as the provider
/// client does and encoded for every client format. `data`: the format (one
/// byte, see [`provider_format`]), then the body.
pub fn response(data: &[u8]) {
    let Some((pick, body)) = data.split_first() else {
        return;
    };
    let decoded = match provider_format(*pick) {
        WireFormat::Anthropic => anthropic::decode_response(body),
        WireFormat::OpenAiChat => openai_chat::decode_response(body),
        WireFormat::Gemini => gemini::decode_response(body, "gemini-fuzz"),
        WireFormat::OpenAiResponses => return,
    };
    match decoded {
        Ok(resp) => {
            assert_json(&anthropic::encode_response(&resp));
            assert_json(&openai_chat::encode_response(&resp));
            assert_json(&responses::encode_response(&resp));
        }
        Err(e) => assert_error_status(&e),
    }
}

/// The provider format a fuzzer's byte picks: Chat, Anthropic or Gemini.
fn provider_format(pick: u8) -> WireFormat {
    match pick % 3 {
        0 => WireFormat::OpenAiChat,
        1 => WireFormat::Anthropic,
        _ => WireFormat::Gemini,
    }
}

/// A config file, as `check-config` and `serve` read it: a config that
/// parses and checks must also build the gateway's providers and routes.
pub fn config(text: &[u8]) {
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    // Some variables set (with characters a TOML string must escape),
    // some not, so both interpolation paths run.
    let env = |name: &str| {
        name.starts_with(|c: char| c < 'N')
            .then(|| format!("v\"\\\n{name}"))
    };
    let Ok(config) = Config::parse(text, &env) else {
        return;
    };
    if let Err(e) = crate::provider::Providers::from_config(&config) {
        panic!("a checked config does not build: {e}");
    }
}

/// `result`'s value, or `None` when it is an error that a client caused
/// (4xx); any other error panics.
fn client_ok<T>(result: Result<T, GatewayError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(
                e.status().is_client_error(),
                "bad input got {} ({:?}): {}",
                e.status(),
                e.kind(),
                e.message()
            );
            None
        }
    }
}

fn assert_error_status(e: &GatewayError) {
    let s = e.status();
    assert!(
        s.is_client_error() || s.is_server_error(),
        "an error with status {s} ({:?}): {}",
        e.kind(),
        e.message()
    );
}

fn assert_json(bytes: &[u8]) {
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(bytes) {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes));
    }
}

/// Every event in `bytes` carries JSON data (or OpenAI's `[DONE]`).
fn assert_sse_json(bytes: &[u8]) {
    let (events, rest) = parse_sse(&[bytes]);
    assert!(rest.is_none(), "an encoder left an unterminated event");
    for ev in events {
        if ev.data != "[DONE]" {
            assert_json(ev.data.as_bytes());
        }
    }
}
