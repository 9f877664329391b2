//! OpenAI and OpenAI-compatible providers (Chat Completions; Responses for
//! OpenAI itself).

use http::HeaderMap;

use super::redact::Redactor;
use super::stream::{UpstreamStream, Verdict};
use super::{estimate_input_tokens, KeyHeader, Provider, ProviderFuture, Upstream};
use crate::canonical::Usage;
use crate::config::ProviderKind;
use crate::error::GatewayError;
use crate::format::openai_chat::{self, MaxTokensField};
use crate::format::responses::GATEWAY_REASONING_PREFIX;
use crate::format::WireFormat;
use crate::request::{GatewayRequest, Operation, Target};
use crate::response::{GatewayResponse, ResponseBody};
use crate::routing::Credential;
use crate::sse::SseEvent;

/// An OpenAI (`kind = "openai"`) or OpenAI-compatible provider.
pub struct OpenAiProvider {
    up: Upstream,
    compat: bool,
}

impl OpenAiProvider {
    pub(crate) fn new(up: Upstream, compat: bool) -> Self {
        OpenAiProvider { up, compat }
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        self.up.name()
    }

    fn kind(&self) -> ProviderKind {
        if self.compat {
            ProviderKind::OpenAiCompatible
        } else {
            ProviderKind::OpenAi
        }
    }

    fn call(&self, req: GatewayRequest, target: Target) -> ProviderFuture {
        let up = self.up.clone();
        let compat = self.compat;
        let credential = req.extensions.get::<Credential>().cloned();
        let redactor = up.redactor(credential.as_ref());
        Box::pin(async move {
            let resp = call(&up, compat, req, &target, &redactor, credential.as_ref()).await;
            up.respond(resp, &target, &redactor, credential.as_ref())
        })
    }
}

async fn call(
    up: &Upstream,
    compat: bool,
    req: GatewayRequest,
    target: &Target,
    redactor: &Redactor,
    credential: Option<&Credential>,
) -> Result<GatewayResponse, GatewayError> {
    if req.operation == Operation::CountTokens {
        // Chat Completions has no counting endpoint: estimate.
        let n = estimate_input_tokens(req.canonical()?);
        return Ok(GatewayResponse::new(ResponseBody::TokenCount(n)));
    }
    let mut headers = HeaderMap::new();
    up.sign(&mut headers, credential, KeyHeader::Bearer)?;
    let model = &*target.model;
    let same = match req.format {
        WireFormat::OpenAiChat => Some(("/chat/completions", WireFormat::OpenAiChat)),
        WireFormat::OpenAiResponses if !compat => Some(("/responses", WireFormat::OpenAiResponses)),
        _ => None,
    };
    if let Some((path, format)) = same {
        // The client's query is not passed on: these endpoints define no
        // query parameters, and an unchecked one could change the path.
        let url = up.url(path);
        let (body, injected) = if req.stream && format == WireFormat::OpenAiChat {
            let (opts, injected) = stream_options_with_usage(&req)?;
            (
                req.passthrough_body(model, &[("stream_options", &opts)]),
                injected,
            )
        } else if format == WireFormat::OpenAiResponses {
            match input_without_gateway_reasoning(&req) {
                Some(input) => (req.passthrough_body(model, &[("input", &input)]), false),
                None => (req.passthrough_body(model, &[]), false),
            }
        } else {
            (req.passthrough_body(model, &[]), false)
        };
        let resp = up.post(&url, body, headers, format, credential).await?;
        let upstream_headers = redactor.passthrough_headers(resp.headers());
        if !req.stream {
            let bytes = up.read(resp).await?;
            let mut out = GatewayResponse::new(ResponseBody::Raw(redactor.bytes(bytes)));
            out.meta.headers = upstream_headers;
            out.meta.read_usage(format, &out.body);
            return Ok(out);
        }
        let classify = match (format, injected) {
            (WireFormat::OpenAiResponses, _) => classify_responses,
            (_, true) => classify_chat_drop_usage,
            (_, false) => classify_chat,
        };
        let stream = UpstreamStream::passthrough(resp.into_body(), classify, redactor.clone());
        let mut out = GatewayResponse::new(ResponseBody::Stream(Box::pin(stream)));
        out.meta.headers = upstream_headers;
        return Ok(out);
    }

    let canonical = req.canonical()?;
    let field = if compat {
        MaxTokensField::MaxTokens
    } else {
        MaxTokensField::MaxCompletionTokens
    };
    // The canonical request carries the client's `stream`, which is `req.stream`.
    let body = openai_chat::encode_request(canonical, model, field);
    let resp = up
        .post(
            &up.url("/chat/completions"),
            body,
            headers,
            WireFormat::OpenAiChat,
            credential,
        )
        .await?;
    if req.stream {
        let stream = UpstreamStream::decode(
            resp.into_body(),
            Box::new(openai_chat::StreamDecoder::new()),
            redactor.clone(),
        );
        Ok(GatewayResponse::new(ResponseBody::Stream(Box::pin(stream))))
    } else {
        let bytes = up.read(resp).await?;
        let message = openai_chat::decode_response(&bytes)?;
        let mut resp = GatewayResponse::new(ResponseBody::Message(message));
        if let ResponseBody::Message(m) = &resp.body {
            resp.meta.usage = Some(m.usage);
        }
        Ok(resp)
    }
}

