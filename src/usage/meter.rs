//! The meter: a stream wrapper that settles a response's [`Settlement`]
//! when the stream ends, fails or is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use futures_util::future::{join_all, JoinAll};
use pin_project_lite::pin_project;

use super::scan::content_len;
use super::sse::Tally;
use super::summary::{costs, since, Durable, MeterContext, Outcome, Settlement, Summary};
use crate::canonical::{Part, Usage};
use crate::error::GatewayError;
use crate::format::{anthropic_type, openai_type, WireFormat};
use crate::response::{GatewayResponse, ResponseBody, ResponseMeta, StreamChunk};

/// Puts a [`Settlement`] in `resp`'s extensions and returns it; if one is
/// there already (an inner layer metered the response), returns that one
/// and leaves the body alone, so a response is metered once.
///
/// A streamed body is wrapped in a meter that settles when the stream
/// ends, fails or is dropped. A complete body is not: the caller settles
/// it, once its own hooks are registered, with [`complete_summary`].
pub fn attach(resp: &mut GatewayResponse, ctx: MeterContext) -> Settlement {
    if let Some(s) = resp.extensions.get::<Settlement>() {
        return s.clone();
    }
    let settlement = Settlement::new();
    resp.extensions.insert(settlement.clone());
    if matches!(resp.body, ResponseBody::Stream(_)) {
        let placeholder = ResponseBody::TokenCount(0);
        if let ResponseBody::Stream(inner) = std::mem::replace(&mut resp.body, placeholder) {
            let meter = Meter::new(inner, settlement.clone(), ctx, &resp.meta);
            resp.body = ResponseBody::Stream(Box::pin(meter));
        }
    }
    settlement
}

/// The summary of a complete (not streamed) response: usage and finish
/// from its metadata, or from its canonical message; without either, the
/// input estimated from the request and the output from the answer's
/// text, about four bytes a token, marked `estimated`. A token count costs
/// nothing (a same-format count passed through as raw JSON is told apart
/// by the request's operation: see [`Summary::counted`]).
pub fn complete_summary(resp: &GatewayResponse, ctx: &MeterContext) -> Summary {
    match &resp.body {
        ResponseBody::Message(m) => {
            let mut s = Summary::complete(&resp.meta, ctx, Some(m.finish_reason.clone()));
            if resp.meta.usage.is_none() {
                s = if m.usage == Usage::default() {
                    let text = m.content.iter().map(|p| match p {
                        Part::Text { text, .. } | Part::Reasoning { text, .. } => text.len(),
                        Part::ToolCall { arguments, .. } => arguments.len(),
                        _ => 0,
                    });
                    with_output_estimate(s, &resp.meta, ctx, text.sum::<usize>() as u64)
                } else {
                    with_usage(s, &resp.meta, ctx, m.usage)
                };
            }
            s
        }
        ResponseBody::TokenCount(_) => Summary::counted(&resp.meta, ctx),
        ResponseBody::Raw(bytes) => {
            let s = Summary::complete(&resp.meta, ctx, None);
            match resp.meta.usage {
                Some(_) => s,
                None => {
                    let text = content_len(ctx.format, bytes);
                    with_output_estimate(s, &resp.meta, ctx, text)
                }
            }
        }
        ResponseBody::Stream(_) => Summary::complete(&resp.meta, ctx, None),
    }
}

/// `s`, an answer without usage, with its output estimated from `text`
/// bytes of what the model wrote.
fn with_output_estimate(
    mut s: Summary,
    meta: &ResponseMeta,
    ctx: &MeterContext,
    text: u64,
) -> Summary {
    s.usage.output_tokens = text.div_ceil(4);
    (s.cost, s.list_cost) = costs(ctx.price.as_deref(), meta.credential, &s.usage);
    s.estimated = true;
    s
}

fn with_usage(mut s: Summary, meta: &ResponseMeta, ctx: &MeterContext, usage: Usage) -> Summary {
    (s.cost, s.list_cost) = costs(ctx.price.as_deref(), meta.credential, &usage);
    s.usage = usage;
    s.estimated = false;
    s
}

/// How `err` is named in the ledger: its type in the client's format.
pub(crate) fn error_type(format: WireFormat, err: &GatewayError) -> &'static str {
    match format {
        WireFormat::Anthropic => anthropic_type(err),
        _ => openai_type(err),
    }
}

type Wait = JoinAll<Pin<Box<dyn Future<Output = ()> + Send>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Streaming,
    /// Settled: waiting for the hooks' durables, then handing over the
    /// held item (the last chunk, or the error), then the end.
    Waiting,
    Done,
}

