//! Decoding a client's `/v1/responses` request.

use serde_json::{Map, Value};

use crate::canonical::{ChatRequest, Reasoning, ResponseFormat, TextBlock, Tool, ToolChoice};
use crate::error::GatewayError;
use crate::json::RawObject;

pub(super) const NO_STATE: &str = "tollgate keeps no response state; send the full input";

/// Decodes a client's Responses request.
pub fn decode_request(body: &RawObject) -> Result<ChatRequest, GatewayError> {
    for key in ["previous_response_id", "conversation", "prompt"] {
        if body.get_as::<Value>(key)?.is_some() {
            return Err(GatewayError::invalid_param(
                key,
                format!("`{key}` is not supported: {NO_STATE}"),
            ));
        }
    }
    if body.get_as::<bool>("background")? == Some(true) {
        return Err(GatewayError::invalid_param(
            "background",
            format!("background responses are not supported: {NO_STATE} and wait for the answer"),
        ));
    }

    let model: String = body
        .get_as("model")?
        .ok_or_else(|| GatewayError::invalid_param("model", "missing `model`"))?;
    let mut req = ChatRequest {
        model,
        ..Default::default()
    };

    if let Some(instructions) = body.get_as::<String>("instructions")? {
        if !instructions.is_empty() {
            req.system.push(TextBlock {
                text: instructions,
                cache_control: None,
            });
        }
    }

    let input = body
        .get_as::<Value>("input")?
        .ok_or_else(|| GatewayError::invalid_param("input", "missing `input`"))?;
    super::input::decode_input(&input, &mut req)?;

    if let Some(tools) = body.get_as::<Vec<Value>>("tools")? {
        for (i, tool) in tools.iter().enumerate() {
            if let Some(tool) = decode_tool(tool, &format!("tools[{i}]"))? {
                req.tools.push(tool);
            }
        }
    }
    if let Some(choice) = body.get_as::<Value>("tool_choice")? {
        req.tool_choice = Some(decode_tool_choice(&choice)?);
    }
    req.parallel_tool_calls = body.get_as("parallel_tool_calls")?;
    req.max_tokens = body.get_as("max_output_tokens")?;
    req.temperature = body.get_as("temperature")?;
    req.top_p = body.get_as("top_p")?;
    req.stream = body.get_as("stream")?.unwrap_or(false);
    req.user = match body.get_as::<String>("user")? {
        Some(user) => Some(user),
        None => body.get_as("safety_identifier")?,
    };
    if let Some(text) = body.get_as::<Value>("text")? {
        req.response_format = decode_text_format(&text)?;
    }
    if let Some(reasoning) = body.get_as::<Value>("reasoning")? {
        req.reasoning = decode_reasoning(&reasoning)?;
    }
    Ok(req)
}

pub(super) fn bad(param: &str, msg: impl Into<String>) -> GatewayError {
    GatewayError::invalid_param(param, msg)
}

pub(super) fn as_object<'a>(
    v: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, GatewayError> {
    v.as_object()
        .ok_or_else(|| bad(path, format!("`{path}` must be an object")))
}

/// An optional string field: absent or `null` is `None`, another type a 400.
pub(super) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, GatewayError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => {
            let p = format!("{path}.{key}");
            Err(bad(&p, format!("`{p}` must be a string")))
        }
    }
}

pub(super) fn req_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, GatewayError> {
    opt_str(obj, key, path)?.ok_or_else(|| {
        let p = format!("{path}.{key}");
        bad(&p, format!("missing `{p}`"))
    })
}

/// A function tool; built-in tools give `None` (dropped, see the module docs).
fn decode_tool(tool: &Value, path: &str) -> Result<Option<Tool>, GatewayError> {
    let obj = as_object(tool, path)?;
    if req_str(obj, "type", path)? != "function" {
        return Ok(None);
    }
    let name = req_str(obj, "name", path)?.to_string();
    let description = opt_str(obj, "description", path)?.map(str::to_string);
    let parameters = match obj.get("parameters") {
        None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            let p = format!("{path}.parameters");
            return Err(bad(&p, format!("`{p}` must be a JSON Schema object")));
        }
    };
    // The Responses API makes a function tool strict unless told otherwise;
    // Chat Completions does the opposite, so the default is made explicit.
    let strict = match obj.get("strict") {
        None | Some(Value::Null) => Some(true),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            let p = format!("{path}.strict");
            return Err(bad(&p, format!("`{p}` must be a boolean")));
        }
    };
    Ok(Some(Tool {
        name,
        description,
        parameters,
        strict,
        cache_control: None,
    }))
}

fn decode_tool_choice(choice: &Value) -> Result<ToolChoice, GatewayError> {
    const P: &str = "tool_choice";
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(bad(
                P,
                format!("unsupported `tool_choice` `{other}`: expected auto, none or required"),
            )),
        },
        Value::Object(obj) => match req_str(obj, "type", P)? {
            "function" => Ok(ToolChoice::Tool(req_str(obj, "name", P)?.to_string())),
            other => Err(bad(
                P,
                format!(
                    "`tool_choice` of type `{other}` is not supported: only function tools can be translated to other providers"
                ),
            )),
        },
        _ => Err(bad(P, "`tool_choice` must be a string or an object")),
    }
}

