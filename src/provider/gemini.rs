//! The Google Gemini provider (`generateContent`).

use http::HeaderMap;

use super::redact::Redactor;
use super::stream::UpstreamStream;
use super::{KeyHeader, Provider, ProviderFuture, Upstream};
use crate::config::ProviderKind;
use crate::error::GatewayError;
use crate::format::{gemini, WireFormat};
use crate::request::{GatewayRequest, Operation, Target};
use crate::response::{GatewayResponse, ResponseBody};
use crate::routing::Credential;

/// A Gemini provider (`kind = "gemini"`).
pub struct GeminiProvider {
    up: Upstream,
}

impl GeminiProvider {
    pub(crate) fn new(up: Upstream) -> Self {
        GeminiProvider { up }
    }
}

impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        self.up.name()
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
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

/// Percent-encodes a model name for the URL path (unreserved characters stay).
pub(super) fn path_segment(model: &str) -> String {
    let mut out = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'=') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn call(
    up: &Upstream,
    req: GatewayRequest,
    target: &Target,
    redactor: &Redactor,
    credential: Option<&Credential>,
) -> Result<GatewayResponse, GatewayError> {
    let mut headers = HeaderMap::new();
    up.sign(&mut headers, credential, KeyHeader::Named("x-goog-api-key"))?;
    let model = &*target.model;
    let canonical = req.canonical()?;
    let seg = path_segment(model);
    if req.operation == Operation::CountTokens {
        let url = up.url(&format!("/v1beta/models/{seg}:countTokens"));
        let body = gemini::encode_count_tokens(canonical, model);
        let resp = up
            .post(&url, body, headers, WireFormat::Gemini, credential)
            .await?;
        let bytes = up.read(resp).await?;
        let n = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("totalTokens").and_then(|n| n.as_u64()))
            .ok_or_else(|| {
                GatewayError::bad_upstream("countTokens answer without `totalTokens`")
            })?;
        return Ok(GatewayResponse::new(ResponseBody::TokenCount(n)));
    }
    let body = gemini::encode_request(canonical);
    if req.stream {
        let url = up.url(&format!(
            "/v1beta/models/{seg}:streamGenerateContent?alt=sse"
        ));
        let resp = up
            .post(&url, body, headers, WireFormat::Gemini, credential)
            .await?;
        let stream = UpstreamStream::decode(
            resp.into_body(),
            Box::new(gemini::StreamDecoder::new(model)),
            redactor.clone(),
        );
        return Ok(GatewayResponse::new(ResponseBody::Stream(Box::pin(stream))));
    }
    let url = up.url(&format!("/v1beta/models/{seg}:generateContent"));
    let resp = up
        .post(&url, body, headers, WireFormat::Gemini, credential)
        .await?;
    let bytes = up.read(resp).await?;
    let message = gemini::decode_response(&bytes, model)?;
    let usage = message.usage;
    let mut resp = GatewayResponse::new(ResponseBody::Message(message));
    resp.meta.usage = Some(usage);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_names_are_path_safe() {
        assert_eq!(super::path_segment("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(super::path_segment("a/b c"), "a%2Fb%20c");
    }
}
