//! Cooldowns and circuit breakers per provider deployment, in process.
//!
//! A 429 (or an Anthropic 529) takes the deployment out of rotation until
//! its `Retry-After` (or `anthropic-ratelimit-*-reset`) time, or for the
//! configured default when the answer names none. Repeated 5xx, connect
//! failures and timeouts open its circuit: it is skipped until
//! `open_for` has passed, then one request probes it (half-open); success
//! closes the circuit, failure opens it again. Every change is logged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{ErrorKind, GatewayError};

/// A provider deployment, the unit that cools down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    /// The configured provider name.
    pub provider: Arc<str>,
    /// Which of its deployments (0 when it has one).
    pub deployment: usize,
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.provider, self.deployment)
    }
}

/// The state of one deployment, as [`Cooldowns::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CooldownState {
    /// Which deployment.
    pub key: TargetKey,
    /// Time left of a rate-limit cooldown.
    pub rate_limited_for: Option<Duration>,
    /// Time left before an open circuit admits a probe; `Some(ZERO)`
    /// when it is half-open.
    pub circuit_open_for: Option<Duration>,
    /// Consecutive failures so far.
    pub failures: u32,
}

#[derive(Debug, Default)]
struct Entry {
    rate_limited_until: Option<Instant>,
    failures: u32,
    open_until: Option<Instant>,
    /// When the half-open probe went out.
    probing: Option<Instant>,
}

impl Entry {
    /// Whether a half-open probe is out. A probe whose request was dropped
    /// never reports back: after `lease` it no longer holds the others.
    fn probe_out(&self, now: Instant, lease: Duration) -> bool {
        self.probing.is_some_and(|at| now < at + lease)
    }
}

/// Cooldown and circuit state of every deployment; clones share it.
#[derive(Debug, Clone)]
pub struct Cooldowns {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    open_for: Duration,
    rate_limit_default: Duration,
    map: Mutex<HashMap<TargetKey, Entry>>,
}

impl Default for Cooldowns {
    fn default() -> Self {
        Self::new(3, Duration::from_secs(30), Duration::from_secs(5))
    }
}

