//! One client connection: the app with the request's shutdown signal, and
//! the count of requests in flight that the idle timeout watches.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::Router;
use http::{Request, Response};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::sync::watch;
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

/// The number of a connection's requests in flight.
#[derive(Clone)]
pub(super) struct InFlight(Arc<watch::Sender<usize>>);

/// Counts one request as in flight while it lives.
pub(super) struct InFlightGuard(Arc<watch::Sender<usize>>);

/// Completes once a connection has had no request in flight for a while.
pub(super) struct Idle(watch::Receiver<usize>);

impl InFlight {
    pub(super) fn new() -> (Self, Idle) {
        let (tx, rx) = watch::channel(0);
        (InFlight(Arc::new(tx)), Idle(rx))
    }

    fn enter(&self) -> InFlightGuard {
        self.0.send_modify(|n| *n += 1);
        InFlightGuard(self.0.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Idle {
    /// Never completes when `timeout` is `None`.
    pub(super) async fn wait(mut self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            if self.0.wait_for(|n| *n == 0).await.is_err() {
                return std::future::pending().await;
            }
            // Any change (a new request) restarts the count.
            if tokio::time::timeout(timeout, self.0.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
