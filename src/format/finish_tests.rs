//! Finish reasons across the gateway: every provider's reasons, decoded
//! and encoded for every client format, as the client reads them.

use serde_json::{json, Value};

use crate::canonical::ChatResponse;
use crate::error::GatewayError;
use crate::format::{anthropic, gemini, openai_chat, responses};

/// What each client format says for one provider answer:
/// (Chat `finish_reason`, Responses `status` and incomplete reason,
/// Anthropic `stop_reason`).
type Seen = (String, String, Value, String);

fn seen(resp: &ChatResponse) -> Seen {
    let chat: Value = serde_json::from_slice(&openai_chat::encode_response(resp)).unwrap();
    let resp_api: Value = serde_json::from_slice(&responses::encode_response(resp)).unwrap();
    let msgs: Value = serde_json::from_slice(&anthropic::encode_response(resp)).unwrap();
    (
        chat["choices"][0]["finish_reason"].as_str().unwrap().into(),
        resp_api["status"].as_str().unwrap().into(),
        resp_api["incomplete_details"]["reason"].clone(),
        msgs["stop_reason"].as_str().unwrap().into(),
    )
}

fn want(chat: &str, status: &str, incomplete: Value, stop: &str) -> Seen {
    (chat.into(), status.into(), incomplete, stop.into())
}

fn stop() -> Seen {
    want("stop", "completed", Value::Null, "end_turn")
}

fn length() -> Seen {
    want(
        "length",
        "incomplete",
        json!("max_output_tokens"),
        "max_tokens",
    )
}

fn filtered() -> Seen {
    want(
        "content_filter",
        "incomplete",
        json!("content_filter"),
        "refusal",
    )
}

fn tool_calls() -> Seen {
    want("tool_calls", "completed", Value::Null, "tool_use")
}

fn chat_answer(reason: &str, call: bool) -> Result<ChatResponse, GatewayError> {
    let mut message = json!({"role": "assistant", "content": "Hi"});
    if call {
        message["tool_calls"] = json!([{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
    }
    let body = json!({"id": "c", "model": "m",
                      "choices": [{"index": 0, "message": message, "finish_reason": reason}]});
    openai_chat::decode_response(&serde_json::to_vec(&body).unwrap())
}

fn anthropic_answer(reason: &str, call: bool) -> Result<ChatResponse, GatewayError> {
    let mut content = vec![json!({"type": "text", "text": "Hi"})];
    if call {
        content.push(json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}));
    }
    let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                      "content": content, "stop_reason": reason, "stop_sequence": null,
                      "usage": {"input_tokens": 1, "output_tokens": 1}});
    anthropic::decode_response(&serde_json::to_vec(&body).unwrap())
}

fn gemini_answer(reason: &str, call: bool) -> Result<ChatResponse, GatewayError> {
    let mut parts = vec![json!({"text": "Hi"})];
    if call {
        parts.push(json!({"functionCall": {"name": "f", "args": {}}}));
    }
    let body = json!({"candidates": [{"content": {"role": "model", "parts": parts},
                                      "finishReason": reason}]});
    gemini::decode_response(&serde_json::to_vec(&body).unwrap(), "gemini-x")
}

#[test]
fn every_provider_reason_reaches_every_client_as_something_it_can_act_on() {
    type Decode = fn(&str, bool) -> Result<ChatResponse, GatewayError>;
    let cases: Vec<(&str, Decode, &str, bool, Seen)> = vec![
        ("openai", chat_answer, "stop", false, stop()),
        ("openai", chat_answer, "length", false, length()),
        ("openai", chat_answer, "content_filter", false, filtered()),
        ("openai", chat_answer, "tool_calls", true, tool_calls()),
        ("openai", chat_answer, "tool_calls", false, stop()),
        ("openai", chat_answer, "function_call", true, tool_calls()),
        ("compat", chat_answer, "model_length", false, length()),
        ("compat", chat_answer, "eos", false, stop()),
        ("compat", chat_answer, "something_new", false, stop()),
        ("anthropic", anthropic_answer, "end_turn", false, stop()),
        ("anthropic", anthropic_answer, "max_tokens", false, length()),
        (
            "anthropic",
            anthropic_answer,
            "model_context_window_exceeded",
            false,
            length(),
        ),
        (
            "anthropic",
            anthropic_answer,
            "stop_sequence",
            false,
            want("stop", "completed", Value::Null, "stop_sequence"),
        ),
        (
            "anthropic",
            anthropic_answer,
            "tool_use",
            true,
            tool_calls(),
        ),
        ("anthropic", anthropic_answer, "tool_use", false, stop()),
        ("anthropic", anthropic_answer, "refusal", false, filtered()),
        (
            "anthropic",
            anthropic_answer,
            "pause_turn",
            false,
            want("stop", "completed", Value::Null, "pause_turn"),
        ),
        (
            "anthropic",
            anthropic_answer,
            "something_new",
            false,
            stop(),
        ),
        ("gemini", gemini_answer, "STOP", false, stop()),
        ("gemini", gemini_answer, "STOP", true, tool_calls()),
        ("gemini", gemini_answer, "MAX_TOKENS", false, length()),
        ("gemini", gemini_answer, "SAFETY", false, filtered()),
        ("gemini", gemini_answer, "RECITATION", false, filtered()),
        (
            "gemini",
            gemini_answer,
            "PROHIBITED_CONTENT",
            false,
            filtered(),
        ),
        ("gemini", gemini_answer, "OTHER", false, stop()),
        ("gemini", gemini_answer, "SOMETHING_NEW", false, stop()),
    ];
    for (provider, decode, reason, call, want) in cases {
        let resp = decode(reason, call).unwrap_or_else(|e| panic!("{provider} {reason}: {e:?}"));
        assert_eq!(seen(&resp), want, "{provider} `{reason}` (call: {call})");
    }
}

#[test]
fn reasons_that_say_generation_failed_are_errors() {
    let failed: Vec<Result<ChatResponse, GatewayError>> = vec![
        chat_answer("error", false),
        chat_answer("insufficient_system_resource", false),
        gemini_answer("MALFORMED_FUNCTION_CALL", false),
        gemini_answer("UNEXPECTED_TOOL_CALL", false),
        gemini_answer("TOO_MANY_TOOL_CALLS", false),
    ];
    for r in failed {
        let e = r.expect_err("an error, not a finished answer");
        assert_eq!(e.status().as_u16(), 502, "{e:?}");
        assert!(e.kind().is_retryable(), "{e:?}");
    }
}
