//! Upstream SSE streams: passed through event by event in the client's own
//! format, or decoded into canonical events for another format.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http_body::Body;
use hyper::body::Incoming;

use super::redact::Redactor;
use crate::canonical::{StreamEvent, Usage};
use crate::error::{ErrorKind, GatewayError};
use crate::format::StreamDecode;
use crate::response::StreamChunk;
use crate::sse::{SseEvent, SseParser};

/// What a pass-through stream does with one upstream event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Send it on.
    Forward,
    /// Leave it out (an event the gateway asked for that the client did
    /// not), handing on only the usage it carries, for the meter.
    Usage(Usage),
    /// Send it on; it is the last event of a complete stream.
    Last,
}

/// Decides, per event, for a pass-through stream.
pub type Classifier = fn(&SseEvent) -> Verdict;

enum Mode {
    Passthrough(Classifier),
    Decode(Box<dyn StreamDecode>),
}

/// A provider's SSE response body as a stream of [`StreamChunk`]s.
///
/// The upstream body is read as the client reads: chunks go out as soon as
/// an event is complete, and dropping this stream drops the upstream
/// connection. A stream that ends before its format's last event ends with
/// an error, never with an invented finish. Every pass-through event and
/// every error is scrubbed of secrets here, at the source, so that what
/// the edge encodes and logs after the first byte is already clean.
pub struct UpstreamStream {
    body: Incoming,
    redactor: Redactor,
    parser: SseParser,
    mode: Mode,
    queue: VecDeque<Result<StreamChunk, GatewayError>>,
    done: bool,
    scratch_raw: Vec<(SseEvent, Bytes)>,
    scratch_events: Vec<StreamEvent>,
}

impl UpstreamStream {
    /// Passes events through in the client's format, as `classify` says.
    pub(crate) fn passthrough(body: Incoming, classify: Classifier, redactor: Redactor) -> Self {
        Self::with_mode(body, Mode::Passthrough(classify), redactor)
    }

    /// Decodes events with `decoder` into canonical events.
    pub(crate) fn decode(
        body: Incoming,
        decoder: Box<dyn StreamDecode>,
        redactor: Redactor,
    ) -> Self {
        Self::with_mode(body, Mode::Decode(decoder), redactor)
    }

    fn with_mode(body: Incoming, mode: Mode, redactor: Redactor) -> Self {
        UpstreamStream {
            body,
            redactor,
            parser: SseParser::new(),
            mode,
            queue: VecDeque::new(),
            done: false,
            scratch_raw: Vec::new(),
            scratch_events: Vec::new(),
        }
    }

    fn handle_bytes(&mut self, data: &[u8]) {
        match &mut self.mode {
            Mode::Passthrough(classify) => {
                self.parser.feed_raw(data, &mut self.scratch_raw);
                for (ev, raw) in self.scratch_raw.drain(..) {
                    if self.done {
                        break;
                    }
                    match classify(&ev) {
                        Verdict::Forward => {
                            let raw = self.redactor.bytes(raw);
                            self.queue.push_back(Ok(StreamChunk::Raw(raw)));
                        }
                        Verdict::Usage(u) => self.queue.push_back(Ok(StreamChunk::Usage(u))),
                        Verdict::Last => {
                            let raw = self.redactor.bytes(raw);
                            self.queue.push_back(Ok(StreamChunk::Raw(raw)));
                            self.done = true;
                        }
                    }
                }
            }
            Mode::Decode(decoder) => {
                let mut events = Vec::new();
                self.parser.feed(data, &mut events);
                for ev in &events {
                    if self.done {
                        break;
                    }
                    let res = decoder.event(ev, &mut self.scratch_events);
                    flush(&mut self.scratch_events, &mut self.queue, &mut self.done);
                    if let Err(e) = res {
                        self.queue.push_back(Err(self.redactor.error(e)));
                        self.done = true;
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: GatewayError) {
        self.queue.push_back(Err(self.redactor.error(e)));
        self.done = true;
    }

    fn handle_end(&mut self) {
        match &mut self.mode {
            Mode::Passthrough(classify) => {
                if let Some(ev) = self.parser.finish() {
                    if classify(&ev) == Verdict::Last {
                        // The last event arrived without its blank line.
                        let raw = format!("data: {}\n\n", ev.data);
                        let raw = match &ev.event {
                            Some(name) => format!("event: {name}\n{raw}"),
                            None => raw,
                        };
                        let raw = self.redactor.bytes(Bytes::from(raw));
                        self.queue.push_back(Ok(StreamChunk::Raw(raw)));
                        self.done = true;
                        return;
                    }
                }
                self.fail(ended_early());
            }
            Mode::Decode(decoder) => {
                let mut res = Ok(());
                if let Some(ev) = self.parser.finish() {
                    res = decoder.event(&ev, &mut self.scratch_events);
                }
                if res.is_ok() && !self.done {
                    res = decoder.end(&mut self.scratch_events);
                }
                flush(&mut self.scratch_events, &mut self.queue, &mut self.done);
                match res {
                    Err(e) => self.fail(e),
                    Ok(()) if !self.done => self.fail(ended_early()),
                    Ok(()) => {}
                }
            }
        }
    }
}

/// Queues decoded events; `Finish` completes the stream.
fn flush(
    events: &mut Vec<StreamEvent>,
    queue: &mut VecDeque<Result<StreamChunk, GatewayError>>,
    done: &mut bool,
) {
    for ev in events.drain(..) {
        let finish = matches!(ev, StreamEvent::Finish { .. });
        queue.push_back(Ok(StreamChunk::Event(ev)));
        if finish {
            *done = true;
        }
    }
}

fn ended_early() -> GatewayError {
    GatewayError::bad_upstream("the provider's stream ended before it was complete")
}

impl Stream for UpstreamStream {
    type Item = Result<StreamChunk, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.queue.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.handle_end(),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.handle_bytes(&data);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.fail(
                        GatewayError::new(ErrorKind::Connect, "the provider's stream broke off")
                            .with_source(e),
                    );
                }
            }
        }
    }
}
