//! Provider clients: the innermost tower `Service` of the gateway.
//!
//! Each provider kind is one implementation of [`Provider`]; they share one
//! pooled [`HttpClient`]. [`Providers`] holds the configured providers and
//! model aliases and is a `tower::Service<GatewayRequest>`: it sends each
//! request to the [`Target`] that a routing layer put in its extensions, or
//! resolves the requested model itself when none did.
//!
//! When the client's wire format is the provider's own, the body is passed
//! through as sent (only `model` is rewritten), and so is the answer, so new
//! provider features work without a gateway release. Otherwise the request
//! goes through the [canonical](crate::canonical) form.
//!
//! Each call sends the [`Credential`] that the provider-order layer put in
//! the request's extensions (a key the request brought, or the client's
//! own credential passed through; see [`crate::routing::credential`]),
//! or else the deployment's configured key, and says which kind served in
//! the response's metadata. A client credential is sent alone: none of
//! the deployment's configured credential headers goes with it.
//!
//! What comes back is kept clean of secrets here, where it enters: every
//! error a provider call ends with, every pass-through stream event and
//! in-band error, and the upstream headers a same-format client sees (an
//! allow-list: request ids, rate limits, retry hints) have the provider's
//! credentials, and the call's client credential, masked. Translated (cross-format) answers are decoded from
//! the upstream's bytes as they are: only their errors are scrubbed. Of the client's query, only
//! what the provider's API defines reaches it (Anthropic's `beta=true`).
//!
//! ```no_run
//! use tollgate::config::Config;
//! use tollgate::provider::Providers;
//! use tower::ServiceBuilder;
//!
//! let config = Config::from_env(&|k| std::env::var(k).ok());
//! let providers = Providers::from_config(&config).unwrap();
//! let service = ServiceBuilder::new().service(providers);
//! # let _ = service;
//! ```

mod anthropic;
mod gemini;
mod http;
mod models;
mod openai;
mod redact;
pub mod stream;

pub use self::http::HttpClient;
pub use anthropic::AnthropicProvider;
pub use gemini::GeminiProvider;
pub(crate) use models::ModelLister;
pub use openai::OpenAiProvider;
pub(crate) use redact::PASSTHROUGH_PREFIXES as RATE_LIMIT_HEADER_PREFIXES;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use ::http::{HeaderMap, Method, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;

use crate::canonical::{ChatRequest, Part};
use crate::config::{is_credential_header, Config, ProviderConfig, ProviderKind};
use crate::error::{Cause, ErrorKind, GatewayError};
use crate::format::{parse_upstream_error, WireFormat};
use crate::request::{GatewayRequest, Target};
use crate::response::{GatewayResponse, ResponseBody};
use crate::routing::{Credential, CredentialKind, Deployment, Routes, SendAs};
use redact::Redactor;
pub(crate) use redact::MIN_SECRET_LEN;

/// The future a provider call returns.
pub type ProviderFuture =
    Pin<Box<dyn Future<Output = Result<GatewayResponse, GatewayError>> + Send>>;

/// One configured provider.
pub trait Provider: Send + Sync + 'static {
    /// The configured name.
    fn name(&self) -> &str;

    /// The API it speaks.
    fn kind(&self) -> ProviderKind;

    /// Sends `req` to this provider as `target.model`. The response's
    /// metadata names the provider and model.
    fn call(&self, req: GatewayRequest, target: Target) -> ProviderFuture;
}

/// What every provider kind needs to reach its API.
#[derive(Clone)]
pub(crate) struct Upstream {
    inner: Arc<UpstreamInner>,
}

struct UpstreamInner {
    name: Arc<str>,
    base_url: String,
    api_key: Option<String>,
    /// Configured headers that carry no credential: sent with every call.
    headers: HeaderMap,
    /// Configured credential headers: sent only with the configured key.
    credential_headers: HeaderMap,
    http: HttpClient,
    /// The provider's own secrets; each attempt adds the client's.
    redactor: Redactor,
}

