//! Requests to providers: canonical to a Messages (or `count_tokens`) body.

use serde_json::{json, Map, Value};

use super::with_cache_control;
use crate::canonical::{
    CacheControl, ChatRequest, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, Tool,
    ToolChoice,
};

type Obj = Map<String, Value>;

/// `max_tokens` sent when the request has none (the API requires it).
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Encodes a canonical request for an Anthropic Messages provider, for `model`.
pub fn encode_request(req: &ChatRequest, model: &str) -> Vec<u8> {
    let (mut body, budget) = encode_common(req, model);
    body.insert(
        "max_tokens".into(),
        json!(max_tokens_sent(req.max_tokens, budget)),
    );
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(k) = req.top_k {
        body.insert("top_k".into(), json!(k));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(ResponseFormat::JsonSchema { schema, .. }) = &req.response_format {
        body.insert(
            "output_config".into(),
            json!({ "format": { "type": "json_schema", "schema": schema } }),
        );
    }
    if req.stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// Encodes a canonical request as a `count_tokens` body for `model`.
pub fn encode_count_tokens(req: &ChatRequest, model: &str) -> Vec<u8> {
    let (body, _) = encode_common(req, model);
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// The fields `messages` and `count_tokens` share, and the thinking budget.
fn encode_common(req: &ChatRequest, model: &str) -> (Obj, Option<u64>) {
    let mut body = Obj::new();
    body.insert("model".into(), Value::String(model.to_owned()));
    let system: Vec<Value> = req
        .system
        .iter()
        .filter(|b| !b.text.is_empty())
        .map(|b| text_block(&b.text, &b.cache_control))
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let messages = encode_messages(&req.messages);
    let thinking_allowed = tool_loop_turn_is_signed(&messages);
    body.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools = req.tools.iter().map(encode_tool).collect();
        body.insert("tools".into(), Value::Array(tools));
        let mut choice = match &req.tool_choice {
            None => None,
            Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
            Some(ToolChoice::Required) => Some(json!({"type": "any"})),
            Some(ToolChoice::None) => Some(json!({"type": "none"})),
            Some(ToolChoice::Tool(name)) => Some(json!({"type": "tool", "name": name})),
        };
        if req.parallel_tool_calls == Some(false) && req.tool_choice != Some(ToolChoice::None) {
            let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
            if let Some(o) = c.as_object_mut() {
                o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
            }
        }
        if let Some(c) = choice {
            body.insert("tool_choice".into(), c);
        }
    }
    let mut budget = None;
    if let Some(r) = req.reasoning.as_ref().filter(|_| thinking_allowed) {
        if let Some((thinking, b)) = thinking_config(r) {
            body.insert("thinking".into(), thinking);
            budget = b;
        }
    }
    (body, budget)
}

/// Whether the API takes `thinking` with this conversation: when the last
/// user turn holds tool results, the assistant turn before it (the one
/// that called the tools) must start with a signed `thinking` or a
/// `redacted_thinking` block. It does not when the client could not bring
/// the signed block back (a format with no place for it, a client that
/// dropped it, another provider's answer); the request then goes without
/// thinking rather than be refused.
fn tool_loop_turn_is_signed(messages: &[Value]) -> bool {
    fn role(m: &Value) -> Option<&str> {
        m.get("role").and_then(Value::as_str)
    }
    // Read in place: the turns may hold large tool results and images.
    fn blocks(m: &Value) -> &[Value] {
        m.get("content")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
    fn block_type(b: &Value) -> Option<&str> {
        b.get("type").and_then(Value::as_str)
    }
    let Some(last_user) = messages.iter().rposition(|m| role(m) == Some("user")) else {
        return true;
    };
    if !blocks(&messages[last_user])
        .iter()
        .any(|b| block_type(b) == Some("tool_result"))
    {
        return true;
    }
    match last_user.checked_sub(1).map(|i| &messages[i]) {
        Some(caller) if role(caller) == Some("assistant") => {
            let first = blocks(caller).first().and_then(block_type);
            matches!(first, Some("thinking" | "redacted_thinking"))
        }
        _ => true,
    }
}

/// The `max_tokens` sent for a request that asks for `requested` (the
/// API requires one) with a thinking budget of `budget`: a budget at
/// least as large as the answer asked for is added to it, so that the
/// thinking does not eat the answer. Budget reservations read it too.
pub(crate) fn max_tokens_sent(requested: Option<u64>, budget: Option<u64>) -> u64 {
    let requested = requested.unwrap_or(DEFAULT_MAX_TOKENS);
    match budget {
        Some(b) if b >= requested => b.saturating_add(requested),
        _ => requested,
    }
}

/// The thinking budget a request with reasoning settings `r` is sent
/// with (`None`: thinking off, or adaptive, which has no budget).
pub(crate) fn thinking_budget(r: &Reasoning) -> Option<u64> {
    thinking_config(r).and_then(|(_, budget)| budget)
}

/// The `thinking` object for `r` and its budget; `None` leaves thinking out.
fn thinking_config(r: &Reasoning) -> Option<(Value, Option<u64>)> {
    if r.disabled {
        return None;
    }
    let budget = match (r.budget_tokens, r.effort.as_deref()) {
        (Some(b), _) => b,
        (None, None) => return Some((json!({"type": "adaptive"}), None)),
        (None, Some("minimal" | "none")) => return None,
        (None, Some("low")) => 2048,
        (None, Some("medium")) => 8192,
        (None, Some("high")) => 24576,
        (None, Some("xhigh" | "max")) => 32768,
        (None, Some(_)) => 8192,
    };
    Some((
        json!({"type": "enabled", "budget_tokens": budget}),
        Some(budget),
    ))
}

fn encode_tool(t: &Tool) -> Value {
    let mut o = Obj::new();
    o.insert("name".into(), Value::String(t.name.clone()));
    if let Some(d) = &t.description {
        o.insert("description".into(), Value::String(d.clone()));
    }
    let schema = if t.parameters.is_object() {
        t.parameters.clone()
    } else {
        json!({"type": "object", "properties": {}})
    };
    o.insert("input_schema".into(), schema);
    with_cache_control(o, &t.cache_control)
}

fn text_block(text: &str, cc: &Option<CacheControl>) -> Value {
    let mut o = Obj::new();
    o.insert("type".into(), Value::String("text".into()));
    o.insert("text".into(), Value::String(text.to_owned()));
    with_cache_control(o, cc)
}

fn image_block(source: &ImageSource, cc: &Option<CacheControl>) -> Value {
    let src = match source {
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Url { url } => match ImageSource::from_url(url) {
            ImageSource::Base64 { media_type, data } => {
                json!({"type": "base64", "media_type": media_type, "data": data})
            }
            ImageSource::Url { url } => json!({"type": "url", "url": url}),
        },
    };
    let mut o = Obj::new();
    o.insert("type".into(), Value::String("image".into()));
    o.insert("source".into(), src);
    with_cache_control(o, cc)
}

/// Tool-call arguments (JSON text) as an `input` object; anything else is `{}`.
fn parse_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Obj::new()),
    }
}

