//! OpenID Connect bearer tokens: an [`OidcVerifier`] turns a JWT signed by
//! the configured issuer into a [`Principal`].
//!
//! ```toml
//! [auth.oidc]
//! issuer = "https://login.example.com/realms/acme"  # the token's `iss`, exactly
//! audience = "tollgate"                             # must be in the token's `aud`
//! # jwks_url = "https://login.example.com/keys"     # default: `jwks_uri` of
//! #                                                 # {issuer}/.well-known/openid-configuration
//! leeway_secs = 60                                  # clock skew allowed on exp / nbf
//! user_claim = "email"                              # default "sub"
//! team_claim = "team"                               # a string
//! tags_claim = "groups"                             # an array of strings, or one string
//! models_claim = "models"                           # an array of patterns (`gpt-*`); absent: all
//! ```
//!
//! ```no_run
//! # async fn demo(config: &tollgate::config::OidcConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use tollgate::auth::{looks_like_jwt, OidcVerifier};
//! use tollgate::provider::HttpClient;
//!
//! let verifier = OidcVerifier::new(config, HttpClient::new())?;
//! let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2ln";
//! if looks_like_jwt(token) {
//!     match verifier.verify(token).await {
//!         Ok(principal) => println!("hello {}", principal.id),
//!         Err(e) => println!("{}: {e}", e.status()), // safe to show the client
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! What is checked: the signature (RS256 or ES256 only; `none`, HMAC and
//! every other algorithm are refused before any key is looked up), `exp`
//! (required), `nbf` (when present), `iss` and `aud`, with `leeway_secs`
//! of skew, and `sub` (required: it is the principal's id).
//!
//! The keys are fetched on first use, not at start, so that the gateway
//! starts while the identity provider is down; they are refetched when a
//! token names a `kid` the cache does not hold, at most once per
//! [`MIN_REFETCH_INTERVAL`] however many such tokens arrive, and after
//! [`MAX_KEY_AGE`]. While they cannot be fetched, tokens get a 503 (see
//! [`OidcError::KeysUnavailable`]).

use std::collections::HashSet;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{StatusCode, Uri};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{parse_url, Jwks, KeySet, Source};
use super::{AuthMethod, ModelPatterns, Principal};
use crate::config::{ConfigError, OidcConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::provider::HttpClient;

pub use super::jwks::{MAX_KEY_AGE, MIN_REFETCH_INTERVAL};

/// The largest `leeway_secs`: more is no clock skew, and far more would
/// overflow the timestamps it is added to.
const MAX_LEEWAY_SECS: u64 = 24 * 60 * 60;

/// Verifies bearer JWTs from one OpenID Connect issuer (see the
/// [module docs](self)). Cloning shares the key cache.
#[derive(Clone)]
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Jwks,
    rs256: Validation,
    es256: Validation,
    user_claim: String,
    team_claim: Option<String>,
    tags_claim: Option<String>,
    models_claim: Option<String>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier").finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// A verifier for `config`'s issuer, fetching keys with `http`.
    /// Nothing is fetched yet; an error names the field at fault.
    pub fn new(config: &OidcConfig, http: HttpClient) -> Result<Self, ConfigError> {
        let field_error = |field: &str, msg: &str| ConfigError(format!("auth.oidc.{field}: {msg}"));
        if config.issuer.trim().is_empty() {
            return Err(field_error("issuer", "must not be empty"));
        }
        if config.leeway_secs > MAX_LEEWAY_SECS {
            return Err(field_error(
                "leeway_secs",
                &format!("at most {MAX_LEEWAY_SECS} (a day)"),
            ));
        }
        if config.audience.trim().is_empty() {
            return Err(field_error("audience", "must not be empty"));
        }
        for (field, claim) in [
            ("user_claim", Some(&config.user_claim)),
            ("team_claim", config.team_claim.as_ref()),
            ("tags_claim", config.tags_claim.as_ref()),
            ("models_claim", config.models_claim.as_ref()),
        ] {
            if claim.is_some_and(|c| c.is_empty()) {
                return Err(field_error(field, "must not be empty"));
            }
        }
        let source = match &config.jwks_url {
            Some(url) => Source::Jwks(parse_url(url).map_err(|e| field_error("jwks_url", &e))?),
            None => {
                let document = format!(
                    "{}/.well-known/openid-configuration",
                    config.issuer.trim_end_matches('/')
                );
                let document: Uri = parse_url(&document).map_err(|e| {
                    field_error(
                        "issuer",
                        &format!(
                            "{e}: without jwks_url, the keys are discovered from the issuer's URL"
                        ),
                    )
                })?;
                Source::Discovery {
                    document,
                    issuer: config.issuer.clone(),
                }
            }
        };
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = config.leeway_secs;
            v.validate_nbf = true;
            v.set_issuer(&[&config.issuer]);
            v.set_audience(&[&config.audience]);
            v.required_spec_claims = HashSet::from(["exp", "iss", "aud"].map(String::from));
            v
        };
        Ok(OidcVerifier {
            inner: Arc::new(Inner {
                keys: Jwks::new(source, http),
                rs256: validation(Algorithm::RS256),
                es256: validation(Algorithm::ES256),
                user_claim: config.user_claim.clone(),
                team_claim: config.team_claim.clone(),
                tags_claim: config.tags_claim.clone(),
                models_claim: config.models_claim.clone(),
            }),
        })
    }

    /// The principal `token` (the bearer token, without `Bearer `) stands
    /// for, with [`AuthMethod::Jwt`]; or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<Principal, OidcError> {
        let header = TokenHeader::parse(token)?;
        let keys = &self.inner.keys;
        let mut set = keys.current();
        if !set.fetched() {
            set = keys
                .refresh(set.generation)
                .await
                .map_err(|_| OidcError::KeysUnavailable)?;
        } else if set.is_stale() {
            // Old keys still verify while the issuer cannot be reached.
            if let Ok(fresh) = keys.refresh_unless_busy(set.generation).await {
                set = fresh;
            }
        }
        if set
            .candidates(header.alg, header.kid.as_deref())
            .next()
            .is_none()
        {
            // The issuer may have rotated its keys since: look again (the
            // refresh itself decides whether it is too soon to).
            set = keys
                .refresh(set.generation)
                .await
                .map_err(|_| OidcError::KeysUnavailable)?;
        }
        self.check(token, &header, &set)
    }

    fn check(
        &self,
        token: &str,
        header: &TokenHeader,
        set: &KeySet,
    ) -> Result<Principal, OidcError> {
        let validation = match header.alg {
            Algorithm::ES256 => &self.inner.es256,
            _ => &self.inner.rs256,
        };
        let mut tried = false;
        for key in set.candidates(header.alg, header.kid.as_deref()) {
            tried = true;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return self.principal(&data.claims),
                // The signature is checked before the claims: any other
                // error is about a token this key did sign.
                Err(e) if is_signature_error(e.kind()) => continue,
                Err(e) => return Err(OidcError::from_jwt(e.kind())),
            }
        }
        if !tried && header.kid.is_some() {
            Err(OidcError::UnknownKey)
        } else {
            Err(OidcError::SignatureMismatch)
        }
    }

    /// The principal of verified `claims`.
    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, OidcError> {
        let inner = &self.inner;
        let id = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.as_str(),
            None | Some(Value::Null) => return Err(OidcError::MissingClaim("sub".into())),
            Some(_) => return Err(OidcError::InvalidClaim("sub".into(), "a non-empty string")),
        };
        let tags = match &inner.tags_claim {
            Some(name) => string_list(claims, name)?.unwrap_or_default(),
            None => Vec::new(),
        };
        let models = match &inner.models_claim {
            // An empty list must not read as "every model".
            Some(name) => match string_list(claims, name)? {
                Some(list) if list.is_empty() => {
                    return Err(OidcError::InvalidClaim(
                        name.clone(),
                        "at least one model pattern",
                    ))
                }
                Some(list) => ModelPatterns::new(list),
                None => ModelPatterns::any(),
            },
            None => ModelPatterns::any(),
        };
        Ok(Principal {
            id: id.into(),
            name: None,
            user: string_claim(claims, &inner.user_claim)?,
            team: match &inner.team_claim {
                Some(name) => string_claim(claims, name)?,
                None => None,
            },
            tags: tags.into_iter().map(Arc::from).collect(),
            models,
            method: AuthMethod::Jwt,
        })
    }
}

