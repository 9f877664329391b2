//! The `tollgate` server: the layers assembled from a config, and
//! [`serve_with`], which serves them over HTTP/1 and HTTP/2 with the
//! connection limits of `[server]` ([`ServeConfig`]) and graceful shutdown.
//!
//! A slow or idle client cannot hold the gateway: hyper's HTTP/1
//! header-read timeout closes a connection whose request head does not
//! arrive (or an idle keep-alive one), the idle timeout closes any
//! connection with no request in flight (HTTP/2, or one that never sent a
//! byte), and the connection cap keeps file descriptors for everyone
//! else; the edge's body-read timeout answers a slow upload with a 408.
//! On shutdown, requests in flight get the grace period; then streams end
//! with their format's in-band error ([`GraceOver`]).

mod conn;
mod parse_errors;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use conn::{ConnService, InFlight};
use parse_errors::ParseErrorBodies;

use crate::auth::{AuthLayer, Authenticator};
use crate::budget::{credits_router, BudgetLayer, Budgets, Pricing};
use crate::config::{AuthMode, Config, ServerConfig};
use crate::edge::{router, EdgeConfig, GraceOver};
use crate::error::GatewayError;
use crate::provider::Providers;
use crate::ratelimit::RateLimitLayer;
use crate::request::GatewayRequest;
use crate::response::GatewayResponse;
use crate::routing::{
    Cooldowns, FallbackLayer, ModelChain, ProviderOrderLayer, RetryTransient, TimeoutLayer,
};
use crate::store::KeyStore;
use crate::usage::{Metering, PriceTable};
use tower::retry::RetryLayer;
use tower::{Service, ServiceBuilder};

/// Which layers the server assembles around the providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Layers {
    /// The default stack.
    #[default]
    Default,
    /// The routing layers only (fallback, provider order, retries,
    /// timeouts): no rate limits, budgets, metering or ledger (to measure
    /// what those cost).
    Routing,
    /// None: the edge straight onto the providers (to measure the layers).
    None,
}

/// The gateway as the binary assembles it: the default layers between the
/// edge and the providers.
pub fn gateway(config: &Config) -> Result<Router, GatewayError> {
    gateway_with(config, Layers::Default)
}

/// The gateway with the chosen `layers`, its keys from the config only
/// (see [`assemble`] for the store's), the config's prices and budgets,
/// and no ledger.
pub fn gateway_with(config: &Config, layers: Layers) -> Result<Router, GatewayError> {
    assemble(
        config,
        layers,
        authenticator(config, None)?,
        Control::from_config(config),
    )
}

/// What the gateway keeps beyond its config: the prices and the ledger
/// ([`Metering`]) and the budgets. The binary's read the embedded store;
/// [`Control::from_config`] has only what the config says.
#[derive(Debug, Clone)]
pub struct Control {
    /// Prices, and where each request's row goes.
    pub metering: Metering,
    /// The budgets to enforce.
    pub budgets: Budgets,
}

impl Control {
    /// The config's prices and budgets, and no ledger.
    pub fn from_config(config: &Config) -> Self {
        Control {
            metering: Metering::from_config(config),
            budgets: Budgets::new(config.budget_specs()),
        }
    }
}

/// The gateway with the chosen `layers`, behind `auth` (see
/// [`authenticator`]; the binary's checks the embedded store's keys too),
/// with `control`'s prices, ledger and budgets.
///
/// Authentication is part of every assembly, `Layers::None` included:
/// leaving out the routing layers must not open the gateway to anyone.
/// `Layers::Routing` and `Layers::None` leave out the rate limit, budget
/// and usage layers: nothing is metered, costed, recorded or capped, and
/// `/v1/credits` is not served.
/// With a ledger, `/v1/generation` and `/v1/report` answer from it
/// ([`crate::usage::api`]), behind the same authentication.
pub fn assemble(
    config: &Config,
    layers: Layers,
    auth: Option<Authenticator>,
    control: Control,
) -> Result<Router, GatewayError> {
    let providers = Providers::from_config(config)?;
    let edge = EdgeConfig::from_config(config);
    let mut app = match layers {
        Layers::None => router(providers, edge),
        Layers::Routing => router(
            routing_layers(config, providers, &control.metering.prices),
            edge,
        ),
        Layers::Default => router(routing_stack(config, providers, &control), edge)
            .merge(credits_router(control.budgets.clone())),
    };
    if let Some(ledger) = &control.metering.ledger {
        app = app.merge(crate::usage::api::router(ledger.store().clone()));
    }
    Ok(match auth {
        Some(auth) => app.layer(AuthLayer::new(auth)),
        None => app,
    })
}

