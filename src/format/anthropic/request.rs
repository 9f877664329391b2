//! Requests from clients: a Messages body to canonical.

use serde_json::{json, Map, Value};

use crate::canonical::{
    CacheControl, ChatRequest, ImageSource, Message, Part, Reasoning, ResponseFormat, Role,
    TextBlock, Tool, ToolChoice,
};
use crate::error::GatewayError;
use crate::json::{kind_of, JsonKind, RawObject};

fn bad(path: &str, msg: impl Into<String>) -> GatewayError {
    GatewayError::invalid_param(path, msg)
}

type Obj = Map<String, Value>;

/// `obj[key]` as an optional string; another type is a 400 naming `path.key`.
fn opt_str<'a>(obj: &'a Obj, key: &str, path: &str) -> Result<Option<&'a str>, GatewayError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => {
            let p = format!("{path}.{key}");
            Err(bad(&p, format!("`{p}` must be a string")))
        }
    }
}

/// `obj[key]` as a required string.
fn req_str<'a>(obj: &'a Obj, key: &str, path: &str) -> Result<&'a str, GatewayError> {
    opt_str(obj, key, path)?.ok_or_else(|| {
        let p = format!("{path}.{key}");
        bad(&p, format!("`{p}` is required"))
    })
}

fn as_obj<'a>(v: &'a Value, path: &str, what: &str) -> Result<&'a Obj, GatewayError> {
    v.as_object()
        .ok_or_else(|| bad(path, format!("`{path}` must be {what}")))
}

fn decode_cache_control(obj: &Obj, path: &str) -> Result<Option<CacheControl>, GatewayError> {
    match obj.get("cache_control") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let p = format!("{path}.cache_control");
            let o = as_obj(v, &p, "an object")?;
            let kind = req_str(o, "type", &p)?.to_owned();
            let ttl = opt_str(o, "ttl", &p)?.map(str::to_owned);
            Ok(Some(CacheControl { kind, ttl }))
        }
    }
}

/// Parses a top-level field that must be of JSON type `kind`.
fn field_value(
    body: &RawObject,
    key: &str,
    kind: JsonKind,
    what: &str,
) -> Result<Option<Value>, GatewayError> {
    let Some(raw) = body.get(key) else {
        return Ok(None);
    };
    match kind_of(raw) {
        JsonKind::Null => Ok(None),
        k if k == kind => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|e| bad(key, format!("invalid value for `{key}`: {e}"))),
        _ => Err(bad(key, format!("`{key}` must be {what}"))),
    }
}