pin_project! {
    /// A stream metered for its [`Settlement`]: see [`attach`].
    ///
    /// Each chunk is counted as it goes by (the running tally lives here,
    /// not in the shared settlement). After a chunk, the inner stream is
    /// polled once more without waiting: when it has ended, the meter
    /// settles before handing over that last chunk, and holds it until
    /// every [`Durable`] the hooks returned has completed.
    pub struct Meter<S> {
        #[pin]
        inner: S,
        guard: Guard,
        lookahead: Option<Result<StreamChunk, GatewayError>>,
        held: Option<Result<StreamChunk, GatewayError>>,
        wait: Option<Wait>,
        phase: Phase,
    }
}

/// What settles the stream, also when it is dropped before its end.
struct Guard {
    settlement: Settlement,
    ctx: MeterContext,
    meta: ResponseMeta,
    tally: Tally,
    first_chunk: Option<std::time::Duration>,
    ttft: Option<std::time::Duration>,
    settled: bool,
}

impl<S> Meter<S> {
    fn new(inner: S, settlement: Settlement, ctx: MeterContext, meta: &ResponseMeta) -> Self {
        let meta = ResponseMeta {
            provider: meta.provider.clone(),
            model: meta.model.clone(),
            credential: meta.credential,
            attempts: meta.attempts.clone(),
            ..ResponseMeta::default()
        };
        Meter {
            inner,
            guard: Guard {
                settlement,
                ctx,
                meta,
                tally: Tally::default(),
                first_chunk: None,
                ttft: None,
                settled: false,
            },
            lookahead: None,
            held: None,
            wait: None,
            phase: Phase::Streaming,
        }
    }
}

impl Guard {
    fn observe(&mut self, chunk: &StreamChunk) {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(since(self.ctx.started));
        }
        let sent = self.tally.sent_bytes;
        let changed = self.tally.observe(self.ctx.format, chunk);
        // The first token is the first content a client can show (text,
        // reasoning, tool arguments), not the opening events before it.
        if self.ttft.is_none() && self.tally.sent_bytes > sent {
            self.ttft = Some(since(self.ctx.started));
        }
        if changed {
            let (cost, _) = costs(
                self.ctx.price.as_deref(),
                self.meta.credential,
                &self.tally.usage,
            );
            if let Some(cost) = cost {
                self.settlement.set_cost_so_far(cost);
            }
        }
    }

    fn settle(&mut self, outcome: Outcome) -> Vec<Durable> {
        if self.settled {
            return Vec::new();
        }
        self.settled = true;
        let t = &self.tally;
        let mut usage = t.usage;
        let mut estimated = false;
        // The provider counts what it generated even when its counts never
        // reach us: estimate what is missing rather than record nothing.
        if !t.input_seen {
            usage.input_tokens = usage.input_tokens.max(self.ctx.fallback_input_tokens());
            estimated = true;
        }
        if !t.output_seen {
            usage.output_tokens = usage.output_tokens.max(t.sent_bytes.div_ceil(4));
            estimated = true;
        }
        let outcome = match (outcome, &t.failed) {
            (Outcome::Complete, Some((status, error))) => Outcome::Failed {
                status: *status,
                error: error.clone(),
            },
            (o, _) => o,
        };
        let mut summary = Summary::new(&self.meta, &self.ctx, usage, t.finish.clone(), outcome);
        // A stream with no content at all: its first chunk.
        summary.ttft = self.ttft.or(self.first_chunk);
        summary.estimated = estimated;
        self.settlement.settle(summary)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The client went away: what its hooks record is still recorded,
        // but nobody is left to wait for it.
        drop(self.settle(Outcome::Disconnected));
    }
}

fn waiting(durables: Vec<Durable>) -> Option<Wait> {
    (!durables.is_empty()).then(|| join_all(durables.into_iter().map(|d| d.0)))
}

