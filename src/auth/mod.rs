//! Authentication: who a request is from.
//!
//! [`AuthLayer`] checks each request's credential before its body is read
//! and puts a [`Principal`] (key, user, team, tags, allowed models, how it
//! authenticated) in the request's extensions, where later layers read
//! it. A request without a valid credential is answered at once: a 401 in
//! the wire format of its path (OpenAI `authentication_error` /
//! `invalid_api_key`, Anthropic `authentication_error`), or a 503 when the
//! key store cannot be read. The edge then refuses, with a 403, a model
//! the principal may not use ([`ModelPatterns`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate::auth::{AuthLayer, Authenticator};
//! use tollgate::config::{AuthMode, Config};
//! use tollgate::server::Layers;
//! use tollgate::store::SqliteStore;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_env(&|k| std::env::var(k).ok());
//! let store = SqliteStore::open(std::path::Path::new("tollgate.db"))?;
//! let auth = Authenticator::new(AuthMode::Required, false).with_store(Arc::new(store));
//! // The gateway's routes behind this authenticator (`assemble` mounts
//! // the `AuthLayer`); in front of any other axum router:
//! // `router.layer(AuthLayer::new(auth))`.
//! let control = tollgate::server::Control::from_config(&config);
//! let app = tollgate::server::assemble(&config, Layers::Default, Some(auth), control)?;
//! # let _ = app; let _ = AuthLayer::new; Ok(()) }
//! ```
//!
//! Where the credential comes from, in order: `x-tollgate-key`, then
//! `Authorization: Bearer`, then `x-api-key`. The header that carried it is
//! taken off the request, so that no later layer mistakes a gateway key
//! for a provider credential; with `x-tollgate-key`, `Authorization` and
//! `x-api-key` stay for a provider that passes the client's own
//! credential through (a Claude subscription). A bearer token that a
//! [`TokenVerifier`] reads (an OIDC JWT: [`OidcVerifier`]) is verified by it.
//!
//! Keys are looked up by their SHA-256 ([`KeyHash`]), in the keys of
//! `[auth] keys` and then in a [`KeyStore`](crate::store::KeyStore), with a
//! `moka` cache in front: a key seen once costs no store query. Every
//! [`REFRESH_EVERY`] the store's revision is read, and any change (a key
//! revoked, rotated or created, by this process or `tollgate keys` in
//! another) empties the cache, so a revocation lands within seconds.
//!
//! With `[auth] mode = "auto"` (the default), a key is required as soon
//! as one exists. A gateway with none serves openly on a loopback
//! address (and says so once in the log) and refuses everyone on any
//! other; the binary refuses to start there
//! ([`check_exposure`](crate::server::check_exposure)).
//! See `examples/auth_alone.rs` for the layer in front of an ordinary
//! axum app with a key store of its own.

mod authenticator;
mod key;
mod layer;
pub mod oidc;
mod principal;

pub use authenticator::{
    AuthFuture, Authenticator, Check, TokenVerifier, KEY_HEADER, REFRESH_EVERY,
};
pub use key::{display_prefix, new_key_id, KeyHash, KeyRecord, KeyStatus, NewKey, KEY_PREFIX};
pub use layer::{Auth, AuthLayer, ResponseFuture};
pub use oidc::{looks_like_jwt, OidcError, OidcVerifier};
pub use principal::{AuthMethod, KeyLimits, ModelPatterns, Principal};

#[cfg(test)]
mod tests;
