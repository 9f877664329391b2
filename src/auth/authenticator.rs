//! The checks behind the `Auth` layer: which credential a request
//! presents, and whose it is.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};

use super::{AuthMethod, KeyHash, KeyLimits, KeyRecord, ModelPatterns, Principal, KEY_PREFIX};
use crate::config::{AuthConfig, AuthMode, StaticKeyConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::store::{poll_every, KeyStore};

/// The header a client sends its gateway key in when `Authorization`
/// (or `x-api-key`) carries a provider credential of its own.
pub const KEY_HEADER: &str = "x-tollgate-key";

/// How often the store is asked whether its keys changed (revoked,
/// rotated, created), and last-used times are written back. A revoked
/// key stops working within this, plus the time a query takes.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// How long a looked-up key (or the absence of one) is kept at most,
/// even when the store's revision never changes.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Keys (and unknown hashes) kept in memory at most.
const CACHE_CAPACITY: u64 = 100_000;

/// The future of a check that needs the store or an identity provider.
pub type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Principal, GatewayError>> + Send + 'a>>;

/// Verifies bearer tokens that are not gateway keys (OIDC JWTs): the
/// seam for other token schemes.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Whether `bearer` is a token this verifier reads (rather than a
    /// gateway key): checked without verifying anything.
    fn is_token(&self, bearer: &str) -> bool;

    /// Verifies `token`; a failure is the client's 401 with a reason it
    /// may see (never the token).
    fn verify<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
}

/// Decides who a request is from: static keys from the config, keys in a
/// [`KeyStore`] (with a cache in front, refreshed every
/// [`REFRESH_EVERY`]), and bearer tokens ([`TokenVerifier`]). Clones
/// share everything.
///
/// A client presents its gateway key as `x-tollgate-key`, as
/// `Authorization: Bearer`, or as `x-api-key` (checked in that order).
/// The header that carried it is taken off the request, so no later
/// layer can mistake it for a provider credential or send it upstream.
/// When `x-tollgate-key` is used, `Authorization` and `x-api-key` stay
/// for providers that pass the client's own credential through.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    setup: Setup,
    store: Option<StoreCache>,
    open_logged: AtomicBool,
    refresher: OnceLock<()>,
}

/// What an [`Authenticator`] is built from; the rest of [`Inner`] is
/// derived from it (the store's cache, the once-only flags).
#[derive(Clone)]
struct Setup {
    mode: AuthMode,
    /// Whether a gateway with no keys at all serves openly (`auto` on a
    /// loopback address) or refuses everyone.
    open_when_keyless: bool,
    static_keys: HashMap<KeyHash, Principal>,
    store: Option<Arc<dyn KeyStore>>,
    tokens: Option<Arc<dyn TokenVerifier>>,
}

/// The store, and what the gateway remembers of it.
struct StoreCache {
    store: Arc<dyn KeyStore>,
    /// `None` caches "no such key", so that a client retrying a wrong key
    /// does not cost a query each time.
    cache: moka::sync::Cache<KeyHash, Option<Arc<CachedKey>>>,
    /// The store's revision when the cache was last known to be current.
    revision: AtomicI64,
    /// Whether the store holds a working key: `UNKNOWN`, `NO` or `YES`.
    has_keys: AtomicU8,
}

const UNKNOWN: u8 = 0;
const NO: u8 = 1;
const YES: u8 = 2;

struct CachedKey {
    id: String,
    principal: Principal,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    /// When a request last used it (Unix seconds), and the last value
    /// written to the store.
    last_used: AtomicI64,
    written: AtomicI64,
}

impl CachedKey {
    fn new(record: KeyRecord) -> Self {
        let principal = Principal {
            id: record.id.as_str().into(),
            name: Some(record.name.as_str().into()),
            user: record.user.as_deref().map(Into::into),
            team: record.team.as_deref().map(Into::into),
            tags: record.tags.iter().map(|t| t.as_str().into()).collect(),
            models: ModelPatterns::new(&record.models),
            method: AuthMethod::Key,
            limits: record.limits,
        };
        let last = record.last_used_at.unwrap_or(0);
        CachedKey {
            id: record.id,
            principal,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            last_used: AtomicI64::new(last),
            written: AtomicI64::new(last),
        }
    }

    fn check(&self, now: i64) -> Result<Principal, GatewayError> {
        if self.revoked_at.is_some_and(|t| t <= now) {
            return Err(unauthorized("the gateway key was revoked"));
        }
        if self.expires_at.is_some_and(|t| t <= now) {
            return Err(unauthorized("the gateway key has expired"));
        }
        self.last_used.fetch_max(now, Ordering::Relaxed);
        Ok(self.principal.clone())
    }
}

