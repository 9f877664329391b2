//! What can be read from a token before any key is looked up: its shape
//! and its header.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;

use super::OidcError;

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
pub(super) struct TokenHeader {
    pub(super) alg: Algorithm,
    pub(super) kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

impl TokenHeader {
    pub(super) fn parse(token: &str) -> Result<Self, OidcError> {
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
}
