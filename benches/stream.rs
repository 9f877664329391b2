//! Per-request CPU of the stream translators: a realistic 20-text-delta
//! answer decoded from one provider format and encoded for a client of
//! another, event by event, as the gateway does it.
//!
//! - `anthropic_to_openai_chat`: an Anthropic Messages stream (message_start,
//!   content_block_start, 20 content_block_delta, content_block_stop,
//!   message_delta with usage, message_stop) to `chat.completion.chunk`s;
//!   also each half alone.
//! - `openai_chat_to_anthropic`: the reverse, from a Chat Completions chunk
//!   stream (role chunk, 20 content chunks, finish chunk, usage chunk,
//!   `[DONE]`) to Anthropic events; also each half alone.
//! - `*_to_responses`: the canonical events encoded as a Responses stream.
//!
//! Run: `cargo bench --bench stream`

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate::canonical::StreamEvent;
use tollgate::format::{anthropic, openai_chat, responses, StreamDecode, StreamEncode};
use tollgate::sse::{SseEvent, SseParser};

/// The text of the 20 deltas: word pieces, some with characters that need
/// escaping in JSON (quotes, newlines, non-ASCII), as model output has.
fn pieces() -> Vec<String> {
    (0..20)
        .map(|i| match i % 5 {
            0 => format!("Here is part {i} of the answer, "),
            1 => "with a \"quoted\" phrase".to_string(),
            2 => " and a line break\n\n".to_string(),
            3 => "- a bullet about `code` — and café".to_string(),
            _ => format!(" then some plain words number {i}."),
        })
        .collect()
}

fn parse(sse: &str) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    p.feed(sse.as_bytes(), &mut out);
    out
}

/// An Anthropic Messages stream as the API sends it.
fn anthropic_stream() -> Vec<SseEvent> {
    let mut s = String::new();
    let mut ev = |name: &str, data: &str| {
        s.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    ev(
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":1024,"output_tokens":2,"service_tier":"standard"}}}"#,
    );
    ev(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    ev("ping", r#"{"type": "ping"}"#);
    for p in pieces() {
        let text = serde_json::to_string(&p).unwrap();
        ev(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}}"#
            ),
        );
    }
    ev(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    );
    ev(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":1024,"output_tokens":187}}"#,
    );
    ev("message_stop", r#"{"type":"message_stop"}"#);
    parse(&s)
}

/// A Chat Completions chunk stream as OpenAI sends it (usage requested).
fn openai_chat_stream() -> Vec<SseEvent> {
    let head = r#""id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8""#;
    let mut s = String::new();
    let mut data = |d: &str| s.push_str(&format!("data: {d}\n\n"));
    data(&format!(
        r#"{{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
    ));
    for p in pieces() {
        let text = serde_json::to_string(&p).unwrap();
        data(&format!(
            r#"{{{head},"choices":[{{"index":0,"delta":{{"content":{text}}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
        ));
    }
    data(&format!(
        r#"{{{head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}],"usage":null}}"#
    ));
    data(&format!(
        r#"{{{head},"choices":[],"usage":{{"prompt_tokens":1496,"completion_tokens":187,"total_tokens":1683,"prompt_tokens_details":{{"cached_tokens":1024,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}}}"#
    ));
    data("[DONE]");
    parse(&s)
}

fn decode(dec: &mut dyn StreamDecode, events: &[SseEvent]) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    for e in events {
        dec.event(e, &mut out).unwrap();
    }
    dec.end(&mut out).unwrap();
    out
}

fn encode(enc: &mut dyn StreamEncode, events: &[StreamEvent]) -> BytesMut {
    let mut out = BytesMut::new();
    for e in events {
        enc.event(e, &mut out);
    }
    out
}

/// Decodes and encodes event by event, as the gateway's stream body does:
/// each upstream event's canonical events are encoded before the next.
fn translate(
    dec: &mut dyn StreamDecode,
    enc: &mut dyn StreamEncode,
    events: &[SseEvent],
) -> BytesMut {
    let mut canon = Vec::new();
    let mut out = BytesMut::new();
    for e in events {
        dec.event(e, &mut canon).unwrap();
        for c in canon.drain(..) {
            enc.event(&c, &mut out);
        }
    }
    dec.end(&mut canon).unwrap();
    for c in canon.drain(..) {
        enc.event(&c, &mut out);
    }
    out
}

fn bench(c: &mut Criterion) {
    let ant = anthropic_stream();
    assert_eq!(ant.len(), 26);
    let ant_canon = decode(&mut anthropic::StreamDecoder::new(), &ant);
    assert_eq!(ant_canon.len(), 24, "{ant_canon:?}");

    let mut g = c.benchmark_group("anthropic_to_openai_chat");
    g.bench_function("translate", |b| {
        b.iter(|| {
            translate(
                &mut anthropic::StreamDecoder::new(),
                &mut openai_chat::StreamEncoder::new(true),
                black_box(&ant),
            )
        })
    });
    g.bench_function("decode_anthropic", |b| {
        b.iter(|| decode(&mut anthropic::StreamDecoder::new(), black_box(&ant)))
    });
    g.bench_function("encode_openai_chat", |b| {
        b.iter(|| {
            encode(
                &mut openai_chat::StreamEncoder::new(true),
                black_box(&ant_canon),
            )
        })
    });
    g.bench_function("encode_responses", |b| {
        b.iter(|| encode(&mut responses::StreamEncoder::new(), black_box(&ant_canon)))
    });
    g.finish();

    let oai = openai_chat_stream();
    assert_eq!(oai.len(), 24);
    let oai_canon = decode(&mut openai_chat::StreamDecoder::new(), &oai);
    assert_eq!(oai_canon.len(), 25, "{oai_canon:?}");

    let mut g = c.benchmark_group("openai_chat_to_anthropic");
    g.bench_function("translate", |b| {
        b.iter(|| {
            translate(
                &mut openai_chat::StreamDecoder::new(),
                &mut anthropic::StreamEncoder::new(),
                black_box(&oai),
            )
        })
    });
    g.bench_function("decode_openai_chat", |b| {
        b.iter(|| decode(&mut openai_chat::StreamDecoder::new(), black_box(&oai)))
    });
    g.bench_function("encode_anthropic", |b| {
        b.iter(|| encode(&mut anthropic::StreamEncoder::new(), black_box(&oai_canon)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
