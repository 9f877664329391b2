//! The Anthropic Messages provider.

use http::{HeaderMap, HeaderName};

use super::redact::Redactor;
use super::stream::{UpstreamStream, Verdict};
use super::{header, KeyHeader, Provider, ProviderFuture, Upstream};
use crate::config::ProviderKind;
use crate::error::GatewayError;
use crate::format::{anthropic, WireFormat};
use crate::request::{GatewayRequest, Operation, Target};
use crate::response::{GatewayResponse, ResponseBody};
use crate::routing::{Credential, SendAs};
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
    let client_betas = req.headers.get_all(ANTHROPIC_BETA);
    if credential.is_some_and(is_oauth) {
        let client = client_betas
            .iter()
            .filter(|_| same)
            .filter_map(|v| v.to_str().ok());
        if let Some(betas) = betas(client, true) {
            header(&mut headers, "anthropic-beta", &betas)?;
        }
    } else if same {
        // Nothing to add: the client's values go as they came, already
        // valid header values, with no parsing or copying of their text.
        for v in client_betas {
            headers.append(ANTHROPIC_BETA, v.clone());
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
        if req.operation == Operation::Generate {
            out.meta.read_usage(WireFormat::Anthropic, &out.body);
        }
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

/// The prefix of an Anthropic OAuth token (a Claude subscription's).
const OAUTH_PREFIX: &str = "sk-ant-oat01-";

/// The header that names the betas a request uses.
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// The beta without which Anthropic refuses an OAuth token.
const OAUTH_BETA: &str = "oauth-2025-04-20";

/// Whether `c` is a Claude subscription's OAuth token sent as a bearer.
fn is_oauth(c: &Credential) -> bool {
    c.send_as() == SendAs::Bearer && c.secret().starts_with(OAUTH_PREFIX)
}

/// The `anthropic-beta` value to send with a passed-through OAuth token
/// (`oauth`; otherwise the client's headers are sent as they came): the
/// client's betas (all its headers, in order), plus `oauth-2025-04-20`
/// when the client did not ask for it. Claude Code sends
/// `ANTHROPIC_AUTH_TOKEN` as a bearer without that beta (it adds it only
/// for its own login), and Anthropic refuses the token without it.
fn betas<'a>(client: impl Iterator<Item = &'a str>, oauth: bool) -> Option<String> {
    let mut out: Vec<&str> = client
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    if oauth && !out.contains(&OAUTH_BETA) {
        out.push(OAUTH_BETA);
    }
    (!out.is_empty()).then(|| out.join(","))
}

fn classify(ev: &SseEvent) -> Verdict {
    match ev.event.as_deref() {
        Some("message_stop" | "error") => Verdict::Last,
        _ => Verdict::Forward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oauth_token_gets_its_beta_and_the_clients_betas_are_kept() {
        let claude_code = ["claude-code-20250219,interleaved-thinking-2025-05-14"];
        assert_eq!(
            betas(claude_code.into_iter(), true).as_deref(),
            Some("claude-code-20250219,interleaved-thinking-2025-05-14,oauth-2025-04-20")
        );
        // Already there (in a second header): not repeated.
        let both = ["claude-code-20250219", "oauth-2025-04-20"];
        assert_eq!(
            betas(both.into_iter(), true).as_deref(),
            Some("claude-code-20250219,oauth-2025-04-20")
        );
        assert_eq!(
            betas(std::iter::empty(), true).as_deref(),
            Some("oauth-2025-04-20")
        );
        // Any other credential: the client's betas only, or none.
        assert_eq!(
            betas(claude_code.into_iter(), false).as_deref(),
            Some("claude-code-20250219,interleaved-thinking-2025-05-14")
        );
        assert_eq!(betas(std::iter::empty(), false), None);
    }

    #[test]
    fn only_an_oauth_bearer_is_an_oauth_token() {
        let c = |secret: &str, send_as| {
            Credential::new(
                crate::routing::CredentialKind::Subscription,
                crate::routing::credential::Secret::new(secret),
                send_as,
                "claude".into(),
            )
        };
        assert!(is_oauth(&c("sk-ant-oat01-alice", SendAs::Bearer)));
        assert!(!is_oauth(&c("sk-ant-oat01-alice", SendAs::ApiKey)));
        assert!(!is_oauth(&c("sk-ant-api03-key", SendAs::Bearer)));
    }
}
