//! The Anthropic Messages provider.

use http::HeaderMap;

use super::redact::Redactor;
use super::stream::{UpstreamStream, Verdict};
use super::{header, KeyHeader, Provider, ProviderFuture, Upstream};
use crate::config::ProviderKind;
use crate::error::GatewayError;
use crate::format::{anthropic, WireFormat};
use crate::request::{GatewayRequest, Operation, Target};
use crate::response::{GatewayResponse, ResponseBody};
use crate::routing::Credential;
use crate::sse::SseEvent;

/// The API version sent when the client did not name one.
pub(super) const DEFAULT_VERSION: &str = "2023-06-01";

/// An Anthropic provider (`kind = "anthropic"`).
pub struct AnthropicProvider {
    up: Upstream,
}

impl AnthropicProvider {
    pub(crate) fn new(up: Upstream) -> Self {
        AnthropicProvider { up }
    }
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        self.up.name()
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn call(&self, req: GatewayRequest, target: Target) -> ProviderFuture {
        let up = self.up.clone();
        let credential = req.extensions.get::<Credential>().cloned();
        let redactor = up.redactor(credential.as_ref());
        Box::pin(async move {
            let resp = call(&up, req, &target, &redactor, credential.as_ref()).await;
            up.respond(resp, &target, &redactor, credential.as_ref())
        })
    }
}

async fn call(
    up: &Upstream,
    req: GatewayRequest,
    target: &Target,
    redactor: &Redactor,
    credential: Option<&Credential>,
) -> Result<GatewayResponse, GatewayError> {
    let same = req.format == WireFormat::Anthropic;
    let mut headers = HeaderMap::new();
    up.sign(&mut headers, credential, KeyHeader::Named("x-api-key"))?;
    // Same format: the client's version and betas describe its body.
    let version = same
        .then(|| req.headers.get("anthropic-version"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .unwrap_or(DEFAULT_VERSION);
    header(&mut headers, "anthropic-version", version)?;
    if same {
        if let Some(beta) = req.headers.get("anthropic-beta") {
            headers.insert("anthropic-beta", beta.clone());
        }
    }
    let model = &*target.model;
    let path = match req.operation {
        Operation::Generate => "/v1/messages",
        Operation::CountTokens => "/v1/messages/count_tokens",
    };
    let mut url = up.url(path);
    if same && wants_beta(req.query.as_deref()) {
        url.push_str("?beta=true");
    }
    let body = if same {
        req.passthrough_body(model, &[])
    } else {
        // The canonical request carries the client's `stream`, which is `req.stream`.
        let c = req.canonical()?;
        match req.operation {
            Operation::Generate => anthropic::encode_request(c, model),
            Operation::CountTokens => anthropic::encode_count_tokens(c, model),
        }
    };
    let resp = up
        .post(&url, body, headers, WireFormat::Anthropic, credential)
        .await?;
    let upstream_headers = if same {
        redactor.passthrough_headers(resp.headers())
    } else {
        HeaderMap::new()
    };
    if req.stream {
        let body = resp.into_body();
        let stream = if same {
            UpstreamStream::passthrough(body, classify, redactor.clone())
        } else {
            let decoder = Box::new(anthropic::StreamDecoder::new());
            UpstreamStream::decode(body, decoder, redactor.clone())
        };
        let mut out = GatewayResponse::new(ResponseBody::Stream(Box::pin(stream)));
        out.meta.headers = upstream_headers;
        return Ok(out);
    }
    let bytes = up.read(resp).await?;
    if same {
        let mut out = GatewayResponse::new(ResponseBody::Raw(redactor.bytes(bytes)));
        out.meta.headers = upstream_headers;
        return Ok(out);
    }
    if req.operation == Operation::CountTokens {
        let n = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("input_tokens").and_then(|n| n.as_u64()))
            .ok_or_else(|| {
                GatewayError::bad_upstream("count_tokens answer without `input_tokens`")
            })?;
        return Ok(GatewayResponse::new(ResponseBody::TokenCount(n)));
    }
    let message = anthropic::decode_response(&bytes)?;
    let usage = message.usage;
    let mut resp = GatewayResponse::new(ResponseBody::Message(message));
    resp.meta.usage = Some(usage);
    Ok(resp)
}

/// Whether the client's query asks for the beta Messages API (`beta=true`,
/// as Claude Code sends it), the one query parameter the API defines. The
/// rest of the client's query never reaches the provider: rebuilt from a
/// constant, the URL cannot be steered to another path.
fn wants_beta(query: Option<&str>) -> bool {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .any(|pair| pair == "beta=true")
}

fn classify(ev: &SseEvent) -> Verdict {
    match ev.event.as_deref() {
        Some("message_stop" | "error") => Verdict::Last,
        _ => Verdict::Forward,
    }
}