/// One canonical part as an Anthropic block; `None` when it is dropped.
fn encode_part(part: &Part) -> Option<Value> {
    Some(match part {
        Part::Text { text, .. } if text.is_empty() => return None,
        Part::Text {
            text,
            cache_control,
        } => text_block(text, cache_control),
        Part::Image {
            source,
            cache_control,
        } => image_block(source, cache_control),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => json!({"type": "tool_use", "id": id, "name": name, "input": parse_input(arguments)}),
        Part::ToolResult {
            call_id,
            content,
            is_error,
            cache_control,
        } => {
            let mut o = Obj::new();
            o.insert("type".into(), Value::String("tool_result".into()));
            o.insert("tool_use_id".into(), Value::String(call_id.clone()));
            let inner: Vec<Value> = content
                .iter()
                .filter(|p| matches!(p, Part::Text { .. } | Part::Image { .. }))
                .filter_map(encode_part)
                .collect();
            if !inner.is_empty() {
                o.insert("content".into(), Value::Array(inner));
            }
            if *is_error {
                o.insert("is_error".into(), Value::Bool(true));
            }
            with_cache_control(o, cache_control)
        }
        Part::Reasoning {
            text,
            signature: Some(sig),
        } if !sig.is_empty() => json!({"type": "thinking", "thinking": text, "signature": sig}),
        Part::Reasoning { .. } => return None,
        Part::RedactedReasoning { data } => json!({"type": "redacted_thinking", "data": data}),
    })
}

/// The conversation as alternating Anthropic turns (see the module docs).
fn encode_messages(messages: &[Message]) -> Vec<Value> {
    let n = messages.len();
    // Each message's own blocks, plus blocks folded in from system messages.
    let mut own: Vec<Vec<Value>> = Vec::with_capacity(n);
    let mut prefix: Vec<Vec<Value>> = vec![Vec::new(); n];
    let mut suffix: Vec<Vec<Value>> = vec![Vec::new(); n];
    for m in messages {
        if m.role == Role::System {
            own.push(Vec::new());
        } else {
            own.push(m.content.iter().filter_map(encode_part).collect());
        }
    }
    let mut roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    for (p, m) in messages.iter().enumerate() {
        if m.role != Role::System {
            continue;
        }
        let blocks: Vec<Value> = m
            .content
            .iter()
            .filter_map(|part| match part {
                Part::Text {
                    text,
                    cache_control,
                } if !text.is_empty() => Some(text_block(text, cache_control)),
                _ => None,
            })
            .collect();
        let next = (p + 1..n).find(|&i| messages[i].role == Role::User);
        let prev = (0..p).rev().find(|&i| messages[i].role == Role::User);
        match (next, prev) {
            (Some(i), _) => prefix[i].extend(blocks),
            (None, Some(i)) => suffix[i].extend(blocks),
            (None, None) => {
                own[p] = blocks;
                roles[p] = Role::User;
            }
        }
    }

    let mut turns: Vec<(Role, Vec<Value>)> = Vec::with_capacity(n);
    for (i, own_blocks) in own.into_iter().enumerate() {
        let role = roles[i];
        if role == Role::System {
            continue;
        }
        let mut blocks = std::mem::take(&mut prefix[i]);
        blocks.extend(own_blocks);
        blocks.extend(std::mem::take(&mut suffix[i]));
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }

    turns
        .into_iter()
        .map(|(role, mut blocks)| {
            let role = if role == Role::Assistant {
                "assistant"
            } else {
                // Tool results first: the API wants them right after the tool calls.
                let is_result =
                    |b: &Value| b.get("type").and_then(Value::as_str) == Some("tool_result");
                let (mut results, rest): (Vec<Value>, Vec<Value>) =
                    blocks.drain(..).partition(is_result);
                results.extend(rest);
                blocks = results;
                "user"
            };
            json!({"role": role, "content": blocks})
        })
        .collect()
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