impl Upstream {
    pub(crate) fn new(
        name: &str,
        config: &ProviderConfig,
        http: HttpClient,
    ) -> Result<Self, GatewayError> {
        let base_url = config
            .base_url()
            .ok_or_else(|| GatewayError::internal(format!("provider `{name}` has no base_url")))?
            .to_string();
        let mut headers = HeaderMap::new();
        let mut cred_headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let is_credential = is_credential_header(k);
            let k = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                GatewayError::internal(format!("providers.{name}.headers: bad name"))
            })?;
            let mut v = HeaderValue::from_str(v).map_err(|_| {
                GatewayError::internal(format!("providers.{name}.headers: bad value"))
            })?;
            if is_credential {
                v.set_sensitive(true);
                cred_headers.insert(k, v);
            } else {
                headers.insert(k, v);
            }
        }
        let api_key = config.api_key.clone().filter(|k| !k.is_empty());
        let redactor = Redactor::for_provider(
            api_key
                .as_deref()
                .into_iter()
                .chain(credential_headers(&config.headers)),
        );
        Ok(Upstream {
            inner: Arc::new(UpstreamInner {
                name: name.into(),
                base_url,
                api_key,
                headers,
                credential_headers: cred_headers,
                http,
                redactor,
            }),
        })
    }

    /// What must be kept out of an answer: this provider's credentials,
    /// and the client credential the call sends, if any.
    pub(crate) fn redactor(&self, credential: Option<&Credential>) -> Redactor {
        match credential {
            None => self.inner.redactor.clone(),
            Some(c) => self.inner.redactor.with_secret(c.secret()),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.inner.base_url, path)
    }

    /// Puts the call's credential in `headers`: the client's
    /// `credential` alone, or else the configured key (in `key`'s way)
    /// and the configured credential headers. A credential meant for
    /// another provider is never sent. Every value it puts is marked
    /// sensitive (see [`KeyHeader::put`]).
    pub(crate) fn sign(
        &self,
        headers: &mut HeaderMap,
        credential: Option<&Credential>,
        key: KeyHeader,
    ) -> Result<(), GatewayError> {
        let Some(c) = credential else {
            if let Some(k) = self.inner.api_key.as_deref() {
                key.put(headers, k)?;
            }
            for (k, v) in &self.inner.credential_headers {
                headers.insert(k.clone(), v.clone());
            }
            return Ok(());
        };
        if c.provider() != self.name() {
            return Err(GatewayError::internal(format!(
                "a {} credential meant for provider `{}` was handed to `{}`: not sent",
                c.kind(),
                c.provider(),
                self.name()
            )));
        }
        match c.send_as() {
            SendAs::Bearer => KeyHeader::Bearer.put(headers, c.secret()),
            SendAs::ApiKey => key.put(headers, c.secret()),
        }
    }

    /// POSTs a JSON body signed for `credential` (see [`Upstream::sign`]);
    /// a non-2xx answer becomes the provider's error.
    pub(crate) async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: HeaderMap,
        format: WireFormat,
        credential: Option<&Credential>,
    ) -> Result<Response<Incoming>, GatewayError> {
        let mut builder = Request::builder().method(Method::POST).uri(url);
        let h = builder.headers_mut().expect("a fresh builder has headers");
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.extend(headers);
        for (k, v) in &self.inner.headers {
            h.insert(k.clone(), v.clone());
        }
        let req = builder.body(Full::new(Bytes::from(body))).map_err(|_| {
            GatewayError::internal(format!("provider `{}`: bad request URL", self.name()))
        })?;
        let resp = self.inner.http.send(req).await.map_err(|e| {
            // Names the host (never the URL, which may carry user info).
            tracing::warn!(provider = %self.name(), error = %e.message(), "provider connection failed");
            let msg = format!("provider `{}`: {}", self.name(), e.message());
            e.with_message(msg)
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let (parts, body) = resp.into_parts();
        let bytes = http::read_body(body).await.unwrap_or_default();
        let err = parse_upstream_error(format, parts.status, &parts.headers, &bytes);
        if matches!(
            err.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            // Say which side's credentials failed.
            return Err(match credential {
                None => {
                    let msg = format!(
                        "provider `{}` rejected the gateway's credentials: {}",
                        self.name(),
                        err.message()
                    );
                    err.with_message(msg)
                }
                Some(c) => {
                    let msg = format!(
                        "provider `{}` rejected the request's own credential ({}): {}",
                        self.name(),
                        c.kind(),
                        err.message()
                    );
                    err.with_message(msg).with_cause(Cause::CredentialRejected)
                }
            });
        }
        Err(err)
    }

    /// Reads a complete 2xx body.
    pub(crate) async fn read(&self, resp: Response<Incoming>) -> Result<Bytes, GatewayError> {
        http::read_body(resp.into_body()).await
    }

    /// Ends a provider call: every error it produced is scrubbed of
    /// secrets (the one exit every provider kind's errors take), and the
    /// response metadata names the provider, model and credential kind.
    pub(crate) fn respond(
        &self,
        resp: Result<GatewayResponse, GatewayError>,
        target: &Target,
        redactor: &Redactor,
        credential: Option<&Credential>,
    ) -> Result<GatewayResponse, GatewayError> {
        let mut resp = resp.map_err(|e| redactor.error(e))?;
        resp.meta.provider = Some(target.provider.clone());
        resp.meta.model = Some(target.model.clone());
        resp.meta.credential = Some(CredentialKind::of(credential));
        Ok(resp)
    }
}

/// Where a provider kind sends its key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer KEY` (OpenAI; an Anthropic OAuth token).
    Bearer,
    /// A header of its own (`x-api-key`, `x-goog-api-key`).
    Named(&'static str),
}

impl KeyHeader {
    /// Sets `key` as a sensitive value: hyper's HTTP/2 encoder then never
    /// adds it to the HPACK table of a connection that is shared by every
    /// client's calls to that upstream, and `Debug` shows `Sensitive`
    /// instead of the key. A value that is not a valid header is a 400
    /// naming the header, never showing the value.
    fn put(self, headers: &mut HeaderMap, key: &str) -> Result<(), GatewayError> {
        let (name, value) = match self {
            KeyHeader::Bearer => (
                "authorization",
                HeaderValue::from_str(&format!("Bearer {key}")),
            ),
            KeyHeader::Named(name) => (name, HeaderValue::from_str(key)),
        };
        let mut value = value
            .map_err(|_| GatewayError::invalid_param(name, format!("invalid `{name}` header")))?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static(name), value);
        Ok(())
    }
}