impl Cooldowns {
    /// A circuit opens after `failures` consecutive failures and stays
    /// open for `open_for`; a 429 naming no time cools down for
    /// `rate_limit_default`. Default: 3, 30 s, 5 s.
    pub fn new(failures: u32, open_for: Duration, rate_limit_default: Duration) -> Self {
        Cooldowns {
            inner: Arc::new(Inner {
                failures: failures.max(1),
                open_for,
                rate_limit_default,
                map: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// From `[routing]` of the config.
    pub fn from_config(c: &crate::config::RoutingConfig) -> Self {
        Self::new(
            c.circuit_failures,
            Duration::from_secs(c.circuit_open_secs),
            Duration::from_secs(c.rate_limit_cooldown_secs),
        )
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<TargetKey, Entry>> {
        self.inner.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Until when `key` is out of rotation, or `None` when it may be tried
    /// now (a half-open circuit may be tried by one request at a time).
    pub fn blocked_until(&self, key: &TargetKey, now: Instant) -> Option<Instant> {
        let map = self.map();
        let e = map.get(key)?;
        let mut until = e.rate_limited_until.filter(|u| *u > now);
        if let Some(open) = e.open_until {
            if open > now {
                until = until.max(Some(open));
            } else if e.probe_out(now, self.inner.open_for) {
                // A probe is out: the others wait for it (briefly).
                until = until.max(Some(now + Duration::from_millis(100)));
            }
        }
        until
    }

    /// Marks the start of an attempt on `key`; if its circuit is
    /// half-open, this attempt is the probe.
    pub fn begin(&self, key: &TargetKey, now: Instant) {
        let mut map = self.map();
        if let Some(e) = map.get_mut(key) {
            if e.open_until.is_some_and(|o| o <= now) && !e.probe_out(now, self.inner.open_for) {
                e.probing = Some(now);
                tracing::info!(target = %key, "circuit half-open: probing");
            }
        }
    }

    /// The attempt on `key` succeeded: its cooldown and circuit reset.
    pub fn on_success(&self, key: &TargetKey) {
        let mut map = self.map();
        if let Some(e) = map.remove(key) {
            if e.open_until.is_some() {
                tracing::info!(target = %key, "circuit closed");
            }
        }
    }

    /// The attempt on `key` failed with `err`.
    pub fn on_failure(&self, key: &TargetKey, err: &GatewayError, now: Instant) {
        // The request ran out of time, not the provider.
        if err.code() == Some(super::timeout::DEADLINE_EXCEEDED) {
            return;
        }
        let rate_limited = err.kind() == ErrorKind::RateLimited
            || (err.kind() == ErrorKind::Overloaded && err.retry_after().is_some());
        let counts = matches!(
            err.kind(),
            ErrorKind::UpstreamServer
                | ErrorKind::Overloaded
                | ErrorKind::Connect
                | ErrorKind::Timeout
                | ErrorKind::BadUpstreamResponse
        );
        let mut map = self.map();
        if rate_limited {
            let wait = err.retry_after().unwrap_or(self.inner.rate_limit_default);
            let e = map.entry(key.clone()).or_default();
            e.rate_limited_until = Some(now + wait);
            e.probing = None;
            tracing::warn!(target = %key, cooldown_secs = wait.as_secs_f64(), "rate limited: out of rotation");
        } else if counts {
            let e = map.entry(key.clone()).or_default();
            e.failures += 1;
            let tripped = e.open_until.is_none() && e.failures >= self.inner.failures;
            if e.probing.is_some() || tripped {
                e.open_until = Some(now + self.inner.open_for);
                e.probing = None;
                tracing::warn!(
                    target = %key,
                    failures = e.failures,
                    open_secs = self.inner.open_for.as_secs_f64(),
                    "circuit open"
                );
            }
        } else if let Some(e) = map.get_mut(key) {
            // A client error means the provider is up and answering.
            e.failures = 0;
            if e.open_until.take().is_some() {
                tracing::info!(target = %key, "circuit closed");
            }
            e.probing = None;
        }
    }

    /// Every deployment that is cooling down or has failures.
    pub fn snapshot(&self, now: Instant) -> Vec<CooldownState> {
        let map = self.map();
        let mut out: Vec<_> = map
            .iter()
            .map(|(k, e)| CooldownState {
                key: k.clone(),
                rate_limited_for: e.rate_limited_until.filter(|u| *u > now).map(|u| u - now),
                circuit_open_for: e.open_until.map(|o| o.saturating_duration_since(now)),
                failures: e.failures,
            })
            .collect();
        out.sort_by_key(|s| (s.key.provider.clone(), s.key.deployment));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> TargetKey {
        TargetKey {
            provider: p.into(),
            deployment: 0,
        }
    }

    #[test]
    fn rate_limit_cools_down_until_retry_after() {
        let c = Cooldowns::default();
        let now = Instant::now();
        let err = GatewayError::new(ErrorKind::RateLimited, "slow")
            .with_retry_after(Duration::from_secs(2));
        c.on_failure(&key("a"), &err, now);
        assert_eq!(
            c.blocked_until(&key("a"), now),
            Some(now + Duration::from_secs(2))
        );
        assert_eq!(c.blocked_until(&key("b"), now), None);
        // Expired: back in rotation.
        assert_eq!(
            c.blocked_until(&key("a"), now + Duration::from_secs(3)),
            None
        );
        // Without Retry-After: the default.
        c.on_failure(
            &key("b"),
            &GatewayError::new(ErrorKind::RateLimited, "x"),
            now,
        );
        assert_eq!(
            c.blocked_until(&key("b"), now),
            Some(now + Duration::from_secs(5))
        );
        assert_eq!(c.snapshot(now).len(), 2);
    }

    #[test]
    fn circuit_opens_probes_and_closes() {
        let c = Cooldowns::new(2, Duration::from_secs(10), Duration::from_secs(1));
        let k = key("a");
        let t0 = Instant::now();
        let e502 = GatewayError::new(ErrorKind::UpstreamServer, "bad");
        c.on_failure(&k, &e502, t0);
        assert_eq!(c.blocked_until(&k, t0), None, "one failure is not enough");
        c.on_failure(&k, &e502, t0);
        assert_eq!(c.blocked_until(&k, t0), Some(t0 + Duration::from_secs(10)));
        // Half-open: one probe goes, the others wait for it.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(c.blocked_until(&k, t1), None);
        c.begin(&k, t1);
        assert!(c.blocked_until(&k, t1).is_some());
        // The probe fails: open again, for the full period.
        c.on_failure(&k, &e502, t1);
        assert_eq!(c.blocked_until(&k, t1), Some(t1 + Duration::from_secs(10)));
        // Next probe succeeds: closed.
        let t2 = t1 + Duration::from_secs(11);
        c.begin(&k, t2);
        c.on_success(&k);
        assert_eq!(c.blocked_until(&k, t2), None);
        assert!(c.snapshot(t2).is_empty());
    }

    #[test]
    fn a_passed_deadline_is_not_the_providers_failure() {
        let c = Cooldowns::new(1, Duration::from_secs(10), Duration::from_secs(1));
        let now = Instant::now();
        let late = GatewayError::new(ErrorKind::Timeout, "deadline")
            .with_code(super::super::timeout::DEADLINE_EXCEEDED);
        c.on_failure(&key("a"), &late, now);
        assert_eq!(c.blocked_until(&key("a"), now), None);
        c.on_failure(
            &key("a"),
            &GatewayError::new(ErrorKind::Timeout, "slow"),
            now,
        );
        assert!(c.blocked_until(&key("a"), now).is_some());
    }

    #[test]
    fn client_errors_do_not_open_the_circuit() {
        let c = Cooldowns::new(1, Duration::from_secs(10), Duration::from_secs(1));
        let now = Instant::now();
        for _ in 0..5 {
            c.on_failure(&key("a"), &GatewayError::not_found("no such model"), now);
            c.on_failure(&key("a"), &GatewayError::invalid_request("bad"), now);
        }
        assert_eq!(c.blocked_until(&key("a"), now), None);
    }
}
