//! OpenID Connect bearer tokens: an [`OidcVerifier`] turns a JWT signed by
//! the configured issuer into a [`Principal`](crate::auth::Principal).
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

mod error;
mod jwks;
mod token;
mod verifier;

pub use error::OidcError;
pub use jwks::{MAX_KEY_AGE, MIN_REFETCH_INTERVAL};
pub use token::looks_like_jwt;
pub use verifier::OidcVerifier;
