//! The credential of one attempt: the gateway's configured key, a key the
//! request brought (BYOK), or the client's own provider credential passed
//! through (a Claude subscription's OAuth token).
//!
//! [`ProviderOrder`](super::ProviderOrder) chooses it: it expands each
//! provider of a model into attempts, one per credential, and puts the
//! chosen [`Credential`] in the attempt's request extensions; the provider
//! service reads it there and sends it in place of its configured key. An
//! attempt without one uses the provider's configured key
//! ([`CredentialKind::Gateway`]). The module lives with the routing layers
//! because the choice, the order and the cooldowns are theirs; providers
//! only sign with what they are given.
//!
//! # The candidates of one provider, in order
//!
//! 1. **BYOK**: the keys the request brought for this provider, in the
//!    order sent: first `providerOptions.gateway.byok = {"<provider>":
//!    [{"apiKey": "..."}, ...]}` (the Vercel AI Gateway's shape), then
//!    each `x-tollgate-byok-<provider>: KEY` header. `<provider>` is the
//!    gateway's configured provider name. Only a provider whose config
//!    says `allow_byok = true` takes them: a key for any other (or for an
//!    unknown provider) is the client's 400 naming the field or header, so
//!    that a caller who meant to pay with their own account is never
//!    silently served on the gateway's.
//! 2. **Pass-through**: for a provider with `pass_through = true`
//!    (Anthropic kind only), the credential the client itself sent, when
//!    the client speaks the Anthropic Messages format (its credential was
//!    meant for Anthropic): `Authorization: Bearer` (an OAuth token, kind
//!    [`Subscription`](CredentialKind::Subscription), sent as a bearer) or
//!    else `x-api-key` (kind [`Byok`](CredentialKind::Byok), sent as
//!    `x-api-key`). A value starting with `tg_` is a gateway key and is
//!    never passed on. The Auth layer removes the header that carried the
//!    gateway key, so what is left is the client's own.
//! 3. **Gateway-managed**: the provider's configured deployments, as
//!    without this module. Left out when the request brought BYOK keys for
//!    this provider and its `byok_fallback` is false (the default): the
//!    caller asked for their own account, so when their keys fail, this
//!    provider's answer is their keys' failure, and the request goes on
//!    only to the model's other providers and fallback models (which use
//!    their own credentials as usual). With `byok_fallback = true`, the
//!    configured deployments follow the BYOK keys. Also left out: the
//!    deployments of a pass-through provider that have no configured key
//!    (a subscription-only provider has no gateway-managed attempt).
//!
//! A client credential goes to the provider it was planned for, and only
//! there: never to another provider or kind (the provider checks that the
//! credential names it), never into an error message, a log line, the
//! attempts header or a cooldown key in clear (they carry its
//! [`CredentialKind`], or its [`CredentialId`], a truncated SHA-256). The
//! provider adds it to its redactor for that attempt, so an upstream that
//! echoes it cannot leak it back.
//!
//! # Failures and cooldowns
//!
//! A client credential's 401 or 403 moves on to the next candidate (the
//! error carries [`Cause::CredentialRejected`](crate::error::Cause)), and
//! so does its 429 or 5xx, as any provider's. A 5xx, connect failure or
//! timeout counts toward the deployment's circuit, shared by every
//! credential (the server is down, whoever's key it was). Its rate limits
//! and refusals are its own: the
//! cooldown key ([`TargetKey`](super::TargetKey)) carries the
//! credential's id, so a subscription at its limit (Anthropic's 429 with
//! `anthropic-ratelimit-unified-status: rejected`) is tried last, for
//! every model, until its `anthropic-ratelimit-unified-reset` time, by
//! the requests that bring that same token only; other users' tokens and
//! the gateway's keys are untouched. A rejected (401/403) client
//! credential is tried last for
//! [`Cooldowns::with_rejected_credential`](super::Cooldowns::with_rejected_credential)
//! (10 minutes by default): a refreshed OAuth token is a new credential
//! with a new id, so the wait only spares the old one a pointless call.

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use serde_json::Value;

use crate::error::GatewayError;

/// Which kind of credential an attempt used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CredentialKind {
    /// The provider's configured key (or none, for a server that needs none).
    #[default]
    Gateway,
    /// A key the request brought (BYOK), or the client's own API key
    /// passed through.
    Byok,
    /// The client's own OAuth token passed through (a Claude subscription).
    Subscription,
}

impl CredentialKind {
    /// The kind of an attempt that sends `credential`, or the gateway's
    /// configured key when it sends none.
    pub fn of(credential: Option<&Credential>) -> Self {
        credential.map_or(CredentialKind::Gateway, Credential::kind)
    }