/// The [`Authenticator`] of `[auth]` and `keys`, or `None` with
/// `mode = "none"` (no layer at all, so it costs nothing).
pub fn authenticator(
    config: &Config,
    keys: Option<Arc<dyn KeyStore>>,
) -> Result<Option<Authenticator>, GatewayError> {
    if config.auth.mode == AuthMode::None {
        return Ok(None);
    }
    let loopback = config.server.listen.ip().is_loopback();
    Authenticator::from_config(&config.auth, keys, loopback).map(Some)
}

/// Refuses a gateway that would serve anyone off loopback: one that
/// listens on a non-loopback address in `[auth] mode = "auto"` with no
/// key or token configured anywhere. Call it after
/// [`Authenticator::refresh`]. The error says how to fix it.
pub fn check_exposure(config: &Config, auth: Option<&Authenticator>) -> Result<(), String> {
    let addr = config.server.listen;
    if addr.ip().is_loopback() {
        return Ok(());
    }
    let Some(auth) = auth else {
        tracing::warn!(%addr, "[auth] mode = \"none\": anyone who can reach this address spends the gateway's provider keys");
        return Ok(());
    };
    if auth.mode() == AuthMode::Auto && auth.has_credentials() != Some(true) {
        return Err(format!(
            "refusing to listen on {addr} without authentication: anyone who could reach it would spend the gateway's provider keys. \
             Create a gateway key (`tollgate keys create --name NAME`), add `[auth] keys` or `[auth.oidc]` to the config, \
             listen on a loopback address (127.0.0.1), or set `[auth] mode = \"none\"` to serve without keys on purpose"
        ));
    }
    Ok(())
}

/// The layers around `providers`, outermost first: rate limits (keys'
/// own and `[[rate_limits]]`), budgets, usage (pricing and the ledger),
/// then [`routing_layers`].
pub fn routing_stack(
    config: &Config,
    providers: Providers,
    control: &Control,
) -> impl Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static {
    let routes = providers.routes();
    let prices = &control.metering.prices;
    ServiceBuilder::new()
        .layer(RateLimitLayer::from_config(config))
        .layer(BudgetLayer::new(
            control.budgets.clone(),
            Pricing::new(routes, prices.clone()),
        ))
        .layer(control.metering.layer())
        .service(routing_layers(config, providers, prices))
}

/// The routing layers of `[routing]` around `providers`, outermost first:
/// model fallback, provider order (with cooldowns, sorting by `prices`
/// when a request asks for the cheapest), same-target retries, timeouts.
pub fn routing_layers(
    config: &Config,
    providers: Providers,
    prices: &PriceTable,
) -> impl Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static {
    let r = &config.routing;
    let routes = providers.routes();
    ServiceBuilder::new()
        .layer(FallbackLayer::new(ModelChain::new(routes.clone())))
        .layer(
            ProviderOrderLayer::new(routes, Cooldowns::from_config(r)).with_prices(prices.clone()),
        )
        .layer(RetryLayer::new(RetryTransient::from_config(r)))
        .layer(TimeoutLayer::from_config(r))
        .service(providers)
}

/// How [`serve_with`] treats client connections: the connection-level part
/// of `[server]` (the body-read timeout is the edge's, in [`EdgeConfig`]).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// How long in-flight requests get after the shutdown signal; streams
    /// still open then end with their format's in-band error.
    pub grace: Duration,
    /// HTTP/1: time to a request's complete headers, counted by hyper from
    /// the moment the connection waits for one (so it also bounds an idle
    /// keep-alive connection). `None`: no limit.
    pub header_read_timeout: Option<Duration>,
    /// How long a connection may stay open with no request in flight.
    /// `None`: no limit.
    pub idle_timeout: Option<Duration>,
    /// Connections served at once (0: no cap); further ones wait in the
    /// listen backlog.
    pub max_connections: usize,
}

