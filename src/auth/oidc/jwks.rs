//! The issuer's signing keys (its JWKS): fetched on first use, cached,
//! refetched when a token names a key the cache does not hold, but never
//! more than once per [`MIN_REFETCH_INTERVAL`], and one fetch at a time.
//!
//! Fetching lazily lets the gateway start while the identity provider is
//! down; the interval keeps tokens with made-up `kid`s from turning the
//! gateway into a tool for hammering the provider.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::http_url;
use crate::provider::HttpClient;

/// The shortest time between two fetches of the issuer's keys (or its
/// discovery document), whatever the tokens ask for.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// How long a fetch may take, connection included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys older than this are fetched again on next use, so that a key the
/// issuer withdrew stops working; while that fetch fails, the old keys
/// stay in use.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(60 * 60);

/// The largest JWKS or discovery document read. Real ones are a few KiB.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// One key the gateway verifies with.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The keys of one successful fetch.
pub(crate) struct KeySet {
    /// 0 before the first successful fetch; one more after each.
    pub(crate) generation: u64,
    pub(crate) keys: Vec<Key>,
    fetched_at: Option<Instant>,
}

impl KeySet {
    /// Whether a fetch has ever succeeded.
    pub(crate) fn fetched(&self) -> bool {
        self.generation > 0
    }

    /// Whether the keys are old enough to be fetched again.
    pub(crate) fn is_stale(&self) -> bool {
        self.fetched_at
            .is_some_and(|at| at.elapsed() >= MAX_KEY_AGE)
    }

    /// The keys that may have signed a token of `alg` naming `kid`: the one
    /// with that `kid`, or, for a token without one, every key of `alg`.
    pub(crate) fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
    }
}

/// Where the keys come from.
pub(crate) enum Source {
    /// A JWKS URL from the config.
    Jwks(Uri),
    /// The issuer's discovery document, whose `jwks_uri` names the JWKS.
    Discovery {
        /// `{issuer}/.well-known/openid-configuration`.
        document: Uri,
        /// The issuer the document must name.
        issuer: String,
    },
}

/// The latest fetch failed (or failed recently and is not retried yet).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unavailable;

/// The issuer's keys, cached.
pub(crate) struct Jwks {
    source: Source,
    http: HttpClient,
    /// Read on every token; written once per successful fetch.
    current: RwLock<Arc<KeySet>>,
    /// Held for the whole of a fetch, so that concurrent misses share one.
    fetch: tokio::sync::Mutex<FetchState>,
}

struct FetchState {
    /// When the last fetch ended (success or failure).
    last_attempt: Option<Instant>,
    last_failed: bool,
    /// The JWKS URL discovery found; forgotten when a fetch fails, in case
    /// the issuer moved it.
    discovered: Option<Uri>,
}

impl Jwks {
    pub(crate) fn new(source: Source, http: HttpClient) -> Self {
        Jwks {
            source,
            http,
            current: RwLock::new(Arc::new(KeySet {
                generation: 0,
                keys: Vec::new(),
                fetched_at: None,
            })),
            fetch: tokio::sync::Mutex::new(FetchState {
                last_attempt: None,
                last_failed: false,
                discovered: None,
            }),
        }
    }

    /// The keys as last fetched.
    pub(crate) fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fetches the keys again, unless someone did since the caller read
    /// generation `seen` (then their result is returned), or the last
    /// fetch ended less than [`MIN_REFETCH_INTERVAL`] ago (then the keys
    /// held are returned, or `Unavailable` if that fetch failed).
    pub(crate) async fn refresh(&self, seen: u64) -> Result<Arc<KeySet>, Unavailable> {
        let state = self.fetch.lock().await;
        self.refresh_locked(state, seen).await
    }

    /// Like [`Jwks::refresh`], except that while a fetch is under way it
    /// returns the keys held instead of waiting: for keys that still work
    /// but are old, one request pays for the fetch, not every one.
    pub(crate) async fn refresh_unless_busy(&self, seen: u64) -> Result<Arc<KeySet>, Unavailable> {
        match self.fetch.try_lock() {
            Ok(state) => self.refresh_locked(state, seen).await,
            Err(_) => Ok(self.current()),
        }
    }

    async fn refresh_locked(
        &self,
        mut state: tokio::sync::MutexGuard<'_, FetchState>,
        seen: u64,
    ) -> Result<Arc<KeySet>, Unavailable> {
        let current = self.current();
        if current.generation != seen {
            return Ok(current);
        }
        if let Some(at) = state.last_attempt {
            if at.elapsed() < MIN_REFETCH_INTERVAL {
                return if state.last_failed {
                    Err(Unavailable)
                } else {
                    Ok(current)
                };
            }
        }
        let result = self.fetch_keys(&mut state).await;
        // Stamped when the fetch ends, not when it starts: a fetch dropped
        // half-way (its client went away) does not hold the others off.
        state.last_attempt = Some(Instant::now());
        match result {
            Ok(keys) => {
                if state.last_failed {
                    tracing::info!(count = keys.len(), "fetched the OIDC issuer's keys again");
                }
                state.last_failed = false;
                let set = Arc::new(KeySet {
                    generation: current.generation + 1,
                    keys,
                    fetched_at: Some(Instant::now()),
                });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = set.clone();
                Ok(set)
            }
            Err(reason) => {
                state.last_failed = true;
                state.discovered = None;
                tracing::warn!(
                    %reason,
                    retry_in_secs = MIN_REFETCH_INTERVAL.as_secs(),
                    "cannot fetch the OIDC issuer's keys; bearer tokens cannot be verified until it answers",
                );
                Err(Unavailable)
            }
        }
    }