/// Values of configured provider headers that carry credentials, which
/// must never be echoed.
fn credential_headers(
    headers: &std::collections::BTreeMap<String, String>,
) -> impl Iterator<Item = &str> {
    headers
        .iter()
        .filter_map(|(k, v)| is_credential_header(k).then_some(v.as_str()))
}

/// Sets a header from a string; values that are not valid headers are a
/// 400 naming the header (they came from the client).
pub(crate) fn header(
    map: &mut HeaderMap,
    name: &'static str,
    value: &str,
) -> Result<(), GatewayError> {
    let v = HeaderValue::from_str(value)
        .map_err(|_| GatewayError::invalid_param(name, format!("invalid `{name}` header")))?;
    map.insert(HeaderName::from_static(name), v);
    Ok(())
}

/// A rough count of input tokens (4 bytes a token) for providers that have
/// no counting endpoint.
pub fn estimate_input_tokens(req: &ChatRequest) -> u64 {
    fn part_len(p: &Part) -> usize {
        match p {
            Part::Text { text, .. } => text.len(),
            Part::Image { .. } => 1024 * 4,
            Part::ToolCall {
                name, arguments, ..
            } => name.len() + arguments.len(),
            Part::ToolResult { content, .. } => content.iter().map(part_len).sum(),
            Part::Reasoning { text, .. } => text.len(),
            Part::RedactedReasoning { data } => data.len() / 2,
        }
    }
    let mut bytes: usize = req.system.iter().map(|b| b.text.len()).sum();
    for m in &req.messages {
        bytes += 4 + m.content.iter().map(part_len).sum::<usize>();
    }
    for t in &req.tools {
        bytes += t.name.len()
            + t.description.as_ref().map_or(0, String::len)
            + t.parameters.to_string().len();
    }
    (bytes as u64).div_ceil(4)
}

/// The configured providers and models, as the innermost tower service.
#[derive(Clone)]
pub struct Providers {
    inner: Arc<Registry>,
}

struct Registry {
    /// Each provider's deployments (one or more).
    providers: HashMap<String, Vec<Arc<dyn Provider>>>,
    routes: Arc<Routes>,
}

