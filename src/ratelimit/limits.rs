//! Which limits apply to a principal, their counters, and the decision.

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::clock::LimitClock;
use super::tokens::{TokenBucket, TokenState};
use crate::auth::{AuthMethod, KeyLimits, Principal};
use crate::config::{RateLimitConfig, RateLimitScope};

/// How long a subject's counters stay after its last request. A minute
/// after it, they are back to full and forgetting them changes nothing;
/// the margin covers token corrections of streams that end later.
const IDLE: Duration = Duration::from_secs(600);

/// Requests and tokens per minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Limit {
    pub rpm: Option<NonZeroU32>,
    pub tpm: Option<NonZeroU64>,
}

impl Limit {
    fn tightest(self, other: Limit) -> Limit {
        fn min<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        Limit {
            rpm: min(self.rpm, other.rpm),
            tpm: min(self.tpm, other.tpm),
        }
    }

    fn is_none(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
    }
}

impl From<KeyLimits> for Limit {
    fn from(k: KeyLimits) -> Self {
        Limit {
            rpm: k.rpm,
            tpm: k.tpm,
        }
    }
}

/// The configured limits of one scope.
#[derive(Debug, Default)]
struct ScopeRules {
    /// For every key (user, team) of the scope.
    every: Limit,
    /// For the one named.
    named: HashMap<Box<str>, Limit>,
}

impl ScopeRules {
    fn add(&mut self, name: Option<&str>, limit: Limit) {
        let slot = match name {
            None => &mut self.every,
            Some(n) => self.named.entry(n.trim().into()).or_default(),
        };
        *slot = if slot.is_none() {
            limit
        } else {
            slot.tightest(limit)
        };
    }

    fn limit_for<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Limit {
        let mut limit = self.every;
        if !self.named.is_empty() {
            for n in names {
                if let Some(l) = self.named.get(n) {
                    limit = limit.tightest(*l);
                }
            }
        }
        limit
    }

    fn is_empty(&self) -> bool {
        self.every.is_none() && self.named.is_empty()
    }
}

/// Every configured limit, by scope.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    key: ScopeRules,
    user: ScopeRules,
    team: ScopeRules,
}

impl Rules {
    /// The limits of `[[rate_limits]]`; entries for the same subject
    /// combine to the tightest of each.
    pub(crate) fn add(&mut self, c: &RateLimitConfig) {
        let limit = Limit {
            rpm: c.rpm.and_then(NonZeroU32::new),
            tpm: c.tpm.and_then(NonZeroU64::new),
        };
        if limit.is_none() {
            return;
        }
        let scope = match c.scope {
            RateLimitScope::Key => &mut self.key,
            RateLimitScope::User => &mut self.user,
            RateLimitScope::Team => &mut self.team,
        };
        scope.add(c.name.as_deref(), limit);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.key.is_empty() && self.user.is_empty() && self.team.is_empty()
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, LimitClock, StateInformationMiddleware>;

/// One subject's counters: a GCRA for its requests, a bucket for its tokens.
pub(crate) struct Counters {
    requests: Option<(NonZeroU32, Gcra)>,
    pub(crate) tokens: Option<TokenBucket>,
}

impl Counters {
    fn new(limit: Limit, clock: &LimitClock) -> Self {
        Counters {
            requests: limit.rpm.map(|rpm| {
                let gcra = RateLimiter::direct_with_clock(Quota::per_minute(rpm), clock.clone())
                    .with_middleware::<StateInformationMiddleware>();
                (rpm, gcra)
            }),
            tokens: limit.tpm.map(TokenBucket::new),
        }
    }
}

/// Whose counters: a key (by how it authenticated and its id, so that a
/// JWT subject never shares a static key's), a user or a team, with the
/// limit its counters were made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SubjectKey {
    scope: RateLimitScope,
    method: Option<AuthMethod>,
    name: Arc<str>,
    limit: Limit,
}

/// A limit that applies to a request, with its counters.
pub(crate) struct Subject {
    scope: RateLimitScope,
    name: Arc<str>,
    pub(crate) counters: Arc<Counters>,
}

impl Subject {
    /// Whose limit, in words for the caller (it is the caller's own).
    pub(crate) fn whose(&self) -> String {
        match self.scope {
            RateLimitScope::Key => "this key".to_string(),
            scope => format!("{} `{}`", scope.as_str(), self.name),
        }
    }
}

/// The limits that apply to one request: its key's, its user's, its team's.
pub(crate) type Applied = [Option<Subject>; 3];

/// Where a request stands against one kind of limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Figures {
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is back to full.
    pub reset: Duration,
}

impl Figures {
    /// The tighter of two: fewer remaining, then the smaller limit.
    fn tighter(a: Option<Figures>, b: Figures) -> Option<Figures> {
        Some(match a {
            Some(a) if (a.remaining, a.limit) <= (b.remaining, b.limit) => a,
            _ => b,
        })
    }
}

impl From<TokenState> for Figures {
    fn from(s: TokenState) -> Self {
        Figures {
            limit: s.limit,
            remaining: s.remaining,
            reset: s.reset,
        }
    }
}

