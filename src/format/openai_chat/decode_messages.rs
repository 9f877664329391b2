//! The `messages` of a client's Chat Completions request.

use serde_json::{Map, Value};

use super::decode_request::bad;
use super::reasoning_details;
use crate::canonical::{ImageSource, Message, Part, Role, TextBlock};
use crate::error::GatewayError;
use crate::json::{kind_of, JsonKind, RawObject};

/// Decodes `messages`: the system prompt at their head, and the turns.
pub(super) fn decode_messages(
    body: &RawObject,
) -> Result<(Vec<TextBlock>, Vec<Message>), GatewayError> {
    let raw = body
        .get("messages")
        .ok_or_else(|| bad("messages", "missing `messages`"))?;
    if kind_of(raw) != JsonKind::Array {
        return Err(bad("messages", "`messages` must be an array of messages"));
    }
    let list: Vec<Value> = serde_json::from_str(raw.get())
        .map_err(|e| bad("messages", format!("invalid `messages`: {e}")))?;
    if list.is_empty() {
        return Err(bad("messages", "`messages` must not be empty"));
    }

    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    let mut at_head = true;
    let mut last_was_tool = false;
    for (i, m) in list.iter().enumerate() {
        let path = format!("messages[{i}]");
        let obj = m
            .as_object()
            .ok_or_else(|| bad(&path, format!("`{path}` must be an object")))?;
        let role = match obj.get("role") {
            None | Some(Value::Null) => {
                return Err(bad(
                    &format!("{path}.role"),
                    format!("`{path}` has no `role`"),
                ))
            }
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(bad(
                    &format!("{path}.role"),
                    format!("`{path}.role` must be a string"),
                ))
            }
        };
        let content_path = format!("{path}.content");
        let is_tool = role == "tool";
        match role {
            "system" | "developer" => {
                let texts = text_content(obj.get("content"), &content_path, true)?;
                if at_head {
                    system.extend(texts.into_iter().map(|text| TextBlock {
                        text,
                        cache_control: None,
                    }));
                } else {
                    messages.push(Message {
                        role: Role::System,
                        content: texts.into_iter().map(Part::text).collect(),
                    });
                }
            }
            "user" => {
                at_head = false;
                let content = match obj.get("content") {
                    None | Some(Value::Null) => {
                        return Err(bad(
                            &content_path,
                            format!("`{content_path}` is required for user messages"),
                        ))
                    }
                    Some(c) => user_content(c, &content_path)?,
                };
                messages.push(Message {
                    role: Role::User,
                    content,
                });
            }
            "assistant" => {
                at_head = false;
                messages.push(assistant_message(obj, &path)?);
            }
            "tool" => {
                at_head = false;
                let call_id = match obj.get("tool_call_id") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        return Err(bad(
                            &format!("{path}.tool_call_id"),
                            format!("`{path}.tool_call_id` must be a string"),
                        ))
                    }
                };
                let texts = text_content(obj.get("content"), &content_path, true)?;
                let part = Part::ToolResult {
                    call_id,
                    content: texts.into_iter().map(Part::text).collect(),
                    is_error: false,
                    cache_control: None,
                };
                match messages.last_mut() {
                    Some(last) if last_was_tool => last.content.push(part),
                    _ => messages.push(Message {
                        role: Role::User,
                        content: vec![part],
                    }),
                }
            }
            "function" => {
                return Err(bad(
                    &format!("{path}.role"),
                    "the legacy `function` role is not supported; use `tool` messages",
                ))
            }
            other => {
                return Err(bad(
                    &format!("{path}.role"),
                    format!(
                        "unknown role `{other}` in `{path}`; expected system, developer, user, assistant or tool"
                    ),
                ))
            }
        }
        last_was_tool = is_tool;
    }
    Ok((system, messages))
}

/// Content that may only be text: a string, or an array of `text` parts.
/// Absent or `null` is no text, or a 400 when `required`.
fn text_content(
    content: Option<&Value>,
    path: &str,
    required: bool,
) -> Result<Vec<String>, GatewayError> {
    match content {
        None | Some(Value::Null) if required => Err(bad(path, format!("`{path}` is required"))),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, item)| {
                let p = format!("{path}[{j}]");
                let obj = part_object(item, &p)?;
                match part_type(obj, &p)? {
                    "text" => text_field(obj, "text", &p),
                    other => Err(bad(
                        &format!("{p}.type"),
                        format!("`{p}` is a `{other}` part; only `text` parts are allowed here"),
                    )),
                }
            })
            .collect(),
        Some(_) => Err(bad(
            path,
            format!("`{path}` must be a string or an array of text parts"),
        )),
    }
}

fn part_object<'a>(item: &'a Value, path: &str) -> Result<&'a Map<String, Value>, GatewayError> {
    item.as_object()
        .ok_or_else(|| bad(path, format!("`{path}` must be a content part object")))
}

