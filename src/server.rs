//! The `tollgate` server: the layers assembled from a config, served with
//! graceful shutdown.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::edge::{router, EdgeConfig};
use crate::error::GatewayError;
use crate::provider::Providers;
use crate::request::GatewayRequest;
use crate::response::GatewayResponse;
use crate::routing::{
    Cooldowns, FallbackLayer, ModelChain, ProviderOrderLayer, RetryTransient, TimeoutLayer,
};
use tower::retry::RetryLayer;
use tower::{Service, ServiceBuilder};

/// Which layers the server assembles around the providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Layers {
    /// The default stack.
    #[default]
    Default,
    /// None: the edge straight onto the providers (to measure the layers).
    None,
}

/// The gateway as the binary assembles it: the default layers between the
/// edge and the providers.
pub fn gateway(config: &Config) -> Result<Router, GatewayError> {
    gateway_with(config, Layers::Default)
}

/// The gateway with the chosen `layers`.
pub fn gateway_with(config: &Config, layers: Layers) -> Result<Router, GatewayError> {
    let providers = Providers::from_config(config)?;
    let edge = EdgeConfig::from_config(config);
    Ok(match layers {
        Layers::None => router(providers, edge),
        Layers::Default => router(routing_stack(config, providers), edge),
    })
}

/// The routing layers of `[routing]` around `providers`, outermost first:
/// model fallback, provider order (with cooldowns), same-target retries,
/// timeouts.
pub fn routing_stack(
    config: &Config,
    providers: Providers,
) -> impl Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static {
    let r = &config.routing;
    let routes = providers.routes();
    ServiceBuilder::new()
        .layer(FallbackLayer::new(ModelChain::new(routes.clone())))
        .layer(ProviderOrderLayer::new(routes, Cooldowns::from_config(r)))
        .layer(RetryLayer::new(RetryTransient::from_config(r)))
        .layer(TimeoutLayer::from_config(r))
        .service(providers)
}

/// Serves `app` on `listener` until `shutdown` completes; then in-flight
/// requests get `grace` to finish before the remaining connections close.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = tx.send(());
    };
    // Stream chunks are small writes: without TCP_NODELAY, Nagle's
    // algorithm would hold each one back until the previous is acknowledged.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        res = &mut server => res,
        _ = rx => {
            tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down: waiting for in-flight requests");
            match tokio::time::timeout(grace, &mut server).await {
                Ok(res) => res,
                Err(_) => {
                    tracing::warn!("grace period over: closing the remaining connections");
                    Ok(())
                }
            }
        }
    }
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