/// What a request presented.
enum Presented {
    Key(PresentedKey),
    Token(String),
    Nothing,
}

/// A gateway key as presented: only its hash is kept (`None` when it is
/// empty), and whether it looks like a provider's credential (`sk-…`),
/// for the error message.
struct PresentedKey {
    hash: Option<KeyHash>,
    provider_like: bool,
}

impl PresentedKey {
    fn of(key: &str) -> Self {
        let key = key.trim();
        PresentedKey {
            hash: (!key.is_empty()).then(|| KeyHash::of(key)),
            provider_like: key.starts_with("sk-"),
        }
    }
}

/// The result of a check: at once (a static key, a cached key, no key),
/// or after the store or the identity provider answered.
pub enum Check<'a> {
    /// Decided without waiting.
    Done(Result<Principal, GatewayError>),
    /// Waiting for the store or the identity provider.
    Pending(AuthFuture<'a>),
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A 401 in the client's format (`invalid_api_key` for OpenAI clients).
pub(crate) fn unauthorized(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::Authentication, message).with_code("invalid_api_key")
}

impl Authenticator {
    /// No keys yet, in `mode`; `open_when_keyless` says whether a gateway
    /// with no keys at all (mode `auto`) serves openly: true only when it
    /// listens on loopback.
    pub fn new(mode: AuthMode, open_when_keyless: bool) -> Self {
        Self::build(Setup {
            mode,
            open_when_keyless,
            static_keys: HashMap::new(),
            store: None,
            tokens: None,
        })
    }

    /// From `[auth]`, with the keys of `store`, for a gateway listening
    /// on a loopback address or not (`loopback`).
    pub fn from_config(
        auth: &AuthConfig,
        store: Option<Arc<dyn KeyStore>>,
        loopback: bool,
    ) -> Result<Self, GatewayError> {
        let mut static_keys = HashMap::new();
        for k in &auth.keys {
            if static_keys
                .insert(KeyHash::of(&k.key), static_principal(k))
                .is_some()
            {
                return Err(GatewayError::internal(format!(
                    "[auth] keys: `{}` has the same key as another entry",
                    k.name
                )));
            }
        }
        let tokens = match &auth.oidc {
            None => None,
            Some(oidc) => {
                let v = super::OidcVerifier::new(oidc, crate::provider::HttpClient::new())
                    .map_err(|e| GatewayError::internal(e.0))?;
                Some(Arc::new(v) as Arc<dyn TokenVerifier>)
            }
        };
        Ok(Self::build(Setup {
            mode: auth.mode,
            open_when_keyless: loopback,
            static_keys,
            store,
            tokens,
        }))
    }

    fn build(setup: Setup) -> Self {
        Authenticator {
            inner: Arc::new(Inner {
                store: setup.store.clone().map(StoreCache::new),
                setup,
                open_logged: AtomicBool::new(false),
                refresher: OnceLock::new(),
            }),
        }
    }

    /// A new authenticator from this one's setup changed by `f` (with a
    /// cache of its own).
    fn rebuild(self, f: impl FnOnce(&mut Setup)) -> Self {
        let mut setup = self.inner.setup.clone();
        f(&mut setup);
        Self::build(setup)
    }

    /// Adds a key (kept only as its hash) for `principal`.
    pub fn with_static_key(self, key: &str, principal: Principal) -> Self {
        let hash = KeyHash::of(key);
        self.rebuild(|p| {
            p.static_keys.insert(hash, principal);
        })
    }

    /// Looks keys up in `store` (cached; see [`REFRESH_EVERY`]).
    pub fn with_store(self, store: Arc<dyn KeyStore>) -> Self {
        self.rebuild(|p| p.store = Some(store))
    }

    /// Accepts bearer tokens that `verifier` reads (OIDC JWTs).
    pub fn with_token_verifier(self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.rebuild(|p| p.tokens = Some(verifier))
    }

    /// Whether this gateway would serve a request without a key right
    /// now: mode `none`, or `auto` with no key anywhere on a loopback
    /// address. (`None` while the store has not been asked yet.)
    pub fn is_open(&self) -> Option<bool> {
        self.required().map(|r| !r)
    }

    /// Whether any credential could pass: a key in the config, a token
    /// verifier, or a working key in the store (`None` while the store has
    /// not been asked; see [`Authenticator::refresh`]).
    pub fn has_credentials(&self) -> Option<bool> {
        let i = &self.inner;
        if !i.setup.static_keys.is_empty() || i.setup.tokens.is_some() {
            return Some(true);
        }
        match i.store.as_ref().map(|s| s.has_keys.load(Ordering::Relaxed)) {
            None | Some(NO) => Some(false),
            Some(YES) => Some(true),
            Some(_) => None,
        }
    }

