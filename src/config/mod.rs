//! The `tollgate` configuration file (TOML).
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:4000"      # --listen overrides it
//! max_body_bytes = 33554432      # larger bodies get a 413
//! shutdown_grace_secs = 30       # in-flight streams get this long on SIGTERM
//! header_read_timeout_secs = 30  # HTTP/1: to the end of a request's headers, from accept or the last response
//! body_read_timeout_secs = 60    # to the end of a request's body; slower gets a 408
//! idle_timeout_secs = 60         # a connection with no request in flight is closed
//! max_connections = 4096         # more wait to be accepted (keep it under `ulimit -n` / 2)
//!                                # for these four, 0 turns the limit off
//!
//! [providers.openai]
//! kind = "openai"                # openai | anthropic | gemini | openai-compatible
//! base_url = "https://api.openai.com/v1"
//! api_key = "${OPENAI_API_KEY}"  # ${VAR} and ${VAR:-default} are read from the environment
//!
//! [providers.local]
//! kind = "openai-compatible"
//! base_url = "http://127.0.0.1:11434/v1"
//! headers = { "x-extra" = "1" }
//! price = { input = 0.2, output = 0.6 } # USD per million tokens, every model it serves
//!
//! [providers.azure]                # several keys or deployments share load
//! kind = "openai"
//! balance = "weighted"             # weighted (default) | least-latency
//! deployments = [
//!   { api_key = "${KEY_A}", weight = 2 },
//!   { api_key = "${KEY_B}", base_url = "https://b.example.com/v1" },
//! ]
//!
//! [models]
//! fast = "openai/gpt-4o-mini"                              # an alias
//! sonnet = { targets = ["anthropic/claude-sonnet-4-5"] }   # the long form
//! "claude-*" = "anthropic/*"                               # a prefix alias: `*` is the requested name
//!
//! [models.smart]                   # several providers, tried in order, then other models
//! targets = ["anthropic/claude-sonnet-4-5", "local/llama"]
//! fallbacks = ["fast"]
//! context_window = 200000          # a context-length error skips to a model with a larger one
//! sort = "cost"                    # cost | ttft: rank the targets (a request's own sort wins)
//!
//! [prices]                         # over the shipped prices, USD per million tokens
//! "gpt-4o" = { input = 2.5, output = 10.0, cache_read = 1.25 }      # on any provider
//! "openai/o3" = { input = 2.0, output = 8.0, cache_write = 2.5 }    # on provider `openai` only
//!
//! [routing]                        # all optional; these are the defaults
//! first_byte_timeout_ms = 0        # per attempt, to the first event of a stream (0 = none)
//! idle_timeout_ms = 0              # longest gap between two stream chunks (0 = none)
//! total_timeout_ms = 0             # the whole request, across attempts (0 = none)
//! retries = 1                      # same-target retries of a connect error, 502 or 503
//! retry_budget_percent = 20        # retries allowed, as a share of recent requests
//! circuit_failures = 3             # consecutive 5xx/connect/timeouts that open a target's circuit
//! circuit_open_secs = 30           # how long it stays open before a half-open probe
//! rate_limit_cooldown_secs = 5     # cooldown after a 429 without Retry-After
//!
//! [[budgets]]                      # spend caps; `tollgate budgets set` adds more
//! scope = "team:ml"                # global | key:ID | user:NAME | team:NAME | tag:NAME
//! usd = 50
//! period = "monthly"               # daily | weekly | monthly (UTC) | none
//! soft = false                     # true: serve past it, marked `x-tollgate-budget: over`
//!
//! [[rate_limits]]                  # requests and tokens per minute (see `ratelimit`)
//! scope = "team"                   # key | user | team
//! name = "research"                # leave out: every key (user, team) on its own
//! rpm = 600
//! tpm = 2000000
//! ```
//!
//! `${VAR}` is replaced inside string values (not in keys or comments); a
//! variable that is not set is an error that names it and the field it was
//! for, unless a default is given with `${VAR:-default}`.
//!
//! Every table rejects a field it does not know, naming it by its path
//! (`models.smart.fallback: unknown field ...`), so a typo is never a
//! setting silently lost.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

mod auth;
mod budgets;
mod prices;
mod rate_limits;

pub(crate) use auth::KeysUrl;
pub use auth::{AuthConfig, AuthMode, OidcConfig, StaticKeyConfig, StoreConfig};
pub use budgets::BudgetConfig;
pub use prices::PriceConfig;
pub use rate_limits::{RateLimitConfig, RateLimitScope};

use crate::routing::ProviderSort;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// Providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model aliases by name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    /// Timeouts, retries, cooldowns.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Who may use the gateway: keys, OIDC tokens.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The embedded database.
    #[serde(default)]
    pub store: StoreConfig,
    /// Prices over the shipped ones, by `model` or `provider/model` (see
    /// [`PriceConfig`]).
    #[serde(default)]
    pub prices: BTreeMap<String, PriceConfig>,
    /// Spend caps (`[[budgets]]`; see [`BudgetConfig`]).
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    /// Requests and tokens per minute, per key, user or team.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitConfig>,
}

