use serde_json::{json, Value};

use super::*;
use crate::canonical::TextBlock;
use crate::format::anthropic::test_fixtures::{claude_code_body, decode, encode, ephemeral};

#[test]
fn claude_code_request_encodes_for_anthropic() {
    let req = decode(claude_code_body()).unwrap();
    let v = encode(&req);
    assert_eq!(v["model"], "claude-target");
    assert_eq!(v["max_tokens"], 32000);
    assert_eq!(v["stream"], true);
    assert_eq!(
        v["metadata"],
        json!({"user_id": "user_abc_account_1_session_2"})
    );
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 31999})
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        v["system"],
        json!([
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Environment: linux"},
            {"type": "text", "text": "Tool rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ])
    );
    assert_eq!(
        v["tools"],
        json!([
            {"name": "Bash", "description": "Run a command",
             "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
             "cache_control": {"type": "ephemeral"}},
            {"name": "Read", "input_schema": {"type": "object"}}
        ])
    );
    // The mid-conversation system message folds into the next user turn,
    // after its tool results; the two assistant turns around it stay apart.
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "List the files", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBCg=="},
                {"type": "text", "text": "Running ls."},
                {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls", "timeout": 5}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "a.rs\nb.rs"}]}
            ]},
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": "opaque=="},
                {"type": "text", "text": "Two files."}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true, "content": [
                    {"type": "text", "text": "denied"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
                ]},
                {"type": "text", "text": "The user switched to plan mode."},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
            ]}
        ])
    );
}

#[test]
fn round_trip_decode_encode_decode_is_stable() {
    let body = json!({
        "model": "m", "max_tokens": 100, "top_k": 5, "top_p": 0.9, "temperature": 0.5,
        "stop_sequences": ["\n\nHuman:"],
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "2"}]}
            ]}
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f"}
    });
    let req = decode(body.clone()).unwrap();
    let wire = encode(&req);
    assert_eq!(
        wire["system"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    assert_eq!(wire["stop_sequences"], json!(["\n\nHuman:"]));
    assert_eq!(wire["top_k"], 5);
    assert_eq!(wire["top_p"], 0.9);
    assert_eq!(wire["temperature"], 0.5);
    assert_eq!(wire["tool_choice"], json!({"type": "tool", "name": "f"}));
    assert!(wire.get("stream").is_none());
    let mut again = decode(wire).unwrap();
    again.model = req.model.clone();
    assert_eq!(again, req);
}

#[test]
fn merges_same_role_turns_and_puts_tool_results_first() {
    let req = ChatRequest {
        messages: vec![
            Message {
                role: Role::User,
                content: vec![Part::text("a")],
            },
            Message {
                role: Role::User,
                content: vec![Part::text("b")],
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    // Unsigned reasoning from another provider is dropped.
                    Part::Reasoning {
                        text: "hmm".into(),
                        signature: None,
                    },
                    Part::ToolCall {
                        id: "call_1".into(),
                        name: "f".into(),
                        arguments: String::new(),
                    },
                ],
            },
            // Only unsigned reasoning: the turn disappears and its neighbours merge.
            Message {
                role: Role::Assistant,
                content: vec![Part::Reasoning {
                    text: "x".into(),
                    signature: None,
                }],
            },
            Message {
                role: Role::Assistant,
                content: vec![Part::ToolCall {
                    id: "call_2".into(),
                    name: "g".into(),
                    arguments: "{not json".into(),
                }],
            },
            Message {
                role: Role::User,
                content: vec![Part::text("see results")],
            },
            Message {
                role: Role::User,
                content: vec![
                    Part::ToolResult {
                        call_id: "call_1".into(),
                        content: vec![Part::text("1")],
                        is_error: false,
                        cache_control: None,
                    },
                    Part::text(""),
                    Part::ToolResult {
                        call_id: "call_2".into(),
                        content: vec![],
                        is_error: false,
                        cache_control: ephemeral(),
                    },
                ],
            },
        ],
        ..ChatRequest::default()
    };
    let v = encode(&req);
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "1"}]},
                {"type": "tool_result", "tool_use_id": "call_2", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "see results"}
            ]}
        ])
    );
    assert!(v.get("system").is_none());
    assert_eq!(v["max_tokens"], 4096);
}

#[test]
fn trailing_system_message_folds_into_previous_user_turn() {
    let sys = |t: &str| Message {
        role: Role::System,
        content: vec![Part::text(t)],
    };
    let req = ChatRequest {
        messages: vec![
            Message {
                role: Role::User,
                content: vec![Part::text("q")],
            },
            Message {
                role: Role::Assistant,
                content: vec![Part::text("a")],
            },
            sys("late note"),
        ],
        ..ChatRequest::default()
    };
    assert_eq!(
        encode(&req)["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "text", "text": "late note"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}]}
        ])
    );
    let only = ChatRequest {
        messages: vec![sys("alone")],
        ..ChatRequest::default()
    };
    assert_eq!(
        encode(&only)["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "alone"}]}])
    );
}

