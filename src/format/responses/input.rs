//! The `input` items of a Responses request.

use serde_json::{Map, Value};

use super::request::{as_object, bad, opt_str, req_str, NO_STATE};
use super::response::Carried;
use crate::canonical::{ChatRequest, ImageSource, Message, Part, Role, TextBlock};
use crate::error::GatewayError;

/// Decodes `input` (a string or an array of items) into `req`.
pub(super) fn decode_input(input: &Value, req: &mut ChatRequest) -> Result<(), GatewayError> {
    let items = match input {
        Value::String(text) => {
            req.messages.push(Message {
                role: Role::User,
                content: vec![Part::text(text.clone())],
            });
            return Ok(());
        }
        Value::Array(items) => items,
        _ => {
            return Err(bad(
                "input",
                "`input` must be a string or an array of items",
            ))
        }
    };
    // System items before the first conversation item are the system prompt.
    let mut at_head = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("input[{i}]");
        let obj = as_object(item, &path)?;
        let kind = opt_str(obj, "type", &path)?.unwrap_or("message");
        match kind {
            "message" => {
                let role = req_str(obj, "role", &path)?;
                let content = obj
                    .get("content")
                    .ok_or_else(|| bad(&format!("{path}.content"), format!("missing `{path}.content`")))?;
                let content_path = format!("{path}.content");
                match role {
                    "system" | "developer" => {
                        let text = system_text(content, &content_path)?;
                        if at_head {
                            req.system.push(TextBlock {
                                text,
                                cache_control: None,
                            });
                        } else {
                            req.messages.push(Message {
                                role: Role::System,
                                content: vec![Part::text(text)],
                            });
                        }
                    }
                    "user" => {
                        at_head = false;
                        let parts = user_parts(content, &content_path)?;
                        req.messages.push(Message {
                            role: Role::User,
                            content: parts,
                        });
                    }
                    "assistant" => {
                        at_head = false;
                        for part in assistant_parts(content, &content_path)? {
                            push_assistant(&mut req.messages, part);
                        }
                    }
                    other => {
                        return Err(bad(
                            &format!("{path}.role"),
                            format!(
                                "unsupported role `{other}`: expected user, assistant, system or developer"
                            ),
                        ))
                    }
                }
            }
            "function_call" => {
                at_head = false;
                let call_id = req_str(obj, "call_id", &path)?;
                let name = req_str(obj, "name", &path)?;
                let arguments = opt_str(obj, "arguments", &path)?.unwrap_or("{}");
                push_assistant(
                    &mut req.messages,
                    Part::ToolCall {
                        id: call_id.to_string(),
                        name: name.to_string(),
                        arguments: arguments.to_string(),
                    },
                );
            }
            "function_call_output" => {
                at_head = false;
                let call_id = req_str(obj, "call_id", &path)?;
                let output_path = format!("{path}.output");
                let content = match obj.get("output") {
                    None | Some(Value::Null) => {
                        return Err(bad(&output_path, format!("missing `{output_path}`")))
                    }
                    Some(output) => user_parts(output, &output_path)?,
                };
                push_tool_result(
                    &mut req.messages,
                    Part::ToolResult {
                        call_id: call_id.to_string(),
                        content,
                        is_error: false,
                        cache_control: None,
                    },
                );
            }
            "reasoning" => {
                at_head = false;
                let text = reasoning_text(obj, &path)?;
                let carried = opt_str(obj, "encrypted_content", &path)?.and_then(Carried::decode);
                let part = match (carried, text) {
                    (Some(Carried::Redacted(data)), _) => Part::RedactedReasoning {
                        data: data.to_string(),
                    },
                    (Some(Carried::Signature(sig)), text) => Part::Reasoning {
                        text: text.unwrap_or_default(),
                        signature: Some(sig.to_string()),
                    },
                    (None, Some(text)) => Part::Reasoning {
                        text,
                        signature: None,
                    },
                    (None, None) => continue,
                };
                push_assistant(&mut req.messages, part);
            }
            "item_reference" => {
                return Err(bad(
                    &path,
                    format!("`item_reference` input items are not supported: {NO_STATE}"),
                ))
            }
            other => {
                return Err(bad(
                    &format!("{path}.type"),
                    format!(
                        "input items of type `{other}` are not supported: built-in tools cannot be translated to other providers"
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Appends a part to the trailing assistant message, or starts one:
/// reasoning, text and consecutive function calls form one assistant turn.
fn push_assistant(messages: &mut Vec<Message>, part: Part) {
    match messages.last_mut() {
        Some(m) if m.role == Role::Assistant => m.content.push(part),
        _ => messages.push(Message {
            role: Role::Assistant,
            content: vec![part],
        }),
    }
}

/// Appends a tool result to the trailing user message of tool results, or
/// starts one.
fn push_tool_result(messages: &mut Vec<Message>, part: Part) {
    match messages.last_mut() {
        Some(m)
            if m.role == Role::User
                && m.content
                    .iter()
                    .all(|p| matches!(p, Part::ToolResult { .. })) =>
        {
            m.content.push(part)
        }
        _ => messages.push(Message {
            role: Role::User,
            content: vec![part],
        }),
    }
}

/// The text of a system or developer message: a string or text parts.
fn system_text(content: &Value, path: &str) -> Result<String, GatewayError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let p = format!("{path}[{j}]");
                let obj = as_object(part, &p)?;
                match req_str(obj, "type", &p)? {
                    "input_text" | "text" | "output_text" => texts.push(req_str(obj, "text", &p)?),
                    other => {
                        return Err(bad(
                            &format!("{p}.type"),
                            format!("system and developer messages take text only, not `{other}`"),
                        ))
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(bad(
            path,
            format!("`{path}` must be a string or an array of parts"),
        )),
    }
}

/// The parts of a user message or of a function call's output.
fn user_parts(content: &Value, path: &str) -> Result<Vec<Part>, GatewayError> {
    content_parts(content, path, true)
}

/// Text, refusal and (when `media` is set) image and file parts.
fn content_parts(content: &Value, path: &str, media: bool) -> Result<Vec<Part>, GatewayError> {
    let parts = match content {
        Value::String(s) => return Ok(vec![Part::text(s.clone())]),
        Value::Array(parts) => parts,
        _ => {
            return Err(bad(
                path,
                format!("`{path}` must be a string or an array of parts"),
            ))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let p = format!("{path}[{j}]");
        let obj = as_object(part, &p)?;
        match req_str(obj, "type", &p)? {
            "input_text" | "output_text" | "text" => {
                out.push(Part::text(req_str(obj, "text", &p)?))
            }
            "refusal" => out.push(Part::text(req_str(obj, "refusal", &p)?)),
            "input_image" if media => {
                if let Some(url) = opt_str(obj, "image_url", &p)? {
                    out.push(Part::Image {
                        source: ImageSource::from_url(url),
                        cache_control: None,
                    });
                } else if opt_str(obj, "file_id", &p)?.is_some() {
                    return Err(bad(
                        &format!("{p}.file_id"),
                        "images by `file_id` refer to OpenAI-hosted files and are not supported; send `image_url` (a URL or a data: URL)",
                    ));
                } else {
                    return Err(bad(&format!("{p}.image_url"), format!("missing `{p}.image_url`")));
                }
            }
            "input_file" if media => {
                return Err(bad(
                    &p,
                    "`input_file` parts are not supported by tollgate's translation; send the file's text or images instead",
                ))
            }
            other => {
                return Err(bad(
                    &format!("{p}.type"),
                    if media {
                        format!("unsupported content part type `{other}`")
                    } else {
                        format!("assistant messages take `output_text` or `refusal` parts, not `{other}`")
                    },
                ))
            }
        }
    }
    Ok(out)
}

/// The parts of an assistant message from history: text and refusals
/// (the same parts as a user message, without images or files).
fn assistant_parts(content: &Value, path: &str) -> Result<Vec<Part>, GatewayError> {
    content_parts(content, path, false)
}

/// The visible text of a reasoning item: its summary (or, failing that,
/// its `reasoning_text` content). `None` when it only has encrypted content.
fn reasoning_text(obj: &Map<String, Value>, path: &str) -> Result<Option<String>, GatewayError> {
    let mut texts = Vec::new();
    for key in ["summary", "content"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    let p = format!("{path}.{key}[{j}]");
                    let part = as_object(part, &p)?;
                    texts.push(req_str(part, "text", &p)?.to_string());
                }
            }
            Some(_) => {
                let p = format!("{path}.{key}");
                return Err(bad(&p, format!("`{p}` must be an array")));
            }
        }
        if !texts.is_empty() {
            break;
        }
    }
    Ok((!texts.is_empty()).then(|| texts.join("\n\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::ToolChoice;
    use crate::format::responses::decode_request;
    use crate::json::RawObject;
    use serde_json::json;

    fn decode(body: Value) -> Result<ChatRequest, GatewayError> {
        let obj = RawObject::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        decode_request(&obj)
    }

    #[test]
    fn vercel_ai_sdk_shape_system_item_and_input_text() {
        let req = decode(json!({
            "model": "gpt-4o",
            "input": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "input_text", "text": "Use metric."}]},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                    {"type": "input_image", "image_url": "https://x.test/cat.jpg", "detail": "low"}
                ]},
                {"role": "system", "content": "Late rule."}
            ]
        }))
        .unwrap();
        let sys: Vec<_> = req.system.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(sys, ["You are terse.", "Use metric."]);
        assert_eq!(req.messages.len(), 2);
        assert_eq!(
            req.messages[0].content,
            vec![
                Part::text("What is this?"),
                Part::Image {
                    source: ImageSource::Base64 {
                        media_type: "image/png".into(),
                        data: "AAAA".into()
                    },
                    cache_control: None
                },
                Part::Image {
                    source: ImageSource::Url {
                        url: "https://x.test/cat.jpg".into()
                    },
                    cache_control: None
                },
            ]
        );
        assert_eq!(req.messages[1].role, Role::System);
        assert_eq!(req.messages[1].content, vec![Part::text("Late rule.")]);
    }

    #[test]
    fn reasoning_items_bring_back_what_the_gateway_carried() {
        let req = decode(json!({
            "model": "m",
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Call it."}],
                 "encrypted_content": "tollgate.anthropic.signature:sig-1"},
                {"type": "reasoning", "id": "rs_2", "summary": [],
                 "encrypted_content": "tollgate.anthropic.redacted:opaque"},
                {"type": "reasoning", "id": "rs_3", "summary": [], "encrypted_content": "gAAAAB-openai"},
                {"type": "function_call", "call_id": "toolu_1", "name": "weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "toolu_1", "output": "18C"}
            ]
        }))
        .unwrap();
        assert_eq!(
            req.messages[1].content,
            vec![
                Part::Reasoning {
                    text: "Call it.".into(),
                    signature: Some("sig-1".into())
                },
                Part::RedactedReasoning {
                    data: "opaque".into()
                },
                Part::ToolCall {
                    id: "toolu_1".into(),
                    name: "weather".into(),
                    arguments: "{}".into()
                },
            ],
            "OpenAI's own encrypted content (no text either) is dropped"
        );
    }

    #[test]
    fn tool_conversation_keeps_call_ids_and_groups_turns() {
        let req = decode(json!({
            "model": "m",
            "input": [
                {"type": "message", "role": "user", "content": "Weather in Paris and Rome?"},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Two cities."}], "encrypted_content": "gAAA"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "21C"}]},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}
            ],
            "tools": [
                {"type": "function", "name": "weather", "description": "Get weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true},
                {"type": "web_search_preview"},
                {"type": "mcp", "server_label": "x", "server_url": "https://x"}
            ],
            "tool_choice": {"type": "function", "name": "weather"},
            "parallel_tool_calls": false
        }))
        .unwrap();
        assert_eq!(req.messages.len(), 4);
        assert_eq!(req.messages[1].role, Role::Assistant);
        assert_eq!(
            req.messages[1].content,
            vec![
                Part::Reasoning {
                    text: "Two cities.".into(),
                    signature: None
                },
                Part::text("Checking."),
                Part::ToolCall {
                    id: "call_a".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into()
                },
                Part::ToolCall {
                    id: "call_b".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Rome\"}".into()
                },
            ]
        );
        assert_eq!(req.messages[2].role, Role::User);
        assert_eq!(
            req.messages[2].content,
            vec![
                Part::ToolResult {
                    call_id: "call_a".into(),
                    content: vec![Part::text("18C")],
                    is_error: false,
                    cache_control: None
                },
                Part::ToolResult {
                    call_id: "call_b".into(),
                    content: vec![Part::text("21C")],
                    is_error: false,
                    cache_control: None
                },
            ]
        );
        assert_eq!(req.messages[3].content, vec![Part::text("No.")]);
        assert_eq!(req.tools.len(), 1, "built-in tools are dropped");
        assert_eq!(req.tools[0].name, "weather");
        assert_eq!(req.tools[0].strict, Some(true));
        assert_eq!(
            req.tools[0].parameters["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(req.tool_choice, Some(ToolChoice::Tool("weather".into())));
        assert_eq!(req.parallel_tool_calls, Some(false));
    }
}