impl<S> Stream for Meter<S>
where
    S: Stream<Item = Result<StreamChunk, GatewayError>>,
{
    type Item = Result<StreamChunk, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match *this.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Waiting => {
                    if let Some(wait) = this.wait.as_mut() {
                        ready!(Pin::new(wait).poll(cx));
                        *this.wait = None;
                    }
                    *this.phase = Phase::Done;
                    return Poll::Ready(this.held.take());
                }
                Phase::Streaming => {}
            }
            let item = match this.lookahead.take() {
                Some(item) => item,
                None => match this.inner.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(item)) => item,
                    Poll::Ready(None) => {
                        *this.wait = waiting(this.guard.settle(Outcome::Complete));
                        *this.phase = Phase::Waiting;
                        continue;
                    }
                },
            };
            match &item {
                Ok(chunk) => this.guard.observe(chunk),
                Err(err) => {
                    let outcome = Outcome::Failed {
                        status: err.status().as_u16(),
                        error: error_type(this.guard.ctx.format, err).into(),
                    };
                    *this.wait = waiting(this.guard.settle(outcome));
                    *this.held = Some(item);
                    *this.phase = Phase::Waiting;
                    continue;
                }
            }
            // Our upstream streams end right after their last event: one
            // more look tells whether this chunk is the last.
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Ready(Some(item)),
                Poll::Ready(Some(next)) => {
                    *this.lookahead = Some(next);
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {
                    *this.wait = waiting(this.guard.settle(Outcome::Complete));
                    *this.held = Some(item);
                    *this.phase = Phase::Waiting;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use futures_util::StreamExt;

    use super::*;
    use crate::canonical::{FinishReason, StreamEvent};
    use crate::response::ChunkStream;
    use crate::routing::CredentialKind;
    use crate::usage::{Nanos, Price};

    fn ctx(format: WireFormat) -> MeterContext {
        MeterContext {
            format,
            started: crate::usage::summary::now(),
            streamed: true,
            price: Some(Arc::new(Price {
                input: Nanos(1_000_000_000),
                output: Nanos(2_000_000_000),
                ..Price::default()
            })),
            input_estimate: 100,
            body: None,
        }
    }

    fn response(chunks: Vec<Result<StreamChunk, GatewayError>>) -> GatewayResponse {
        let stream = futures_util::stream::iter(chunks);
        let mut resp = GatewayResponse::new(ResponseBody::Stream(Box::pin(stream)));
        resp.meta.credential = Some(CredentialKind::Gateway);
        resp
    }

    fn finish(input: u64, output: u64) -> StreamChunk {
        StreamChunk::Event(StreamEvent::Finish {
            reason: FinishReason::Stop,
            usage: Usage {
                input_tokens: input,
                output_tokens: output,
                ..Usage::default()
            },
        })
    }

    fn body(resp: GatewayResponse) -> ChunkStream {
        match resp.body {
            ResponseBody::Stream(s) => s,
            _ => panic!("not a stream"),
        }
    }

    #[tokio::test]
    async fn a_complete_stream_settles_before_its_last_chunk() {
        let mut resp = response(vec![Ok(finish(10, 20))]);
        let s = attach(&mut resp, ctx(WireFormat::Anthropic));
        let seen = Arc::new(Mutex::new(None));
        let seen2 = seen.clone();
        s.on_settle(move |sum| {
            *seen2.lock().unwrap() = Some(sum.clone());
            None
        });
        let mut stream = body(resp);
        assert!(stream.next().await.is_some());
        let sum = seen
            .lock()
            .unwrap()
            .clone()
            .expect("settled with the last chunk");
        assert_eq!(sum.outcome, Outcome::Complete);
        // 10 input at $1/MTok + 20 output at $2/MTok.
        assert_eq!(sum.cost, Some(Nanos(50_000)));
        assert!(!sum.estimated);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_stream_settles_disconnected_with_an_estimate() {
        let text = StreamChunk::Event(StreamEvent::Delta {
            index: 0,
            delta: crate::canonical::Delta::Text("12345678".into()),
        });
        let (tx, rx) = futures_channel_like();
        tx.send(Ok(text)).unwrap();
        let mut resp = GatewayResponse::new(ResponseBody::Stream(Box::pin(rx)));
        let s = attach(&mut resp, ctx(WireFormat::OpenAiChat));
        let mut stream = body(resp);
        assert!(stream.next().await.is_some());
        assert!(s.summary().is_none());
        drop(stream);
        let sum = s.summary().expect("settled on drop");
        assert_eq!(sum.outcome, Outcome::Disconnected);
        assert!(sum.estimated);
        assert_eq!((sum.usage.input_tokens, sum.usage.output_tokens), (100, 2));
        drop(tx);
    }

    #[tokio::test]
    async fn a_dropped_stream_with_inline_media_is_not_costed_by_its_base64() {
        let image = "QUJD".repeat(250_000);
        let text = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{image}"}}}}]}}]}}"#
        );
        let raw = crate::json::RawObject::parse(text.as_bytes()).unwrap();
        let request = Arc::new(crate::request::RequestBody::new(raw));
        let naive = (text.len() as u64).div_ceil(4);
        for (estimate, request, want) in [
            // A megabyte of base64: one image, not 250,000 tokens.
            (naive, Some(request), naive - 250_000 + 1_600),
            // Never more than any model reads.
            (50_000_000, None, 2_000_000),
        ] {
            let (tx, rx) = futures_channel_like();
            let mut resp = GatewayResponse::new(ResponseBody::Stream(Box::pin(rx)));
            let c = MeterContext {
                input_estimate: estimate,
                body: request,
                ..ctx(WireFormat::Anthropic)
            };
            let s = attach(&mut resp, c);
            drop(body(resp));
            drop(tx);
            let sum = s.summary().expect("settled on drop");
            assert_eq!(sum.usage.input_tokens, want);
            assert!(sum.estimated);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn time_to_first_token_is_to_the_first_content_not_the_first_event() {
        use std::time::Duration;
        let (tx, rx) = futures_channel_like();
        let mut resp = GatewayResponse::new(ResponseBody::Stream(Box::pin(rx)));
        let s = attach(&mut resp, ctx(WireFormat::OpenAiChat));
        let mut stream = body(resp);
        let start = StreamChunk::Event(StreamEvent::Start {
            id: "m".into(),
            model: "m".into(),
        });
        let text = |t: &str| {
            StreamChunk::Event(StreamEvent::Delta {
                index: 0,
                delta: crate::canonical::Delta::Text(t.into()),
            })
        };
        tokio::time::advance(Duration::from_millis(30)).await;
        tx.send(Ok(start)).unwrap();
        stream.next().await.unwrap().unwrap();
        // A pass-through chunk with no text in it (OpenAI's first, with
        // the role) is not content either.
        tokio::time::advance(Duration::from_millis(400)).await;
        tx.send(Ok(StreamChunk::Raw(Bytes::from_static(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        ))))
        .unwrap();
        stream.next().await.unwrap().unwrap();
        tokio::time::advance(Duration::from_millis(70)).await;
        tx.send(Ok(text("Hi"))).unwrap();
        stream.next().await.unwrap().unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
        tx.send(Ok(finish(1, 1))).unwrap();
        drop(tx);
        while stream.next().await.is_some() {}
        let sum = s.summary().unwrap();
        assert_eq!(sum.ttft, Some(Duration::from_millis(500)));
        assert_eq!(sum.duration, Duration::from_millis(600));

        // No content at all: the first chunk it is.
        let (tx, rx) = futures_channel_like();
        let mut resp = GatewayResponse::new(ResponseBody::Stream(Box::pin(rx)));
        let s = attach(&mut resp, ctx(WireFormat::OpenAiChat));
        tokio::time::advance(Duration::from_millis(20)).await;
        tx.send(Ok(finish(1, 0))).unwrap();
        drop(tx);
        let mut stream = body(resp);
        while stream.next().await.is_some() {}
        assert_eq!(s.summary().unwrap().ttft, Some(Duration::from_millis(20)));
    }

    #[test]
    fn a_complete_answer_without_usage_has_its_output_estimated_from_its_text() {
        let answer = r#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"The answer is four, as it always was."},"finish_reason":"stop"}]}"#;
        let mut resp =
            GatewayResponse::new(ResponseBody::Raw(Bytes::from_static(answer.as_bytes())));
        resp.meta.credential = Some(CredentialKind::Gateway);
        resp.meta.read_usage(WireFormat::OpenAiChat, &resp.body);
        assert!(resp.meta.usage.is_none(), "no usage in it");
        let sum = complete_summary(&resp, &ctx(WireFormat::OpenAiChat));
        // 37 bytes of text: 10 tokens; 100 input tokens estimated.
        assert_eq!((sum.usage.input_tokens, sum.usage.output_tokens), (100, 10));
        assert!(sum.estimated);
        assert_eq!(sum.cost, Some(Nanos(100 * 1_000 + 10 * 2_000)));

        // A canonical answer whose provider gave no counts.
        let message = crate::canonical::ChatResponse {
            id: "m".into(),
            model: "m".into(),
            content: vec![crate::canonical::Part::text("12345678")],
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
        };
        let mut resp = GatewayResponse::new(ResponseBody::Message(message));
        resp.meta.credential = Some(CredentialKind::Gateway);
        let sum = complete_summary(&resp, &ctx(WireFormat::Anthropic));
        assert_eq!(sum.usage.output_tokens, 2);
        assert!(sum.estimated);
    }

    /// An unbounded channel as a stream that stays open.
    fn futures_channel_like() -> (
        tokio::sync::mpsc::UnboundedSender<Result<StreamChunk, GatewayError>>,
        impl Stream<Item = Result<StreamChunk, GatewayError>> + Send,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        (
            tx,
            futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)),
        )
    }

    #[tokio::test]
    async fn an_error_settles_failed_with_its_status() {
        let raw = StreamChunk::Raw(Bytes::from_static(b"data: {\"choices\":[]}\n\n"));
        let err = GatewayError::new(crate::error::ErrorKind::Overloaded, "busy");
        let status = err.status().as_u16();
        let mut resp = response(vec![Ok(raw), Err(err)]);
        let s = attach(&mut resp, ctx(WireFormat::OpenAiChat));
        let items: Vec<_> = body(resp).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
        match &s.summary().unwrap().outcome {
            Outcome::Failed { status: st, .. } => assert_eq!(*st, status),
            o => panic!("{o:?}"),
        }
    }
}