    /// The mode it was built with.
    pub fn mode(&self) -> AuthMode {
        self.inner.setup.mode
    }

    /// Asks the store at once whether it holds keys, instead of waiting
    /// for the first request; the binary calls it before it listens.
    pub async fn refresh(&self) -> Result<(), GatewayError> {
        if let Some(s) = &self.inner.store {
            s.refresh().await?;
        }
        Ok(())
    }

    /// Whether a key is required: `None` when that depends on whether the
    /// store has keys and it has not been asked yet.
    fn required(&self) -> Option<bool> {
        match self.inner.setup.mode {
            AuthMode::None => Some(false),
            AuthMode::Required => Some(true),
            // Off loopback, never open; on it, open only while there is
            // no credential anywhere.
            AuthMode::Auto if !self.inner.setup.open_when_keyless => Some(true),
            AuthMode::Auto => self.has_credentials(),
        }
    }

    /// Finds who sent a request with `headers`, taking the gateway key's
    /// header off them.
    pub async fn authenticate(&self, headers: &mut HeaderMap) -> Result<Principal, GatewayError> {
        match self.check(headers) {
            Check::Done(r) => r,
            Check::Pending(f) => f.await,
        }
    }

    /// [`Authenticator::authenticate`], without a future when none is
    /// needed (a static key, a cached key): the layer's hot path.
    pub fn check(&self, headers: &mut HeaderMap) -> Check<'static> {
        self.start_refresher();
        let required = self.required();
        let presented = self.presented(headers, required != Some(false));
        match presented {
            Presented::Key(key) => self.check_key(key),
            Presented::Token(token) => {
                let Some(v) = self.inner.setup.tokens.clone() else {
                    return Check::Done(Err(unauthorized("invalid gateway key")));
                };
                Check::Pending(Box::pin(async move { v.verify(&token).await }))
            }
            Presented::Nothing => match required {
                Some(true) => Check::Done(Err(missing_key(headers))),
                Some(false) => Check::Done(Ok(self.anonymous())),
                None => {
                    let this = self.clone();
                    let missing = missing_key(headers);
                    Check::Pending(Box::pin(async move {
                        this.refresh().await?;
                        match this.required() {
                            Some(false) => Ok(this.anonymous()),
                            _ => Err(missing),
                        }
                    }))
                }
            },
        }
    }

    fn anonymous(&self) -> Principal {
        if !self.inner.open_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "serving without authentication: no gateway key is configured (create one with `tollgate keys create`, or set `[auth] mode`)"
            );
        }
        Principal::anonymous()
    }

    /// Which credential the request presents. `x-tollgate-key` always
    /// counts; `Authorization` and `x-api-key` count when a key is
    /// `required`, or when they hold one (`tg_…`) or a token the verifier
    /// reads: otherwise they are the client's own provider credentials
    /// (or an SDK's placeholder) and stay on the request.
    fn presented(&self, headers: &mut HeaderMap, required: bool) -> Presented {
        if let Some(v) = headers.remove(KEY_HEADER) {
            return Presented::Key(PresentedKey::of(v.to_str().unwrap_or("")));
        }
        if let Some(b) = crate::routing::credential::bearer_token(headers) {
            let gateway_key = b.starts_with(KEY_PREFIX);
            let tokens = self.inner.setup.tokens.as_ref();
            if !gateway_key && tokens.is_some_and(|t| t.is_token(b)) {
                let token = b.to_owned();
                headers.remove(AUTHORIZATION);
                return Presented::Token(token);
            }
            if required || gateway_key {
                let key = PresentedKey::of(b);
                headers.remove(AUTHORIZATION);
                return Presented::Key(key);
            }
        }
        let api_key = HeaderName::from_static("x-api-key");
        if let Some(k) = headers.get(&api_key).and_then(|v| v.to_str().ok()) {
            if required || k.trim().starts_with(KEY_PREFIX) {
                let key = PresentedKey::of(k);
                headers.remove(&api_key);
                return Presented::Key(key);
            }
        }
        Presented::Nothing
    }

    fn check_key(&self, key: PresentedKey) -> Check<'static> {
        let Some(hash) = key.hash else {
            return Check::Done(Err(unauthorized("the gateway key is empty")));
        };
        if let Some(p) = self.inner.setup.static_keys.get(&hash) {
            return Check::Done(Ok(p.clone()));
        }
        let unknown = || unknown_key(key.provider_like);
        let Some(store) = &self.inner.store else {
            return Check::Done(Err(unknown()));
        };
        match store.cache.get(&hash) {
            Some(Some(k)) => Check::Done(k.check(now_secs())),
            Some(None) => Check::Done(Err(unknown())),
            None => {
                let this = self.clone();
                let unknown = unknown();
                Check::Pending(Box::pin(async move {
                    let store = this.inner.store.as_ref().expect("checked above");
                    let found = store
                        .store
                        .lookup(&hash)
                        .await
                        .map_err(|e| store_unavailable(&e))?
                        .map(|r| Arc::new(CachedKey::new(r)));
                    store.cache.insert(hash, found.clone());
                    match found {
                        Some(k) => k.check(now_secs()),
                        None => Err(unknown),
                    }
                }))
            }
        }
    }

    /// Starts the task that keeps the key cache current, once, from
    /// inside a runtime. It holds the authenticator weakly and ends with it.
    fn start_refresher(&self) {
        if self.inner.store.is_none() {
            return;
        }
        poll_every(
            &self.inner.refresher,
            &self.inner,
            REFRESH_EVERY,
            |inner| async move {
                if let Some(s) = &inner.store {
                    if let Err(e) = s.refresh().await {
                        tracing::warn!(error = %e.message(), "cannot refresh the gateway keys");
                    }
                    s.write_last_used().await;
                }
            },
        );
    }
}

