//! Cooldowns and circuit breakers per target, in process.
//!
//! A circuit is kept per model of a deployment (a provider key or
//! server): repeated 5xx, 529s, connect failures and timeouts of one model
//! open its circuit until `open_for` has passed, then one request probes it
//! (half-open); success closes the circuit, failure opens it again. A 429
//! (or a 529 naming a time) cools down what the provider's limit covers
//! ([`LimitScope`]): that model on that key, or every model of the key,
//! until its `Retry-After` (or `anthropic-ratelimit-*-reset`) time, or for
//! the configured default when the answer names none.
//!
//! An attempt with a client's own credential (BYOK or passed through) is
//! keyed by that credential's id too ([`TargetKey::credential`]): its 429
//! (a subscription at its limit) or its 401/403
//! ([`Cause::CredentialRejected`], cooled down for
//! [`Cooldowns::with_rejected_credential`]) holds back only the requests
//! that bring the same credential, never the provider's configured key or
//! other clients' credentials. A circuit, though, is the deployment's,
//! whatever credential an attempt sends: a 5xx, connect failure or
//! timeout says the server is down, not the key, so it counts toward the
//! circuit of the key without a credential, which every credential's
//! attempt on that model honours, probes and closes. Otherwise every new
//! client would pay its own `failures` attempts to learn that a server is
//! down. Client credentials are many; the state stays capped all the same
//! (`MAX_KEYS`), and they give way to the gateway's own state.
//!
//! A target that is cooling down is not skipped: the provider-order layer
//! tries it after every other candidate. Every change is logged.
//!
//! Time is tokio's ([`tokio::time::Instant`]), the same as the system's
//! outside tests, so that tests can move it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::credential::CredentialId;
use crate::error::{Cause, ErrorKind, GatewayError, LimitScope};

/// What cools down: one model of a provider deployment, or (without a
/// model) the whole deployment, for limits that cover every model of a
/// key; with the configured key, or with one client credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    /// The configured provider name.
    pub provider: Arc<str>,
    /// Which of its deployments (0 when it has one).
    pub deployment: usize,
    /// The model sent upstream; `None` for the whole deployment.
    pub model: Option<Arc<str>>,
    /// The client credential the attempt sends (its id, never the
    /// secret); `None` for the deployment's configured key. Rate limits
    /// and refusals are kept per credential; the circuit of a model is
    /// kept on its key without one (see the [module docs](self)).
    pub credential: Option<CredentialId>,
}

impl TargetKey {
    /// One model of a deployment, with its configured key.
    pub fn new(provider: Arc<str>, deployment: usize, model: Arc<str>) -> Self {
        TargetKey {
            provider,
            deployment,
            model: Some(model),
            credential: None,
        }
    }

    /// The same target with the client credential `id`.
    pub fn with_credential(mut self, id: CredentialId) -> Self {
        self.credential = Some(id);
        self
    }

    /// The key whose entry holds this key's circuit: the same model of
    /// the same deployment, without a credential. Borrowed when it is
    /// this key (the gateway's own attempts), so that the common case
    /// allocates nothing.
    fn circuit_key(&self) -> Cow<'_, TargetKey> {
        match self.credential {
            None => Cow::Borrowed(self),
            Some(_) => Cow::Owned(TargetKey {
                credential: None,
                ..self.clone()
            }),
        }
    }

    /// The whole deployment this key belongs to (with the same credential).
    pub fn deployment_key(&self) -> TargetKey {
        TargetKey {
            provider: self.provider.clone(),
            deployment: self.deployment,
            model: None,
            credential: self.credential,
        }
    }
}

impl fmt::Display for TargetKey {
    /// `provider[i]/model`, and ` credential=<id>` for a client credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.provider, self.deployment)?;
        if let Some(m) = &self.model {
            write!(f, "/{m}")?;
        }
        match &self.credential {
            Some(id) => write!(f, " credential={id}"),
            None => Ok(()),
        }
    }
}

