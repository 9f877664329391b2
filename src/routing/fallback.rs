//! Model fallback: when a request fails in a way another model may not,
//! try the next model.
//!
//! [`Fallback`] works around any `tower::Service`; a [`Policy`] decides, from
//! each attempt's result, whether to try again and with which request. For
//! the gateway, [`ModelChain`] walks the requested model, then the client's
//! `models` list, then the model's configured `fallbacks`.
//!
//! ```
//! use tollgate::routing::FallbackLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Ask "primary"; if it fails, ask "backup".
//! let svc = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(|req: &&'static str, res: &Result<String, String>| {
//!         (res.is_err() && *req == "primary").then_some("backup")
//!     }))
//!     .service(service_fn(|model: &'static str| async move {
//!         if model == "primary" { Err("down".to_string()) } else { Ok(format!("{model} says hi")) }
//!     }));
//! assert_eq!(svc.oneshot("primary").await.unwrap(), "backup says hi");
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt};

use super::order::{DefaultFailover, Failover};
use super::routes::Routes;
use crate::error::{Cause, ErrorKind, GatewayError};
use crate::request::{GatewayRequest, Target};
use crate::response::GatewayResponse;

/// Decides whether a failed attempt is tried again, and with what
/// request (shaped like `tower::retry::Policy`, without the wait).
///
/// A fresh clone of the policy serves each request, so it may keep state
/// (how far down a chain it is).
pub trait Policy<Req, Res, E> {
    /// Given the request just tried and its result, the next request to
    /// try, or `None` to return this result.
    fn next(&mut self, req: &Req, result: &Result<Res, E>) -> Option<Req>;

    /// A copy of the request to keep for [`Policy::next`]; `None` means
    /// this request is never tried again.
    fn clone_request(&mut self, req: &Req) -> Option<Req>;
}

impl<F, Req, Res, E> Policy<Req, Res, E> for F
where
    F: FnMut(&Req, &Result<Res, E>) -> Option<Req>,
    Req: Clone,
{
    fn next(&mut self, req: &Req, result: &Result<Res, E>) -> Option<Req> {
        self(req, result)
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Builds [`Fallback`] services; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct FallbackLayer<P> {
    policy: P,
}

impl<P> FallbackLayer<P> {
    /// A layer that asks `policy` after each attempt.
    pub fn new(policy: P) -> Self {
        FallbackLayer { policy }
    }
}

impl<S, P: Clone> Layer<S> for FallbackLayer<P> {
    type Service = Fallback<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// Tries the request, then whatever its [`Policy`] says to try next.
#[derive(Debug, Clone)]
pub struct Fallback<S, P> {
    inner: S,
    policy: P,
}

/// The future of [`Fallback`].
pub type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, P, Req> Service<Req> for Fallback<S, P>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send,
    P: Policy<Req, S::Response, S::Error> + Clone + Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The ready service serves the first attempt; a clone the others.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let mut policy = self.policy.clone();
        Box::pin(async move {
            let mut kept = policy.clone_request(&req);
            let mut result = inner.call(req).await;
            loop {
                let Some(next) = kept.as_ref().and_then(|k| policy.next(k, &result)) else {
                    return result;
                };
                kept = policy.clone_request(&next);
                result = match inner.ready().await {
                    Ok(svc) => svc.call(next).await,
                    Err(e) => Err(e),
                };
            }
        })
    }
}

/// The gateway's fallback policy: the requested model, then the client's
/// `models` (`providerOptions.gateway.models` or OpenRouter's `models`),
/// then the model's configured `fallbacks`, each tried once.
///
/// It moves on when the [`Failover`] rules say so, and when a model in the
/// chain is not configured or no allowed provider serves it (the gateway's
/// own errors, marked [`Cause::UnknownModel`] and
/// [`Cause::NoAllowedProvider`]; a provider's 404 does not move on). A
/// context-length error skips to the next model with a larger configured
/// context window (or the next one, when windows are not configured).
///
/// Each model's attempts are recorded by the provider-order layer in the
/// request's [`AttemptLog`](super::AttemptLog); to see the attempts of
/// every model, put one in the request before this layer (the edge does).
#[derive(Clone)]
pub struct ModelChain<F = DefaultFailover> {
    routes: Arc<Routes>,
    failover: Arc<F>,
    chain: Option<Arc<[String]>>,
    pos: usize,
}

impl ModelChain<DefaultFailover> {
    /// A chain over `routes` with the default failover rules.
    pub fn new(routes: Arc<Routes>) -> Self {
        Self::with_failover(routes, DefaultFailover)
    }
}

impl<F> ModelChain<F> {
    /// A chain over `routes` with the given failover rules.
    pub fn with_failover(routes: Arc<Routes>, failover: F) -> Self {
        ModelChain {
            routes,
            failover: Arc::new(failover),
            chain: None,
            pos: 0,
        }
    }

    fn chain_of(&self, req: &GatewayRequest) -> Arc<[String]> {
        let mut chain = vec![req.model.clone()];
        for m in req
            .routing
            .models
            .iter()
            .chain(self.routes.fallbacks(&req.model))
        {
            if !chain.contains(m) {
                chain.push(m.clone());
            }
        }
        chain.into()
    }
}

/// Whether a routing error of the gateway's own leaves room for another
/// model. A provider's 404 is not one: it goes back to the client (see
/// [`DefaultFailover`]), whatever its `code` says.
fn unroutable(err: &GatewayError) -> bool {
    matches!(
        err.cause(),
        Some(Cause::UnknownModel | Cause::NoAllowedProvider)
    )
}

impl<F: Failover> Policy<GatewayRequest, GatewayResponse, GatewayError> for ModelChain<F> {
    fn next(
        &mut self,
        req: &GatewayRequest,
        result: &Result<GatewayResponse, GatewayError>,
    ) -> Option<GatewayRequest> {
        let err = result.as_ref().err()?;
        if err.cause() == Some(Cause::DeadlinePassed)
            || !(self.failover.next_candidate(err) || unroutable(err))
        {
            return None;
        }
        if self.chain.is_none() {
            if req.routing.models.is_empty() && self.routes.fallbacks(&req.model).is_empty() {
                return None;
            }
            self.chain = Some(self.chain_of(req));
        }
        let chain = self.chain.clone()?;
        let current = chain.get(self.pos)?;
        let window = (err.kind() == ErrorKind::ContextLengthExceeded)
            .then(|| self.routes.context_window(current))
            .flatten();
        let mut pos = self.pos + 1;
        while let (Some(w), Some(m)) = (window, chain.get(pos)) {
            if self.routes.context_window(m).is_none_or(|mw| mw > w) {
                break;
            }
            pos += 1;
        }
        let model = chain.get(pos)?;
        self.pos = pos;
        let mut next = req.clone();
        next.model = model.clone();
        next.extensions.remove::<Target>();
        tracing::debug!(from = %current, to = %model, error = %err.message(), "model fallback");
        Some(next)
    }

    fn clone_request(&mut self, req: &GatewayRequest) -> Option<GatewayRequest> {
        // Most requests have nowhere to fall back to: no copy for them.
        let has_chain = self.chain.as_ref().map_or(
            !req.routing.models.is_empty() || !self.routes.fallbacks(&req.model).is_empty(),
            |c| self.pos + 1 < c.len(),
        );
        has_chain.then(|| req.clone())
    }
}
