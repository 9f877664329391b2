//! A canonical request to a provider's Chat Completions body.

use serde_json::{json, Map, Value};

use super::MaxTokensField;
use crate::canonical::{ChatRequest, Message, Part, Reasoning, ResponseFormat, Role, ToolChoice};

/// Encodes a canonical request for a Chat Completions provider, for `model`.
/// Streams ask for usage (`stream_options.include_usage`).
///
/// Absent optional fields are left out (never `null`). See the
/// [module docs](super) for what is dropped.
pub fn encode_request(req: &ChatRequest, model: &str, max_tokens_field: MaxTokensField) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(encode_messages(req)));

    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                let mut func = Map::new();
                func.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    func.insert("description".into(), json!(d));
                }
                func.insert("parameters".into(), t.parameters.clone());
                if let Some(strict) = t.strict {
                    func.insert("strict".into(), json!(strict));
                }
                json!({"type": "function", "function": func})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), v);
    }
    if let Some(p) = req.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), json!(p));
    }
    if let Some(n) = req.max_tokens {
        let key = match max_tokens_field {
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
            MaxTokensField::MaxTokens => "max_tokens",
        };
        body.insert(key.into(), json!(n));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    if let Some(rf) = &req.response_format {
        let v = match rf {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => {
                let mut js = Map::new();
                js.insert("name".into(), json!(name));
                js.insert("schema".into(), schema.clone());
                if let Some(s) = strict {
                    js.insert("strict".into(), json!(s));
                }
                json!({"type": "json_schema", "json_schema": js})
            }
        };
        body.insert("response_format".into(), v);
    }
    if let Some(effort) = req.reasoning.as_ref().and_then(reasoning_effort) {
        body.insert("reasoning_effort".into(), json!(effort));
    }
    if let Some(user) = &req.user {
        body.insert("user".into(), json!(user));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// `reasoning_effort` for the reasoning settings: the effort as given, or
/// the bucket of a thinking budget; nothing when thinking is disabled.
fn reasoning_effort(r: &Reasoning) -> Option<String> {
    if r.disabled {
        return None;
    }
    if let Some(effort) = &r.effort {
        return Some(effort.clone());
    }
    r.budget_tokens.map(|b| {
        match b {
            0..=2048 => "low",
            2049..=16384 => "medium",
            _ => "high",
        }
        .to_string()
    })
}

/// The texts of `parts`, joined with a blank line.
fn joined_text(parts: &[Part]) -> String {
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    texts.join("\n\n")
}

fn encode_messages(req: &ChatRequest) -> Vec<Value> {
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        let texts: Vec<&str> = req.system.iter().map(|b| b.text.as_str()).collect();
        out.push(json!({"role": "system", "content": texts.join("\n\n")}));
    }
    for m in &req.messages {
        match m.role {
            Role::System => {
                out.push(json!({"role": "system", "content": joined_text(&m.content)}));
            }
            Role::User => encode_user(m, &mut out),
            Role::Assistant => out.push(encode_assistant(m)),
        }
    }
    out
}

/// A user message: one `tool` message per tool result, in order, then the
/// rest (with any images the tool results held) as one user message.
fn encode_user(m: &Message, out: &mut Vec<Value>) {
    let mut rest: Vec<&Part> = Vec::new();
    for part in &m.content {
        match part {
            Part::ToolResult {
                call_id, content, ..
            } => {
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": joined_text(content),
                }));
                rest.extend(content.iter().filter(|p| matches!(p, Part::Image { .. })));
            }
            Part::Text { .. } | Part::Image { .. } => rest.push(part),
            // Calls and reasoning have no place in a user turn.
            _ => {}
        }
    }
    let had_results = m
        .content
        .iter()
        .any(|p| matches!(p, Part::ToolResult { .. }));
    if rest.is_empty() && had_results {
        return;
    }
    let only_text = rest.iter().all(|p| matches!(p, Part::Text { .. }));
    let content = if only_text {
        let texts: Vec<&str> = rest
            .iter()
            .filter_map(|p| match p {
                Part::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        json!(texts.join("\n\n"))
    } else {
        Value::Array(
            rest.iter()
                .filter_map(|p| match p {
                    Part::Text { text, .. } => Some(json!({"type": "text", "text": text})),
                    Part::Image { source, .. } => Some(json!({
                        "type": "image_url",
                        "image_url": {"url": source.to_url()},
                    })),
                    _ => None,
                })
                .collect(),
        )
    };
    out.push(json!({"role": "user", "content": content}));
}

fn encode_assistant(m: &Message) -> Value {
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    let has_text = m.content.iter().any(|p| matches!(p, Part::Text { .. }));
    let calls: Vec<Value> = m
        .content
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({
                "id": id,
                "type": "function",
                "function": {
                    "name": name,
                    // An empty argument string is no arguments.
                    "arguments": if arguments.is_empty() { "{}" } else { arguments.as_str() },
                },
            })),
            _ => None,
        })
        .collect();
    if has_text || calls.is_empty() {
        msg.insert("content".into(), json!(joined_text(&m.content)));
    }
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{CacheControl, ImageSource, TextBlock, Tool};
    use crate::json::RawObject;

    fn encode(req: &ChatRequest, field: MaxTokensField) -> Value {
        serde_json::from_slice(&encode_request(req, "target-model", field)).unwrap()
    }

    fn tool_result(id: &str, content: Vec<Part>) -> Part {
        Part::ToolResult {
            call_id: id.into(),
            content,
            is_error: false,
            cache_control: None,
        }
    }

    fn call(id: &str, args: &str) -> Part {
        Part::ToolCall {
            id: id.into(),
            name: "weather".into(),
            arguments: args.into(),
        }
    }

    #[test]
    fn encodes_options_and_omits_absent_fields() {
        let req = ChatRequest {
            model: "client-model".into(),
            messages: vec![Message {
                role: Role::User,
                content: vec![Part::text("hi")],
            }],
            ..ChatRequest::default()
        };
        let v = encode(&req, MaxTokensField::MaxCompletionTokens);
        assert_eq!(
            v,
            json!({"model": "target-model", "messages": [{"role": "user", "content": "hi"}]})
        );

        let req = ChatRequest {
            max_tokens: Some(256),
            temperature: Some(0.2),
            top_p: Some(0.5),
            top_k: Some(40),
            stop: vec!["END".into()],
            stream: true,
            user: Some("u".into()),
            parallel_tool_calls: Some(true),
            tool_choice: Some(ToolChoice::Required),
            tools: vec![Tool {
                name: "weather".into(),
                description: None,
                parameters: json!({"type": "object"}),
                strict: None,
                cache_control: Some(CacheControl {
                    kind: "ephemeral".into(),
                    ttl: None,
                }),
            }],
            response_format: Some(ResponseFormat::JsonSchema {
                name: "out".into(),
                schema: json!({"type": "object"}),
                strict: None,
            }),
            reasoning: Some(Reasoning {
                budget_tokens: Some(10_000),
                ..Reasoning::default()
            }),
            ..req
        };
        let v = encode(&req, MaxTokensField::MaxTokens);
        assert_eq!(v["max_tokens"], 256);
        assert!(v.get("max_completion_tokens").is_none());
        assert!(v.get("top_k").is_none());
        assert_eq!(v["temperature"], 0.2);
        assert_eq!(v["top_p"], 0.5);
        assert_eq!(v["stop"], json!(["END"]));
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        assert_eq!(v["user"], "u");
        assert_eq!(v["parallel_tool_calls"], true);
        assert_eq!(v["tool_choice"], "required");
        assert_eq!(
            v["tools"],
            json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            v["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}})
        );
        assert_eq!(v["reasoning_effort"], "medium");
        let v = encode(&req, MaxTokensField::MaxCompletionTokens);
        assert_eq!(v["max_completion_tokens"], 256);
        assert!(v.get("max_tokens").is_none());
    }

    #[test]
    fn budget_buckets_and_disabled_reasoning() {
        let effort = |budget: u64| {
            reasoning_effort(&Reasoning {
                budget_tokens: Some(budget),
                ..Reasoning::default()
            })
        };
        assert_eq!(effort(1024).as_deref(), Some("low"));
        assert_eq!(effort(2048).as_deref(), Some("low"));
        assert_eq!(effort(2049).as_deref(), Some("medium"));
        assert_eq!(effort(16384).as_deref(), Some("medium"));
        assert_eq!(effort(32000).as_deref(), Some("high"));
        let explicit = Reasoning {
            effort: Some("minimal".into()),
            budget_tokens: Some(32000),
            disabled: false,
        };
        assert_eq!(reasoning_effort(&explicit).as_deref(), Some("minimal"));
        let off = Reasoning {
            effort: Some("high".into()),
            budget_tokens: None,
            disabled: true,
        };
        assert_eq!(reasoning_effort(&off), None);
    }

    #[test]
    fn system_blocks_join_and_mid_conversation_system_stays() {
        let req = ChatRequest {
            system: vec![
                TextBlock {
                    text: "A".into(),
                    cache_control: None,
                },
                TextBlock {
                    text: "B".into(),
                    cache_control: None,
                },
            ],
            messages: vec![
                Message {
                    role: Role::User,
                    content: vec![Part::text("hi")],
                },
                Message {
                    role: Role::System,
                    content: vec![Part::text("be brief")],
                },
            ],
            ..ChatRequest::default()
        };
        let v = encode(&req, MaxTokensField::default());
        assert_eq!(
            v["messages"],
            json!([
                {"role": "system", "content": "A\n\nB"},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "be brief"}
            ])
        );
    }

    #[test]
    fn splits_tool_results_into_tool_messages() {
        let img = Part::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBO".into(),
            },
            cache_control: None,
        };
        let req = ChatRequest {
            messages: vec![
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Part::Reasoning {
                            text: "think".into(),
                            signature: Some("sig".into()),
                        },
                        call("call_1", "{\"city\":\"Paris\"}"),
                        call("call_2", ""),
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        tool_result("call_1", vec![Part::text("18C"), Part::text("sunny")]),
                        tool_result("call_2", vec![Part::text("screenshot:"), img]),
                        Part::text("and tomorrow?"),
                    ],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![Part::text("Let me check."), call("call_3", "{}")],
                },
                Message {
                    role: Role::User,
                    content: vec![tool_result("call_3", vec![Part::text("rain")])],
                },
            ],
            ..ChatRequest::default()
        };
        let v = encode(&req, MaxTokensField::default());
        assert_eq!(
            v["messages"],
            json!([
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C\n\nsunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "screenshot:"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "text", "text": "and tomorrow?"}
                ]},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_3", "content": "rain"}
            ])
        );
    }

    #[test]
    fn round_trips_through_decode_request() {
        let req = ChatRequest {
            model: "target-model".into(),
            system: vec![TextBlock {
                text: "sys".into(),
                cache_control: None,
            }],
            messages: vec![
                Message {
                    role: Role::User,
                    content: vec![
                        Part::text("look"),
                        Part::Image {
                            source: ImageSource::Url {
                                url: "https://example.com/x.png".into(),
                            },
                            cache_control: None,
                        },
                    ],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![call("call_1", "{\"a\":1}"), call("call_2", "{\"a\":2}")],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        tool_result("call_1", vec![Part::text("one")]),
                        tool_result("call_2", vec![Part::text("two")]),
                    ],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![Part::text("done")],
                },
            ],
            tools: vec![Tool {
                name: "weather".into(),
                description: Some("d".into()),
                parameters: json!({"type": "object", "properties": {}}),
                strict: Some(false),
                cache_control: None,
            }],
            tool_choice: Some(ToolChoice::Tool("weather".into())),
            parallel_tool_calls: Some(true),
            max_tokens: Some(99),
            temperature: Some(1.0),
            top_p: Some(0.3),
            stop: vec!["x".into(), "y".into()],
            stream: true,
            response_format: Some(ResponseFormat::JsonObject),
            reasoning: Some(Reasoning {
                effort: Some("low".into()),
                ..Reasoning::default()
            }),
            user: Some("u".into()),
            top_k: None,
        };
        let bytes = encode_request(&req, "target-model", MaxTokensField::MaxCompletionTokens);
        let back = super::super::decode_request(&RawObject::parse(&bytes).unwrap()).unwrap();
        assert_eq!(back, req);
    }
}
