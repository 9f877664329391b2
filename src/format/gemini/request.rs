//! Encoding canonical requests as Gemini request bodies.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::canonical::{
    ChatRequest, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, ToolChoice,
};

/// The value Gemini documents for replayed function calls whose thought
/// signature is not available.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Encodes a canonical request as a `generateContent` /
/// `streamGenerateContent` body (the model travels in the URL).
pub fn encode_request(req: &ChatRequest) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents(&req.messages)));
    if let Some(system) = system_instruction(req) {
        body.insert("systemInstruction".into(), system);
    }
    if let Some(tools) = tools(req) {
        body.insert("tools".into(), tools);
    }
    if let Some(config) = tool_config(req) {
        body.insert("toolConfig".into(), config);
    }
    let config = generation_config(req);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Encodes a canonical request as a `countTokens` body, in the
/// `generateContentRequest` form so the system prompt and the tools count.
pub fn encode_count_tokens(req: &ChatRequest, model: &str) -> Vec<u8> {
    let model = if model.starts_with("models/") {
        model.to_string()
    } else {
        format!("models/{model}")
    };
    let mut inner = Map::new();
    inner.insert("model".into(), Value::String(model));
    inner.insert("contents".into(), Value::Array(contents(&req.messages)));
    if let Some(system) = system_instruction(req) {
        inner.insert("systemInstruction".into(), system);
    }
    if let Some(tools) = tools(req) {
        inner.insert("tools".into(), tools);
    }
    serde_json::to_vec(&json!({ "generateContentRequest": inner })).unwrap_or_default()
}

fn system_instruction(req: &ChatRequest) -> Option<Value> {
    let parts: Vec<Value> = req
        .system
        .iter()
        .filter(|b| !b.text.is_empty())
        .map(|b| json!({ "text": b.text }))
        .collect();
    (!parts.is_empty()).then(|| json!({ "parts": parts }))
}

fn tools(req: &ChatRequest) -> Option<Value> {
    if req.tools.is_empty() {
        return None;
    }
    let decls: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            let mut d = Map::new();
            d.insert("name".into(), Value::String(t.name.clone()));
            if let Some(desc) = t.description.as_deref().filter(|d| !d.is_empty()) {
                d.insert("description".into(), Value::String(desc.to_string()));
            }
            if let Some(schema) = json_schema(&t.parameters) {
                d.insert("parametersJsonSchema".into(), schema);
            }
            Value::Object(d)
        })
        .collect();
    Some(json!([{ "functionDeclarations": decls }]))
}

/// A JSON Schema for Gemini: without `$schema`; `None` when empty.
fn json_schema(schema: &Value) -> Option<Value> {
    match schema {
        Value::Object(map) if map.is_empty() => None,
        Value::Object(map) => {
            let mut map = map.clone();
            map.remove("$schema");
            Some(Value::Object(map))
        }
        _ => None,
    }
}