/// The string claim `name`, if present.
fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<Arc<str>>, OidcError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str().into())),
        Some(_) => Err(OidcError::InvalidClaim(name.into(), "a string")),
    }
}

/// The claim `name` as a list: an array of strings, or one string.
fn string_list(claims: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, OidcError> {
    let wrong = || OidcError::InvalidClaim(name.into(), "an array of strings or a string");
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(wrong))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

/// Whether `e` says the key did not verify the signature (so another key
/// may), rather than something about the claims.
fn is_signature_error(e: &JwtErrorKind) -> bool {
    matches!(
        e,
        JwtErrorKind::InvalidSignature
            | JwtErrorKind::InvalidAlgorithm
            | JwtErrorKind::InvalidRsaKey(_)
            | JwtErrorKind::InvalidEcdsaKey
            | JwtErrorKind::InvalidKeyFormat
            | JwtErrorKind::Crypto(_)
    )
}

/// Whether `token` has the shape of a JWT (three base64url parts, the
/// last possibly empty), so that it is a token to verify rather than a
/// gateway key (`tg_…`, which has no dot). It says nothing of validity.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !header.is_empty()
        && !claims.is_empty()
        && base64url(header)
        && base64url(claims)
        && base64url(signature)
}

/// What the token's header says, checked before any key is looked up.
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

