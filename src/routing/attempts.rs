//! The record of every attempt a request made.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::credential::CredentialKind;
use crate::error::{ErrorKind, GatewayError};
use crate::request::Target;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The provider answered with this status (2xx: it served).
    Status(u16),
    /// A timeout ended the attempt.
    Timeout,
    /// No connection, or it broke before the first byte.
    Connect,
}

impl Outcome {
    /// The outcome of a failed attempt.
    pub fn of_error(err: &GatewayError) -> Self {
        match err.kind() {
            ErrorKind::Timeout => Outcome::Timeout,
            ErrorKind::Connect => Outcome::Connect,
            _ => Outcome::Status(err.status().as_u16()),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status(s) => write!(f, "{s}"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::Connect => f.write_str("connect"),
        }
    }
}

/// One attempt: where it went and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The provider and model tried.
    pub target: Target,
    /// Which of the provider's deployments, when it has several.
    pub deployment: Option<usize>,
    /// Which kind of credential it sent (never the credential itself).
    pub credential: CredentialKind,
    /// How it ended.
    pub outcome: Outcome,
}

impl fmt::Display for Attempt {
    /// `provider/model=outcome`, or `provider[i]/model=outcome` for the
    /// `i`th deployment of a provider that has several; an attempt with a
    /// client's credential says its kind: `provider/model[subscription]=429`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.target.provider)?;
        if let Some(i) = self.deployment {
            write!(f, "[{i}]")?;
        }
        write!(f, "/{}", self.target.model)?;
        if self.credential != CredentialKind::Gateway {
            write!(f, "[{}]", self.credential)?;
        }
        write!(f, "={}", self.outcome)
    }
}

/// The attempts of one request, shared by every layer through the
/// request's extensions (clones share one log).
///
/// The edge puts one in every request so it can name the attempts even
/// when all of them failed; a routing layer adds one when it finds none.
#[derive(Debug, Clone, Default)]
pub struct AttemptLog(Arc<Mutex<Vec<Attempt>>>);

impl AttemptLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an attempt.
    pub fn push(&self, attempt: Attempt) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(attempt);
    }

    /// The attempts so far, in order.
    pub fn snapshot(&self) -> Vec<Attempt> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The attempts as the `x-tollgate-attempts` header value:
    /// `a/m=429, b/m=200` (`a/m[subscription]=429` for an attempt with a
    /// client's own credential); `None` when there were none.
    pub fn header_value(&self) -> Option<String> {
        let attempts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if attempts.is_empty() {
            return None;
        }
        let parts: Vec<String> = attempts.iter().map(ToString::to_string).collect();
        Some(parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(p: &str, m: &str) -> Target {
        Target {
            provider: p.into(),
            model: m.into(),
        }
    }

    #[test]
    fn header_lists_attempts_in_order() {
        let log = AttemptLog::new();
        assert_eq!(log.header_value(), None);
        let shared = log.clone();
        shared.push(Attempt {
            target: target("anthropic", "claude-sonnet-4-5"),
            deployment: None,
            credential: CredentialKind::Subscription,
            outcome: Outcome::of_error(&GatewayError::new(ErrorKind::RateLimited, "slow down")),
        });
        shared.push(Attempt {
            target: target("openai", "gpt-4o"),
            deployment: Some(1),
            credential: CredentialKind::Byok,
            outcome: Outcome::Timeout,
        });
        shared.push(Attempt {
            target: target("openai", "gpt-4o"),
            deployment: Some(0),
            credential: CredentialKind::Gateway,
            outcome: Outcome::Connect,
        });
        log.push(Attempt {
            target: target("local", "llama"),
            deployment: None,
            credential: CredentialKind::Gateway,
            outcome: Outcome::Status(200),
        });
        assert_eq!(
            log.header_value().unwrap(),
            "anthropic/claude-sonnet-4-5[subscription]=429, openai[1]/gpt-4o[byok]=timeout, \
             openai[0]/gpt-4o=connect, local/llama=200"
        );
    }
}