/// A Responses `input` without the reasoning items the gateway wrote for
/// another provider's answer (their `encrypted_content` starts with
/// [`GATEWAY_REASONING_PREFIX`]): OpenAI cannot read them and would refuse
/// the whole request, as when a conversation moves from Claude to an
/// OpenAI model. `None` when there is none, so the body passes as sent; a
/// look at the raw text first, so the common request is never parsed.
fn input_without_gateway_reasoning(req: &GatewayRequest) -> Option<String> {
    let raw = req.body.raw().get("input")?;
    if !raw.get().contains(GATEWAY_REASONING_PREFIX) {
        return None;
    }
    let serde_json::Value::Array(items) = serde_json::from_str(raw.get()).ok()? else {
        return None;
    };
    let ours = |item: &serde_json::Value| {
        item.get("type").and_then(|t| t.as_str()) == Some("reasoning")
            && item
                .get("encrypted_content")
                .and_then(|c| c.as_str())
                .is_some_and(|c| c.starts_with(GATEWAY_REASONING_PREFIX))
    };
    let kept: Vec<_> = items.into_iter().filter(|i| !ours(i)).collect();
    Some(serde_json::Value::Array(kept).to_string())
}

/// The client's `stream_options` with `include_usage: true`, and whether
/// the gateway added it (then the usage chunk is not the client's to see).
fn stream_options_with_usage(req: &GatewayRequest) -> Result<(String, bool), GatewayError> {
    let mut opts = match req
        .body
        .raw()
        .get_as::<serde_json::Value>("stream_options")?
    {
        Some(serde_json::Value::Object(o)) => o,
        None => serde_json::Map::new(),
        Some(_) => {
            return Err(GatewayError::invalid_param(
                "stream_options",
                "`stream_options` must be an object",
            ))
        }
    };
    let asked = opts.get("include_usage") == Some(&serde_json::Value::Bool(true));
    opts.insert("include_usage".into(), serde_json::Value::Bool(true));
    Ok((serde_json::Value::Object(opts).to_string(), !asked))
}

fn classify_chat(ev: &SseEvent) -> Verdict {
    if ev.data == "[DONE]" || ev.data.starts_with("{\"error\"") {
        Verdict::Last
    } else {
        Verdict::Forward
    }
}

/// The chunk `include_usage` adds (`choices` empty, `usage` set) is kept
/// from a client that did not ask for it; its usage goes to the meter.
fn classify_chat_drop_usage(ev: &SseEvent) -> Verdict {
    match classify_chat(ev) {
        Verdict::Forward => usage_only_chunk(&ev.data).map_or(Verdict::Forward, Verdict::Usage),
        v => v,
    }
}

/// The usage of the chunk `include_usage` adds; `None` for any other.
fn usage_only_chunk(data: &str) -> Option<Usage> {
    if !data.contains("\"choices\":[]") && !data.contains("\"choices\": []") {
        return None;
    }
    crate::usage::chat_usage(data)
}

fn classify_responses(ev: &SseEvent) -> Verdict {
    match ev.event.as_deref() {
        Some("response.completed" | "response.failed" | "response.incomplete" | "error") => {
            Verdict::Last
        }
        _ => Verdict::Forward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_chunk_detection() {
        let usage = usage_only_chunk(r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1}}"#);
        assert_eq!(usage.map(|u| u.input_tokens), Some(1));
        assert!(usage_only_chunk(
            r#"{"id":"x","choices":[{"delta":{"content":"\"choices\":[]"}}],"usage":null}"#
        )
        .is_none());
    }
}