fn part_type<'a>(obj: &'a Map<String, Value>, path: &str) -> Result<&'a str, GatewayError> {
    obj.get("type").and_then(Value::as_str).ok_or_else(|| {
        bad(
            &format!("{path}.type"),
            format!("`{path}.type` must be a string"),
        )
    })
}

pub(super) fn text_field(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<String, GatewayError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(bad(
            &format!("{path}.{key}"),
            format!("`{path}.{key}` must be a string"),
        )),
    }
}

fn user_content(content: &Value, path: &str) -> Result<Vec<Part>, GatewayError> {
    match content {
        Value::String(s) => Ok(vec![Part::text(s.clone())]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, item)| user_part(item, &format!("{path}[{j}]")))
            .collect(),
        _ => Err(bad(
            path,
            format!("`{path}` must be a string or an array of content parts"),
        )),
    }
}

fn user_part(item: &Value, path: &str) -> Result<Part, GatewayError> {
    let obj = part_object(item, path)?;
    match part_type(obj, path)? {
        "text" => Ok(Part::text(text_field(obj, "text", path)?)),
        "image_url" => {
            let url = match obj.get("image_url") {
                Some(Value::Object(img)) => text_field(img, "url", &format!("{path}.image_url"))?,
                // Some older clients send the URL directly.
                Some(Value::String(url)) => url.clone(),
                _ => {
                    return Err(bad(
                        &format!("{path}.image_url"),
                        format!("`{path}.image_url` must be an object with a `url`"),
                    ))
                }
            };
            Ok(Part::Image {
                source: ImageSource::from_url(&url),
                cache_control: None,
            })
        }
        kind @ ("input_audio" | "file") => Err(bad(
            &format!("{path}.type"),
            format!("`{kind}` content parts (`{path}`) are not supported: the gateway cannot translate them for other providers"),
        )),
        other => Err(bad(
            &format!("{path}.type"),
            format!("unknown content part type `{other}` in `{path}`; expected text or image_url"),
        )),
    }
}

fn assistant_message(obj: &Map<String, Value>, path: &str) -> Result<Message, GatewayError> {
    if obj.get("function_call").is_some_and(|v| !v.is_null()) {
        return Err(bad(
            &format!("{path}.function_call"),
            "the legacy assistant `function_call` is not supported; use `tool_calls`",
        ));
    }
    let mut content = Vec::new();

    // `reasoning_details` is the complete form (signatures included) of
    // what `reasoning_content` repeats as plain text.
    if let Some(details) = obj.get("reasoning_details").filter(|v| !v.is_null()) {
        content = reasoning_details::decode(details, &format!("{path}.reasoning_details"))?;
    }
    for key in ["reasoning_content", "reasoning"] {
        if !content.is_empty() {
            break;
        }
        match obj.get(key) {
            Some(Value::String(s)) => {
                if !s.is_empty() {
                    content.push(Part::Reasoning {
                        text: s.clone(),
                        signature: None,
                    });
                }
                break;
            }
            None | Some(Value::Null) => {}
            // `reasoning` is free-form in some servers' extensions: ignore
            // what is not text.
            Some(_) if key == "reasoning" => {}
            Some(_) => {
                return Err(bad(
                    &format!("{path}.{key}"),
                    format!("`{path}.{key}` must be a string"),
                ))
            }
        }
    }

    let content_path = format!("{path}.content");
    match obj.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                content.push(Part::text(s.clone()));
            }
        }
        Some(Value::Array(items)) => {
            for (j, item) in items.iter().enumerate() {
                let p = format!("{content_path}[{j}]");
                let part = part_object(item, &p)?;
                let text = match part_type(part, &p)? {
                    "text" => text_field(part, "text", &p)?,
                    "refusal" => text_field(part, "refusal", &p)?,
                    other => {
                        return Err(bad(
                            &format!("{p}.type"),
                            format!("`{p}` is a `{other}` part; assistant content holds text and refusal parts"),
                        ))
                    }
                };
                content.push(Part::text(text));
            }
        }
        Some(_) => {
            return Err(bad(
                &content_path,
                format!("`{content_path}` must be a string, an array of text parts, or null"),
            ))
        }
    }

    // A refusal the SDK echoes back is what the model said.
    if let Some(Value::String(refusal)) = obj.get("refusal") {
        if !refusal.is_empty() {
            content.push(Part::text(refusal.clone()));
        }
    }

    match obj.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (j, call) in calls.iter().enumerate() {
                content.push(tool_call(call, &format!("{path}.tool_calls[{j}]"))?);
            }
        }
        Some(_) => {
            return Err(bad(
                &format!("{path}.tool_calls"),
                format!("`{path}.tool_calls` must be an array"),
            ))
        }
    }

    Ok(Message {
        role: Role::Assistant,
        content,
    })
}

