//! Timeouts per attempt: time to first byte, idle gap between stream
//! chunks, and a total deadline for the whole request.
//!
//! A first-byte timeout is an error before anything reached the client,
//! so the routing layers above move on to the next candidate. After the
//! first byte, an idle gap or the total deadline ends the stream with an
//! in-band error in the client's format.
//!
//! The first-byte limit is the response head for complete answers and the
//! first event for streams (the provider service resolves a stream only
//! once its first event is in). A client's
//! `providerOptions.gateway.providerTimeouts` overrides it per provider.
//! The total deadline counts from [`Started`], which the edge sets.
//!
//! ```
//! use std::time::Duration;
//! use tollgate::routing::TimeoutLayer;
//!
//! let layer = TimeoutLayer::new()
//!     .first_byte(Duration::from_secs(10))
//!     .idle(Duration::from_secs(30))
//!     .total(Duration::from_secs(300));
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::error::{Cause, ErrorKind, GatewayError};
use crate::request::{GatewayRequest, Target};
use crate::response::{ChunkStream, GatewayResponse, ResponseBody, StreamChunk};

/// The error code a client sees when its request's total deadline passed.
/// It is for the client only: the layers act on
/// [`Cause::DeadlinePassed`], never on a code.
pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";

/// When the request reached the gateway (the edge puts it in the
/// request's extensions); the total deadline counts from it.
///
/// The layer reads it on tokio's clock (the same instant outside tests),
/// so that tests can move time with `tokio::time::advance`.
#[derive(Debug, Clone, Copy)]
pub struct Started(pub std::time::Instant);

/// Builds [`Timeout`] services; see the [module docs](self). Every limit
/// is off by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer {
    first_byte: Option<Duration>,
    idle: Option<Duration>,
    total: Option<Duration>,
}

impl TimeoutLayer {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Time to first byte per attempt. Default: none.
    pub fn first_byte(mut self, limit: Duration) -> Self {
        self.first_byte = Some(limit);
        self
    }

    /// Longest gap between two stream chunks. Default: none.
    pub fn idle(mut self, limit: Duration) -> Self {
        self.idle = Some(limit);
        self
    }

    /// The whole request, across attempts, from [`Started`]. Default: none.
    pub fn total(mut self, limit: Duration) -> Self {
        self.total = Some(limit);
        self
    }

    /// From `[routing]` of the config (0 is off).
    pub fn from_config(c: &crate::config::RoutingConfig) -> Self {
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        TimeoutLayer {
            first_byte: ms(c.first_byte_timeout_ms),
            idle: ms(c.idle_timeout_ms),
            total: ms(c.total_timeout_ms),
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            limits: *self,
        }
    }
}

/// Applies the limits of a [`TimeoutLayer`] to each attempt.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limits: TimeoutLayer,
}

/// The future of [`Timeout`].
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<GatewayResponse, GatewayError>> + Send>>;

fn first_byte_error(target: Option<&Target>, limit: Duration) -> GatewayError {
    let who = target.map_or_else(
        || "the provider".to_string(),
        |t| format!("provider `{}`", t.provider),
    );
    GatewayError::new(
        ErrorKind::Timeout,
        format!("{who} sent no first byte within {} ms", limit.as_millis()),
    )
}

fn deadline_error(total: Duration) -> GatewayError {
    GatewayError::new(
        ErrorKind::Timeout,
        format!("the request's deadline of {} ms passed", total.as_millis()),
    )
    .with_code(DEADLINE_EXCEEDED)
    .with_cause(Cause::DeadlinePassed)
}

impl<S> Service<GatewayRequest> for Timeout<S>
where
    S: Service<GatewayRequest, Response = GatewayResponse, Error = GatewayError>,
    S::Future: Send + 'static,
{
    type Response = GatewayResponse;
    type Error = GatewayError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: GatewayRequest) -> ResponseFuture {
        let now = Instant::now();
        let limits = self.limits;
        let deadline = limits.total.map(|t| {
            let start = req
                .extensions
                .get::<Started>()
                .map_or(now, |s| Instant::from_std(s.0));
            start + t
        });
        let target = req.extensions.get::<Target>().cloned();
        let first_byte = target
            .as_ref()
            .and_then(|t| req.routing.provider_timeout(&t.provider))
            .or(limits.first_byte);
        if let Some(d) = deadline {
            if d <= now {
                let total = limits.total.unwrap_or_default();
                return Box::pin(std::future::ready(Err(deadline_error(total))));
            }
        }
        let fut = self.inner.call(req);
        if first_byte.is_none() && deadline.is_none() && limits.idle.is_none() {
            return Box::pin(fut);
        }
        Box::pin(async move {
            let head_limit = first_byte.map(|fb| now + fb);
            // Whichever comes first: the attempt's limit or the deadline.
            let until = match (head_limit, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut resp = match until {
                None => fut.await?,
                Some(until) => match tokio::time::timeout_at(until, fut).await {
                    Ok(r) => r?,
                    Err(_) if deadline == Some(until) => {
                        return Err(deadline_error(limits.total.unwrap_or_default()))
                    }
                    Err(_) => {
                        return Err(first_byte_error(
                            target.as_ref(),
                            first_byte.unwrap_or_default(),
                        ))
                    }
                },
            };
            if limits.idle.is_some() || deadline.is_some() {
                if let ResponseBody::Stream(s) = resp.body {
                    resp.body = ResponseBody::Stream(Box::pin(Watched::new(
                        s,
                        limits.idle,
                        deadline.zip(limits.total),
                    )));
                }
            }
            Ok(resp)
        })
    }
}

pin_project_lite::pin_project! {
    /// A stream that ends with a timeout error when a chunk is late.
    struct Watched {
        inner: Option<ChunkStream>,
        idle: Option<Duration>,
        deadline: Option<(Instant, Duration)>,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl Watched {
    fn new(
        inner: ChunkStream,
        idle: Option<Duration>,
        deadline: Option<(Instant, Duration)>,
    ) -> Self {
        let sleep = tokio::time::sleep_until(Self::next_wake(idle, deadline));
        Watched {
            inner: Some(inner),
            idle,
            deadline,
            sleep,
        }
    }

    fn next_wake(idle: Option<Duration>, deadline: Option<(Instant, Duration)>) -> Instant {
        let idle_at = idle.map(|i| Instant::now() + i);
        match (idle_at, deadline.map(|d| d.0)) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a
                .or(b)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365)),
        }
    }
}

impl Stream for Watched {
    type Item = Result<StreamChunk, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => {
                if this.idle.is_some() {
                    let wake = Watched::next_wake(*this.idle, *this.deadline);
                    this.sleep.as_mut().reset(wake);
                }
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                *this.inner = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if this.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Late: drop the upstream (closing its connection) and say why.
        *this.inner = None;
        let err = match *this.deadline {
            Some((at, total)) if at <= Instant::now() => deadline_error(total),
            _ => GatewayError::new(
                ErrorKind::Timeout,
                format!(
                    "the provider sent nothing for {} ms",
                    this.idle.unwrap_or_default().as_millis()
                ),
            ),
        };
        Poll::Ready(Some(Err(err)))
    }
}