    /// The name the `x-tollgate-credential` header and the attempts header
    /// use: `gateway`, `byok`, `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Gateway => "gateway",
            CredentialKind::Byok => "byok",
            CredentialKind::Subscription => "subscription",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a client credential is sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendAs {
    /// In the provider kind's key header, where its configured key goes:
    /// `x-api-key` for Anthropic, `x-goog-api-key` for Gemini,
    /// `Authorization: Bearer` for OpenAI (whose keys are bearers).
    ApiKey,
    /// `Authorization: Bearer` (an Anthropic OAuth token).
    Bearer,
}

/// A stable name for a credential, for cooldown keys and logs: the first
/// 8 bytes of its SHA-256. It cannot be turned back into the credential.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId([u8; 8]);

impl CredentialId {
    /// The id of `secret`.
    pub fn of(secret: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest.as_ref()[..8]);
        CredentialId(id)
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({self})")
    }
}

/// A secret whose `Debug` never shows it: a key a request brought, kept in
/// [`RoutingOptions`](super::RoutingOptions) and [`Credential`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<Arc<str>>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The credential an attempt sends in place of its provider's configured
/// key, in the attempt's request extensions (see the [module docs](self)).
/// Its `Debug` shows its kind and id, never the secret; it has no
/// `Display`.
#[derive(Clone)]
pub struct Credential {
    kind: CredentialKind,
    secret: Secret,
    send_as: SendAs,
    id: CredentialId,
    provider: Arc<str>,
}

impl Credential {
    /// A credential of `kind` for the configured provider `provider`,
    /// sent as `send_as`.
    pub fn new(kind: CredentialKind, secret: Secret, send_as: SendAs, provider: Arc<str>) -> Self {
        let id = CredentialId::of(secret.expose());
        Credential {
            kind,
            secret,
            send_as,
            id,
            provider,
        }
    }

    /// What kind it is.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The secret, for the provider that sends it.
    pub fn secret(&self) -> &str {
        self.secret.expose()
    }

    /// How it is sent.
    pub fn send_as(&self) -> SendAs {
        self.send_as
    }

    /// Its stable id (cooldowns, logs).
    pub fn id(&self) -> CredentialId {
        self.id
    }

