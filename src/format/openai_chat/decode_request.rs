//! A client's Chat Completions request to canonical form.

use serde_json::{Map, Value};

use super::decode_messages::{decode_messages, text_field};
use crate::canonical::{ChatRequest, Reasoning, ResponseFormat, Tool, ToolChoice};
use crate::error::GatewayError;
use crate::json::RawObject;

/// Decodes a client's Chat Completions request.
///
/// Bad input is a 400 naming the field at fault (`messages[2].content`).
/// See the [module docs](super) for what is rejected and what is ignored.
pub fn decode_request(body: &RawObject) -> Result<ChatRequest, GatewayError> {
    for legacy in ["functions", "function_call"] {
        if body.get(legacy).is_some_and(|v| v.get() != "null") {
            return Err(GatewayError::invalid_param(
                legacy,
                format!("the legacy `{legacy}` parameter is not supported; use `tools` and `tool_choice`"),
            ));
        }
    }
    if let Some(n) = body.get_as::<u64>("n")? {
        if n > 1 {
            return Err(GatewayError::invalid_param(
                "n",
                "`n` greater than 1 is not supported",
            ));
        }
    }

    let model = body
        .get_as::<String>("model")?
        .ok_or_else(|| GatewayError::invalid_param("model", "missing `model`"))?;

    let (system, messages) = decode_messages(body)?;

    let max_tokens = match body.get_as::<u64>("max_completion_tokens")? {
        Some(n) => Some(n),
        None => body.get_as::<u64>("max_tokens")?,
    };

    let reasoning =
        body.get_as::<String>("reasoning_effort")?
            .map(|effort| match effort.as_str() {
                "none" => Reasoning {
                    disabled: true,
                    ..Reasoning::default()
                },
                _ => Reasoning {
                    effort: Some(effort),
                    ..Reasoning::default()
                },
            });

    let user = match body.get_as::<String>("user")? {
        Some(u) => Some(u),
        None => body.get_as::<String>("safety_identifier")?,
    };

    Ok(ChatRequest {
        model,
        system,
        messages,
        tools: decode_tools(body)?,
        tool_choice: decode_tool_choice(body)?,
        parallel_tool_calls: body.get_as::<bool>("parallel_tool_calls")?,
        max_tokens,
        temperature: body.get_as::<f64>("temperature")?,
        top_p: body.get_as::<f64>("top_p")?,
        top_k: None,
        stop: decode_stop(body)?,
        stream: body.get_as::<bool>("stream")?.unwrap_or(false),
        response_format: decode_response_format(body)?,
        reasoning,
        user,
    })
}

pub(super) fn bad(param: &str, msg: impl Into<String>) -> GatewayError {
    GatewayError::invalid_param(param, msg)
}

/// The value of `key` as a JSON value; absent and `null` are `None`.
fn value_of(body: &RawObject, key: &str) -> Result<Option<Value>, GatewayError> {
    body.get_as::<Value>(key)
}
fn decode_tools(body: &RawObject) -> Result<Vec<Tool>, GatewayError> {
    let tools = match value_of(body, "tools")? {
        None => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(bad("tools", "`tools` must be an array")),
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let path = format!("tools[{i}]");
            let obj = t
                .as_object()
                .ok_or_else(|| bad(&path, format!("`{path}` must be an object")))?;
            match obj.get("type").and_then(Value::as_str) {
                Some("function") => {}
                Some(other) => {
                    return Err(bad(
                        &format!("{path}.type"),
                        format!("tool type `{other}` is not supported; only `function` tools are"),
                    ))
                }
                None => {
                    return Err(bad(
                        &format!("{path}.type"),
                        format!("`{path}.type` must be `function`"),
                    ))
                }
            }
            let fpath = format!("{path}.function");
            let func = obj
                .get("function")
                .and_then(Value::as_object)
                .ok_or_else(|| bad(&fpath, format!("`{fpath}` must be an object")))?;
            let name = text_field(func, "name", &fpath)?;
            let description = match func.get("description") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Err(bad(
                        &format!("{fpath}.description"),
                        format!("`{fpath}.description` must be a string"),
                    ))
                }
            };
            let parameters = match func.get("parameters") {
                // A function without parameters takes none.
                None | Some(Value::Null) => {
                    serde_json::json!({"type": "object", "properties": {}})
                }
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => {
                    return Err(bad(
                        &format!("{fpath}.parameters"),
                        format!("`{fpath}.parameters` must be a JSON Schema object"),
                    ))
                }
            };
            let strict = match func.get("strict") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(bad(
                        &format!("{fpath}.strict"),
                        format!("`{fpath}.strict` must be a boolean"),
                    ))
                }
            };
            Ok(Tool {
                name,
                description,
                parameters,
                strict,
                cache_control: None,
            })
        })
        .collect()
}

fn decode_tool_choice(body: &RawObject) -> Result<Option<ToolChoice>, GatewayError> {
    const EXPECTED: &str =
        "`tool_choice` must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}";
    Ok(match value_of(body, "tool_choice")? {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => return Err(bad("tool_choice", EXPECTED)),
        }),
        Some(Value::Object(obj)) => {
            if obj.get("type").and_then(Value::as_str) != Some("function") {
                return Err(bad("tool_choice", EXPECTED));
            }
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice", EXPECTED))?;
            Some(ToolChoice::Tool(name.to_string()))
        }
        Some(_) => return Err(bad("tool_choice", EXPECTED)),
    })
}