fn decode_text_format(text: &Value) -> Result<Option<ResponseFormat>, GatewayError> {
    let obj = as_object(text, "text")?;
    let format = match obj.get("format") {
        None | Some(Value::Null) => return Ok(None),
        Some(f) => as_object(f, "text.format")?,
    };
    match req_str(format, "type", "text.format")? {
        "text" => Ok(Some(ResponseFormat::Text)),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            let name = opt_str(format, "name", "text.format")?
                .unwrap_or("response")
                .to_string();
            let schema = match format.get("schema") {
                Some(s @ Value::Object(_)) => s.clone(),
                _ => {
                    return Err(bad(
                        "text.format.schema",
                        "`text.format.schema` must be a JSON Schema object",
                    ))
                }
            };
            let strict = match format.get("strict") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(bad(
                        "text.format.strict",
                        "`text.format.strict` must be a boolean",
                    ))
                }
            };
            Ok(Some(ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            }))
        }
        other => Err(bad(
            "text.format.type",
            format!("unsupported `text.format.type` `{other}`: expected text, json_object or json_schema"),
        )),
    }
}

fn decode_reasoning(reasoning: &Value) -> Result<Option<Reasoning>, GatewayError> {
    let obj = as_object(reasoning, "reasoning")?;
    Ok(
        opt_str(obj, "effort", "reasoning")?.map(|effort| match effort {
            "none" => Reasoning {
                disabled: true,
                ..Default::default()
            },
            other => Reasoning {
                effort: Some(other.to_string()),
                ..Default::default()
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Message, Part, Role};
    use serde_json::json;

    fn decode(body: Value) -> Result<ChatRequest, GatewayError> {
        let obj = RawObject::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        decode_request(&obj)
    }

    fn err_param(body: Value) -> (u16, String, String) {
        let e = decode(body).unwrap_err();
        (
            e.status().as_u16(),
            e.param().unwrap_or_default().to_string(),
            e.message().to_string(),
        )
    }

    #[test]
    fn string_input_and_instructions() {
        let req = decode(json!({
            "model": "gpt-5", "instructions": "Be brief.", "input": "Hi",
            "max_output_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stream": true,
            "safety_identifier": "u-1", "store": true, "metadata": {"a": "b"},
            "include": ["reasoning.encrypted_content"], "truncation": "auto"
        }))
        .unwrap();
        assert_eq!(req.model, "gpt-5");
        assert_eq!(req.system.len(), 1);
        assert_eq!(req.system[0].text, "Be brief.");
        assert_eq!(
            req.messages,
            vec![Message {
                role: Role::User,
                content: vec![Part::text("Hi")]
            }]
        );
        assert_eq!(req.max_tokens, Some(100));
        assert_eq!(req.temperature, Some(0.2));
        assert_eq!(req.top_p, Some(0.9));
        assert!(req.stream);
        assert_eq!(req.user.as_deref(), Some("u-1"));
    }

    #[test]
    fn text_format_and_reasoning() {
        let req = decode(json!({
            "model": "m", "input": "x",
            "text": {"format": {"type": "json_schema", "name": "person", "strict": true,
                                "schema": {"type": "object", "properties": {"n": {"type": "string"}}}}},
            "reasoning": {"effort": "high", "summary": "auto"},
            "tool_choice": "required"
        }))
        .unwrap();
        assert_eq!(
            req.response_format,
            Some(ResponseFormat::JsonSchema {
                name: "person".into(),
                schema: json!({"type": "object", "properties": {"n": {"type": "string"}}}),
                strict: Some(true)
            })
        );
        assert_eq!(req.reasoning.unwrap().effort.as_deref(), Some("high"));
        assert_eq!(req.tool_choice, Some(ToolChoice::Required));

        let req = decode(
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}},
                                "reasoning": {"effort": "none"}}),
        )
        .unwrap();
        assert_eq!(req.response_format, Some(ResponseFormat::JsonObject));
        assert!(req.reasoning.unwrap().disabled);
    }

    #[test]
    fn function_tools_are_strict_unless_the_client_says_false() {
        let tool = |strict: Value| {
            let mut t = json!({"type": "function", "name": "f", "parameters": {"type": "object"}});
            if !strict.is_string() {
                t["strict"] = strict;
            }
            let req = decode(json!({"model": "m", "input": "x", "tools": [t]})).unwrap();
            req.tools[0].strict
        };
        assert_eq!(tool(json!("absent")), Some(true));
        assert_eq!(tool(Value::Null), Some(true));
        assert_eq!(tool(json!(true)), Some(true));
        assert_eq!(tool(json!(false)), Some(false));
    }

    #[test]
    fn stateful_requests_are_refused() {
        let (status, param, msg) =
            err_param(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}));
        assert_eq!(status, 400);
        assert_eq!(param, "previous_response_id");
        assert!(msg.contains("tollgate keeps no response state; send the full input"));
        let (_, param, _) =
            err_param(json!({"model": "m", "input": "x", "conversation": "conv_1"}));
        assert_eq!(param, "conversation");
        let (_, param, _) =
            err_param(json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}));
        assert_eq!(param, "input[0]");
        // null is the same as absent
        assert!(decode(json!({"model": "m", "input": "x", "previous_response_id": null})).is_ok());
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (json!({"input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": 3}), "input"),
            (json!({"model": 3, "input": "x"}), "model"),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": "ten"}),
                "max_output_tokens",
            ),
            (json!({"model": "m", "input": "x", "tools": {}}), "tools"),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
                "input[0].content[0]",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
                "input[0].content[0].file_id",
            ),
            (
                json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
                "input[0].call_id",
            ),
            (
                json!({"model": "m", "input": [{"type": "web_search_call", "id": "ws"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "m", "input": "x", "tool_choice": {"type": "web_search_preview"}}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}),
                "text.format.schema",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": "x"}]}),
                "tools[0].parameters",
            ),
            (
                json!({"model": "m", "input": "x", "background": true}),
                "background",
            ),
        ];
        for (body, want) in cases {
            let (status, param, _) = err_param(body.clone());
            assert_eq!(status, 400, "{body}");
            assert_eq!(param, want, "{body}");
        }
    }
}