impl Providers {
    /// Builds every provider (each deployment of it) in `config`, sharing
    /// one HTTP client.
    pub fn from_config(config: &Config) -> Result<Self, GatewayError> {
        let http = HttpClient::new();
        let mut providers: HashMap<String, Vec<Arc<dyn Provider>>> = HashMap::new();
        for (name, p) in &config.providers {
            let mut deployments = Vec::new();
            for (d, _) in p.deployment_configs() {
                let up = Upstream::new(name, &d, http.clone())?;
                let provider: Arc<dyn Provider> = match p.kind {
                    ProviderKind::OpenAi => Arc::new(OpenAiProvider::new(up, false)),
                    ProviderKind::OpenAiCompatible => Arc::new(OpenAiProvider::new(up, true)),
                    ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(up)),
                    ProviderKind::Gemini => Arc::new(GeminiProvider::new(up)),
                };
                deployments.push(provider);
            }
            providers.insert(name.clone(), deployments);
        }
        Ok(Providers {
            inner: Arc::new(Registry {
                providers,
                routes: Arc::new(Routes::from_config(config)),
            }),
        })
    }

    /// Adds (or replaces) a provider, for library users with their own.
    pub fn with_provider(self, provider: Arc<dyn Provider>) -> Self {
        let name = provider.name().to_string();
        let mut providers = self.inner.providers.clone();
        providers.insert(name.clone(), vec![provider]);
        let routes = Arc::new((*self.inner.routes).clone().with_provider(&name));
        Providers {
            inner: Arc::new(Registry { providers, routes }),
        }
    }

    /// The provider named `name` (its first deployment).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.inner.providers.get(name).and_then(|d| d.first())
    }

    /// The routing table built from the same config, for the routing layers.
    pub fn routes(&self) -> Arc<Routes> {
        self.inner.routes.clone()
    }

    /// Where a requested model goes when no routing layer chose: its first
    /// candidate (see [`Routes::candidates`]). Unknown models are a 404.
    pub fn resolve(&self, model: &str) -> Result<Target, GatewayError> {
        let mut c = self.inner.routes.candidates(model)?;
        Ok(c.swap_remove(0))
    }
}

impl tower::Service<GatewayRequest> for Providers {
    type Response = GatewayResponse;
    type Error = GatewayError;
    type Future = ProviderFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: GatewayRequest) -> ProviderFuture {
        let target = match req.extensions.get::<Target>() {
            Some(t) => Ok(t.clone()),
            None => self.resolve(&req.model),
        };
        let target = match target {
            Ok(t) => t,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let deployment = req.extensions.get::<Deployment>().map_or(0, |d| d.0);
        let provider = self
            .inner
            .providers
            .get(&*target.provider)
            .and_then(|d| d.get(deployment));
        match provider {
            Some(p) => {
                if let Some(sent) = req.extensions.get::<crate::usage::Sent>() {
                    sent.mark(&target, CredentialKind::of(req.extensions.get()));
                }
                let call = p.call(req, target);
                Box::pin(async move { first_event(call.await?).await })
            }
            None => Box::pin(std::future::ready(Err(GatewayError::not_found(format!(
                "provider `{}` is not configured",
                target.provider
            ))
            .with_param("model")))),
        }
    }
}

/// Waits for a stream's first chunk, so that a stream which fails before
/// its first byte fails the call (and the routing layers can move on)
/// instead of reaching the client as an in-band error.
async fn first_event(mut resp: GatewayResponse) -> Result<GatewayResponse, GatewayError> {
    use futures_util::StreamExt;
    let ResponseBody::Stream(mut stream) = resp.body else {
        return Ok(resp);
    };
    match stream.next().await {
        Some(Err(e)) => Err(e),
        None => Err(GatewayError::new(
            ErrorKind::BadUpstreamResponse,
            "the provider's stream ended before its first event",
        )),
        Some(Ok(first)) => {
            resp.body = ResponseBody::Stream(Box::pin(
                futures_util::stream::once(std::future::ready(Ok(first))).chain(stream),
            ));
            Ok(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::credential::Secret;

    #[test]
    fn every_credential_sent_is_marked_sensitive() {
        let config = Config::parse(
            r#"
[providers.p]
kind = "openai-compatible"
base_url = "http://127.0.0.1:1/v1"
api_key = "sk-gateway-SECRET"
headers = { "x-custom-token" = "tok-SECRET", "x-org" = "org-1" }
"#,
            &|_| None,
        )
        .unwrap();
        let config = &config.providers["p"];
        let up = Upstream::new("p", config, HttpClient::new()).unwrap();

        let mut gateway = HeaderMap::new();
        up.sign(&mut gateway, None, KeyHeader::Bearer).unwrap();
        assert!(gateway["authorization"].is_sensitive());
        assert!(gateway["x-custom-token"].is_sensitive());
        let client = Credential::new(
            CredentialKind::Byok,
            Secret::new("sk-client-SECRET"),
            SendAs::ApiKey,
            "p".into(),
        );
        let mut byok = HeaderMap::new();
        up.sign(&mut byok, Some(&client), KeyHeader::Named("x-api-key"))
            .unwrap();
        assert!(byok["x-api-key"].is_sensitive());
        let shown = format!("{gateway:?} {byok:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        // What carries no credential is sent as any header.
        assert!(!up.inner.headers["x-org"].is_sensitive());
    }
}