    /// The usable keys of the JWKS, found through discovery when no URL
    /// was configured. The error is for the log (no secret in it).
    async fn fetch_keys(&self, state: &mut FetchState) -> Result<Vec<Key>, String> {
        let url = match (&self.source, &state.discovered) {
            (Source::Jwks(url), _) | (Source::Discovery { .. }, Some(url)) => url.clone(),
            (Source::Discovery { document, issuer }, None) => {
                let doc: DiscoveryDocument = self.get_json(document).await?;
                if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                    return Err(format!(
                        "the discovery document at {} names another issuer ({})",
                        for_log(document),
                        doc.issuer
                    ));
                }
                let url = http_url(&doc.jwks_uri).map_err(|e| {
                    format!(
                        "the discovery document at {} has a bad jwks_uri: {e}",
                        for_log(document)
                    )
                })?;
                state.discovered = Some(url.clone());
                url
            }
        };
        let set: JwkSet = self.get_json(&url).await?;
        Ok(set.keys.iter().filter_map(usable_key).collect())
    }

    /// GETs `url` and parses its JSON body, within [`FETCH_TIMEOUT`] and
    /// [`MAX_DOCUMENT_BYTES`].
    async fn get_json<T: DeserializeOwned>(&self, url: &Uri) -> Result<T, String> {
        let fetch = async {
            let req = Request::get(url.clone())
                .header(header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let resp = self
                .http
                .send(req)
                .await
                .map_err(|e| e.message().to_owned())?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!("{} answered {status}", for_log(url)));
            }
            let body = Limited::new(resp.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    format!(
                        "reading {} failed (larger than {MAX_DOCUMENT_BYTES} bytes?): {e}",
                        for_log(url)
                    )
                })?
                .to_bytes();
            serde_json::from_slice(&body)
                .map_err(|e| format!("{} is not the JSON expected: {e}", for_log(url)))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{} did not answer within {} s",
                    for_log(url),
                    FETCH_TIMEOUT.as_secs()
                ))
            })
    }
}

/// `url` without its query, which could carry a credential.
fn for_log(url: &Uri) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}{}",
        url.scheme_str().unwrap_or("http"),
        url.host().unwrap_or(""),
        url.path()
    )
}

/// The fields of the OpenID Connect discovery document used here.
#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

/// A JWKS, its keys left raw so that one odd key is skipped rather than
/// failing the whole set.
#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// The members of a JWK (RFC 7517, 7518) that matter for RS256 and ES256.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The key `jwk` describes, if it is a signing key the gateway accepts
/// tokens from (RSA for RS256, P-256 for ES256); others are ignored.
fn usable_key(jwk: &serde_json::Value) -> Option<Key> {
    let raw = RawJwk::deserialize(jwk).ok()?;
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return None;
    }
    let (alg, key) = match raw.kty.as_str() {
        "RSA" if matches!(raw.alg.as_deref(), None | Some("RS256")) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(raw.n.as_deref()?, raw.e.as_deref()?).ok()?,
        ),
        "EC" if raw.crv.as_deref() == Some("P-256")
            && matches!(raw.alg.as_deref(), None | Some("ES256")) =>
        {
            (
                Algorithm::ES256,
                DecodingKey::from_ec_components(raw.x.as_deref()?, raw.y.as_deref()?).ok()?,
            )
        }
        _ => return None,
    };
    Some(Key {
        kid: raw.kid,
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_signing_keys_of_accepted_kinds_are_kept() {
        let ec = |extra: serde_json::Value| {
            let mut k = json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "k"});
            k.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            k
        };
        let rsa = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"});
        assert_eq!(
            usable_key(&ec(json!({}))).map(|k| k.alg),
            Some(Algorithm::ES256)
        );
        assert_eq!(usable_key(&rsa).map(|k| k.alg), Some(Algorithm::RS256));
        assert!(usable_key(&ec(json!({"use": "sig", "alg": "ES256"}))).is_some());
        assert!(usable_key(&ec(json!({"key_ops": ["verify"]}))).is_some());
        for ignored in [
            ec(json!({"use": "enc"})),
            ec(json!({"key_ops": ["encrypt"]})),
            ec(json!({"crv": "P-384"})),
            ec(json!({"alg": "ES384"})),
            ec(json!({"x": 5})),
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "PS256"}),
            json!({"kty": "RSA", "e": "AQAB"}),
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
            json!("not an object"),
        ] {
            assert!(usable_key(&ignored).is_none(), "{ignored}");
        }
    }

    #[test]
    fn logged_urls_drop_the_query() {
        let url: Uri = "https://user:pw@idp.example.com:8443/keys?token=secret"
            .parse()
            .unwrap();
        assert_eq!(for_log(&url), "https://idp.example.com:8443/keys");
    }
}