/// Decodes a client's Anthropic Messages request.
pub fn decode_request(body: &RawObject) -> Result<ChatRequest, GatewayError> {
    let mut req = ChatRequest {
        model: body.get_as::<String>("model")?.unwrap_or_default(),
        max_tokens: body.get_as("max_tokens")?,
        temperature: body.get_as("temperature")?,
        top_p: body.get_as("top_p")?,
        top_k: body.get_as("top_k")?,
        stop: body.get_as("stop_sequences")?.unwrap_or_default(),
        stream: body.get_as("stream")?.unwrap_or(false),
        ..ChatRequest::default()
    };

    match body.get("system") {
        None => {}
        Some(raw) => match kind_of(raw) {
            JsonKind::Null => {}
            JsonKind::String => {
                let s: String = body.get_as("system")?.unwrap_or_default();
                if !s.is_empty() {
                    req.system.push(TextBlock {
                        text: s,
                        cache_control: None,
                    });
                }
            }
            JsonKind::Array => {
                let blocks = field_value(body, "system", JsonKind::Array, "")?;
                for (i, b) in blocks
                    .iter()
                    .flat_map(|v| v.as_array())
                    .flatten()
                    .enumerate()
                {
                    let path = format!("system[{i}]");
                    let o = as_obj(b, &path, "a text block")?;
                    let ty = opt_str(o, "type", &path)?;
                    if ty != Some("text") {
                        return Err(bad(&path, format!("`{path}` must be a text block")));
                    }
                    req.system.push(TextBlock {
                        text: req_str(o, "text", &path)?.to_owned(),
                        cache_control: decode_cache_control(o, &path)?,
                    });
                }
            }
            _ => {
                return Err(bad(
                    "system",
                    "`system` must be a string or an array of text blocks",
                ))
            }
        },
    }

    let messages = field_value(body, "messages", JsonKind::Array, "an array")?
        .ok_or_else(|| bad("messages", "`messages` is required"))?;
    for (i, m) in messages.as_array().into_iter().flatten().enumerate() {
        let path = format!("messages[{i}]");
        let o = as_obj(m, &path, "an object")?;
        let role = match req_str(o, "role", &path)? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "system" => Role::System,
            other => {
                let p = format!("{path}.role");
                return Err(bad(
                    &p,
                    format!("`{p}` must be `user`, `assistant` or `system`, not `{other}`"),
                ));
            }
        };
        let content = match o.get("content") {
            None | Some(Value::Null) => {
                let p = format!("{path}.content");
                return Err(bad(&p, format!("`{p}` is required")));
            }
            Some(c) => decode_content(c, &format!("{path}.content"), false)?,
        };
        if !content.is_empty() {
            req.messages.push(Message { role, content });
        }
    }

    if let Some(tools) = field_value(body, "tools", JsonKind::Array, "an array")? {
        for (i, t) in tools.as_array().into_iter().flatten().enumerate() {
            let path = format!("tools[{i}]");
            let o = as_obj(t, &path, "an object")?;
            match opt_str(o, "type", &path)? {
                None | Some("custom") => {}
                Some(_) => continue, // a server tool
            }
            let parameters = match o.get("input_schema") {
                None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => {
                    let p = format!("{path}.input_schema");
                    return Err(bad(&p, format!("`{p}` must be an object")));
                }
            };
            req.tools.push(Tool {
                name: req_str(o, "name", &path)?.to_owned(),
                description: opt_str(o, "description", &path)?.map(str::to_owned),
                parameters,
                strict: None,
                cache_control: decode_cache_control(o, &path)?,
            });
        }
    }

    if let Some(tc) = field_value(body, "tool_choice", JsonKind::Object, "an object")? {
        let o = as_obj(&tc, "tool_choice", "an object")?;
        req.tool_choice = Some(match req_str(o, "type", "tool_choice")? {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Required,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Tool(req_str(o, "name", "tool_choice")?.to_owned()),
            other => {
                return Err(bad(
                    "tool_choice.type",
                    format!(
                        "`tool_choice.type` must be `auto`, `any`, `tool` or `none`, not `{other}`"
                    ),
                ))
            }
        });
        match o.get("disable_parallel_tool_use") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => req.parallel_tool_calls = Some(false),
            Some(_) => {
                return Err(bad(
                    "tool_choice.disable_parallel_tool_use",
                    "`tool_choice.disable_parallel_tool_use` must be a boolean",
                ))
            }
        }
    }

    if let Some(meta) = field_value(body, "metadata", JsonKind::Object, "an object")? {
        let o = as_obj(&meta, "metadata", "an object")?;
        req.user = opt_str(o, "user_id", "metadata")?.map(str::to_owned);
    }

    if let Some(th) = field_value(body, "thinking", JsonKind::Object, "an object")? {
        let o = as_obj(&th, "thinking", "an object")?;
        req.reasoning = Some(match req_str(o, "type", "thinking")? {
            "enabled" => {
                let budget = o
                    .get("budget_tokens")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        bad(
                            "thinking.budget_tokens",
                            "`thinking.budget_tokens` must be a non-negative integer",
                        )
                    })?;
                Reasoning {
                    budget_tokens: Some(budget),
                    ..Reasoning::default()
                }
            }
            "disabled" => Reasoning {
                disabled: true,
                ..Reasoning::default()
            },
            "adaptive" => Reasoning::default(),
            other => {
                return Err(bad(
                    "thinking.type",
                    format!(
                    "`thinking.type` must be `enabled`, `disabled` or `adaptive`, not `{other}`"
                ),
                ))
            }
        });
    }

    let format = match field_value(body, "output_config", JsonKind::Object, "an object")? {
        Some(Value::Object(mut oc)) => oc
            .remove("format")
            .map(|f| (f, "output_config.format".to_owned())),
        _ => None,
    };
    let format = match format {
        Some(f) => Some(f),
        None => field_value(body, "output_format", JsonKind::Object, "an object")?
            .map(|f| (f, "output_format".to_owned())),
    };
    if let Some((f, path)) = format {
        if !f.is_null() {
            let o = as_obj(&f, &path, "an object")?;
            match req_str(o, "type", &path)? {
                "json_schema" => {
                    let schema = o.get("schema").cloned().unwrap_or(Value::Null);
                    if !schema.is_object() {
                        let p = format!("{path}.schema");
                        return Err(bad(&p, format!("`{p}` must be an object")));
                    }
                    req.response_format = Some(ResponseFormat::JsonSchema {
                        name: "response".to_owned(),
                        schema,
                        strict: None,
                    });
                }
                other => {
                    let p = format!("{path}.type");
                    return Err(bad(
                        &p,
                        format!("`{p}` must be `json_schema`, not `{other}`"),
                    ));
                }
            }
        }
    }

    Ok(req)
}