impl TokenHeader {
    fn parse(token: &str) -> Result<Self, OidcError> {
        if !looks_like_jwt(token) {
            return Err(OidcError::Malformed(
                "it is not three base64url parts separated by dots",
            ));
        }
        let (header, _) = token.split_once('.').unwrap_or((token, ""));
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| OidcError::Malformed("its header is not base64url"))?;
        let header: RawHeader = serde_json::from_slice(&header)
            .map_err(|_| OidcError::Malformed("its header is not a JSON object"))?;
        let alg = match header.alg.as_deref() {
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some(other) => return Err(OidcError::UnsupportedAlgorithm(printable(other))),
            None => return Err(OidcError::Malformed("its header has no `alg`")),
        };
        if header.crit.is_some() {
            // RFC 7515 4.1.11: extensions the recipient does not know
            // must make it reject the token.
            return Err(OidcError::Malformed(
                "its header lists critical extensions (`crit`) the gateway does not support",
            ));
        }
        Ok(TokenHeader {
            alg,
            kid: header.kid,
        })
    }
}

/// `alg` as the client may be shown it: a short name of plain characters,
/// or `None` for anything else (it is the client's own input).
fn printable(alg: &str) -> Option<String> {
    (alg.len() <= 20
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| alg.to_owned())
}

