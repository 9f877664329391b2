//! Decode -> encode of a large Claude-Code-shaped request (~75 KB: three
//! system blocks, 24 tool schemas, a few turns), same-format and
//! cross-format.
//!
//! Run: `cargo bench --bench translate`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use tollgate::format::{anthropic, openai_chat, WireFormat};
use tollgate::json::RawObject;
use tollgate::request::{GatewayRequest, Operation};

/// A request shaped like the one Claude Code sends.
fn claude_code_request() -> Vec<u8> {
    let lorem =
        "You are an interactive CLI tool that helps users with software engineering tasks. \
                 Use the instructions below and the tools available to you to assist the user. ";
    let system = json!([
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": lorem.repeat(110), "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": lorem.repeat(30), "cache_control": {"type": "ephemeral"}},
    ]);
    let tools: Vec<Value> = (0..24)
        .map(|i| {
            json!({
                "name": format!("Tool{i}"),
                "description": lorem.repeat(9),
                "input_schema": {
                    "type": "object",
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "additionalProperties": false,
                    "required": ["path", "mode"],
                    "properties": {
                        "path": {"type": "string", "description": "The absolute path to operate on"},
                        "mode": {"type": "string", "enum": ["read", "write", "append"]},
                        "limit": {"type": "number", "description": "How many lines to read"},
                        "options": {"type": "object", "properties": {"recursive": {"type": "boolean"}}},
                    }
                }
            })
        })
        .collect();
    let messages = json!([
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>context</system-reminder>"}, {"type": "text", "text": "Fix the failing test in src/lib.rs"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look at the file."}, {"type": "tool_use", "id": "toolu_01", "name": "Tool3", "input": {"path": "/repo/src/lib.rs", "mode": "read"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "fn main() {}\n".repeat(200)}]},
        {"role": "assistant", "content": [{"type": "text", "text": "I see the problem."}]},
        {"role": "user", "content": "Go ahead.", },
    ]);
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64000,
        "stream": true,
        "system": system,
        "messages": messages,
        "tools": tools,
        "metadata": {"user_id": "user_abc_account_def_session_123"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(
        (70_000..82_000).contains(&bytes.len()),
        "fixture is {} bytes",
        bytes.len()
    );
    bytes
}

fn bench(c: &mut Criterion) {
    let body = claude_code_request();
    let mut g = c.benchmark_group("large_request");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("same_format_anthropic", |b| {
        b.iter(|| {
            let raw = RawObject::parse(black_box(&body)).unwrap();
            let req = GatewayRequest::new(WireFormat::Anthropic, Operation::Generate, raw).unwrap();
            black_box(req.passthrough_body("claude-sonnet-4-5-20250929", &[]))
        })
    });
    g.bench_function("cross_format_anthropic_to_openai", |b| {
        b.iter(|| {
            let raw = RawObject::parse(black_box(&body)).unwrap();
            let req = GatewayRequest::new(WireFormat::Anthropic, Operation::Generate, raw).unwrap();
            let c = req.canonical().unwrap();
            black_box(openai_chat::encode_request(
                c,
                "gpt-4o",
                openai_chat::MaxTokensField::MaxCompletionTokens,
            ))
        })
    });
    g.bench_function("cross_format_decode_only", |b| {
        b.iter(|| {
            let raw = RawObject::parse(black_box(&body)).unwrap();
            black_box(anthropic::decode_request(&raw).unwrap())
        })
    });
    let decoded = anthropic::decode_request(&RawObject::parse(&body).unwrap()).unwrap();
    g.bench_function("cross_format_encode_openai_only", |b| {
        b.iter(|| {
            black_box(openai_chat::encode_request(
                black_box(&decoded),
                "gpt-4o",
                openai_chat::MaxTokensField::MaxCompletionTokens,
            ))
        })
    });
    g.bench_function("full_typed_roundtrip_baseline", |b| {
        // What a gateway without raw pass-through pays: a serde_json::Value
        // round trip of the whole body.
        b.iter(|| {
            let mut v: Value = serde_json::from_slice(black_box(&body)).unwrap();
            v["model"] = json!("claude-sonnet-4-5-20250929");
            black_box(serde_json::to_vec(&v).unwrap())
        })
    });
    g.bench_function("cross_format_anthropic_to_anthropic_canonical", |b| {
        b.iter(|| {
            let raw = RawObject::parse(black_box(&body)).unwrap();
            let c = anthropic::decode_request(&raw).unwrap();
            black_box(anthropic::encode_request(&c, "claude-sonnet-4-5"))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