#[test]
fn reasoning_effort_becomes_a_budget_below_max_tokens() {
    let with = |reasoning: Reasoning, max: Option<u64>| {
        encode(&ChatRequest {
            reasoning: Some(reasoning),
            max_tokens: max,
            ..ChatRequest::default()
        })
    };
    let effort = |e: &str| Reasoning {
        effort: Some(e.into()),
        ..Reasoning::default()
    };
    let v = with(effort("high"), Some(1000));
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 24576})
    );
    assert_eq!(v["max_tokens"], 25576);
    let v = with(effort("low"), Some(10000));
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(v["max_tokens"], 10000);
    let v = with(effort("medium"), None);
    assert_eq!(v["thinking"]["budget_tokens"], 8192);
    assert_eq!(v["max_tokens"], 8192 + 4096);
    let v = with(effort("minimal"), Some(50));
    assert!(v.get("thinking").is_none());
    assert_eq!(v["max_tokens"], 50);
    let v = with(
        Reasoning {
            disabled: true,
            budget_tokens: Some(5000),
            ..Reasoning::default()
        },
        None,
    );
    assert!(v.get("thinking").is_none());
    let v = with(Reasoning::default(), None);
    assert_eq!(v["thinking"], json!({"type": "adaptive"}));
    assert_eq!(v["max_tokens"], 4096);
}

/// A tool loop's second turn with thinking on: the calling turn as given.
fn tool_loop(caller: Vec<Part>) -> Value {
    encode(&ChatRequest {
        reasoning: Some(Reasoning {
            effort: Some("high".into()),
            ..Reasoning::default()
        }),
        max_tokens: Some(1000),
        messages: vec![
            Message {
                role: Role::User,
                content: vec![Part::text("weather?")],
            },
            Message {
                role: Role::Assistant,
                content: caller,
            },
            Message {
                role: Role::User,
                content: vec![Part::ToolResult {
                    call_id: "toolu_1".into(),
                    content: vec![Part::text("18C")],
                    is_error: false,
                    cache_control: None,
                }],
            },
        ],
        ..ChatRequest::default()
    })
}

#[test]
fn tool_loop_keeps_thinking_only_with_the_signed_block() {
    let call = Part::ToolCall {
        id: "toolu_1".into(),
        name: "weather".into(),
        arguments: "{}".into(),
    };
    let thought = |signature: Option<&str>| Part::Reasoning {
        text: "Call it.".into(),
        signature: signature.map(str::to_owned),
    };
    // Signed (or redacted) thinking came back: thinking stays on, and the
    // calling turn starts with it.
    for first in [
        thought(Some("sig-1")),
        Part::RedactedReasoning {
            data: "opaque".into(),
        },
    ] {
        let v = tool_loop(vec![first, call.clone()]);
        assert_eq!(v["thinking"]["type"], "enabled", "{v}");
        assert_eq!(v["max_tokens"], 24576 + 1000);
        let kind = &v["messages"][1]["content"][0]["type"];
        assert!(kind == "thinking" || kind == "redacted_thinking", "{v}");
    }
    // No signed block: the API would refuse thinking, so it is left out.
    for caller in [
        vec![call.clone()],
        vec![thought(None), call.clone()],
        vec![Part::text("Checking."), call.clone()],
    ] {
        let v = tool_loop(caller);
        assert!(v.get("thinking").is_none(), "{v}");
        assert_eq!(v["max_tokens"], 1000);
    }
}

#[test]
fn other_fields_encode() {
    let req = ChatRequest {
        system: vec![TextBlock {
            text: String::new(),
            cache_control: None,
        }],
        messages: vec![Message {
            role: Role::User,
            content: vec![
                Part::Image {
                    source: ImageSource::Url {
                        url: "data:image/jpeg;base64,AAAA".into(),
                    },
                    cache_control: ephemeral(),
                },
                Part::text("what is this"),
            ],
        }],
        tools: vec![Tool {
            name: "f".into(),
            description: None,
            parameters: Value::Null,
            strict: Some(true),
            cache_control: None,
        }],
        tool_choice: Some(ToolChoice::Required),
        temperature: Some(1.7),
        user: Some("u1".into()),
        response_format: Some(ResponseFormat::JsonSchema {
            name: "out".into(),
            schema: json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            strict: Some(true),
        }),
        stream: true,
        ..ChatRequest::default()
    };
    let v = encode(&req);
    assert!(v.get("system").is_none());
    assert_eq!(
        v["messages"][0]["content"][0],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"},
               "cache_control": {"type": "ephemeral"}})
    );
    assert_eq!(
        v["tools"],
        json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
    );
    assert_eq!(v["tool_choice"], json!({"type": "any"}));
    assert_eq!(v["temperature"], 1.0);
    assert_eq!(v["metadata"]["user_id"], "u1");
    assert_eq!(v["stream"], true);
    assert_eq!(
        v["output_config"],
        json!({"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    );

    // tool_choice without tools is left out; none stays none with tools.
    let v = encode(&ChatRequest {
        tool_choice: Some(ToolChoice::None),
        ..ChatRequest::default()
    });
    assert!(v.get("tool_choice").is_none());
}

#[test]
fn count_tokens_body_has_no_sampling_fields() {
    let mut req = decode(claude_code_body()).unwrap();
    req.top_k = Some(3);
    let v: Value = serde_json::from_slice(&encode_count_tokens(&req, "claude-x")).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "messages",
            "model",
            "system",
            "thinking",
            "tool_choice",
            "tools"
        ]
    );
    assert_eq!(v["model"], "claude-x");
    assert_eq!(v["messages"], encode(&req)["messages"]);
}
