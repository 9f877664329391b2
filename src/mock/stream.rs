//! The HTTP side shared by the three APIs: the shutdown signal every wait
//! listens to, SSE framing, JSON responses and the stream driver (`ttfb`,
//! `gap`, `cut`, `stall-after`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::Notify;

use super::script::{Directives, MAX_WAIT};

/// A shutdown signal the stalls and sleeps listen to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shutdown {
    inner: Arc<(AtomicBool, Notify)>,
}

impl Shutdown {
    /// Fires the signal (idempotent).
    pub(crate) fn trigger(&self) {
        self.inner.0.store(true, Ordering::SeqCst);
        self.inner.1.notify_waiters();
    }

    /// Resolves once the signal fired.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.inner.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.0.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Sleeps `dur` (at most [`MAX_WAIT`]); returns false if the server is
    /// shutting down first.
    pub(crate) async fn sleep(&self, dur: Duration) -> bool {
        if dur.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(dur.min(MAX_WAIT)) => true,
            _ = self.wait() => false,
        }
    }
}

/// One SSE frame: `event: NAME` (if any) and `data: JSON`.
pub(crate) fn sse_frame(event: Option<&str>, data: &Value) -> Bytes {
    sse_raw(event, &data.to_string())
}

/// One SSE frame with raw data text (single line).
pub(crate) fn sse_raw(event: Option<&str>, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 32);
    if let Some(event) = event {
        s.push_str("event: ");
        s.push_str(event);
        s.push('\n');
    }
    s.push_str("data: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// A stream to send: its frames, how many of them open it (sent before
/// `cut` starts counting), the index of the first terminating frame
/// (which `cut` never sends), and the API's in-band error event that
/// `fail-after` ends with (built only when asked for).
pub(crate) struct StreamPlan {
    pub frames: Vec<Bytes>,
    pub start: usize,
    pub terminal: usize,
    pub fail: Option<Bytes>,
}

/// The first frame of every stream whose state was dropped (tests check
/// that a client disconnect stops the stream).
#[cfg(test)]
pub(crate) static DROPPED_STREAMS: std::sync::Mutex<Vec<String>> =
    std::sync::Mutex::new(Vec::new());

/// What happens after the frames that are sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A normal end of body.
    Complete,
    /// Close the connection without ending the body.
    Abort,
    /// Wait (bounded), then abort.
    StallThenAbort,
}

/// The error that aborts a stream mid-body.
fn abort_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "mock: stream cut")
}

/// Gives the server a moment to flush what was already written: hyper drops
/// the connection (and its unflushed buffer) as soon as a body yields an
/// error, and it only flushes while the body is pending.
async fn let_flush() {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// The SSE response for `plan`, applying `ttfb`, `gap`, `cut` and
/// `stall-after`. Frames go out one by one as the body is polled; dropping
/// the body (client gone) stops the stream.
pub(crate) fn stream_response(
    plan: StreamPlan,
    d: &Directives,
    shutdown: &Shutdown,
    content_type: &'static str,
) -> Response {
    let StreamPlan {
        mut frames,
        start,
        terminal,
        fail,
    } = plan;
    let (limit, ending) = if let (Some(n), Some(fail)) = (d.fail_after, fail) {
        frames.truncate((start + n).min(terminal));
        frames.push(fail);
        (frames.len(), Ending::Complete)
    } else if let Some(n) = d.cut {
        ((start + n).min(terminal).min(frames.len()), Ending::Abort)
    } else if let Some(n) = d.stall_after {
        let limit = (start + n).min(frames.len());
        (limit, Ending::StallThenAbort)
    } else {
        (frames.len(), Ending::Complete)
    };
    struct State {
        frames: std::vec::IntoIter<Bytes>,
        sent: usize,
        limit: usize,
        ending: Ending,
        done: bool,
        ttfb: Duration,
        gap: Duration,
        shutdown: Shutdown,
        #[cfg(test)]
        tag: String,
    }
    #[cfg(test)]
    impl Drop for State {
        fn drop(&mut self) {
            if let Ok(mut dropped) = DROPPED_STREAMS.lock() {
                dropped.push(std::mem::take(&mut self.tag));
            }
        }
    }
    #[cfg(test)]
    let tag = frames
        .first()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_default();
    let state = State {
        #[cfg(test)]
        tag,
        frames: frames.into_iter(),
        sent: 0,
        limit,
        ending,
        done: false,
        ttfb: d.ttfb.unwrap_or_default(),
        gap: d.gap.unwrap_or_default(),
        shutdown: shutdown.clone(),
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if st.sent < st.limit {
            let wait = if st.sent == 0 { st.ttfb } else { st.gap };
            if !st.shutdown.sleep(wait).await {
                st.done = true;
                let_flush().await;
                return Some((Err(abort_error()), st));
            }
            let frame = st.frames.next()?;
            st.sent += 1;
            return Some((Ok::<Bytes, std::io::Error>(frame), st));
        }
        st.done = true;
        match st.ending {
            Ending::Complete => None,
            Ending::Abort => {
                let_flush().await;
                Some((Err(abort_error()), st))
            }
            Ending::StallThenAbort => {
                st.shutdown.sleep(MAX_WAIT).await;
                let_flush().await;
                Some((Err(abort_error()), st))
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}