fn decode_stop(body: &RawObject) -> Result<Vec<String>, GatewayError> {
    const EXPECTED: &str = "`stop` must be a string or an array of strings";
    match value_of(body, "stop")? {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad("stop", EXPECTED)),
            })
            .collect(),
        Some(_) => Err(bad("stop", EXPECTED)),
    }
}

fn decode_response_format(body: &RawObject) -> Result<Option<ResponseFormat>, GatewayError> {
    let obj = match value_of(body, "response_format")? {
        None => return Ok(None),
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            return Err(bad(
                "response_format",
                "`response_format` must be an object",
            ))
        }
    };
    Ok(Some(match obj.get("type").and_then(Value::as_str) {
        Some("text") => ResponseFormat::Text,
        Some("json_object") => ResponseFormat::JsonObject,
        Some("json_schema") => {
            let js = obj
                .get("json_schema")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    bad(
                        "response_format.json_schema",
                        "`response_format.json_schema` must be an object",
                    )
                })?;
            let name = text_field(js, "name", "response_format.json_schema")?;
            let schema = match js.get("schema") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => {
                    return Err(bad(
                        "response_format.json_schema.schema",
                        "`response_format.json_schema.schema` must be a JSON Schema object",
                    ))
                }
            };
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict: js.get("strict").and_then(Value::as_bool),
            }
        }
        _ => {
            return Err(bad(
                "response_format.type",
                "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\"",
            ))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Message, Part, Role};
    use serde_json::json;

    fn decode(v: Value) -> Result<ChatRequest, GatewayError> {
        decode_request(&RawObject::parse(v.to_string().as_bytes()).unwrap())
    }

    fn err_param(v: Value) -> (u16, String, String) {
        let e = decode(v).expect_err("must fail");
        (
            e.status().as_u16(),
            e.param().unwrap_or("").to_string(),
            e.message().to_string(),
        )
    }

    #[test]
    fn decodes_scalars_and_options() {
        let req = decode(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 50,
            "max_completion_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "stream_options": {"include_usage": true},
            "parallel_tool_calls": false,
            "reasoning_effort": "high",
            "safety_identifier": "u-1",
            "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
            "seed": 7,
            "n": 1
        }))
        .unwrap();
        assert_eq!(req.model, "gpt-4o");
        assert_eq!(req.max_tokens, Some(100));
        assert_eq!(req.temperature, Some(0.5));
        assert_eq!(req.top_p, Some(0.9));
        assert_eq!(req.stop, vec!["END".to_string()]);
        assert!(req.stream);
        assert_eq!(req.parallel_tool_calls, Some(false));
        assert_eq!(
            req.reasoning.as_ref().and_then(|r| r.effort.as_deref()),
            Some("high")
        );
        assert_eq!(req.user.as_deref(), Some("u-1"));
        assert_eq!(
            req.response_format,
            Some(ResponseFormat::JsonSchema {
                name: "out".into(),
                schema: json!({"type": "object"}),
                strict: Some(true)
            })
        );
        assert_eq!(
            req.messages,
            vec![Message {
                role: Role::User,
                content: vec![Part::text("hi")]
            }]
        );

        let req = decode(json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 7, "stop": ["a", "b"], "user": "me", "safety_identifier": "other",
            "response_format": {"type": "json_object"}, "reasoning_effort": "none"
        }))
        .unwrap();
        assert_eq!(req.max_tokens, Some(7));
        assert_eq!(req.stop, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(req.user.as_deref(), Some("me"));
        assert_eq!(req.response_format, Some(ResponseFormat::JsonObject));
        assert!(req.reasoning.unwrap().disabled);
        assert!(!req.stream);
    }

    #[test]
    fn bad_input_is_a_400_naming_the_field() {
        let user = json!({"role": "user", "content": "hi"});
        let cases = vec![
            (json!({"model": "m", "messages": "hi"}), "messages"),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "messages"),
            (json!({"messages": [user]}), "model"),
            (
                json!({"model": "m", "messages": [user, {"content": "x"}]}),
                "messages[1].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [user, user, {"role": "user", "content": 5}]}),
                "messages[2].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "file", "file": {"file_id": "f"}}]}]}),
                "messages[0].content[1].type",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]}),
                "messages[0].function_call",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]}),
                "messages[0].tool_calls[0].id",
            ),
            (
                json!({"model": "m", "messages": [user], "functions": [{"name": "f"}]}),
                "functions",
            ),
            (json!({"model": "m", "messages": [user], "n": 2}), "n"),
            (
                json!({"model": "m", "messages": [user], "temperature": "hot"}),
                "temperature",
            ),
            (
                json!({"model": "m", "messages": [user], "stop": [1]}),
                "stop",
            ),
            (
                json!({"model": "m", "messages": [user], "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "messages": [user], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "m", "messages": [user], "response_format": {"type": "yaml"}}),
                "response_format.type",
            ),
        ];
        for (body, param) in cases {
            let (status, got, msg) = err_param(body.clone());
            assert_eq!(status, 400, "{body}");
            assert_eq!(got, param, "{body}: {msg}");
            assert!(!msg.is_empty());
        }
        let (_, _, msg) = err_param(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
        );
        assert!(msg.contains("input_audio"), "{msg}");
    }
}
