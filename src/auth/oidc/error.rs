//! [`OidcError`]: why a token was refused, in words for the client.

use http::StatusCode;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;

use crate::error::{ErrorKind, GatewayError};

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
    /// [`MIN_REFETCH_INTERVAL`](super::MIN_REFETCH_INTERVAL)).
    pub fn status(&self) -> StatusCode {
        match self {
            OidcError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    pub(super) fn from_jwt(e: &JwtErrorKind) -> Self {
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
    /// A refused token is answered like a refused gateway key: a 401
    /// [`ErrorKind::Authentication`] with code `invalid_api_key`, so a
    /// client handles both alike. Unavailable keys are a 503
    /// [`ErrorKind::Overloaded`] (which the OpenAI and Anthropic SDKs retry).
    fn from(e: OidcError) -> Self {
        match e {
            OidcError::KeysUnavailable => GatewayError::new(ErrorKind::Overloaded, e.to_string()),
            _ => GatewayError::new(ErrorKind::Authentication, e.to_string())
                .with_code("invalid_api_key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // The same shape as a refused gateway key.
        assert_eq!(err.code(), Some("invalid_api_key"));
        let err = GatewayError::from(OidcError::KeysUnavailable);
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code(), None);
    }
}
