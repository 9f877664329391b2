//! Keeping credentials out of what an upstream's answer turns into.
//!
//! An upstream may echo what it received: an error that quotes the key, a
//! proxy that reflects request headers, a debug server. What goes through
//! [`Redactor::scrub`]: every field of every error (before the first byte
//! and in-band), every pass-through answer (body or stream event, whole:
//! telling an error event from content would need each format's parser),
//! and the value of every upstream response header let through. One
//! function, so there is one place that decides what a secret is. Not
//! scrubbed: the content of a translated (cross-format) answer, which would
//! have to quote the key in the model's own output.
//!
//! Response headers pass through an allow-list ([`PASSTHROUGH_HEADERS`]),
//! never a deny-list: an unknown header may carry anything.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use memchr::memmem::Finder;

use crate::error::GatewayError;

/// What a secret is replaced with.
const MASK: &[u8] = b"[redacted]";

/// Values shorter than this are not treated as secrets: no real key is this
/// short, and masking a short string would mangle ordinary text in every
/// stream that contains it.
pub(crate) const MIN_SECRET_LEN: usize = 8;

/// Upstream response headers a same-format client may read: request ids,
/// rate-limit state, retry hints, processing time and content metadata.
/// Everything else is dropped (the edge sets the framing headers itself).
pub(crate) const PASSTHROUGH_HEADERS: &[&str] = &[
    "x-request-id",
    "request-id",
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "openai-processing-ms",
    "openai-version",
    "content-language",
];

/// Prefixes of allowed rate-limit headers (OpenAI's `x-ratelimit-*`,
/// Anthropic's `anthropic-ratelimit-*`, including `-unified-*`).
pub(crate) const PASSTHROUGH_PREFIXES: &[&str] = &["x-ratelimit-", "anthropic-ratelimit-"];

/// The secrets an answer must never let out: the provider credentials a
/// deployment sends, built once per deployment, and the client's own
/// credential when an attempt sends one ([`Redactor::with_secret`]).
/// Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    provider: Arc<[Finder<'static>]>,
    /// The one call's secret (a client credential), if any.
    call: Option<Arc<[Finder<'static>]>>,
}