fn tool_config(req: &ChatRequest) -> Option<Value> {
    let cfg = match req.tool_choice.as_ref()? {
        ToolChoice::Auto => json!({ "mode": "AUTO" }),
        ToolChoice::None => json!({ "mode": "NONE" }),
        ToolChoice::Required => json!({ "mode": "ANY" }),
        ToolChoice::Tool(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
    };
    Some(json!({ "functionCallingConfig": cfg }))
}

fn generation_config(req: &ChatRequest) -> Map<String, Value> {
    let mut c = Map::new();
    if let Some(n) = req.max_tokens {
        c.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = req.temperature {
        c.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        c.insert("topP".into(), p.into());
    }
    if let Some(k) = req.top_k {
        c.insert("topK".into(), k.into());
    }
    if !req.stop.is_empty() {
        c.insert("stopSequences".into(), json!(req.stop));
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            c.insert("responseMimeType".into(), "application/json".into());
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            c.insert("responseMimeType".into(), "application/json".into());
            if let Some(schema) = json_schema(schema) {
                c.insert("responseJsonSchema".into(), schema);
            }
        }
        Some(ResponseFormat::Text) | None => {}
    }
    if let Some(thinking) = req.reasoning.as_ref().and_then(thinking_config) {
        c.insert("thinkingConfig".into(), thinking);
    }
    c
}

fn thinking_config(r: &Reasoning) -> Option<Value> {
    if r.disabled {
        return Some(json!({ "thinkingBudget": 0 }));
    }
    let budget: i64 = match (r.budget_tokens, r.effort.as_deref()) {
        (Some(b), _) => i64::try_from(b).unwrap_or(i64::MAX),
        (None, Some("none")) => return Some(json!({ "thinkingBudget": 0 })),
        (None, Some("minimal")) => 512,
        (None, Some("low")) => 1024,
        (None, Some("medium")) => 8192,
        (None, Some("high" | "xhigh" | "max")) => 24576,
        (None, Some(_)) => -1,
        (None, None) => return None,
    };
    Some(json!({ "thinkingBudget": budget, "includeThoughts": true }))
}

/// The conversation as Gemini `contents`: user/model turns, consecutive
/// turns of the same role merged.
fn contents(messages: &[Message]) -> Vec<Value> {
    // Tool call IDs to function names, for functionResponse.
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in messages {
        let (role, parts) = match m.role {
            Role::Assistant => ("model", model_parts(&m.content, &mut names)),
            Role::User => ("user", user_parts(&m.content, &names)),
            // A mid-conversation system message: its text, in a user turn.
            Role::System => ("user", user_parts(&m.content, &names)),
        };
        if parts.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((r, existing)) if *r == role => existing.extend(parts),
            _ => out.push((role, parts)),
        }
    }
    // The signature stand-in goes on the first function call of each model turn.
    for (role, parts) in &mut out {
        if *role != "model" {
            continue;
        }
        if let Some(Value::Object(p)) = parts.iter_mut().find(|p| p.get("functionCall").is_some()) {
            p.insert("thoughtSignature".into(), SKIP_SIGNATURE.into());
        }
    }
    out.into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect()
}

fn model_parts<'a>(content: &'a [Part], names: &mut HashMap<&'a str, &'a str>) -> Vec<Value> {
    let mut parts = Vec::with_capacity(content.len());
    for part in content {
        match part {
            Part::Text { text, .. } if !text.is_empty() => parts.push(json!({ "text": text })),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => {
                names.insert(id, name);
                let args = match serde_json::from_str::<Value>(arguments) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({}),
                };
                parts.push(json!({ "functionCall": { "name": name, "args": args } }));
            }
            Part::Image { source, .. } => parts.push(image_part(source)),
            // Reasoning cannot be replayed to Gemini (see the module docs).
            _ => {}
        }
    }
    parts
}

