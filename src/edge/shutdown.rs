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

/// `call`, unless `grace` is over first: then [`shutting_down`].
pub(super) async fn or_shutting_down<T>(
    call: impl Future<Output = Result<T, GatewayError>>,
    grace: GraceOver,
) -> Result<T, GatewayError> {
    let mut watch = Watch::new(grace);
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = call.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        watch.poll_over(cx).map(|()| Err(shutting_down()))
    })
    .await
}

/// `stream` until `grace` is over, then [`shutting_down`] as its last item.
pub(super) fn until_grace_over(stream: ChunkStream, grace: GraceOver) -> ChunkStream {
    Box::pin(UntilGraceOver {
        inner: stream,
        watch: Some(Watch::new(grace)),
    })
}

/// The grace signal, polled only when it may have changed or the task's
/// waker is not the one it already holds: polling a `watch` future takes a
/// lock that every connection shares, and a request or stream is polled
/// many times (measured: about half the added instructions of a 20-chunk
/// stream when it polled every time).
struct Watch {
    /// A cheap look at the signal (an atomic version check).
    signal: watch::Receiver<bool>,
    over: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The waker `over` was last polled with.
    registered: Option<Waker>,
}

impl Watch {
    fn new(grace: GraceOver) -> Self {
        Watch {
            signal: grace.0.clone(),
            over: Box::pin(grace.wait()),
            registered: None,
        }
    }

    /// Ready once the grace period is over.
    fn poll_over(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let same_waker = self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        // A closed channel counts as changed: `over` then decides.
        if same_waker && !self.signal.has_changed().unwrap_or(true) {
            return Poll::Pending;
        }
        if self.over.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        self.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A stream polls its grace signal only when the stream itself is waiting.
struct UntilGraceOver {
    inner: ChunkStream,
    /// `None` once the stream has ended.
    watch: Option<Watch>,
}

impl Stream for UntilGraceOver {
    type Item = Result<StreamChunk, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(watch) = &mut this.watch else {
            return Poll::Ready(None);
        };
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                this.watch = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match watch.poll_over(cx) {
                Poll::Ready(()) => {
                    this.watch = None;
                    Poll::Ready(Some(Err(shutting_down())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
