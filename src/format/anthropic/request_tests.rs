use serde_json::json;

use super::*;
use crate::format::anthropic::test_fixtures::{claude_code_body, decode, ephemeral};

#[test]
fn decodes_a_claude_code_request_exactly() {
    let req = decode(claude_code_body()).unwrap();
    assert_eq!(req.model, "claude-sonnet-4-5-20250929");
    assert_eq!(req.max_tokens, Some(32000));
    assert!(req.stream);
    assert_eq!(req.temperature, Some(1.0));
    assert_eq!(req.user.as_deref(), Some("user_abc_account_1_session_2"));
    assert_eq!(
        req.system,
        vec![
            TextBlock {
                text: "You are Claude Code.".into(),
                cache_control: ephemeral()
            },
            TextBlock {
                text: "Environment: linux".into(),
                cache_control: None
            },
            TextBlock {
                text: "Tool rules.".into(),
                cache_control: Some(CacheControl {
                    kind: "ephemeral".into(),
                    ttl: Some("1h".into())
                })
            },
        ]
    );
    assert_eq!(
        req.messages,
        vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::text("<system-reminder>ctx</system-reminder>"),
                    Part::Text {
                        text: "List the files".into(),
                        cache_control: ephemeral()
                    },
                ]
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Reasoning {
                        text: "I should run ls.".into(),
                        signature: Some("EqQBCg==".into())
                    },
                    Part::text("Running ls."),
                    Part::ToolCall {
                        id: "toolu_01".into(),
                        name: "Bash".into(),
                        arguments: r#"{"command":"ls","timeout":5}"#.into()
                    },
                ]
            },
            Message {
                role: Role::User,
                content: vec![Part::ToolResult {
                    call_id: "toolu_01".into(),
                    content: vec![Part::text("a.rs\nb.rs")],
                    is_error: false,
                    cache_control: None
                }]
            },
            Message {
                role: Role::System,
                content: vec![Part::text("The user switched to plan mode.")]
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::RedactedReasoning {
                        data: "opaque==".into()
                    },
                    Part::text("Two files."),
                ]
            },
            Message {
                role: Role::User,
                content: vec![
                    Part::ToolResult {
                        call_id: "toolu_02".into(),
                        content: vec![
                            Part::text("denied"),
                            Part::Image {
                                source: ImageSource::Base64 {
                                    media_type: "image/png".into(),
                                    data: "iVBOR".into()
                                },
                                cache_control: None
                            },
                        ],
                        is_error: true,
                        cache_control: None
                    },
                    Part::Image {
                        source: ImageSource::Url {
                            url: "https://example.com/a.png".into()
                        },
                        cache_control: None
                    },
                ]
            },
        ]
    );
    assert_eq!(
        req.tools,
        vec![
            Tool {
                name: "Bash".into(),
                description: Some("Run a command".into()),
                parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
                strict: None,
                cache_control: ephemeral()
            },
            Tool {
                name: "Read".into(),
                description: None,
                parameters: json!({"type": "object"}),
                strict: None,
                cache_control: None
            },
        ]
    );
    assert_eq!(req.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(
        req.reasoning,
        Some(Reasoning {
            budget_tokens: Some(31999),
            ..Reasoning::default()
        })
    );
    assert_eq!(req.response_format, None);
}

#[test]
fn thinking_modes_decode() {
    let th = |t: Value| {
        decode(json!({"model": "m", "messages": [], "thinking": t}))
            .unwrap()
            .reasoning
    };
    assert_eq!(
        th(json!({"type": "disabled"})),
        Some(Reasoning {
            disabled: true,
            ..Reasoning::default()
        })
    );
    assert_eq!(th(json!({"type": "adaptive"})), Some(Reasoning::default()));
}

#[test]
fn structured_output_decodes_from_both_fields() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    for body in [
        json!({"model": "m", "messages": [], "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "high"}}),
        json!({"model": "m", "messages": [], "output_format": {"type": "json_schema", "schema": schema}}),
    ] {
        assert_eq!(
            decode(body).unwrap().response_format,
            Some(ResponseFormat::JsonSchema {
                name: "response".into(),
                schema: schema.clone(),
                strict: None
            })
        );
    }
}

#[test]
fn bad_input_is_a_400_naming_the_field() {
    let cases = [
        (
            json!({"model": "m", "messages": {"role": "user"}}),
            "messages",
        ),
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": ["hi"]}), "messages[0]"),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"text": "x"}]}]}),
            "messages[1].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]}),
            "messages[0].content[0].tool_use_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]}),
            "messages[0].content[0].source.media_type",
        ),
        (
            json!({"model": "m", "messages": [], "max_tokens": "lots"}),
            "max_tokens",
        ),
        (json!({"model": "m", "messages": [], "system": 3}), "system"),
        (
            json!({"model": "m", "messages": [], "system": [{"type": "image"}]}),
            "system[0]",
        ),
        (
            json!({"model": "m", "messages": [], "tools": [{"input_schema": {}}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "messages": [], "tool_choice": {"type": "sometimes"}}),
            "tool_choice.type",
        ),
        (
            json!({"model": "m", "messages": [], "tool_choice": {"type": "tool"}}),
            "tool_choice.name",
        ),
        (
            json!({"model": "m", "messages": [], "thinking": {"type": "enabled"}}),
            "thinking.budget_tokens",
        ),
        (
            json!({"model": "m", "messages": [], "metadata": {"user_id": 7}}),
            "metadata.user_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "yes"}]}]}),
            "messages[0].content[0].cache_control",
        ),
    ];
    for (body, param) in cases {
        let e = decode(body.clone()).unwrap_err();
        assert_eq!(e.status().as_u16(), 400, "{body}");
        assert_eq!(e.param(), Some(param), "{body}: {}", e.message());
    }
}

#[test]
fn unknown_fields_and_empty_messages_are_skipped() {
    let req = decode(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": ""},
            {"role": "user", "content": [{"type": "container_upload", "file_id": "f"}]},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]}
        ],
        "service_tier": "auto",
        "mcp_servers": []
    }))
    .unwrap();
    assert_eq!(
        req.messages,
        vec![Message {
            role: Role::User,
            content: vec![Part::text("hi")]
        }]
    );
}
