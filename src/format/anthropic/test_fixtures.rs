//! Shared test fixtures for the Anthropic translators.

use serde_json::{json, Value};

use crate::canonical::{CacheControl, ChatRequest};
use crate::error::GatewayError;
use crate::json::RawObject;

pub(super) fn decode(v: Value) -> Result<ChatRequest, GatewayError> {
    let obj = RawObject::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
    super::decode_request(&obj)
}

pub(super) fn encode(req: &ChatRequest) -> Value {
    serde_json::from_slice(&super::encode_request(req, "claude-target")).unwrap()
}

pub(super) fn ephemeral() -> Option<CacheControl> {
    Some(CacheControl {
        kind: "ephemeral".into(),
        ttl: None,
    })
}

pub(super) fn claude_code_body() -> Value {
    json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": true,
        "temperature": 1,
        "metadata": {"user_id": "user_abc_account_1_session_2"},
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Environment: linux"},
            {"type": "text", "text": "Tool rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "List the files", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBCg=="},
                {"type": "text", "text": "Running ls.", "citations": null},
                {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls", "timeout": 5}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.rs\nb.rs", "is_error": false}
            ]},
            {"role": "system", "content": "The user switched to plan mode."},
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": "opaque=="},
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {"type": "text", "text": "Two files."}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true, "content": [
                    {"type": "text", "text": "denied"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
                ]},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}
            ]}
        ],
        "tools": [
            {"name": "Bash", "description": "Run a command",
             "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
             "cache_control": {"type": "ephemeral"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"type": "custom", "name": "Read", "input_schema": {"type": "object"}}
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": []}
    })
}