fn user_parts(content: &[Part], names: &HashMap<&str, &str>) -> Vec<Value> {
    let mut parts = Vec::with_capacity(content.len());
    for part in content {
        match part {
            Part::Text { text, .. } if !text.is_empty() => parts.push(json!({ "text": text })),
            Part::Image { source, .. } => parts.push(image_part(source)),
            Part::ToolResult {
                call_id,
                content,
                is_error,
                ..
            } => {
                let text = content
                    .iter()
                    .filter_map(|p| match p {
                        Part::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                match names.get(call_id.as_str()) {
                    Some(name) => {
                        let key = if *is_error { "error" } else { "output" };
                        parts.push(json!({
                            "functionResponse": { "name": name, "response": { key: text } }
                        }));
                    }
                    None => {
                        let label = if *is_error { "error" } else { "result" };
                        parts.push(json!({
                            "text": format!("Tool call {call_id} {label}: {text}")
                        }));
                    }
                }
                for p in content {
                    if let Part::Image { source, .. } = p {
                        parts.push(image_part(source));
                    }
                }
            }
            _ => {}
        }
    }
    parts
}

fn image_part(source: &ImageSource) -> Value {
    match source {
        ImageSource::Base64 { media_type, data } => {
            json!({ "inlineData": { "mimeType": media_type, "data": data } })
        }
        ImageSource::Url { url } => {
            json!({ "fileData": { "mimeType": guess_mime(url), "fileUri": url } })
        }
    }
}

fn guess_mime(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => "image/jpeg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{TextBlock, Tool};

    fn encode(req: &ChatRequest) -> Value {
        serde_json::from_slice(&encode_request(req)).unwrap()
    }

    fn user(parts: Vec<Part>) -> Message {
        Message {
            role: Role::User,
            content: parts,
        }
    }

    #[test]
    fn minimal_request_omits_absent_fields() {
        let req = ChatRequest {
            model: "gemini-2.5-flash".into(),
            messages: vec![user(vec![Part::text("Hi")])],
            ..Default::default()
        };
        assert_eq!(
            encode(&req),
            json!({ "contents": [{ "role": "user", "parts": [{ "text": "Hi" }] }] })
        );
    }

    #[test]
    fn full_request_fields() {
        let req = ChatRequest {
            model: "m".into(),
            system: vec![
                TextBlock {
                    text: "Be brief.".into(),
                    cache_control: None,
                },
                TextBlock {
                    text: "Use metric.".into(),
                    cache_control: None,
                },
            ],
            messages: vec![user(vec![Part::text("Weather?")])],
            tools: vec![Tool {
                name: "weather".into(),
                description: Some("Get weather".into()),
                parameters: json!({
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "additionalProperties": false
                }),
                strict: Some(true),
                cache_control: None,
            }],
            tool_choice: Some(ToolChoice::Tool("weather".into())),
            max_tokens: Some(256),
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(40),
            stop: vec!["END".into()],
            response_format: Some(ResponseFormat::JsonSchema {
                name: "x".into(),
                schema: json!({"type": "object"}),
                strict: None,
            }),
            reasoning: Some(Reasoning {
                effort: Some("medium".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = encode(&req);
        assert_eq!(
            v["systemInstruction"],
            json!({ "parts": [{ "text": "Be brief." }, { "text": "Use metric." }] })
        );
        assert_eq!(
            v["tools"],
            json!([{ "functionDeclarations": [{
                "name": "weather", "description": "Get weather",
                "parametersJsonSchema": {
                    "type": "object", "properties": {"city": {"type": "string"}},
                    "additionalProperties": false
                }
            }]}])
        );
        assert_eq!(
            v["toolConfig"],
            json!({ "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": ["weather"] } })
        );
        assert_eq!(
            v["generationConfig"],
            json!({
                "maxOutputTokens": 256, "temperature": 0.5, "topP": 0.9, "topK": 40,
                "stopSequences": ["END"], "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object"},
                "thinkingConfig": { "thinkingBudget": 8192, "includeThoughts": true }
            })
        );
    }

    #[test]
    fn tool_choice_and_reasoning_variants() {
        let mut req = ChatRequest::default();
        for (choice, mode) in [
            (ToolChoice::Auto, "AUTO"),
            (ToolChoice::None, "NONE"),
            (ToolChoice::Required, "ANY"),
        ] {
            req.tool_choice = Some(choice);
            assert_eq!(
                encode(&req)["toolConfig"]["functionCallingConfig"],
                json!({ "mode": mode })
            );
        }
        req.reasoning = Some(Reasoning {
            budget_tokens: Some(3000),
            ..Default::default()
        });
        assert_eq!(
            encode(&req)["generationConfig"]["thinkingConfig"],
            json!({ "thinkingBudget": 3000, "includeThoughts": true })
        );
        req.reasoning = Some(Reasoning {
            disabled: true,
            ..Default::default()
        });
        assert_eq!(
            encode(&req)["generationConfig"]["thinkingConfig"],
            json!({ "thinkingBudget": 0 })
        );
        req.reasoning = Some(Reasoning {
            effort: Some("high".into()),
            ..Default::default()
        });
        assert_eq!(
            encode(&req)["generationConfig"]["thinkingConfig"]["thinkingBudget"],
            24576
        );
        req.reasoning = None;
        req.response_format = Some(ResponseFormat::JsonObject);
        assert_eq!(
            encode(&req)["generationConfig"],
            json!({ "responseMimeType": "application/json" })
        );
    }

    #[test]
    fn tool_conversation_names_results_and_merges_turns() {
        let req = ChatRequest {
            messages: vec![
                user(vec![Part::text("Paris and Rome?")]),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Part::Reasoning {
                            text: "Two calls.".into(),
                            signature: Some("anthropic-sig".into()),
                        },
                        Part::text("Checking."),
                        Part::ToolCall {
                            id: "toolu_a".into(),
                            name: "weather".into(),
                            arguments: "{\"city\":\"Paris\"}".into(),
                        },
                        Part::ToolCall {
                            id: "toolu_b".into(),
                            name: "time".into(),
                            arguments: "not json".into(),
                        },
                    ],
                },
                user(vec![
                    Part::ToolResult {
                        call_id: "toolu_a".into(),
                        content: vec![Part::text("18C")],
                        is_error: false,
                        cache_control: None,
                    },
                    Part::ToolResult {
                        call_id: "toolu_b".into(),
                        content: vec![
                            Part::text("clock broke"),
                            Part::Image {
                                source: ImageSource::Base64 {
                                    media_type: "image/png".into(),
                                    data: "QUJD".into(),
                                },
                                cache_control: None,
                            },
                        ],
                        is_error: true,
                        cache_control: None,
                    },
                    Part::ToolResult {
                        call_id: "unknown".into(),
                        content: vec![Part::text("?")],
                        is_error: false,
                        cache_control: None,
                    },
                ]),
                Message {
                    role: Role::System,
                    content: vec![Part::text("Answer in French.")],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![Part::Reasoning {
                        text: "only thoughts".into(),
                        signature: None,
                    }],
                },
                user(vec![Part::text("Go on.")]),
            ],
            ..Default::default()
        };
        let v = encode(&req);
        assert_eq!(
            v["contents"],
            json!([
                { "role": "user", "parts": [{ "text": "Paris and Rome?" }] },
                { "role": "model", "parts": [
                    { "text": "Checking." },
                    { "functionCall": { "name": "weather", "args": { "city": "Paris" } },
                      "thoughtSignature": "skip_thought_signature_validator" },
                    { "functionCall": { "name": "time", "args": {} } }
                ]},
                { "role": "user", "parts": [
                    { "functionResponse": { "name": "weather", "response": { "output": "18C" } } },
                    { "functionResponse": { "name": "time", "response": { "error": "clock broke" } } },
                    { "inlineData": { "mimeType": "image/png", "data": "QUJD" } },
                    { "text": "Tool call unknown result: ?" },
                    { "text": "Answer in French." },
                    { "text": "Go on." }
                ]}
            ])
        );
    }

    #[test]
    fn images() {
        let req = ChatRequest {
            messages: vec![user(vec![
                Part::Image {
                    source: ImageSource::Url {
                        url: "https://x.test/a/cat.PNG?size=2".into(),
                    },
                    cache_control: None,
                },
                Part::Image {
                    source: ImageSource::Url {
                        url: "https://x.test/photo".into(),
                    },
                    cache_control: None,
                },
                Part::Image {
                    source: ImageSource::from_url("data:image/webp;base64,UklG"),
                    cache_control: None,
                },
            ])],
            ..Default::default()
        };
        assert_eq!(
            encode(&req)["contents"][0]["parts"],
            json!([
                { "fileData": { "mimeType": "image/png", "fileUri": "https://x.test/a/cat.PNG?size=2" } },
                { "fileData": { "mimeType": "image/jpeg", "fileUri": "https://x.test/photo" } },
                { "inlineData": { "mimeType": "image/webp", "data": "UklG" } }
            ])
        );
    }

    #[test]
    fn count_tokens_body() {
        let req = ChatRequest {
            system: vec![TextBlock {
                text: "Sys".into(),
                cache_control: None,
            }],
            messages: vec![user(vec![Part::text("Hi")])],
            tools: vec![Tool {
                name: "f".into(),
                description: None,
                parameters: json!({}),
                strict: None,
                cache_control: None,
            }],
            max_tokens: Some(10),
            ..Default::default()
        };
        let v: Value =
            serde_json::from_slice(&encode_count_tokens(&req, "gemini-2.5-pro")).unwrap();
        assert_eq!(
            v,
            json!({ "generateContentRequest": {
                "model": "models/gemini-2.5-pro",
                "contents": [{ "role": "user", "parts": [{ "text": "Hi" }] }],
                "systemInstruction": { "parts": [{ "text": "Sys" }] },
                "tools": [{ "functionDeclarations": [{ "name": "f" }] }]
            }})
        );
        let v: Value =
            serde_json::from_slice(&encode_count_tokens(&req, "models/gemini-2.5-pro")).unwrap();
        assert_eq!(
            v["generateContentRequest"]["model"],
            "models/gemini-2.5-pro"
        );
    }
}