impl Redactor {
    /// A redactor for a provider's credentials (its key and the values of
    /// its configured credential headers); built once per deployment.
    pub(crate) fn for_provider<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        Redactor {
            provider: finders(secrets),
            call: None,
        }
    }

    /// This redactor, also masking `secret` (the credential one call
    /// sends): the deployment's finders are shared, only the new one is
    /// built.
    pub(crate) fn with_secret(&self, secret: &str) -> Self {
        Redactor {
            provider: self.provider.clone(),
            call: Some(finders([secret])),
        }
    }

    /// `text` with every secret replaced by `[redacted]`; borrowed when it
    /// holds none. Every other method here goes through this one.
    pub(crate) fn scrub<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        let mut out = Cow::Borrowed(text);
        let call = self.call.as_deref().unwrap_or_default();
        for finder in self.provider.iter().chain(call) {
            if finder.find(&out).is_none() {
                continue;
            }
            let mut masked = Vec::with_capacity(out.len());
            let mut last = 0;
            for at in finder.find_iter(&out) {
                masked.extend_from_slice(&out[last..at]);
                masked.extend_from_slice(MASK);
                last = at + finder.needle().len();
            }
            masked.extend_from_slice(&out[last..]);
            out = Cow::Owned(masked);
        }
        out
    }

    /// [`scrub`](Self::scrub) for text. Secrets are UTF-8, so a match in
    /// UTF-8 text starts and ends on character boundaries.
    pub(crate) fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.scrub(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// [`scrub`](Self::scrub) for a stream chunk; no copy when it is clean.
    pub(crate) fn bytes(&self, chunk: Bytes) -> Bytes {
        match self.scrub(&chunk) {
            Cow::Borrowed(_) => chunk,
            Cow::Owned(b) => Bytes::from(b),
        }
    }

    /// `err` with every text field scrubbed.
    pub(crate) fn error(&self, err: GatewayError) -> GatewayError {
        let message = self.text(err.message()).into_owned();
        let code = err.code().map(|c| self.text(c).into_owned());
        let param = err.param().map(|p| self.text(p).into_owned());
        let mut err = err.with_message(message);
        if let Some(code) = code {
            err = err.with_code(code);
        }
        if let Some(param) = param {
            err = err.with_param(param);
        }
        err
    }

    /// The upstream response headers a same-format client may read (see
    /// [`PASSTHROUGH_HEADERS`]), their values scrubbed.
    pub(crate) fn passthrough_headers(&self, upstream: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::new();
        for (name, value) in upstream {
            if !allowed(name) {
                continue;
            }
            let value = match self.scrub(value.as_bytes()) {
                Cow::Borrowed(_) => value.clone(),
                Cow::Owned(b) => match HeaderValue::from_bytes(&b) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            out.append(name.clone(), value);
        }
        out
    }
}

fn allowed(name: &HeaderName) -> bool {
    let name = name.as_str();
    PASSTHROUGH_HEADERS.contains(&name) || PASSTHROUGH_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A finder for each secret long enough to be one, and for its JSON-escaped
/// form when that differs (an echo inside a JSON string).
fn finders<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Arc<[Finder<'static>]> {
    let mut out: Vec<Finder<'static>> = Vec::new();
    for s in secrets {
        if s.len() < MIN_SECRET_LEN {
            continue;
        }
        out.push(Finder::new(s.as_bytes()).into_owned());
        if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            let quoted = serde_json::to_string(s).unwrap_or_default();
            let escaped = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or(s);
            out.push(Finder::new(escaped.as_bytes()).into_owned());
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_and_leaves_clean_text_alone() {
        let r = Redactor::for_provider(["sk-provider-123", "hdr-token-456", "short"]);
        assert_eq!(
            r.text("a sk-provider-123 b sk-provider-123 hdr-token-456"),
            "a [redacted] b [redacted] [redacted]"
        );
        assert!(matches!(r.text("short and clean"), Cow::Borrowed(_)));
        let e = r.error(
            GatewayError::invalid_param("sk-provider-123", "key sk-provider-123")
                .with_code("hdr-token-456"),
        );
        assert_eq!(e.message(), "key [redacted]");
        assert_eq!(e.code(), Some("[redacted]"));
        assert_eq!(e.param(), Some("[redacted]"));
    }

    #[test]
    fn a_calls_secret_is_masked_with_the_providers() {
        let deployment = Redactor::for_provider(["sk-provider-123"]);
        let call = deployment.with_secret("sk-ant-oat01-client-456");
        assert_eq!(
            call.text("sk-provider-123 Bearer sk-ant-oat01-client-456"),
            "[redacted] Bearer [redacted]"
        );
        // The deployment's own redactor is unchanged for other calls.
        assert_eq!(
            deployment.text("sk-ant-oat01-client-456"),
            "sk-ant-oat01-client-456"
        );
    }

    #[test]
    fn json_escaped_secrets_are_masked() {
        let r = Redactor::for_provider(["key\"with\\quote"]);
        let body = serde_json::json!({ "message": "key\"with\\quote" }).to_string();
        assert!(!r.text(&body).contains("quote"), "{}", r.text(&body));
    }

    #[test]
    fn headers_pass_through_an_allow_list() {
        let r = Redactor::for_provider(["sk-provider-123"]);
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer sk-provider-123"),
            ("x-api-key", "sk-provider-123"),
            ("x-something-new", "value"),
            ("set-cookie", "a=b"),
            ("x-request-id", "req_1"),
            ("request-id", "req_sk-provider-123"),
            ("x-ratelimit-remaining-requests", "9"),
            ("anthropic-ratelimit-unified-status", "allowed"),
            ("retry-after", "2"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        let out = r.passthrough_headers(&h);
        let mut names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "anthropic-ratelimit-unified-status",
                "request-id",
                "retry-after",
                "x-ratelimit-remaining-requests",
                "x-request-id"
            ]
        );
        assert_eq!(out["request-id"], "req_[redacted]");
    }
}