impl ServeConfig {
    /// The connection settings of `[server]`.
    pub fn from_config(server: &ServerConfig) -> Self {
        ServeConfig {
            grace: Duration::from_secs(server.shutdown_grace_secs),
            header_read_timeout: server.header_read_timeout(),
            idle_timeout: server.idle_timeout(),
            max_connections: server.max_connections,
        }
    }

    /// Sets the shutdown grace period (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self::from_config(&ServerConfig::default())
    }
}

/// Descriptors kept free of client connections: the listener, the log,
/// the upstream pool's idle connections beyond one per client, DNS.
const SPARE_FILES: u64 = 32;

/// Raises the process's open-file limit to its hard limit (at most 2^20),
/// and returns `max_connections` lowered, with a warning, to what that
/// limit can hold: each client connection may hold an upstream connection
/// too, so half of the limit less a few spare. A cap above the limit would
/// let a flood of connections use every descriptor, after which nothing is
/// accepted, not even `/health`. `0` (no cap, as configured) is kept.
pub fn fit_to_open_file_limit(max_connections: usize) -> usize {
    #[cfg(unix)]
    {
        // Linux's default ceiling per process (`fs.nr_open`): a hard limit
        // of "unlimited" cannot be set as the soft one.
        const CEILING: u64 = 1 << 20;
        let limit = match rlimit::increase_nofile_limit(CEILING) {
            Ok(limit) => limit,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or raise the open-file limit");
                return max_connections;
            }
        };
        let room = usize::try_from(limit.saturating_sub(SPARE_FILES) / 2).unwrap_or(usize::MAX);
        if max_connections > room && room > 0 {
            tracing::warn!(
                max_connections,
                open_file_limit = limit,
                lowered_to = room,
                "max_connections lowered to fit the open-file limit (raise `ulimit -n` to allow more)"
            );
            return room;
        }
    }
    max_connections
}

/// Once the grace period is over, how long the streams' final error events
/// get to reach their clients before the connections are dropped.
const FLUSH: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` with the default `[server]` limits until
/// `shutdown` completes; then in-flight requests get `grace` to finish.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    serve_with(app, listener, shutdown, ServeConfig::default().grace(grace)).await
}

/// Serves `app` on `listener` (HTTP/1 and HTTP/2) until `shutdown`
/// completes; then in-flight requests get `config.grace` to finish, and
/// streams still open after it end with their format's in-band error.
pub async fn serve_with(
    app: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    config: ServeConfig,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let slots = Arc::new(Semaphore::new(match config.max_connections {
        0 => Semaphore::MAX_PERMITS,
        n => n.min(Semaphore::MAX_PERMITS),
    }));
    let graceful = GracefulShutdown::new();
    let (over_tx, over_rx) = watch::channel(false);
    let grace_over = GraceOver::new(over_rx);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Stream chunks are small writes: without TCP_NODELAY, Nagle's
        // algorithm would hold each one back until the previous is acknowledged.
        let _ = tcp.set_nodelay(true);
        let (in_flight, idle) = InFlight::new();
        let service = ConnService {
            app: app.clone(),
            grace_over: grace_over.clone(),
            in_flight,
        };
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(ParseErrorBodies::new(tcp)), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let idle_timeout = config.idle_timeout;
        conns.spawn(async move {
            tokio::select! {
                res = conn => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = idle.wait(idle_timeout) => tracing::debug!("idle connection closed"),
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        grace_secs = config.grace.as_secs_f64(),
        "shutting down: waiting for in-flight requests"
    );
    let closed = graceful.shutdown();
    tokio::pin!(closed);
    if tokio::time::timeout(config.grace, &mut closed)
        .await
        .is_err()
    {
        tracing::warn!("grace period over: ending the remaining streams with an error");
        let _ = over_tx.send(true);
        let _ = tokio::time::timeout(FLUSH, closed).await;
    }
    conns.shutdown().await;
    Ok(())
}

/// Accept errors are per connection (the peer reset it) or a lack of
/// resources (file descriptors); for the latter, wait a little rather than
/// spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
        return;
    }
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
