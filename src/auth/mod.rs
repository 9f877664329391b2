//! Authentication: who a request is from.
//!
//! (Being written: see issue 9.) The `Auth` layer checks a gateway key
//! (from the store or the config) or an OIDC token and puts a
//! [`Principal`] in the request's extensions.

mod key;
mod principal;

pub use key::{display_prefix, new_key_id, KeyHash, KeyRecord, NewKey, KEY_PREFIX};
pub use principal::{AuthMethod, ModelPatterns, Principal};
