//! Gateway keys: how they are made, hashed and described.

use std::fmt;

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// What every gateway key starts with.
pub const KEY_PREFIX: &str = "tg_";

/// Base62 characters after the prefix: 44 of them carry 261 bits, more
/// than 32 random bytes.
const KEY_CHARS: usize = 44;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new gateway key, shown once. Its `Debug` and `Display` hide it; read
/// it with [`NewKey::expose`].
pub struct NewKey(String);

impl NewKey {
    /// A fresh random key: `tg_` and 44 base62 characters from the
    /// system's secure random source.
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let mut out = String::with_capacity(KEY_PREFIX.len() + KEY_CHARS);
        out.push_str(KEY_PREFIX);
        let mut buf = [0u8; 64];
        while out.len() < KEY_PREFIX.len() + KEY_CHARS {
            rng.fill(&mut buf)
                .expect("the system's random source is available");
            // 248 = 4 * 62: rejecting the rest keeps every character
            // equally likely.
            for b in buf.iter().filter(|b| **b < 248) {
                if out.len() == KEY_PREFIX.len() + KEY_CHARS {
                    break;
                }
                out.push(BASE62[usize::from(*b % 62)] as char);
            }
        }
        NewKey(out)
    }

    /// The key itself, to print once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash, which is all the store keeps.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }

    /// What lists show of it: the prefix and the first four characters.
    pub fn display_prefix(&self) -> String {
        display_prefix(&self.0)
    }
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewKey({}…)", self.display_prefix())
    }
}

/// What lists show of a key: `tg_` and four more characters.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX.len() + 4).collect()
}

/// The SHA-256 of a gateway key. Keys are high-entropy random strings,
/// so a plain hash cannot be reversed by guessing; the store keeps only
/// this. Equality is constant-time.
#[derive(Clone, Copy)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// The hash of `key` as a client sent it.
    pub fn of(key: &str) -> Self {
        let d = digest::digest(&digest::SHA256, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        KeyHash(out)
    }

    /// Lower-case hex, as the store keeps it.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }

    /// Parses [`KeyHash::to_hex`]'s output.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(KeyHash(out))
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for KeyHash {}

impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: enough to tell two apart in a log.
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

/// A key as the store describes it: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Its id (`key_` and 12 base62 characters), for `revoke` and `rotate`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What lists show of the key (`tg_abcd`).
    pub prefix: String,
    /// The user it belongs to.
    pub user: Option<String>,
    /// The team it belongs to.
    pub team: Option<String>,
    /// Tags for usage and budgets.
    pub tags: Vec<String>,
    /// Model patterns it may use; empty: all.
    pub models: Vec<String>,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When it stops working (Unix seconds), if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked (Unix seconds), if it was.
    pub revoked_at: Option<i64>,
    /// When it was last used (Unix seconds; written a few seconds late).
    pub last_used_at: Option<i64>,
    /// The id of the key it replaced (`keys rotate`).
    pub rotated_from: Option<String>,
    /// Its own rate limits.
    pub limits: super::KeyLimits,
}

impl KeyRecord {
    /// Whether the key works at `now` (Unix seconds), and if not why:
    /// the rule the gateway applies. A key both revoked and expired is
    /// revoked.
    pub fn status_at(&self, now: i64) -> KeyStatus {
        if self.revoked_at.is_some_and(|t| t <= now) {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// Why the key does not work at `now` (Unix seconds), if it does not,
    /// in words for the client.
    pub fn unusable_at(&self, now: i64) -> Option<&'static str> {
        match self.status_at(now) {
            KeyStatus::Active => None,
            KeyStatus::Revoked => Some("the gateway key was revoked"),
            KeyStatus::Expired => Some("the gateway key has expired"),
        }
    }
}

/// Whether a key works at a given time ([`KeyRecord::status_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// It works.
    Active,
    /// It was revoked.
    Revoked,
    /// Its expiry (or the end of its rotation's grace period) has passed.
    Expired,
}

impl KeyStatus {
    /// `active`, `revoked` or `expired`, as `tollgate keys list` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
            KeyStatus::Expired => "expired",
        }
    }
}

/// A new key id: `key_` and 12 base62 characters.
pub fn new_key_id() -> String {
    let key = NewKey::generate();
    format!(
        "key_{}",
        &key.expose()[KEY_PREFIX.len()..KEY_PREFIX.len() + 12]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_base62_and_distinct() {
        let a = NewKey::generate();
        let b = NewKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("tg_"));
        assert_eq!(a.expose().len(), 3 + KEY_CHARS);
        assert!(a.expose()[3..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(!format!("{a:?}").contains(&a.expose()[8..]));
        assert_eq!(a.display_prefix().len(), 7);
    }

    #[test]
    fn hash_round_trips_through_hex_and_compares() {
        let h = KeyHash::of("tg_example");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_ne!(h, KeyHash::of("tg_example2"));
        assert_eq!(KeyHash::from_hex("zz"), None);
        // The SHA-256 of "abc".
        assert_eq!(
            KeyHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn expired_and_revoked_keys_say_why() {
        let mut r = KeyRecord {
            id: "key_x".into(),
            name: "n".into(),
            prefix: "tg_abcd".into(),
            user: None,
            team: None,
            tags: vec![],
            models: vec![],
            created_at: 0,
            expires_at: Some(100),
            revoked_at: None,
            last_used_at: None,
            rotated_from: None,
            limits: Default::default(),
        };
        assert_eq!(r.unusable_at(99), None);
        assert_eq!(r.status_at(99), KeyStatus::Active);
        assert_eq!(r.status_at(100), KeyStatus::Expired);
        assert!(r.unusable_at(100).unwrap().contains("expired"));
        r.revoked_at = Some(50);
        assert!(r.unusable_at(60).unwrap().contains("revoked"));
        assert_eq!(r.status_at(200), KeyStatus::Revoked);
        assert_eq!(r.status_at(49), KeyStatus::Active);
    }
}