/// Why a bearer token was refused. Its `Display` is meant for the client:
/// it never contains the token, a key or anything fetched from the
/// identity provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// Not a JWT the gateway can read; says which part is wrong.
    #[error("the bearer token is not a valid JWT: {0}")]
    Malformed(&'static str),
    /// Signed with an algorithm other than RS256 or ES256 (its name, when
    /// printable).
    #[error("{}", unsupported_algorithm(.0.as_deref()))]
    UnsupportedAlgorithm(Option<String>),
    /// Past its `exp` (plus the leeway).
    #[error("the token has expired")]
    Expired,
    /// Before its `nbf` (minus the leeway).
    #[error("the token is not valid yet (its `nbf` is in the future)")]
    NotYetValid,
    /// Another `iss` than the configured issuer.
    #[error("the token was issued by another issuer than the one this gateway trusts (`iss`)")]
    WrongIssuer,
    /// The configured audience is not in its `aud`.
    #[error("the token is not meant for this gateway (wrong audience `aud`)")]
    WrongAudience,
    /// A required claim is missing (its name).
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    /// A claim has the wrong type (its name, and what it should be).
    #[error("the token's `{0}` claim must be {1}")]
    InvalidClaim(String, &'static str),
    /// Its `kid` names no signing key of the issuer, even after fetching
    /// the keys again (or too soon after the last fetch to try).
    #[error("the token's key id (`kid`) is not one of the issuer's signing keys")]
    UnknownKey,
    /// No key of the issuer verifies its signature.
    #[error("the token's signature does not match any key of the issuer")]
    SignatureMismatch,
    /// The issuer's keys could not be fetched, so nothing can be verified.
    #[error("cannot verify the token: the identity provider's keys are unavailable")]
    KeysUnavailable,
}

fn unsupported_algorithm(alg: Option<&str>) -> String {
    match alg {
        Some(a) if a.eq_ignore_ascii_case("none") => {
            "unsigned tokens (`alg: none`) are not accepted; only RS256 and ES256 are".into()
        }
        Some(a) => format!("tokens signed with `{a}` are not accepted; only RS256 and ES256 are"),
        None => "the token's algorithm is not accepted; only RS256 and ES256 are".into(),
    }
}

impl OidcError {
    /// The status to answer with: 503 when the identity provider's keys
    /// are unavailable, 401 otherwise.
    ///
    /// Not 401 for unavailable keys: the token may well be valid, and a
    /// client told its credential is wrong stops or asks its user, where
    /// SDKs retry a 503 by themselves (the keys are fetched again within
    /// [`MIN_REFETCH_INTERVAL`]).
    pub fn status(&self) -> StatusCode {
        match self {
            OidcError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn from_jwt(e: &JwtErrorKind) -> Self {
        match e {
            JwtErrorKind::ExpiredSignature => OidcError::Expired,
            JwtErrorKind::ImmatureSignature => OidcError::NotYetValid,
            JwtErrorKind::InvalidIssuer => OidcError::WrongIssuer,
            JwtErrorKind::InvalidAudience => OidcError::WrongAudience,
            // A claim of the wrong type reads as missing to jsonwebtoken.
            JwtErrorKind::MissingRequiredClaim(claim) => OidcError::MissingClaim(claim.clone()),
            JwtErrorKind::Base64(_) => OidcError::Malformed("a part is not base64url"),
            JwtErrorKind::Json(_) | JwtErrorKind::Utf8(_) => {
                OidcError::Malformed("its claims are not a JSON object")
            }
            _ => OidcError::Malformed("it cannot be decoded"),
        }
    }
}

impl From<OidcError> for GatewayError {
    /// A 401 [`ErrorKind::Authentication`], or for unavailable keys a 503
    /// [`ErrorKind::Overloaded`] (which the OpenAI and Anthropic SDKs retry).
    fn from(e: OidcError) -> Self {
        let kind = match e {
            OidcError::KeysUnavailable => ErrorKind::Overloaded,
            _ => ErrorKind::Authentication,
        };
        GatewayError::new(kind, e.to_string()).with_status(e.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape_is_told_from_gateway_keys() {
        for yes in [
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", // unsigned: still refused later, clearly
        ] {
            assert!(looks_like_jwt(yes), "{yes}");
        }
        for no in [
            "tg_4QmZ8yXv2LkP9sR3tW7nB1cD5fG6hJ0aE2iK4oU8",
            "sk-ant-oat01-abc",
            "a.b",
            "a.b.c.d",
            ".b.c",
            "a..c",
            "a.b+/.c",
            "a.b.c=",
            "",
        ] {
            assert!(!looks_like_jwt(no), "{no}");
        }
    }

    #[test]
    fn unsupported_algorithms_are_named_only_when_printable() {
        let header = |alg: &str| {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            TokenHeader::parse(&format!("{h}.e30.c2ln")).err()
        };
        assert_eq!(
            header("HS256").map(|e| e.to_string()).as_deref(),
            Some("tokens signed with `HS256` are not accepted; only RS256 and ES256 are")
        );
        assert!(header("none").unwrap().to_string().contains("alg: none"));
        let odd = header("<script>").unwrap().to_string();
        assert!(!odd.contains("script"), "{odd}");
        assert!(header("ES256").is_none());
    }

    #[test]
    fn verification_can_run_on_any_thread() {
        fn assert_send<T: Send + 'static>(_: T) {}
        let config = crate::config::OidcConfig {
            issuer: "https://idp.example.com".into(),
            audience: "tollgate".into(),
            jwks_url: None,
            leeway_secs: 60,
            user_claim: "sub".into(),
            team_claim: None,
            tags_claim: None,
            models_claim: None,
        };
        let verifier = OidcVerifier::new(&config, HttpClient::new()).unwrap();
        assert_send(async move { verifier.verify("a.b.c").await });
    }

    #[test]
    fn unavailable_keys_are_a_503_and_the_rest_401() {
        assert_eq!(
            OidcError::KeysUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(OidcError::Expired.status(), StatusCode::UNAUTHORIZED);
        let err = GatewayError::from(OidcError::WrongAudience);
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert!(err.message().contains("audience"));
    }
}
