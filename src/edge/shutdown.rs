//! The end of the shutdown grace period, as the edge sees it: a stream
//! still open gets its format's in-band error instead of being cut.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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
        over: Some(Box::pin(grace.wait())),
    })
}

struct UntilGraceOver {
    inner: ChunkStream,
    /// `None` once the stream has ended.
    over: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Stream for UntilGraceOver {
    type Item = Result<StreamChunk, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(over) = &mut this.over else {
            return Poll::Ready(None);
        };
        if over.as_mut().poll(cx).is_ready() {
            this.over = None;
            return Poll::Ready(Some(Err(shutting_down())));
        }
        let next = this.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            this.over = None;
        }
        next
    }
}