/// `[routing]`: how the routing layers treat failures. Zero turns a
/// timeout off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Per attempt: time to the response head (complete answers) or the
    /// first event (streams). Default 0 (none).
    pub first_byte_timeout_ms: u64,
    /// Longest gap between two stream chunks. Default 0 (none).
    pub idle_timeout_ms: u64,
    /// The whole request, across every attempt. Default 0 (none).
    pub total_timeout_ms: u64,
    /// Same-target retries of a connect error, 502 or 503. Default 1.
    pub retries: u32,
    /// Retries allowed on top of requests, in percent. Default 20.
    pub retry_budget_percent: u32,
    /// Consecutive failures (5xx, connect, timeout) that open a target's
    /// circuit. Default 3.
    pub circuit_failures: u32,
    /// Seconds an open circuit waits before one half-open probe. Default 30.
    pub circuit_open_secs: u64,
    /// Cooldown after a 429 that names no time. Default 5.
    pub rate_limit_cooldown_secs: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            first_byte_timeout_ms: 0,
            idle_timeout_ms: 0,
            total_timeout_ms: 0,
            retries: 1,
            retry_budget_percent: 20,
            circuit_failures: 3,
            circuit_open_secs: 30,
            rate_limit_cooldown_secs: 5,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:4000`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes. Default 32 MiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Seconds in-flight requests get to finish on shutdown; streams still
    /// open then end with an in-band error. Default 30.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// HTTP/1: seconds a connection has to deliver a request's headers.
    /// hyper counts them from the moment the connection waits for a request
    /// (accepted, or its previous response sent), so this also closes an
    /// idle HTTP/1 keep-alive connection. Default 30.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Seconds a request's body has to arrive, from its headers; a slower
    /// upload (or a `Content-Length` larger than the body sent) gets a 408.
    /// Default 60.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight
    /// (HTTP/2, and any connection before its first request). Default 60.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Client connections served at once; further ones wait in the
    /// listen backlog until one closes. Keep it well under the process's
    /// open-file limit, since each may also hold an upstream connection.
    /// Default 4096.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}
fn default_max_body() -> usize {
    32 * 1024 * 1024
}
fn default_grace() -> u64 {
    30
}
fn default_header_read_timeout() -> u64 {
    30
}
fn default_body_read_timeout() -> u64 {
    60
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_max_connections() -> usize {
    4096
}

impl ServerConfig {
    /// `header_read_timeout_secs`, `None` when 0.
    pub fn header_read_timeout(&self) -> Option<Duration> {
        secs(self.header_read_timeout_secs)
    }

    /// `body_read_timeout_secs`, `None` when 0.
    pub fn body_read_timeout(&self) -> Option<Duration> {
        secs(self.body_read_timeout_secs)
    }

    /// `idle_timeout_secs`, `None` when 0.
    pub fn idle_timeout(&self) -> Option<Duration> {
        secs(self.idle_timeout_secs)
    }
}

fn secs(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            shutdown_grace_secs: default_grace(),
            header_read_timeout_secs: default_header_read_timeout(),
            body_read_timeout_secs: default_body_read_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

/// The API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum ProviderKind {
    /// OpenAI: Chat Completions and Responses.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// Google Gemini `generateContent`.
    #[serde(rename = "gemini")]
    Gemini,
    /// Any server that speaks Chat Completions (Groq, Mistral, DeepSeek,
    /// xAI, Together, Ollama, vLLM, ...).
    #[serde(rename = "openai-compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    /// The `kind` string of the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::OpenAiCompatible => "openai-compatible",
        }
    }
}

/// `[providers.NAME]`. Its `Debug` masks the key and header values.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The API it speaks.
    pub kind: ProviderKind,
    /// Base URL, following each vendor SDK's convention (OpenAI's ends in
    /// `/v1`; Anthropic's and Gemini's do not). Default: the vendor's own.
    pub base_url: Option<String>,
    /// The provider key. Never logged.
    pub api_key: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Models listed for this provider in `GET /v1/models` (as `NAME/model`).
    #[serde(default)]
    pub models: Vec<String>,
    /// Several keys or servers that share this provider's load. Each may
    /// override `base_url`, `api_key` and `headers`. Empty: one deployment
    /// from the fields above.
    #[serde(default)]
    pub deployments: Vec<DeploymentConfig>,
    /// How load is shared between deployments. Default `weighted`.
    #[serde(default)]
    pub balance: Balance,
    /// Anthropic kind only: send the client's own credential (its
    /// `Authorization: Bearer` OAuth token or `x-api-key`) upstream in
    /// place of the configured key, when the client sends one. Default false.
    #[serde(default)]
    pub pass_through: bool,
    /// Accept keys a request brings for this provider (BYOK:
    /// `providerOptions.gateway.byok` or `x-tollgate-byok-NAME`). Default false.
    #[serde(default)]
    pub allow_byok: bool,
    /// When the request's own credentials (BYOK) fail, go on with the
    /// configured ones. Default false: the caller asked for their account.
    #[serde(default)]
    pub byok_fallback: bool,
    /// What every model of this provider costs (a self-hosted server),
    /// over the shipped prices; a `[prices]` entry for a model wins.
    #[serde(default)]
    pub price: Option<PriceConfig>,
}

/// One key or server of a provider. Its `Debug` masks the key and
/// header values.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Base URL; default: the provider's.
    pub base_url: Option<String>,
    /// Key; default: the provider's. Never logged.
    pub api_key: Option<String>,
    /// Extra headers, added to the provider's.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Share of the load, relative to the others. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// A secret as `Debug` shows it: whether it is set, never its value.
fn masked(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "[redacted]")
}

/// Header names with their values masked (a header may carry a credential).
fn masked_headers(headers: &BTreeMap<String, String>) -> Vec<(&str, &'static str)> {
    headers.keys().map(|k| (k.as_str(), "[redacted]")).collect()
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &masked(&self.api_key))
            .field("headers", &masked_headers(&self.headers))
            .field("models", &self.models)
            .field("deployments", &self.deployments)
            .field("balance", &self.balance)
            .field("pass_through", &self.pass_through)
            .field("allow_byok", &self.allow_byok)
            .field("byok_fallback", &self.byok_fallback)
            .field("price", &self.price)
            .finish()
    }
}

impl fmt::Debug for DeploymentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &masked(&self.api_key))
            .field("headers", &masked_headers(&self.headers))
            .field("weight", &self.weight)
            .finish()
    }
}

fn default_weight() -> u32 {
    1
}

/// How a provider's deployments share load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Balance {
    /// A random choice in proportion to `weight` (default).
    #[default]
    #[serde(rename = "weighted")]
    Weighted,
    /// Power of two choices by peak-EWMA latency times requests in flight.
    #[serde(rename = "least-latency")]
    LeastLatency,
}

/// Whether a configured provider header carries a credential, by its
/// name: one containing `auth`, `key`, `token` or `secret` (any case).
/// One rule for every question about it: whether a deployment is keyed,
/// which headers go only with the configured key (never with a client's
/// credential), and whose values are masked in what comes back. Broad on
/// purpose: a header wrongly taken for a credential is only masked and
/// held back from a client's call, one wrongly missed would leak.
pub fn is_credential_header(name: &str) -> bool {
    const WORDS: [&[u8]; 4] = [b"auth", b"key", b"token", b"secret"];
    let name = name.as_bytes();
    WORDS
        .iter()
        .any(|w| name.windows(w.len()).any(|s| s.eq_ignore_ascii_case(w)))
}

impl ProviderConfig {
    /// One config per deployment, with the deployment's overrides applied,
    /// and its weight. A provider without `deployments` is one deployment.
    pub fn deployment_configs(&self) -> Vec<(ProviderConfig, u32)> {
        let base = ProviderConfig {
            deployments: Vec::new(),
            ..self.clone()
        };
        if self.deployments.is_empty() {
            return vec![(base, 1)];
        }
        self.deployments
            .iter()
            .map(|d| {
                let mut c = base.clone();
                if d.base_url.is_some() {
                    c.base_url = d.base_url.clone();
                }
                if d.api_key.is_some() {
                    c.api_key = d.api_key.clone();
                }
                c.headers.extend(d.headers.clone());
                (c, d.weight)
            })
            .collect()
    }

    /// Whether requests carry a configured credential: an `api_key`, or
    /// a header that [`is_credential_header`] says carries one. For one
    /// deployment: see [`Self::deployment_configs`].
    pub fn has_credentials(&self) -> bool {
        self.api_key.as_deref().is_some_and(|k| !k.is_empty())
            || self.headers.keys().any(|h| is_credential_header(h))
    }

    /// How errors name deployment `i` of provider `name`.
    fn deployment_field(&self, name: &str, i: usize) -> String {
        if self.deployments.is_empty() {
            format!("providers.{name}")
        } else {
            format!("providers.{name}.deployments[{i}]")
        }
    }

    /// The base URL, or the vendor's default.
    pub fn base_url(&self) -> Option<&str> {
        match (&self.base_url, self.kind) {
            (Some(u), _) => Some(u.trim_end_matches('/')),
            (None, ProviderKind::OpenAi) => Some("https://api.openai.com/v1"),
            (None, ProviderKind::Anthropic) => Some("https://api.anthropic.com"),
            (None, ProviderKind::Gemini) => Some("https://generativelanguage.googleapis.com"),
            (None, ProviderKind::OpenAiCompatible) => None,
        }
    }
}

/// `[models.NAME]`: a short string (`"provider/model"`) or a table.
///
/// Deserialized by hand rather than as an untagged enum, so that a typo in
/// the table form is an error naming the field instead of "data did not
/// match any variant", or a setting silently lost.
#[derive(Debug, Clone)]
pub enum ModelConfig {
    /// `name = "provider/model"`.
    Alias(String),
    /// `name = { targets = ["provider/model", ...] }`.
    Table {
        /// Providers that serve this model, in order.
        targets: Vec<String>,
        /// Other configured models to try after all targets fail.
        fallbacks: Vec<String>,
        /// The model's context window in tokens, when known.
        context_window: Option<u64>,
        /// How its targets are ranked when the request does not say.
        sort: Option<ProviderSort>,
    },
}

/// The table form of [`ModelConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelTable {
    targets: Vec<String>,
    #[serde(default)]
    fallbacks: Vec<String>,
    #[serde(default)]
    context_window: Option<u64>,
    #[serde(default)]
    sort: Option<ProviderSort>,
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ModelConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a \"provider/model\" string or a table with `targets`")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ModelConfig, E> {
                Ok(ModelConfig::Alias(s.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ModelConfig, A::Error> {
                let t = ModelTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ModelConfig::Table {
                    targets: t.targets,
                    fallbacks: t.fallbacks,
                    context_window: t.context_window,
                    sort: t.sort,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl ModelConfig {
    /// The `provider/model` targets, in order.
    pub fn targets(&self) -> &[String] {
        match self {
            ModelConfig::Alias(t) => std::slice::from_ref(t),
            ModelConfig::Table { targets, .. } => targets,
        }
    }

    /// Other configured models to try after every target failed.
    pub fn fallbacks(&self) -> &[String] {
        match self {
            ModelConfig::Alias(_) => &[],
            ModelConfig::Table { fallbacks, .. } => fallbacks,
        }
    }

    /// The context window, when configured.
    pub fn context_window(&self) -> Option<u64> {
        match self {
            ModelConfig::Alias(_) => None,
            ModelConfig::Table { context_window, .. } => *context_window,
        }
    }

    /// How its targets are ranked by default, when configured.
    pub fn sort(&self) -> Option<ProviderSort> {
        match self {
            ModelConfig::Alias(_) => None,
            ModelConfig::Table { sort, .. } => *sort,
        }
    }
}

/// A configuration error, naming the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads, interpolates, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        let mut config =
            Self::parse(&text, &|k| std::env::var(k).ok()).map_err(|e| in_file(path, e))?;
        config.store.resolve_from(path);
        Ok(config)
    }

    /// Parses config text, reading `${VAR}` through `env`. Errors name the
    /// field at fault by its path (`models.m.fallback: unknown field ...`).
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut table = parse_toml(text)?;
        // After parsing, not before: a missing variable can then name the
        // field it was for, and `${...}` in a comment is left alone.
        let mut substituted = Vec::new();
        for (key, value) in table.iter_mut() {
            interpolate_value(value, key, env, &mut substituted)?;
        }
        let config: Config = deserialize(toml::Value::Table(table), None, &substituted)?;
        config.check().map_err(|e| mask(&substituted, e.0))?;
        Ok(config)
    }

    /// Providers from `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` and
    /// `GEMINI_API_KEY`, for running without a config file.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Config {
        let mut config = Config::default();
        for (var, name, kind) in [
            ("OPENAI_API_KEY", "openai", ProviderKind::OpenAi),
            ("ANTHROPIC_API_KEY", "anthropic", ProviderKind::Anthropic),
            ("GEMINI_API_KEY", "gemini", ProviderKind::Gemini),
        ] {
            if let Some(key) = env(var).filter(|k| !k.is_empty()) {
                config.providers.insert(
                    name.to_string(),
                    ProviderConfig {
                        kind,
                        base_url: None,
                        api_key: Some(key),
                        headers: BTreeMap::new(),
                        models: Vec::new(),
                        deployments: Vec::new(),
                        balance: Balance::Weighted,
                        pass_through: false,
                        allow_byok: false,
                        byok_fallback: false,
                        price: None,
                    },
                );
            }
        }
        config
    }

    /// What is allowed but probably a mistake, one line each, naming the
    /// field: a provider deployment with no credentials (no `api_key`, no
    /// auth header) sends its requests upstream without any; a `[prices]`
    /// key that looks like `provider/model` without such a provider.
    /// A `pass_through` provider with none is not warned about: it serves
    /// with its clients' own credentials only (a subscription).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, p) in &self.providers {
            if p.pass_through {
                continue;
            }
            for (i, (d, _)) in p.deployment_configs().iter().enumerate() {
                if d.has_credentials() {
                    continue;
                }
                let field = p.deployment_field(name, i);
                out.push(format!(
                    "{field}: no `api_key` (or auth header): requests to it carry no credentials, which only a server that needs none accepts"
                ));
            }
        }
        self.price_warnings(&mut out);
        out
    }

    /// Every duration setting is at most a day: a larger one would be a
    /// mistake, and one near `u64::MAX` would overflow the clock when it is
    /// added to the time of a request.
    fn check_durations(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        let r = &self.routing;
        let secs = [
            ("server.shutdown_grace_secs", s.shutdown_grace_secs),
            (
                "server.header_read_timeout_secs",
                s.header_read_timeout_secs,
            ),
            ("server.body_read_timeout_secs", s.body_read_timeout_secs),
            ("server.idle_timeout_secs", s.idle_timeout_secs),
            ("routing.circuit_open_secs", r.circuit_open_secs),
            (
                "routing.rate_limit_cooldown_secs",
                r.rate_limit_cooldown_secs,
            ),
            (
                "auth.oidc.leeway_secs",
                self.auth.oidc.as_ref().map_or(0, |o| o.leeway_secs),
            ),
        ];
        let millis = [
            ("routing.first_byte_timeout_ms", r.first_byte_timeout_ms),
            ("routing.idle_timeout_ms", r.idle_timeout_ms),
            ("routing.total_timeout_ms", r.total_timeout_ms),
        ];
        for (field, value) in secs {
            at_most_a_day(field, value, 1)?;
        }
        for (field, value) in millis {
            at_most_a_day(field, value, 1000)?;
        }
        Ok(())
    }

    /// The budgets of `[[budgets]]` (those of a checked config all read).
    pub fn budget_specs(&self) -> Vec<crate::budget::BudgetSpec> {
        budgets::check(&self.budgets).unwrap_or_default()
    }

    /// Checks what TOML types cannot: URLs, header names, model targets.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_durations()?;
        self.auth.check()?;
        self.check_prices()?;
        budgets::check(&self.budgets)?;
        rate_limits::check(&self.rate_limits)?;
        for (name, p) in &self.providers {
            if name.is_empty() || name.contains('/') {
                return Err(ConfigError(format!(
                    "providers.{name}: a provider name must be non-empty and contain no `/`"
                )));
            }
            if p.pass_through && p.kind != ProviderKind::Anthropic {
                return Err(ConfigError(format!(
                    "providers.{name}.pass_through: only a provider of kind = \"anthropic\" can pass its clients' own credentials through (this one is kind = \"{}\")",
                    p.kind.as_str()
                )));
            }
            for (i, (d, weight)) in p.deployment_configs().iter().enumerate() {
                let field = p.deployment_field(name, i);
                if *weight == 0 {
                    return Err(ConfigError(format!("{field}.weight: must be at least 1")));
                }
                let Some(url) = d.base_url() else {
                    return Err(ConfigError(format!(
                        "{field}.base_url: required for kind = \"openai-compatible\""
                    )));
                };
                // The URL is not quoted: it may carry user-info or a
                // credential in its query.
                if let Err(e) = http_url(url) {
                    return Err(ConfigError(format!("{field}.base_url: {e}")));
                }
                for (h, v) in &d.headers {
                    if http::HeaderName::from_bytes(h.as_bytes()).is_err()
                        || http::HeaderValue::from_str(v).is_err()
                    {
                        return Err(ConfigError(format!(
                            "{field}.headers.{h}: not a valid HTTP header"
                        )));
                    }
                }
            }
        }
        for (name, m) in &self.models {
            if m.targets().is_empty() {
                return Err(ConfigError(format!(
                    "models.{name}.targets: must not be empty"
                )));
            }
            for (i, t) in m.targets().iter().enumerate() {
                let Some((provider, model)) = t.split_once('/') else {
                    return Err(ConfigError(format!(
                        "models.{name}.targets[{i}]: `{t}` is not `provider/model`"
                    )));
                };
                if !self.providers.contains_key(provider) {
                    return Err(ConfigError(format!(
                        "models.{name}.targets[{i}]: unknown provider `{provider}`"
                    )));
                }
                if model.is_empty() {
                    return Err(ConfigError(format!(
                        "models.{name}.targets[{i}]: the model after `{provider}/` is empty"
                    )));
                }
            }
            if let ModelConfig::Table { fallbacks, .. } = m {
                // The same rules that route a request's model.
                let routes = crate::routing::Routes::from_config(self);
                for (i, f) in fallbacks.iter().enumerate() {
                    if routes.candidates(f).is_err() {
                        return Err(ConfigError(format!(
                            "models.{name}.fallbacks[{i}]: unknown model `{f}` (not a model name, a prefix alias, or `provider/model` with a configured provider)"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A duration setting's limit: a day.
const DAY_SECS: u64 = 24 * 60 * 60;

/// `field: at most ... (a day)` when `value`, in units of which
/// `per_sec` make a second, is over a day.
fn at_most_a_day(field: &str, value: u64, per_sec: u64) -> Result<(), ConfigError> {
    let max = DAY_SECS * per_sec;
    if value > max {
        return Err(ConfigError(format!("{field}: at most {max} (a day)")));
    }
    Ok(())
}

/// `text` as an absolute http(s) URL with a host. The error never quotes
/// `text` (it may carry user-info or a credential in its query).
pub(crate) fn http_url(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("not a URL ({e})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https" | "http"), Some(host)) if !host.is_empty() => Ok(uri),
        _ => Err("not an absolute http(s) URL".into()),
    }
}

impl StoreConfig {
    /// Reads only the `[store]` table of the config file at `path`, with
    /// the same `${VAR}` and relative-path rules as [`Config::load`];
    /// errors name the field (`store.path: ...`).
    ///
    /// For `tollgate keys`, which needs nothing else: the provider keys'
    /// variables need not be set in the shell that manages gateway keys.
    pub fn load(path: &Path) -> Result<StoreConfig, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        let mut store = Self::parse(&read(path)?, &env).map_err(|e| in_file(path, e))?;
        store.resolve_from(path);
        Ok(store)
    }

    /// [`StoreConfig::load`] of config text, reading `${VAR}` through `env`.
    fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<StoreConfig, ConfigError> {
        let Some(mut value) = parse_toml(text)?.remove("store") else {
            return Ok(StoreConfig::default());
        };
        let mut substituted = Vec::new();
        interpolate_value(&mut value, "store", env, &mut substituted)?;
        deserialize(value, Some("store"), &substituted)
    }

    /// A relative `path` is the config file's neighbour, wherever `serve`
    /// or `keys` runs from.
    fn resolve_from(&mut self, config_file: &Path) {
        if let (Some(p), Some(dir)) = (&self.path, config_file.parent()) {
            if p.is_relative() {
                self.path = Some(dir.join(p));
            }
        }
    }
}

/// The text of the config file at `path`.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))
}

/// `e`, prefixed with the file it is about.
fn in_file(path: &Path, e: ConfigError) -> ConfigError {
    ConfigError(format!("{}: {}", path.display(), e.0))
}

/// Config text as a TOML table, before any `${VAR}` is read.
fn parse_toml(text: &str) -> Result<toml::Table, ConfigError> {
    text.parse()
        .map_err(|e: toml::de::Error| ConfigError(e.to_string().trim_end().to_string()))
}

/// `value` (the table `prefix`, or the whole file for `None`) as a `T`,
/// an error naming the field by its path.
fn deserialize<T: serde::de::DeserializeOwned>(
    value: toml::Value,
    prefix: Option<&str>,
    substituted: &[String],
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let msg = e.inner().message().to_string();
        let path = e.path().to_string();
        match (prefix, e.path().iter().next().is_none()) {
            (None, true) => mask(substituted, msg),
            (None, false) => mask(substituted, format!("{path}: {msg}")),
            (Some(p), true) => mask(substituted, format!("{p}: {msg}")),
            (Some(p), false) => mask(substituted, format!("{p}.{path}: {msg}")),
        }
    })
}

/// An error may quote a value (`invalid type: string "..."`); one that
/// came from the environment may be a key, and is not shown.
fn mask(substituted: &[String], mut msg: String) -> ConfigError {
    for value in substituted.iter().filter(|v| !v.is_empty()) {
        msg = msg.replace(value.as_str(), "[value from the environment]");
    }
    ConfigError(msg)
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string under `value`;
/// `path` names `value` in errors; each string that changed is pushed on
/// `substituted`.
fn interpolate_value(
    value: &mut toml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    substituted: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            *s = interpolate(s, env).map_err(|e| ConfigError(format!("{path}: {e}")))?;
            substituted.push(s.clone());
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), env, substituted)?;
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                interpolate_value(item, &format!("{path}.{key}"), env, substituted)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}` and `${VAR:-default}` in one string.
fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("`${` without a closing `}`".to_string());
        };
        let inner = &after[..end];
        let (var, default) = match inner.split_once(":-") {
            Some((v, d)) => (v, Some(d)),
            None => (inner, None),
        };
        match (env(var), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable `{var}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "KEY" => Some("sk-\"quoted\"".into()),
            _ => None,
        }
    }

    #[test]
    fn debug_never_shows_a_key_or_header_value() {
        let c = Config::parse(
            r#"
[providers.oa]
kind = "openai"
api_key = "sk-provider-secret-1"
headers = { "x-auth" = "hdr-secret-2" }
deployments = [{ api_key = "sk-deploy-secret-3", headers = { "x-auth" = "hdr-secret-4" } }]
"#,
            &env,
        )
        .unwrap();
        let shown = format!("{c:?}");
        for secret in [
            "sk-provider-secret-1",
            "hdr-secret-2",
            "sk-deploy-secret-3",
            "hdr-secret-4",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("x-auth") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(http_url("https://idp.example.com/keys").is_ok());
        assert!(http_url("http://127.0.0.1:8080/keys").is_ok());
        for bad in [
            "/keys",
            "idp.example.com/keys",
            "ftp://idp/keys",
            "",
            "https://",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
        let e = Config::parse(
            "[providers.x]\nkind = \"openai\"\nbase_url = \"ftp://ana:hunter2@x/v1?key=s3cret\"\n",
            &env,
        )
        .unwrap_err();
        assert!(e.0.starts_with("providers.x.base_url: "), "{e}");
        assert!(!e.0.contains("hunter2") && !e.0.contains("s3cret"), "{e}");
    }

    #[test]
    fn durations_over_a_day_are_errors_naming_the_field() {
        for (text, field) in [
            (
                "[routing]\ncircuit_open_secs = 9223372036854775807\n",
                "routing.circuit_open_secs",
            ),
            (
                "[routing]\nrate_limit_cooldown_secs = 86401\n",
                "routing.rate_limit_cooldown_secs",
            ),
            (
                "[routing]\ntotal_timeout_ms = 86400001\n",
                "routing.total_timeout_ms",
            ),
            (
                "[server]\nshutdown_grace_secs = 99999999999\n",
                "server.shutdown_grace_secs",
            ),
        ] {
            let e = Config::parse(text, &env).unwrap_err();
            assert!(e.0.starts_with(&format!("{field}: at most")), "{e}");
        }
        let c = Config::parse(
            "[routing]\ncircuit_open_secs = 86400\ntotal_timeout_ms = 86400000\n",
            &env,
        );
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn an_error_never_quotes_a_value_from_the_environment() {
        let env = |k: &str| (k == "K").then(|| "sk-live-TOPSECRET".to_string());
        for text in [
            "[providers.p]\nkind = \"openai\"\nheaders = \"${K}\"\n",
            "[providers.p]\nkind = \"openai\"\ndeployments = [{ weight = \"${K}\" }]\n",
        ] {
            let e = Config::parse(text, &env).unwrap_err();
            assert!(!e.0.contains("TOPSECRET"), "{e}");
            assert!(e.0.starts_with("providers.p."), "{e}");
        }
    }

    #[test]
    fn parses_a_full_config() {
        let c = Config::parse(
            r#"
[server]
listen = "127.0.0.1:9999"
[providers.oa]
kind = "openai"
api_key = "${KEY}"
[providers.local]
kind = "openai-compatible"
base_url = "http://127.0.0.1:11434/v1/"
api_key = "${MISSING:-none}"
[models]
fast = "oa/gpt-4o-mini"
big = { targets = ["oa/gpt-4o", "local/llama"], fallbacks = ["fast"] }
"#,
            &env,
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9999);
        assert_eq!(c.providers["oa"].api_key.as_deref(), Some("sk-\"quoted\""));
        assert_eq!(
            c.providers["oa"].base_url(),
            Some("https://api.openai.com/v1")
        );
        assert_eq!(
            c.providers["local"].base_url(),
            Some("http://127.0.0.1:11434/v1")
        );
        assert_eq!(c.providers["local"].api_key.as_deref(), Some("none"));
        assert_eq!(c.models["big"].targets().len(), 2);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::parse("[providers.x]\nkind = \"openaii\"\n", &env).unwrap_err();
        assert!(e.0.contains("openaii"), "{e}");
        let e = Config::parse(
            "[providers.x]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n",
            &env,
        )
        .unwrap_err();
        assert!(e.0.contains("providers.x.base_url"), "{e}");
        let e = Config::parse("[models]\na = \"nope/m\"\n", &env).unwrap_err();
        assert!(
            e.0.contains("models.a.targets[0]: unknown provider `nope`"),
            "{e}"
        );
        let e = Config::parse("[server]\nlisten = \"nope\"\n", &env).unwrap_err();
        assert!(e.0.contains("listen"), "{e}");
        let e = Config::parse("[sever]\n", &env).unwrap_err();
        assert!(e.0.contains("sever"), "{e}");
        // Fallbacks follow the routing rules: a model, a prefix alias, or
        // `provider/model` with a configured provider.
        let models = "[providers.p]\nkind = \"anthropic\"\n[models]\n\"claude-*\" = \"p/*\"\n";
        for ok in ["claude-x", "p/any", "m"] {
            let text = format!("{models}m = {{ targets = [\"p/a\"], fallbacks = [\"{ok}\"] }}\n");
            Config::parse(&text, &env).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let text = format!("{models}m = {{ targets = [\"p/a\"], fallbacks = [\"q/x\"] }}\n");
        let e = Config::parse(&text, &env).unwrap_err();
        assert!(
            e.0.contains("models.m.fallbacks[0]: unknown model `q/x`"),
            "{e}"
        );
    }

    #[test]
    fn a_typo_in_a_model_table_is_an_error_naming_it() {
        let head = "[providers.p]\nkind = \"anthropic\"\n";
        for (entry, field) in [
            (
                "[models.m]\ntargets = [\"p/a\"]\nfallback = [\"p/b\"]\n",
                "fallback",
            ),
            (
                "[models.m]\ntargets = [\"p/a\"]\ncontext_windw = 1000\n",
                "context_windw",
            ),
            ("[models]\nm = { target = [\"p/a\"] }\n", "target"),
        ] {
            let e = Config::parse(&format!("{head}{entry}"), &env).unwrap_err();
            assert!(
                e.0.starts_with(&format!("models.m.{field}: unknown field `{field}`, expected one of `targets`, `fallbacks`, `context_window`")),
                "{e}"
            );
        }
        let e = Config::parse(&format!("{head}[models.m]\nfallbacks = []\n"), &env).unwrap_err();
        assert_eq!(e.0, "models.m: missing field `targets`");
        let e = Config::parse(&format!("{head}[models]\nm = 5\n"), &env).unwrap_err();
        assert!(
            e.0.starts_with("models.m: invalid type: integer `5`"),
            "{e}"
        );
        // Both forms still parse, with every field kept.
        let c = Config::parse(
            &format!("{head}[models]\na = \"p/x\"\nm = {{ targets = [\"p/y\"], fallbacks = [\"a\"], context_window = 9 }}\n"),
            &env,
        )
        .unwrap();
        assert_eq!(c.models["a"].targets(), ["p/x"]);
        assert_eq!(c.models["m"].fallbacks(), ["a"]);
        assert_eq!(c.models["m"].context_window(), Some(9));
    }

    #[test]
    fn every_table_rejects_unknown_fields_by_path() {
        let p = "[providers.p]\nkind = \"openai\"\n";
        for (text, path) in [
            ("[sever]\n".to_string(), "sever"),
            ("[server]\nlisten_on = 1\n".to_string(), "server.listen_on"),
            ("[routing]\nretrys = 1\n".to_string(), "routing.retrys"),
            (format!("{p}apikey = \"k\"\n"), "providers.p.apikey"),
            (
                format!("{p}deployments = [{{ api_key = \"a\" }}, {{ wieght = 2 }}]\n"),
                "providers.p.deployments[1].wieght",
            ),
        ] {
            let e = Config::parse(&text, &env).unwrap_err();
            let field = path.rsplit(['.', ']']).next().unwrap();
            assert!(
                e.0.starts_with(&format!("{path}: unknown field `{field}`, expected ")),
                "{text}: {e}"
            );
        }
        let e = Config::parse(&format!("{p}kind = \"openai\"\n"), &env).unwrap_err();
        assert!(e.0.contains("duplicate key"), "{e}");
    }

    #[test]
    fn a_missing_variable_names_its_field() {
        let e = Config::parse(
            "[providers.az]\nkind = \"openai\"\ndeployments = [\n  { api_key = \"${KEY}\" },\n  { api_key = \"${KEY_B}\" },\n]\n",
            &env,
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "providers.az.deployments[1].api_key: environment variable `KEY_B` is not set"
        );
        let e = Config::parse(
            "[providers.x]\nkind = \"openai\"\nheaders = { a = \"${OPEN\" }\n",
            &env,
        )
        .unwrap_err();
        assert_eq!(e.0, "providers.x.headers.a: `${` without a closing `}`");
        // A commented-out line is not read, and a value is taken as it is.
        let c = Config::parse(
            "[providers.x]\nkind = \"openai\"\n# api_key = \"${UNSET}\"\napi_key = \"${KEY}-${UNSET:-d}\"\n",
            &env,
        )
        .unwrap();
        assert_eq!(c.providers["x"].api_key.as_deref(), Some("sk-\"quoted\"-d"));
    }

    #[test]
    fn a_provider_without_credentials_is_a_warning() {
        let c = Config::parse(
            r#"
[providers.keyed]
kind = "openai"
api_key = "k"
[providers.header]
kind = "openai-compatible"
base_url = "http://127.0.0.1:1/v1"
headers = { Authorization = "Bearer t" }
[providers.bare]
kind = "openai-compatible"
base_url = "http://127.0.0.1:1/v1"
api_key = "${UNSET:-}"
[providers.mixed]
kind = "anthropic"
deployments = [{ api_key = "a" }, { weight = 2 }]
"#,
            &env,
        )
        .unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("providers.bare: no `api_key`"), "{w:?}");
        assert!(
            w[1].starts_with("providers.mixed.deployments[1]: no `api_key`"),
            "{w:?}"
        );
    }

    #[test]
    fn one_rule_says_which_headers_carry_credentials() {
        for name in [
            "Authorization",
            "x-api-key",
            "x-goog-api-key",
            "api-key",
            "X-Custom-Token",
            "x-client-secret",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in ["anthropic-version", "x-org", "openai-project", "ke"] {
            assert!(!is_credential_header(name), "{name}");
        }
        // Keyed by the same rule that decides what is masked and what a
        // client's credential is sent without.
        let c = Config::parse(
            r#"
[providers.token]
kind = "openai-compatible"
base_url = "http://127.0.0.1:1/v1"
headers = { "X-Custom-Token" = "t", "x-org" = "o" }
[providers.plain]
kind = "openai-compatible"
base_url = "http://127.0.0.1:1/v1"
headers = { "x-org" = "o" }
"#,
            &env,
        )
        .unwrap();
        assert!(c.providers["token"].has_credentials());
        assert!(!c.providers["plain"].has_credentials());
    }

    #[test]
    fn server_limits_default_and_zero_turns_them_off() {
        let c = Config::parse("", &env).unwrap();
        assert_eq!(
            c.server.header_read_timeout(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(c.server.body_read_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(c.server.idle_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(c.server.max_connections, 4096);
        let c = Config::parse(
            "[server]\nheader_read_timeout_secs = 0\nbody_read_timeout_secs = 5\nidle_timeout_secs = 0\nmax_connections = 10\n",
            &env,
        )
        .unwrap();
        assert_eq!(c.server.header_read_timeout(), None);
        assert_eq!(c.server.body_read_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(c.server.idle_timeout(), None);
        assert_eq!(c.server.max_connections, 10);
    }

    #[test]
    fn the_store_table_is_read_alone() {
        let text = "[providers.p]\nkind = \"openai\"\napi_key = \"${UNSET_PROVIDER_KEY}\"\n[store]\npath = \"${STORE_DIR:-data}/k.db\"\n";
        assert!(Config::parse(text, &env).is_err());
        let store = StoreConfig::parse(text, &env).unwrap();
        assert_eq!(store.path, Some(std::path::PathBuf::from("data/k.db")));
        let e = StoreConfig::parse("[store]\npaht = \"x\"\n", &env).unwrap_err();
        assert!(e.0.starts_with("store.paht: unknown field"), "{e}");
        let e = StoreConfig::parse("[store]\npath = \"${STORE}\"\n", &env).unwrap_err();
        assert_eq!(e.0, "store.path: environment variable `STORE` is not set");
        let e = StoreConfig::parse("store = 1\n", &env).unwrap_err();
        assert!(e.0.starts_with("store: invalid type"), "{e}");
        let e = StoreConfig::parse("[store\n", &env).unwrap_err();
        assert!(e.0.contains("TOML") || e.0.contains("expected"), "{e}");
        assert_eq!(StoreConfig::parse("", &env).unwrap().path, None);
    }

    #[test]
    fn env_providers() {
        let c = Config::from_env(&|k| (k == "ANTHROPIC_API_KEY").then(|| "k".to_string()));
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers["anthropic"].kind, ProviderKind::Anthropic);
    }

    #[test]
    fn pass_through_is_for_anthropic_providers_only() {
        let e = Config::parse(
            "[providers.oa]\nkind = \"openai\"\napi_key = \"k\"\npass_through = true\n",
            &env,
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("providers.oa.pass_through: only a provider of kind = \"anthropic\""),
            "{}",
            e.0
        );
        // A subscription-only provider (no key of its own) is no mistake.
        let c = Config::parse(
            "[providers.sub]\nkind = \"anthropic\"\npass_through = true\n",
            &env,
        )
        .unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }
}