/// The state of one key, as [`Cooldowns::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CooldownState {
    /// Which model of which deployment (or the whole deployment).
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
    /// The server answered: failures are forgotten and an open circuit
    /// closes. A rate limit is not the circuit's and stays.
    fn close_circuit(&mut self, key: &TargetKey) {
        self.failures = 0;
        if self.open_until.take().is_some() {
            tracing::info!(target = %key, "circuit closed");
        }
        self.probing = None;
    }

    /// Whether a half-open probe is out. A probe whose request was dropped
    /// never reports back: after `lease` it no longer holds the others.
    fn probe_out(&self, now: Instant, lease: Duration) -> bool {
        self.probing.is_some_and(|at| now < at + lease)
    }
}

/// Cooldown and circuit state of every target; clones share it.
#[derive(Debug, Clone)]
pub struct Cooldowns {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    open_for: Duration,
    rate_limit_default: Duration,
    rejected_credential: Duration,
    map: Mutex<HashMap<TargetKey, Entry>>,
}

/// How long a client credential a provider refused (401/403) is tried
/// last, by default: long enough to spare a dead token a call on every
/// request, short enough that a credential refused by a passing upstream
/// fault comes back soon. A refreshed token has a new id and is not held.
pub const REJECTED_CREDENTIAL_COOLDOWN: Duration = Duration::from_secs(10 * 60);

