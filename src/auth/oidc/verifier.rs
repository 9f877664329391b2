//! [`OidcVerifier`]: a token's signature and claims checked against the
//! issuer's keys, and the claims mapped to a [`Principal`].

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::{Jwks, KeySet, Source};
use super::token::TokenHeader;
use super::OidcError;
use crate::auth::{AuthMethod, KeyLimits, ModelPatterns, Principal};
use crate::config::{ConfigError, KeysUrl, OidcConfig};
use crate::provider::HttpClient;

/// Verifies bearer JWTs from one OpenID Connect issuer (see the
/// [module docs](super)). Cloning shares the key cache.
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
        // The checks `Config::check` runs, for a config built in code.
        config.check()?;
        let source = match config.keys_url()? {
            KeysUrl::Jwks(url) => Source::Jwks(url),
            KeysUrl::Discovery(document) => Source::Discovery {
                document,
                issuer: config.issuer.clone(),
            },
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
            Some(name) => match string_list(claims, name)?.map(ModelPatterns::new) {
                // No pattern (`[]`, `[""]`) must not read as "every model".
                Some(patterns) if patterns.is_any() => {
                    return Err(OidcError::InvalidClaim(
                        name.clone(),
                        "at least one model pattern",
                    ))
                }
                Some(patterns) => patterns,
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
            limits: KeyLimits::default(),
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

impl crate::auth::TokenVerifier for OidcVerifier {
    fn is_token(&self, bearer: &str) -> bool {
        super::looks_like_jwt(bearer)
    }

    fn verify<'a>(&'a self, token: &'a str) -> crate::auth::AuthFuture<'a> {
        Box::pin(async move {
            OidcVerifier::verify(self, token)
                .await
                .map_err(crate::error::GatewayError::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_config_built_in_code_gets_the_config_files_checks() {
        let config = crate::config::OidcConfig {
            issuer: "https://idp.example.com".into(),
            audience: "tollgate".into(),
            jwks_url: None,
            leeway_secs: u64::MAX,
            user_claim: "sub".into(),
            team_claim: None,
            tags_claim: None,
            models_claim: None,
        };
        let e = OidcVerifier::new(&config, HttpClient::new()).unwrap_err();
        assert_eq!(e.0, "auth.oidc.leeway_secs: at most 86400 (a day)");
    }
}