    /// The configured provider it was meant for; a provider refuses to
    /// send a credential meant for another.
    pub fn provider(&self) -> &str {
        &self.provider
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("send_as", &self.send_as)
            .field("id", &self.id)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// The prefix of the header that brings a BYOK key:
/// `x-tollgate-byok-<provider>: KEY`.
pub const BYOK_HEADER_PREFIX: &str = "x-tollgate-byok-";

/// How many BYOK keys one request may bring for one provider, body and
/// headers together. Each is an attempt (and a hash for its cooldown key),
/// so a request must not be able to make the gateway try thousands.
pub const MAX_BYOK_KEYS: usize = 8;

/// Where a BYOK key came from, for error messages.
pub(crate) fn byok_field(provider: &str) -> String {
    format!("providerOptions.gateway.byok.{provider}")
}

/// Whether `key` can be sent and kept out of answers: a valid header
/// value (it goes upstream in one), and at least as long as the shortest
/// secret the redactor masks, since a shorter one could be echoed back
/// in clear.
fn sendable(key: &str) -> bool {
    key.len() >= crate::provider::MIN_SECRET_LEN && http::HeaderValue::from_str(key).is_ok()
}

/// What a BYOK key must be, for the 400 that names where it came from.
fn bad_key(field: &str) -> GatewayError {
    GatewayError::invalid_param(
        field,
        format!(
            "`{field}` must be a key of at least {} bytes that is a valid header value",
            crate::provider::MIN_SECRET_LEN
        ),
    )
}

/// The 400 for more than [`MAX_BYOK_KEYS`] keys for one provider.
pub(crate) fn too_many_keys(field: &str) -> GatewayError {
    GatewayError::invalid_param(
        field,
        format!("`{field}`: at most {MAX_BYOK_KEYS} keys per provider (body and headers together)"),
    )
}

/// Reads `providerOptions.gateway.byok`: provider names to lists of
/// `{"apiKey": "..."}`. Anything else is a 400 naming the field.
pub(crate) fn parse_byok(v: &Value) -> Result<Vec<(String, Vec<Secret>)>, GatewayError> {
    const FIELD: &str = "providerOptions.gateway.byok";
    let bad = |field: &str, what: &str| {
        GatewayError::invalid_param(field, format!("`{field}` must be {what}"))
    };
    let map = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Object(m) => m,
        _ => {
            return Err(bad(
                FIELD,
                "an object of provider names to lists of `{\"apiKey\": \"...\"}`",
            ))
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (provider, list) in map {
        let field = byok_field(provider);
        let Value::Array(items) = list else {
            return Err(bad(&field, "a list of `{\"apiKey\": \"...\"}`"));
        };
        if items.len() > MAX_BYOK_KEYS {
            return Err(too_many_keys(&field));
        }
        let mut keys = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get("apiKey") {
                Some(Value::String(k)) if !k.trim().is_empty() => {
                    let k = k.trim();
                    if !sendable(k) {
                        return Err(bad_key(&format!("{field}[{i}].apiKey")));
                    }
                    keys.push(Secret::new(k));
                }
                _ => return Err(bad(&format!("{field}[{i}].apiKey"), "a non-empty string")),
            }
        }
        if !keys.is_empty() {
            out.push((provider.clone(), keys));
        }
    }
    Ok(out)
}

/// The BYOK keys of the `x-tollgate-byok-<provider>` headers, in the order
/// sent: `(provider as written in the header name, key)`. A value that is
/// not visible text, or shorter than a key, or more than
/// [`MAX_BYOK_KEYS`] headers for one provider, is a 400 naming the header.
pub(crate) fn byok_headers(headers: &HeaderMap) -> Result<Vec<(&str, Secret)>, GatewayError> {
    let mut out: Vec<(&str, Secret)> = Vec::new();
    for (name, value) in headers {
        let Some(provider) = name.as_str().strip_prefix(BYOK_HEADER_PREFIX) else {
            continue;
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                GatewayError::invalid_param(
                    name.as_str(),
                    format!("`{name}` must be a non-empty key"),
                )
            })?;
        if !sendable(key) {
            return Err(bad_key(name.as_str()));
        }
        // Header names are lower case: one provider, one spelling.
        if out.iter().filter(|(p, _)| *p == provider).count() >= MAX_BYOK_KEYS {
            return Err(too_many_keys(name.as_str()));
        }
        out.push((provider, Secret::new(key)));
    }
    Ok(out)
}

/// The token of an `Authorization: Bearer` header (the scheme in any
/// case, the token trimmed), if it has a non-empty one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The client's own credential, for a pass-through provider: its
/// `Authorization: Bearer` token, else its `x-api-key`; never a gateway
/// key. The caller checks that the client speaks Anthropic's format.
pub(crate) fn client_credential(headers: &HeaderMap) -> Option<(Secret, SendAs, CredentialKind)> {
    // A gateway key is never passed on to a provider.
    let own = |v: &str| !v.is_empty() && !v.starts_with(crate::auth::KEY_PREFIX);
    if let Some(token) = bearer_token(headers).filter(|t| own(t)) {
        return Some((
            Secret::new(token),
            SendAs::Bearer,
            CredentialKind::Subscription,
        ));
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| own(k))
        .map(|k| (Secret::new(k), SendAs::ApiKey, CredentialKind::Byok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_and_the_id_is_stable() {
        let c = Credential::new(
            CredentialKind::Subscription,
            Secret::new("sk-ant-oat01-alice-SECRET"),
            SendAs::Bearer,
            "claude".into(),
        );
        let dbg = format!("{c:?} {:?}", Secret::new("sk-ant-oat01-alice-SECRET"));
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert_eq!(c.id(), CredentialId::of("sk-ant-oat01-alice-SECRET"));
        assert_ne!(c.id(), CredentialId::of("sk-ant-oat01-bob-SECRET"));
        assert_eq!(c.id().to_string().len(), 16);
        assert!(!c.id().to_string().contains("SECRET"));
    }

    #[test]
    fn client_credential_prefers_the_bearer_and_never_takes_a_gateway_key() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        let (s, how, kind) = client_credential(&h(&[
            ("authorization", "Bearer sk-ant-oat01-x"),
            ("x-api-key", "sk-ant-api-y"),
        ]))
        .unwrap();
        assert_eq!(
            (s.expose(), how, kind),
            (
                "sk-ant-oat01-x",
                SendAs::Bearer,
                CredentialKind::Subscription
            )
        );
        let (s, how, kind) = client_credential(&h(&[
            ("authorization", "Bearer tg_abc"),
            ("x-api-key", "sk-ant-api-y"),
        ]))
        .unwrap();
        assert_eq!(
            (s.expose(), how, kind),
            ("sk-ant-api-y", SendAs::ApiKey, CredentialKind::Byok)
        );
        assert!(client_credential(&h(&[("authorization", "Bearer tg_abc")])).is_none());
        assert!(client_credential(&h(&[("x-api-key", "tg_abc")])).is_none());
        assert!(client_credential(&h(&[("authorization", "Basic abc")])).is_none());
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_schemes_case() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            m
        };
        assert_eq!(bearer_token(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&h("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&h("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(&h("Basic abc")), None);
        assert_eq!(bearer_token(&h("Bearer")), None);
        assert_eq!(bearer_token(&h("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn byok_field_is_read_and_malformed_ones_name_the_field() {
        let v: Value = serde_json::from_str(
            r#"{"oa": [{"apiKey": "sk-key-1"}, {"apiKey": "sk-key-2"}], "an": [{"apiKey": "sk-key-3"}]}"#,
        )
        .unwrap();
        let got = parse_byok(&v).unwrap();
        let names: Vec<(&str, Vec<&str>)> = got
            .iter()
            .map(|(p, ks)| (p.as_str(), ks.iter().map(Secret::expose).collect()))
            .collect();
        assert!(
            names.contains(&("oa", vec!["sk-key-1", "sk-key-2"])),
            "{names:?}"
        );
        assert!(names.contains(&("an", vec!["sk-key-3"])), "{names:?}");
        for (body, field) in [
            (r#"[]"#, "providerOptions.gateway.byok"),
            (
                r#"{"oa": {"apiKey": "sk-SECRET-key"}}"#,
                "providerOptions.gateway.byok.oa",
            ),
            (
                r#"{"oa": [{"apiKey": ""}]}"#,
                "providerOptions.gateway.byok.oa[0].apiKey",
            ),
            (
                r#"{"oa": [{"key": "sk-SECRET-key"}]}"#,
                "providerOptions.gateway.byok.oa[0].apiKey",
            ),
        ] {
            let e = parse_byok(&serde_json::from_str(body).unwrap()).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(e.param(), Some(field), "{body}");
            // A leak would show the value whatever quotes it came in.
            assert!(!e.message().contains("SECRET"), "{}", e.message());
        }
    }

    #[test]
    fn byok_keys_are_capped_and_each_must_be_a_sendable_key() {
        let list = |n: usize| {
            let keys: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"apiKey": "sk-SECRET-{i}"}}"#))
                .collect();
            format!(r#"{{"oa": [{}]}}"#, keys.join(","))
        };
        let parse = |body: &str| parse_byok(&serde_json::from_str(body).unwrap());
        assert_eq!(
            parse(&list(MAX_BYOK_KEYS)).unwrap()[0].1.len(),
            MAX_BYOK_KEYS
        );
        for (body, field) in [
            (list(MAX_BYOK_KEYS + 1), "providerOptions.gateway.byok.oa"),
            // Too short for the redactor to mask.
            (
                r#"{"oa": [{"apiKey": "SECRET7"}]}"#.to_string(),
                "providerOptions.gateway.byok.oa[0].apiKey",
            ),
            // Not a header value.
            (
                r#"{"oa": [{"apiKey": "sk-SECRET-key"}, {"apiKey": "sk-SECRET\nkey"}]}"#
                    .to_string(),
                "providerOptions.gateway.byok.oa[1].apiKey",
            ),
        ] {
            let e = parse(&body).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(e.param(), Some(field), "{body}");
            assert!(!e.message().contains("SECRET"), "{}", e.message());
        }

        let headers = |pairs: &[(&'static str, String)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, v.parse().unwrap());
            }
            m
        };
        let many = |n: usize| -> Vec<(&'static str, String)> {
            (0..n)
                .map(|i| ("x-tollgate-byok-oa", format!("sk-SECRET-{i}")))
                .collect()
        };
        let mut ok = many(MAX_BYOK_KEYS);
        ok.push(("x-tollgate-byok-an", "sk-SECRET-an".into()));
        assert_eq!(
            byok_headers(&headers(&ok)).unwrap().len(),
            MAX_BYOK_KEYS + 1
        );
        for pairs in [
            many(MAX_BYOK_KEYS + 1),
            vec![("x-tollgate-byok-oa", "SECRET7".to_string())],
        ] {
            let e = byok_headers(&headers(&pairs)).unwrap_err();
            assert_eq!(e.status(), 400);
            assert_eq!(e.param(), Some("x-tollgate-byok-oa"));
            assert!(!e.message().contains("SECRET"), "{}", e.message());
        }
    }
}
