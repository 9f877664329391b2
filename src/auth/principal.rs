//! Who a request is from, as the `Auth` layer found out.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;

/// Who sent a request; the `Auth` layer puts one in the request's
/// extensions, and later layers (budgets, logs, cache) read it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (`key_…`), the static key's name, or the JWT's subject.
    pub id: Arc<str>,
    /// The key's name, when it has one.
    pub name: Option<Arc<str>>,
    /// The user it acts for.
    pub user: Option<Arc<str>>,
    /// The team it belongs to.
    pub team: Option<Arc<str>>,
    /// Tags for usage and budgets.
    pub tags: Arc<[Arc<str>]>,
    /// The models it may use.
    pub models: ModelPatterns,
    /// How it authenticated.
    pub method: AuthMethod,
    /// The key's own rate limits (the config's `[[rate_limits]]` may add
    /// tighter ones).
    pub limits: KeyLimits,
}

/// A key's own rate limits (`tollgate keys create --rpm N --tpm N`);
/// `None`: the key sets none. The `RateLimit` layer applies the tightest
/// of these and the config's (see [`crate::ratelimit`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeyLimits {
    /// Requests per minute.
    pub rpm: Option<NonZeroU32>,
    /// Tokens per minute, input and output together.
    pub tpm: Option<NonZeroU64>,
}

impl KeyLimits {
    /// Whether the key sets no limit.
    pub fn is_none(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
    }
}

impl Principal {
    /// The principal of a gateway that requires no authentication.
    pub fn anonymous() -> Self {
        Principal {
            id: "anonymous".into(),
            name: None,
            user: None,
            team: None,
            tags: Arc::new([]),
            models: ModelPatterns::any(),
            method: AuthMethod::None,
            limits: KeyLimits::default(),
        }
    }
}

/// How a [`Principal`] authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A gateway key from the store (`tollgate keys create`).
    Key,
    /// A gateway key written in the config (`[auth] keys`).
    StaticKey,
    /// An OIDC / JWT bearer token.
    Jwt,
    /// None: the gateway does not require authentication.
    None,
}

impl AuthMethod {
    /// The name logs and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Key => "key",
            AuthMethod::StaticKey => "static-key",
            AuthMethod::Jwt => "jwt",
            AuthMethod::None => "none",
        }
    }
}

/// The models a principal may use: patterns where `*` matches any run of
/// characters (`gpt-*`, `anthropic/*`, `*-mini`). No pattern: every model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelPatterns(Arc<[Arc<str>]>);

impl ModelPatterns {
    /// Every model.
    pub fn any() -> Self {
        ModelPatterns(Arc::new([]))
    }

    /// The models matching any of `patterns` (every model when empty).
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ModelPatterns(
            patterns
                .into_iter()
                .map(|p| Arc::from(p.as_ref().trim()))
                .filter(|p: &Arc<str>| !p.is_empty())
                .collect(),
        )
    }

    /// Whether every model is allowed.
    pub fn is_any(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[Arc<str>] {
        &self.0
    }

    /// Whether `model` is allowed.
    pub fn allows(&self, model: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| glob(p, model))
    }
}

/// `*` matches any run of characters (none included); everything else
/// matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*`: an exact match
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_shell_stars() {
        let p = ModelPatterns::new(["gpt-*", "anthropic/*", "*-mini", "exact", "a*b*c"]);
        for yes in [
            "gpt-4o",
            "gpt-",
            "anthropic/claude",
            "o4-mini",
            "exact",
            "abc",
            "a-b-c",
            "abbc",
        ] {
            assert!(p.allows(yes), "{yes}");
        }
        for no in [
            "gpt4", "claude", "exactly", "mini", "ab", "acb", "xgpt-4o", "a-b-c-d",
        ] {
            assert!(!p.allows(no), "{no}");
        }
        assert!(ModelPatterns::any().allows("anything"));
        assert!(ModelPatterns::new(["", " "]).is_any());
        assert!(ModelPatterns::new(["*"]).allows(""));
    }
}
