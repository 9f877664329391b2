//! Authentication: who a request is from.
//!
//! (Being written: see issue 9.) The `Auth` layer checks a gateway key
//! (from the store or the config) or an OIDC token ([`OidcVerifier`]) and
//! puts a [`Principal`] in the request's extensions.

mod key;
pub mod oidc;
mod principal;

pub use key::{display_prefix, new_key_id, KeyHash, KeyRecord, NewKey, KEY_PREFIX};
pub use oidc::{looks_like_jwt, OidcError, OidcVerifier};
pub use principal::{AuthMethod, ModelPatterns, Principal};
