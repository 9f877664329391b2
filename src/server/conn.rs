//! One client connection: the app with the request's shutdown signal, and
//! the count of requests in flight that the idle timeout watches.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::Router;
use http::{Request, Response};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;

use crate::edge::GraceOver;

/// The app as one connection serves it: each request carries the shutdown
/// signal for the edge and counts as in flight until its response body
/// is done.
#[derive(Clone)]
pub(super) struct ConnService {
    pub(super) app: Router,
    pub(super) grace_over: GraceOver,
    pub(super) in_flight: InFlight,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Tracked<axum::body::Body>>;
    type Error = Infallible;
    type Future = ConnFuture;

    fn call(&self, mut req: Request<Incoming>) -> ConnFuture {
        req.extensions_mut().insert(self.grace_over.clone());
        // A router is always ready, and cloning it is cloning an `Arc`.
        ConnFuture {
            inner: self.app.clone().call(req),
            guard: Some(self.in_flight.enter()),
        }
    }
}

pin_project! {
    /// The router's future, holding the request's in-flight guard until it
    /// moves into the response body.
    pub(super) struct ConnFuture {
        #[pin]
        inner: <Router as Service<Request<Incoming>>>::Future,
        guard: Option<InFlightGuard>,
    }
}

impl Future for ConnFuture {
    type Output = Result<Response<Tracked<axum::body::Body>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.inner.poll(cx))?;
        let guard = this.guard.take();
        Poll::Ready(Ok(resp.map(|body| Tracked {
            inner: body,
            _guard: guard,
        })))
    }
}

pin_project! {
    /// A response body that keeps its request in flight until it is done.
    pub(super) struct Tracked<B> {
        #[pin]
        inner: B,
        _guard: Option<InFlightGuard>,
    }
}

impl<B: http_body::Body> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's requests in flight, and when the last one ended.
///
/// Kept in atomics and read by a timer, not signalled: a `watch` channel
/// woke the connection's task twice per request (measured: about a fifth
/// more polls of the connection per request), while the idle check only
/// needs to look once per timeout period.
#[derive(Clone)]
pub(super) struct InFlight(Arc<Activity>);

struct Activity {
    /// Requests in flight.
    count: AtomicUsize,
    /// When the count last went to zero, as milliseconds since `base`.
    last_idle_ms: AtomicU64,
    base: Instant,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Counts one request as in flight while it lives.
pub(super) struct InFlightGuard(Arc<Activity>);

/// Completes once a connection has had no request in flight for a while.
pub(super) struct Idle(Arc<Activity>);

impl InFlight {
    pub(super) fn new() -> (Self, Idle) {
        let activity = Arc::new(Activity {
            count: AtomicUsize::new(0),
            last_idle_ms: AtomicU64::new(0),
            base: Instant::now(),
        });
        (InFlight(activity.clone()), Idle(activity))
    }

    fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        // The time first, so that a check that sees the count at zero also
        // sees when it got there.
        self.0
            .last_idle_ms
            .store(self.0.now_ms(), Ordering::Release);
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Idle {
    /// Completes once no request has been in flight for `timeout`; never,
    /// when `timeout` is `None`.
    pub(super) async fn wait(self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        let a = &self.0;
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut wake = a.base + timeout;
        loop {
            tokio::time::sleep_until(wake).await;
            let now = a.now_ms();
            if a.count.load(Ordering::Acquire) > 0 {
                wake = Instant::now() + timeout;
                continue;
            }
            let idle_since = a.last_idle_ms.load(Ordering::Acquire);
            let idle_for = now.saturating_sub(idle_since);
            if idle_for >= timeout_ms {
                return;
            }
            wake = Instant::now() + Duration::from_millis(timeout_ms - idle_for);
        }
    }
}
