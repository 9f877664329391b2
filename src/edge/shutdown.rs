//! The end of the shutdown grace period, as the edge sees it: a stream
//! still open gets its format's in-band error instead of being cut.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use tokio::sync::watch;

use crate::error::{ErrorKind, GatewayError};
use crate::response::{ChunkStream, StreamChunk};

/// Completes when the server's shutdown grace period is over.
/// [`serve_with`](crate::server::serve_with) puts one in every request's
/// extensions; the edge then ends the request's stream with the format's
/// in-band error, and answers a request still waiting for its provider
/// with a 503.
#[derive(Debug, Clone)]
pub struct GraceOver(watch::Receiver<bool>);

impl GraceOver {
    /// The grace period is over once `rx` holds `true`.
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        GraceOver(rx)
    }

    /// Completes when the grace period is over; never, if the server went
    /// away without saying so.
    pub async fn wait(mut self) {
        if self.0.wait_for(|over| *over).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What a request still in flight when the grace period ends gets. A 503
/// (not a timeout) tells clients another instance may serve a retry.
pub(super) fn shutting_down() -> GatewayError {
    GatewayError::new(ErrorKind::Overloaded, "the gateway is shutting down")
}

/// `stream` until `grace` is over, then [`shutting_down`] as its last item.
pub(super) fn until_grace_over(stream: ChunkStream, grace: GraceOver) -> ChunkStream {
    Box::pin(UntilGraceOver {
        inner: stream,
        signal: grace.0.clone(),
        over: Some(Box::pin(grace.wait())),
        registered: None,
    })
}

/// A stream polls its grace signal only when the stream itself is
/// waiting, and only when the signal may have changed or the task's waker
/// is not the one the signal already holds: polling a `watch` future takes
/// its lock, and a stream is polled once per chunk (measured: about half
/// the added instructions of a 20-chunk stream when it polled every time).
struct UntilGraceOver {
    inner: ChunkStream,
    /// A cheap look at the signal (an atomic version check).
    signal: watch::Receiver<bool>,
    /// `None` once the stream has ended.
    over: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The waker `over` was last polled with.
    registered: Option<Waker>,
}

impl Stream for UntilGraceOver {
    type Item = Result<StreamChunk, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(over) = &mut this.over else {
            return Poll::Ready(None);
        };
        let next = this.inner.as_mut().poll_next(cx);
        match next {
            Poll::Ready(None) => {
                this.over = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(_)) => return next,
            Poll::Pending => {}
        }
        let same_waker = this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        // A closed channel counts as changed: `over` then decides.
        if same_waker && !this.signal.has_changed().unwrap_or(true) {
            return Poll::Pending;
        }
        if over.as_mut().poll(cx).is_ready() {
            this.over = None;
            return Poll::Ready(Some(Err(shutting_down())));
        }
        this.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}