/// Decodes a message's (or a tool result's) `content`: a string or blocks.
fn decode_content(v: &Value, path: &str, in_tool_result: bool) -> Result<Vec<Part>, GatewayError> {
    match v {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::text(s.clone())]),
        Value::Array(blocks) => {
            let mut out = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                if let Some(p) = decode_block(b, &format!("{path}[{i}]"), in_tool_result)? {
                    out.push(p);
                }
            }
            Ok(out)
        }
        _ => Err(bad(
            path,
            format!("`{path}` must be a string or an array of content blocks"),
        )),
    }
}

/// Decodes one content block; `None` for blocks dropped knowingly.
fn decode_block(v: &Value, path: &str, in_tool_result: bool) -> Result<Option<Part>, GatewayError> {
    let o = as_obj(v, path, "a content block object")?;
    let ty = match o.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None | Some(Value::Null) => {
            return Err(bad(
                path,
                format!("`{path}` is not a known content block: it has no `type`"),
            ))
        }
        Some(_) => {
            let p = format!("{path}.type");
            return Err(bad(&p, format!("`{p}` must be a string")));
        }
    };
    let part = match ty {
        "text" => Part::Text {
            text: req_str(o, "text", path)?.to_owned(),
            cache_control: decode_cache_control(o, path)?,
        },
        "image" => {
            let sp = format!("{path}.source");
            let src = as_obj(o.get("source").unwrap_or(&Value::Null), &sp, "an object")?;
            let source = match req_str(src, "type", &sp)? {
                "base64" => ImageSource::Base64 {
                    media_type: req_str(src, "media_type", &sp)?.to_owned(),
                    data: req_str(src, "data", &sp)?.to_owned(),
                },
                "url" => ImageSource::from_url(req_str(src, "url", &sp)?),
                _ => return Ok(None),
            };
            Part::Image {
                source,
                cache_control: decode_cache_control(o, path)?,
            }
        }
        _ if in_tool_result => return Ok(None),
        "tool_use" => {
            let arguments = match o.get("input") {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(input) => input.to_string(),
            };
            Part::ToolCall {
                id: req_str(o, "id", path)?.to_owned(),
                name: req_str(o, "name", path)?.to_owned(),
                arguments,
            }
        }
        "tool_result" => {
            let content = match o.get("content") {
                None | Some(Value::Null) => Vec::new(),
                Some(c) => decode_content(c, &format!("{path}.content"), true)?,
            };
            let is_error = match o.get("is_error") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    let p = format!("{path}.is_error");
                    return Err(bad(&p, format!("`{p}` must be a boolean")));
                }
            };
            Part::ToolResult {
                call_id: req_str(o, "tool_use_id", path)?.to_owned(),
                content,
                is_error,
                cache_control: decode_cache_control(o, path)?,
            }
        }
        "thinking" => Part::Reasoning {
            text: req_str(o, "thinking", path)?.to_owned(),
            signature: opt_str(o, "signature", path)?
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        },
        "redacted_thinking" => Part::RedactedReasoning {
            data: req_str(o, "data", path)?.to_owned(),
        },
        // document, search_result, server tool blocks, container_upload, ...:
        // no canonical form (listed in the module docs).
        _ => return Ok(None),
    };
    Ok(Some(part))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