impl StoreCache {
    fn new(store: Arc<dyn KeyStore>) -> Self {
        StoreCache {
            store,
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TTL)
                .build(),
            revision: AtomicI64::new(-1),
            has_keys: AtomicU8::new(UNKNOWN),
        }
    }

    /// Forgets every cached key when the store's revision moved (a key
    /// was created, revoked or rotated), and asks again whether it has keys.
    async fn refresh(&self) -> Result<(), GatewayError> {
        let rev = self
            .store
            .revision()
            .await
            .map_err(|e| store_unavailable(&e))?;
        let rev = i64::try_from(rev).unwrap_or(i64::MAX);
        let before = self.revision.swap(rev, Ordering::AcqRel);
        if before != rev {
            if before != -1 {
                self.cache.invalidate_all();
            }
            let has = self
                .store
                .has_active_keys()
                .await
                .map_err(|e| store_unavailable(&e))?;
            self.has_keys
                .store(if has { YES } else { NO }, Ordering::Release);
        }
        Ok(())
    }

    /// Writes back when keys were last used, for those used since the
    /// last write.
    async fn write_last_used(&self) {
        let mut used = Vec::new();
        for (_, entry) in self.cache.iter() {
            if let Some(k) = entry {
                let last = k.last_used.load(Ordering::Relaxed);
                if last > k.written.swap(last, Ordering::Relaxed) {
                    used.push((k.id.clone(), last));
                }
            }
        }
        if !used.is_empty() {
            if let Err(e) = self.store.touch(used).await {
                tracing::warn!(error = %e, "cannot record when gateway keys were used");
            }
        }
    }
}

fn static_principal(k: &StaticKeyConfig) -> Principal {
    Principal {
        id: k.name.as_str().into(),
        name: Some(k.name.as_str().into()),
        user: k.user.as_deref().map(Into::into),
        team: k.team.as_deref().map(Into::into),
        tags: k.tags.iter().map(|t| t.as_str().into()).collect(),
        models: ModelPatterns::new(&k.models),
        method: AuthMethod::StaticKey,
        limits: KeyLimits::default(),
    }
}

fn missing_key(headers: &HeaderMap) -> GatewayError {
    let mut msg = String::from(
        "missing gateway key: send it as `Authorization: Bearer <key>`, `x-api-key: <key>` or `x-tollgate-key: <key>`",
    );
    if headers.contains_key(AUTHORIZATION) || headers.contains_key("x-api-key") {
        msg.push_str(" (when `Authorization` or `x-api-key` carries a provider credential, use `x-tollgate-key`)");
    }
    unauthorized(msg)
}

/// A key no one has: the message says which kind of credential it looks
/// like (never the credential).
fn unknown_key(provider_like: bool) -> GatewayError {
    if provider_like {
        return unauthorized(
            "that is a provider credential, not a gateway key: send the gateway key as `x-tollgate-key: <key>` (and keep the provider credential where it is if the provider passes it through)",
        );
    }
    unauthorized("invalid gateway key")
}

fn store_unavailable(e: &crate::store::StoreError) -> GatewayError {
    tracing::error!(error = %e, "the key store failed");
    GatewayError::new(
        ErrorKind::UpstreamServer,
        "the gateway's key store is unavailable; try again",
    )
    .with_status(http::StatusCode::SERVICE_UNAVAILABLE)
    .with_code("key_store_unavailable")
}