fn tool_call(call: &Value, path: &str) -> Result<Part, GatewayError> {
    let obj = call
        .as_object()
        .ok_or_else(|| bad(path, format!("`{path}` must be an object")))?;
    if let Some(ty) = obj.get("type") {
        if ty.as_str() != Some("function") {
            return Err(bad(
                &format!("{path}.type"),
                format!(
                    "`{path}.type` must be `function`; other tool call types are not supported"
                ),
            ));
        }
    }
    let id = text_field(obj, "id", path)?;
    let fpath = format!("{path}.function");
    let func = obj
        .get("function")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(&fpath, format!("`{fpath}` must be an object")))?;
    let name = text_field(func, "name", &fpath)?;
    let arguments = match func.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => "{}".to_string(),
        // Some clients send the arguments already parsed.
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(_) => {
            return Err(bad(
                &format!("{fpath}.arguments"),
                format!("`{fpath}.arguments` must be a string of JSON"),
            ))
        }
    };
    Ok(Part::ToolCall {
        id,
        name,
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{ChatRequest, Tool, ToolChoice};
    use crate::format::openai_chat::decode_request;
    use serde_json::json;

    fn decode(v: Value) -> Result<ChatRequest, GatewayError> {
        decode_request(&RawObject::parse(v.to_string().as_bytes()).unwrap())
    }

    #[test]
    fn system_prompt_rules() {
        let req = decode(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "Now be verbose."},
                {"role": "user", "content": "again"}
            ]
        }))
        .unwrap();
        let sys: Vec<&str> = req.system.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(sys, vec!["You are terse.", "A", "B"]);
        assert_eq!(req.messages.len(), 3);
        assert_eq!(
            req.messages[1],
            Message {
                role: Role::System,
                content: vec![Part::text("Now be verbose.")]
            }
        );
    }

    #[test]
    fn decodes_a_tool_conversation_as_the_sdk_sends_it_back() {
        let req = decode(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "refusal": null, "annotations": [],
                 "audio": null, "function_call": null, "name": "bot",
                 "reasoning_content": "Two cities, two calls.",
                 "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
                 ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
                {"role": "user", "content": "thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather by city",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}}
        }))
        .unwrap();
        assert_eq!(req.messages.len(), 4);
        assert_eq!(
            req.messages[1].content,
            vec![
                Part::Reasoning {
                    text: "Two cities, two calls.".into(),
                    signature: None
                },
                Part::ToolCall {
                    id: "call_1".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into()
                },
                Part::ToolCall {
                    id: "call_2".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Rome\"}".into()
                },
            ]
        );
        assert_eq!(
            req.messages[2],
            Message {
                role: Role::User,
                content: vec![
                    Part::ToolResult {
                        call_id: "call_1".into(),
                        content: vec![Part::text("18C")],
                        is_error: false,
                        cache_control: None
                    },
                    Part::ToolResult {
                        call_id: "call_2".into(),
                        content: vec![Part::text("25C")],
                        is_error: false,
                        cache_control: None
                    },
                ]
            }
        );
        assert_eq!(req.messages[3].content, vec![Part::text("thanks")]);
        assert_eq!(
            req.tools,
            vec![Tool {
                name: "weather".into(),
                description: Some("Weather by city".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
                strict: Some(true),
                cache_control: None
            }]
        );
        assert_eq!(req.tool_choice, Some(ToolChoice::Tool("weather".into())));
    }

    #[test]
    fn signed_reasoning_comes_back_from_reasoning_details() {
        let req = decode(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null,
                 "reasoning_content": "Call it.",
                 "reasoning_details": [{"type": "reasoning.text", "text": "Call it.",
                     "signature": "sig-9", "format": "anthropic-claude-v1", "index": 0}],
                 "tool_calls": [{"id": "toolu_1", "type": "function",
                     "function": {"name": "weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
            ]
        }))
        .unwrap();
        assert_eq!(
            req.messages[1].content,
            vec![
                Part::Reasoning {
                    text: "Call it.".into(),
                    signature: Some("sig-9".into())
                },
                Part::ToolCall {
                    id: "toolu_1".into(),
                    name: "weather".into(),
                    arguments: "{}".into()
                },
            ],
            "the reasoning once, signed"
        );
    }

    #[test]
    fn decodes_images_by_url_and_data_url() {
        let req = decode(json!({
            "model": "m",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "compare"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}
            ]}]
        }))
        .unwrap();
        assert_eq!(
            req.messages[0].content,
            vec![
                Part::text("compare"),
                Part::Image {
                    source: ImageSource::Url {
                        url: "https://example.com/a.png".into()
                    },
                    cache_control: None
                },
                Part::Image {
                    source: ImageSource::Base64 {
                        media_type: "image/jpeg".into(),
                        data: "QUJD".into()
                    },
                    cache_control: None
                },
            ]
        );
    }
}