/// How many keys are kept before those no longer blocking are forgotten.
/// Clients choose model names (`provider/anything`), so the state of a
/// provider that fails every model must not grow without bound. When it
/// is full of live state, a client credential's entry gives way to the
/// gateway's own (a key without a credential), never the other way.
const MAX_KEYS: usize = 4096;

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
                rejected_credential: REJECTED_CREDENTIAL_COOLDOWN,
                map: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How long a client credential that a provider refused (401/403) is
    /// tried last. Default [`REJECTED_CREDENTIAL_COOLDOWN`] (10 minutes).
    /// A setting of the layer, not of its state: set it when building,
    /// before the `Cooldowns` is cloned into layers.
    ///
    /// # Panics
    ///
    /// When a clone of this `Cooldowns` already exists (its clones would
    /// not see the change).
    pub fn with_rejected_credential(mut self, wait: Duration) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("set before sharing")
            .rejected_credential = wait;
        self
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

    /// Until when the model of `key` had better not be tried, or `None`
    /// when it may be tried now (a half-open circuit may be tried by one
    /// request at a time). A limit on its whole deployment counts too, and
    /// so does the deployment's circuit for a key with a credential.
    pub fn blocked_until(&self, key: &TargetKey, now: Instant) -> Option<Instant> {
        let map = self.map();
        if map.is_empty() {
            return None;
        }
        let mut until = None;
        if key.model.is_some() {
            until = map
                .get(&key.deployment_key())
                .and_then(|e| e.rate_limited_until)
                .filter(|u| *u > now);
        }
        if let Some(e) = map.get(key) {
            until = until.max(e.rate_limited_until.filter(|u| *u > now));
        }
        let Some(e) = map.get(&*key.circuit_key()) else {
            return until;
        };
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

    /// Marks the start of an attempt on `key`; if its circuit (the
    /// deployment's, whatever the credential) is half-open, this attempt
    /// is the probe.
    pub fn begin(&self, key: &TargetKey, now: Instant) {
        let mut map = self.map();
        if map.is_empty() {
            return;
        }
        if let Some(e) = map.get_mut(&*key.circuit_key()) {
            if e.open_until.is_some_and(|o| o <= now) && !e.probe_out(now, self.inner.open_for) {
                e.probing = Some(now);
                tracing::info!(target = %key, "circuit half-open: probing");
            }
        }
    }

    /// The attempt on `key` succeeded: its cooldown and circuit reset, and
    /// so does a cooldown of its whole deployment (the key serves again).
    /// With a credential, the deployment's circuit closes too, and the
    /// configured key's own rate limit, kept in the same entry, stays.
    pub fn on_success(&self, key: &TargetKey) {
        let mut map = self.map();
        if map.is_empty() {
            return;
        }
        if key.model.is_some() {
            map.remove(&key.deployment_key());
        }
        if let Some(e) = map.remove(key) {
            if e.open_until.is_some() {
                tracing::info!(target = %key, "circuit closed");
            }
        }
        if key.credential.is_some() {
            let circuit = key.circuit_key();
            if let Some(e) = map.get_mut(&*circuit) {
                e.close_circuit(&circuit);
                if e.rate_limited_until.is_none() {
                    map.remove(&*circuit);
                }
            }
        }
    }

    /// The attempt on `key` failed with `err`. A rate limit cools down
    /// what the error's [`LimitScope`] says it covers, or `scope` when it
    /// does not say. A client credential that was refused cools down on
    /// every model of the deployment, for that credential only.
    pub fn on_failure(&self, key: &TargetKey, err: &GatewayError, scope: LimitScope, now: Instant) {
        // The request ran out of time, not the provider.
        if err.cause() == Some(Cause::DeadlinePassed) {
            return;
        }
        let rejected = key.credential.is_some() && err.cause() == Some(Cause::CredentialRejected);
        let rate_limited = rejected
            || err.kind() == ErrorKind::RateLimited
            || (err.kind() == ErrorKind::Overloaded && err.retry_after().is_some());
        let counts = matches!(
            err.kind(),
            ErrorKind::UpstreamServer
                | ErrorKind::Overloaded
                | ErrorKind::Connect
                | ErrorKind::Timeout
                | ErrorKind::BadUpstreamResponse
        );
        let circuit = key.circuit_key();
        // The entry this failure is written to.
        let limited = match err.limit_scope().unwrap_or(scope) {
            _ if rejected => key.deployment_key(),
            LimitScope::Key if rate_limited => key.deployment_key(),
            _ if rate_limited => key.clone(),
            _ => circuit.clone().into_owned(),
        };
        let mut map = self.map();
        if (rate_limited || counts) && map.len() >= MAX_KEYS && !map.contains_key(&limited) {
            // Keep what still blocks a target; forget failure counts and
            // lapsed cooldowns.
            map.retain(|_, e| {
                e.rate_limited_until.is_some_and(|u| u > now)
                    || e.open_until.is_some_and(|o| o > now)
            });
            if map.len() >= MAX_KEYS && limited.credential.is_none() {
                // Clients bring credentials without limit; the gateway's
                // own deployments are few and their state protects every
                // request. So a client credential's state makes room, the
                // one that frees soonest first.
                let evict = map
                    .iter()
                    .filter(|(k, _)| k.credential.is_some())
                    .min_by_key(|(_, e)| e.rate_limited_until.max(e.open_until))
                    .map(|(k, _)| k.clone());
                if let Some(k) = evict {
                    map.remove(&k);
                    tracing::debug!(target = %k, "cooldown state full: client credential's state forgotten");
                }
            }
            if map.len() >= MAX_KEYS {
                // Full of live state (and, for a credential-less key, of
                // the gateway's own): this failure goes unrecorded (the
                // target keeps its turn) rather than grow the map.
                tracing::debug!(target = %limited, "cooldown state full: failure not recorded");
                return;
            }
        }
        if rate_limited {
            let wait = if rejected {
                self.inner.rejected_credential
            } else {
                err.retry_after().unwrap_or(self.inner.rate_limit_default)
            };
            let e = map.entry(limited.clone()).or_default();
            e.rate_limited_until = Some(now + wait);
            // The server answered: a probe is over.
            if let Some(e) = map.get_mut(&*circuit) {
                e.probing = None;
            }
            let what = if rejected {
                "credential refused: tried last"
            } else {
                "rate limited: tried last"
            };
            tracing::warn!(target = %limited, cooldown_secs = wait.as_secs_f64(), "{what}");
        } else if counts {
            let e = map.entry(limited.clone()).or_default();
            e.failures += 1;
            let tripped = e.open_until.is_none() && e.failures >= self.inner.failures;
            if e.probing.is_some() || tripped {
                e.open_until = Some(now + self.inner.open_for);
                e.probing = None;
                tracing::warn!(
                    target = %limited,
                    failures = e.failures,
                    open_secs = self.inner.open_for.as_secs_f64(),
                    "circuit open"
                );
            }
        } else if let Some(e) = map.get_mut(&*circuit) {
            // A client error means the provider is up and answering.
            e.close_circuit(&circuit);
        }
    }

    /// Every key that is cooling down or has failures.
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
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::CredentialId;

    fn key(p: &str) -> TargetKey {
        TargetKey::new(p.into(), 0, "m".into())
    }

    const MODEL: LimitScope = LimitScope::Model;

    #[test]
    fn rate_limit_cools_down_until_retry_after() {
        let c = Cooldowns::default();
        let now = Instant::now();
        let err = GatewayError::new(ErrorKind::RateLimited, "slow")
            .with_retry_after(Duration::from_secs(2));
        c.on_failure(&key("a"), &err, MODEL, now);
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
            MODEL,
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
        c.on_failure(&k, &e502, MODEL, t0);
        assert_eq!(c.blocked_until(&k, t0), None, "one failure is not enough");
        c.on_failure(&k, &e502, MODEL, t0);
        assert_eq!(c.blocked_until(&k, t0), Some(t0 + Duration::from_secs(10)));
        // Half-open: one probe goes, the others wait for it.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(c.blocked_until(&k, t1), None);
        c.begin(&k, t1);
        assert!(c.blocked_until(&k, t1).is_some());
        // The probe fails: open again, for the full period.
        c.on_failure(&k, &e502, MODEL, t1);
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
        let late =
            GatewayError::new(ErrorKind::Timeout, "deadline").with_cause(Cause::DeadlinePassed);
        c.on_failure(&key("a"), &late, MODEL, now);
        assert_eq!(c.blocked_until(&key("a"), now), None);
        c.on_failure(
            &key("a"),
            &GatewayError::new(ErrorKind::Timeout, "slow"),
            MODEL,
            now,
        );
        assert!(c.blocked_until(&key("a"), now).is_some());
    }

    #[test]
    fn client_errors_do_not_open_the_circuit() {
        let c = Cooldowns::new(1, Duration::from_secs(10), Duration::from_secs(1));
        let now = Instant::now();
        for _ in 0..5 {
            c.on_failure(
                &key("a"),
                &GatewayError::not_found("no such model"),
                MODEL,
                now,
            );
            c.on_failure(&key("a"), &GatewayError::invalid_request("bad"), MODEL, now);
        }
        assert_eq!(c.blocked_until(&key("a"), now), None);
    }

    #[test]
    fn circuits_and_model_limits_cover_one_model_of_one_deployment() {
        let c = Cooldowns::new(1, Duration::from_secs(10), Duration::from_secs(5));
        let now = Instant::now();
        let sonnet = TargetKey::new("a".into(), 0, "sonnet".into());
        let opus = TargetKey::new("a".into(), 0, "opus".into());
        let other_key = TargetKey::new("a".into(), 1, "sonnet".into());
        c.on_failure(
            &sonnet,
            &GatewayError::new(ErrorKind::RateLimited, "slow"),
            MODEL,
            now,
        );
        assert!(c.blocked_until(&sonnet, now).is_some());
        assert_eq!(c.blocked_until(&opus, now), None, "another model");
        assert_eq!(c.blocked_until(&other_key, now), None, "another key");
        c.on_failure(
            &opus,
            &GatewayError::new(ErrorKind::UpstreamServer, "bad"),
            MODEL,
            now,
        );
        assert!(
            c.blocked_until(&opus, now).is_some(),
            "opus's circuit is open"
        );
        assert_eq!(
            c.blocked_until(&TargetKey::new("a".into(), 0, "haiku".into()), now),
            None,
            "haiku's is not"
        );
    }

    #[test]
    fn key_wide_limits_cover_every_model_of_the_deployment() {
        let c = Cooldowns::default();
        let now = Instant::now();
        let sonnet = TargetKey::new("a".into(), 0, "sonnet".into());
        let opus = TargetKey::new("a".into(), 0, "opus".into());
        let other_key = TargetKey::new("a".into(), 1, "opus".into());
        // The answer says the key's limit was hit (a subscription's, say),
        // though the provider's limits are per model.
        let err = GatewayError::new(ErrorKind::RateLimited, "limit")
            .with_limit_scope(LimitScope::Key)
            .with_retry_after(Duration::from_secs(60));
        c.on_failure(&sonnet, &err, MODEL, now);
        assert_eq!(
            c.blocked_until(&opus, now),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(c.blocked_until(&other_key, now), None);
        // A provider whose limits are per key, and an answer that does not say.
        let plain = GatewayError::new(ErrorKind::RateLimited, "limit");
        c.on_failure(&other_key, &plain, LimitScope::Key, now);
        assert!(c
            .blocked_until(&TargetKey::new("a".into(), 1, "x".into()), now)
            .is_some());
        // The key serves again: its limit is over, for every model.
        c.on_success(&opus);
        assert_eq!(c.blocked_until(&sonnet, now), None);
    }

    #[test]
    fn client_chosen_model_names_do_not_grow_the_state_without_bound() {
        let c = Cooldowns::default();
        let now = Instant::now();
        let down = GatewayError::new(ErrorKind::Connect, "refused");
        for i in 0..3 * MAX_KEYS {
            let k = TargetKey::new("a".into(), 0, format!("m{i}").into());
            c.on_failure(&k, &down, MODEL, now);
        }
        assert!(c.snapshot(now).len() <= MAX_KEYS);
        // What blocks is kept.
        let open = Cooldowns::new(1, Duration::from_secs(30), Duration::from_secs(5));
        open.on_failure(&key("a"), &down, MODEL, now);
        for i in 0..MAX_KEYS + 100 {
            let k = TargetKey::new("b".into(), 0, format!("m{i}").into());
            open.on_failure(
                &k,
                &GatewayError::new(ErrorKind::RateLimited, "x"),
                MODEL,
                now,
            );
        }
        assert!(open.blocked_until(&key("a"), now).is_some());
        assert!(
            open.snapshot(now).len() <= MAX_KEYS,
            "live state is capped too"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_circuit_is_the_deployments_whatever_the_credential() {
        let c = Cooldowns::new(3, Duration::from_secs(30), Duration::from_secs(5));
        let gateway = key("a");
        let with = |name: &str| gateway.clone().with_credential(CredentialId::of(name));
        let down = GatewayError::new(ErrorKind::UpstreamServer, "bad gateway");
        // Three failures, each under another client's credential.
        for name in ["alice", "bob", "carol"] {
            assert_eq!(c.blocked_until(&with(name), Instant::now()), None);
            c.begin(&with(name), Instant::now());
            c.on_failure(&with(name), &down, MODEL, Instant::now());
        }
        let open = Some(Instant::now() + Duration::from_secs(30));
        assert_eq!(c.blocked_until(&with("dave"), Instant::now()), open);
        assert_eq!(c.blocked_until(&gateway, Instant::now()), open);
        assert_eq!(
            c.blocked_until(
                &TargetKey::new("a".into(), 0, "other".into())
                    .with_credential(CredentialId::of("dave")),
                Instant::now()
            ),
            None,
            "another model's circuit"
        );

        // Half-open: dave's attempt is the probe, and the others wait for it.
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(c.blocked_until(&with("dave"), Instant::now()), None);
        c.begin(&with("dave"), Instant::now());
        assert!(c.blocked_until(&gateway, Instant::now()).is_some());
        assert!(c.blocked_until(&with("erin"), Instant::now()).is_some());

        // The gateway's key is rate limited meanwhile; dave's success
        // closes the circuit and leaves that limit alone.
        let limit = GatewayError::new(ErrorKind::RateLimited, "slow")
            .with_retry_after(Duration::from_secs(60));
        c.on_failure(&gateway, &limit, MODEL, Instant::now());
        c.on_success(&with("dave"));
        assert_eq!(c.blocked_until(&with("erin"), Instant::now()), None);
        assert_eq!(
            c.blocked_until(&gateway, Instant::now()),
            Some(Instant::now() + Duration::from_secs(60))
        );
        let state = c.snapshot(Instant::now());
        assert_eq!(state.len(), 1, "{state:?}");
        assert_eq!((state[0].failures, state[0].circuit_open_for), (0, None));

        // A client error under a credential resets the count too.
        c.on_failure(&with("erin"), &down, MODEL, Instant::now());
        c.on_failure(&with("erin"), &down, MODEL, Instant::now());
        c.on_failure(
            &with("erin"),
            &GatewayError::invalid_request("bad"),
            MODEL,
            Instant::now(),
        );
        c.on_failure(&with("frank"), &down, MODEL, Instant::now());
        assert_eq!(c.blocked_until(&with("grace"), Instant::now()), None);

        // Rate limits stay per credential.
        c.on_failure(&with("erin"), &limit, MODEL, Instant::now());
        assert!(c.blocked_until(&with("erin"), Instant::now()).is_some());
        assert_eq!(c.blocked_until(&with("grace"), Instant::now()), None);
    }

    #[test]
    fn client_credentials_never_crowd_out_the_gateways_own_state() {
        let c = Cooldowns::default();
        let now = Instant::now();
        let limit = GatewayError::new(ErrorKind::RateLimited, "x")
            .with_retry_after(Duration::from_secs(60));
        let credential = |i: usize| key("a").with_credential(CredentialId::of(&format!("c{i}")));
        for i in 0..MAX_KEYS {
            c.on_failure(&credential(i), &limit, MODEL, now);
        }
        assert_eq!(c.snapshot(now).len(), MAX_KEYS);
        // Full of live credential state: the gateway's key still cools down.
        c.on_failure(&key("b"), &limit, MODEL, now);
        assert!(c.blocked_until(&key("b"), now).is_some());
        assert_eq!(c.snapshot(now).len(), MAX_KEYS);

        // Full of the gateway's live state: a new credential is refused.
        let c = Cooldowns::default();
        for i in 0..MAX_KEYS {
            let k = TargetKey::new("a".into(), 0, format!("m{i}").into());
            c.on_failure(&k, &limit, MODEL, now);
        }
        c.on_failure(&credential(0), &limit, MODEL, now);
        assert_eq!(c.blocked_until(&credential(0), now), None);
        assert!(c.snapshot(now).iter().all(|s| s.key.credential.is_none()));
        assert_eq!(c.snapshot(now).len(), MAX_KEYS);
    }

    #[test]
    fn a_client_credentials_cooldown_is_its_own() {
        let c = Cooldowns::default().with_rejected_credential(Duration::from_secs(120));
        let now = Instant::now();
        let alice = CredentialId::of("sk-ant-oat01-alice");
        let bob = CredentialId::of("sk-ant-oat01-bob");
        let gateway = TargetKey::new("a".into(), 0, "sonnet".into());
        let sonnet = gateway.clone().with_credential(alice);
        let opus = TargetKey::new("a".into(), 0, "opus".into()).with_credential(alice);
        let subscription_limit = GatewayError::new(ErrorKind::RateLimited, "limit")
            .with_limit_scope(LimitScope::Key)
            .with_retry_after(Duration::from_secs(3600));
        c.on_failure(&sonnet, &subscription_limit, MODEL, now);
        let hour = Some(now + Duration::from_secs(3600));
        assert_eq!(c.blocked_until(&sonnet, now), hour);
        assert_eq!(c.blocked_until(&opus, now), hour, "every model of alice's");
        assert_eq!(c.blocked_until(&gateway, now), None, "the gateway's key");
        assert_eq!(
            c.blocked_until(&gateway.clone().with_credential(bob), now),
            None,
            "bob's token"
        );
        let shown = c.snapshot(now)[0].key.to_string();
        assert_eq!(shown, format!("a[0] credential={alice}"));

        // A refused credential waits the configured time; the same error
        // for the gateway's key (a 401 of its own) cools nothing down.
        let refused = GatewayError::new(ErrorKind::Authentication, "expired")
            .with_cause(Cause::CredentialRejected);
        let bobs = gateway.clone().with_credential(bob);
        c.on_failure(&bobs, &refused, MODEL, now);
        assert_eq!(
            c.blocked_until(&bobs, now),
            Some(now + Duration::from_secs(120))
        );
        c.on_failure(&gateway, &refused, MODEL, now);
        assert_eq!(c.blocked_until(&gateway, now), None);
    }
}
