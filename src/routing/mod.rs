//! Routing layers: model fallback, provider order, same-target retries and
//! timeouts, each a tower `Layer` usable alone.
//!
//! The default assembly, outermost first (what `tollgate serve` runs):
//!
//! ```no_run
//! use tollgate::config::Config;
//! use tollgate::provider::Providers;
//! use tollgate::routing::{
//!     Cooldowns, FallbackLayer, ModelChain, ProviderOrderLayer, RetryTransient, TimeoutLayer,
//! };
//! use tollgate::usage::PriceTable;
//! use tower::retry::RetryLayer;
//! use tower::ServiceBuilder;
//!
//! let config = Config::from_env(&|k| std::env::var(k).ok());
//! let providers = Providers::from_config(&config).unwrap();
//! let routes = providers.routes(); // the same config's models and providers
//! let r = &config.routing;
//! let order = ProviderOrderLayer::new(routes.clone(), Cooldowns::from_config(r))
//!     .with_prices(PriceTable::from_config(&config)); // for `sort = "cost"`
//! let service = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(ModelChain::new(routes)))              // next model
//!     .layer(order)                                                     // next provider
//!     .layer(RetryLayer::new(RetryTransient::from_config(r)))           // same provider again
//!     .layer(TimeoutLayer::from_config(r))                              // per attempt
//!     .service(providers);
//! # let _ = service;
//! ```
//!
//! What is decided where:
//!
//! - [`Fallback`] with [`ModelChain`]: after every provider of a model
//!   failed, the next model (the client's `models`, then the configured
//!   `fallbacks`).
//! - [`ProviderOrder`]: the providers (and deployments) of one model, in
//!   order (ranked by cost or time to first token on request:
//!   [`ProviderSort`]), those in [`Cooldowns`] last.
//! - `tower::retry::Retry` with [`RetryTransient`]: a connect error, 502 or
//!   503 tried again on the same target, within a retry budget.
//! - [`Timeout`]: first byte, idle gap and total deadline.
//! - [`credential`]: which credential each attempt sends (the gateway's
//!   key, a key the request brought, or the client's own), chosen by
//!   [`ProviderOrder`] and read by the provider.
//!
//! A stream is decided before its first byte reaches the client: the
//! provider service resolves a stream only once its first event is in, so
//! a stream that fails or stalls before it moves on like any failure.
//! After that, failures end the stream with an in-band error event.
//!
//! Every attempt is recorded in the request's [`AttemptLog`]; the edge
//! answers with `x-tollgate-attempts: provider/model=outcome, ...`.

mod attempts;
mod balance;
pub mod cooldown;
pub mod credential;
pub mod fallback;
mod options;
pub mod order;
pub mod retry;
mod routes;
pub mod timeout;

pub use attempts::{Attempt, AttemptLog, Outcome};
pub use cooldown::{CooldownState, Cooldowns, TargetKey};
pub use credential::{Credential, CredentialId, CredentialKind, SendAs};
pub use fallback::{Fallback, FallbackLayer, ModelChain, Policy};
pub use options::{ProviderSort, RoutingOptions};
pub use order::{DefaultFailover, Deployment, Failover, ProviderOrder, ProviderOrderLayer};
pub use retry::RetryTransient;
pub use routes::{CredentialPolicy, ProviderRoute, Routes};
pub use timeout::{Started, Timeout, TimeoutLayer};

#[cfg(test)]
mod tests;