/// The caller's tightest limit of each kind, as the headers show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    pub requests: Option<Figures>,
    pub tokens: Option<Figures>,
}

/// Which kind of limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Requests,
    Tokens,
}

/// A request that does not fit.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// Which of the applied limits refused (index into [`Applied`]).
    pub subject: usize,
    pub kind: Kind,
    pub retry_after: Duration,
    /// The tokens the request would have reserved.
    pub estimate: u64,
}

/// Every limit of a layer and their counters.
pub(crate) struct Table {
    rules: Rules,
    rules_empty: bool,
    counters: moka::sync::Cache<SubjectKey, Arc<Counters>>,
    pub(crate) clock: LimitClock,
}

impl Table {
    pub(crate) fn new(rules: Rules, clock: LimitClock) -> Self {
        Table {
            rules_empty: rules.is_empty(),
            rules,
            counters: moka::sync::Cache::builder().time_to_idle(IDLE).build(),
            clock,
        }
    }

    /// Whether no limit can apply to `p`: no configured one and none of
    /// its key's own. The common case, decided without a lookup.
    pub(crate) fn none_for(&self, p: &Principal) -> bool {
        self.rules_empty && p.limits.is_none()
    }

    /// The limits that apply to `p`, with their counters.
    pub(crate) fn applied(&self, p: &Principal) -> Applied {
        let key = self
            .rules
            .key
            .limit_for([&*p.id].into_iter().chain(p.name.as_deref()))
            .tightest(p.limits.into());
        let user = p
            .user
            .as_ref()
            .map(|u| (u, self.rules.user.limit_for([&**u])));
        let team = p
            .team
            .as_ref()
            .map(|t| (t, self.rules.team.limit_for([&**t])));
        [
            self.subject(RateLimitScope::Key, Some(p.method), &p.id, key),
            user.and_then(|(u, l)| self.subject(RateLimitScope::User, None, u, l)),
            team.and_then(|(t, l)| self.subject(RateLimitScope::Team, None, t, l)),
        ]
    }

    fn subject(
        &self,
        scope: RateLimitScope,
        method: Option<AuthMethod>,
        name: &Arc<str>,
        limit: Limit,
    ) -> Option<Subject> {
        if limit.is_none() {
            return None;
        }
        let key = SubjectKey {
            scope,
            method,
            name: name.clone(),
            limit,
        };
        let counters = self
            .counters
            .get_with(key, || Arc::new(Counters::new(limit, &self.clock)));
        Some(Subject {
            scope,
            name: name.clone(),
            counters,
        })
    }

    /// Counts the request against every applied limit and takes its
    /// `estimate` of tokens from each token limit, all or none: a request
    /// refused gives back the tokens it took. Requests are counted first
    /// (a GCRA cell cannot be given back, so one refused for tokens still
    /// counts as a request), which also gives both kinds of figures for
    /// every answer.
    pub(crate) fn admit(
        &self,
        applied: &Applied,
        estimate: u64,
    ) -> Result<Standing, (Refusal, Standing)> {
        let mut standing = Standing::default();
        let mut refused = None;
        for (i, s) in applied.iter().enumerate() {
            let Some((rpm, gcra)) = s.as_ref().and_then(|s| s.counters.requests.as_ref()) else {
                continue;
            };
            let limit = u64::from(rpm.get());
            let interval = Quota::per_minute(*rpm).replenish_interval();
            let figures = match gcra.check() {
                Ok(snapshot) => {
                    let remaining = u64::from(snapshot.remaining_burst_capacity());
                    Figures {
                        limit,
                        remaining,
                        reset: interval * u32::try_from(limit - remaining).unwrap_or(u32::MAX),
                    }
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
                    refused = Some(Refusal {
                        subject: i,
                        kind: Kind::Requests,
                        retry_after: wait,
                        estimate,
                    });
                    Figures {
                        limit,
                        remaining: 0,
                        reset: wait + interval * (rpm.get() - 1),
                    }
                }
            };
            standing.requests = Figures::tighter(standing.requests, figures);
            if refused.is_some() {
                standing.requests = Some(figures);
                break;
            }
        }
        let now = self.clock.nanos();
        let buckets = applied
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_ref()?.counters.tokens.as_ref()?)));
        if refused.is_some() || estimate == 0 {
            for (_, bucket) in buckets {
                standing.tokens = Figures::tighter(standing.tokens, bucket.state(now).into());
            }
            return match refused {
                Some(r) => Err((r, standing)),
                None => Ok(standing),
            };
        }
        for (i, bucket) in buckets.clone() {
            match bucket.try_take(estimate, now) {
                Ok(state) => standing.tokens = Figures::tighter(standing.tokens, state.into()),
                Err(wait) => {
                    for (_, taken) in buckets.take_while(|(j, _)| *j < i) {
                        taken.give_back(estimate, 0);
                    }
                    standing.tokens = Some(bucket.state(now).into());
                    let refusal = Refusal {
                        subject: i,
                        kind: Kind::Tokens,
                        retry_after: wait,
                        estimate,
                    };
                    return Err((refusal, standing));
                }
            }
        }
        Ok(standing)
    }
}
