//! Answers in the client's wire format: complete bodies, SSE streams, errors.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;

use super::{json_response, CREDENTIAL_HEADER, PROVIDER_HEADER, REQUEST_ID_HEADER};
use crate::error::GatewayError;
use crate::format::{anthropic, error_body, openai_chat, responses, StreamEncode, WireFormat};
use crate::response::{ChunkStream, GatewayResponse, ResponseBody, StreamChunk};
use crate::sse::{SseEvent, SseParser};
use crate::usage::splice::splice_cost;
use crate::usage::Settlement;

/// The HTTP answer for `err` in `format`, with `Retry-After` when the
/// provider (or a rate limit of ours) gave one, and the headers the
/// layers set on the error ([`GatewayError::headers`]).
pub fn error_response(format: WireFormat, err: &GatewayError, request_id: &str) -> Response {
    let mut resp = json_response(err.status(), error_body(format, err));
    if let Some(after) = err.retry_after() {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    for (k, v) in err.headers().into_iter().flatten() {
        if !resp.headers().contains_key(k) {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    set_request_id(&mut resp, request_id);
    resp
}

fn set_request_id(resp: &mut Response, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
}

/// The HTTP answer for a gateway response, in the client's `format`.
/// `include_usage` is an OpenAI Chat client's `stream_options.include_usage`.
pub fn encode_response(
    format: WireFormat,
    resp: GatewayResponse,
    request_id: &str,
    include_usage: bool,
) -> Response {
    let GatewayResponse {
        status,
        meta,
        body,
        extensions,
    } = resp;
    // OpenAI clients get the cost in `usage` (as OpenRouter answers);
    // Anthropic's format has no such field.
    let cost_from = match format {
        WireFormat::OpenAiChat | WireFormat::OpenAiResponses => extensions.get::<Settlement>(),
        WireFormat::Anthropic | WireFormat::Gemini => None,
    };
    let mut out = match body {
        ResponseBody::Raw(bytes) => {
            let bytes = with_cost(cost_from, bytes);
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        ResponseBody::Message(m) => {
            let bytes = match format {
                WireFormat::OpenAiChat => openai_chat::encode_response(&m),
                WireFormat::OpenAiResponses => responses::encode_response(&m),
                WireFormat::Anthropic => anthropic::encode_response(&m),
                WireFormat::Gemini => {
                    let err = GatewayError::internal("Gemini is not a client format");
                    return error_response(format, &err, request_id);
                }
            };
            let bytes = match cost_from.and_then(Settlement::cost_so_far) {
                Some(cost) => splice_cost(&bytes, cost).unwrap_or(bytes),
                None => bytes,
            };
            json_response(StatusCode::OK, bytes)
        }
        ResponseBody::TokenCount(n) => json_response(
            StatusCode::OK,
            serde_json::json!({ "input_tokens": n })
                .to_string()
                .into_bytes(),
        ),
        ResponseBody::Stream(stream) => {
            let encoder: Box<dyn StreamEncode> = match format {
                WireFormat::OpenAiChat => Box::new(openai_chat::StreamEncoder::new(include_usage)),
                WireFormat::OpenAiResponses => Box::new(responses::StreamEncoder::new()),
                WireFormat::Anthropic | WireFormat::Gemini => {
                    Box::new(anthropic::StreamEncoder::new())
                }
            };
            let body = EncodeStream {
                inner: stream,
                encoder,
                buf: BytesMut::new(),
                done: false,
                // Responses events carry an ID and a sequence number that an
                // error after pass-through must continue.
                raw_parser: (format == WireFormat::OpenAiResponses).then(SseParser::new),
                raw_events: Vec::new(),
                cost_from: cost_from.cloned(),
                cost_writes: 0,
            };
            let mut r = Response::new(Body::from_stream(body));
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            r
        }
    };
    *out.status_mut() = status;
    for (k, v) in &meta.headers {
        if !out.headers().contains_key(k) {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    if let Some(p) = meta
        .provider
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        out.headers_mut().insert(PROVIDER_HEADER, p);
    }
    if let Some(c) = meta.credential {
        out.headers_mut()
            .insert(CREDENTIAL_HEADER, HeaderValue::from_static(c.as_str()));
    }
    set_request_id(&mut out, request_id);
    out
}

/// A chunk stream encoded as the client's SSE bytes; an error becomes the
/// format's in-band error event and ends the stream.
struct EncodeStream {
    inner: ChunkStream,
    encoder: Box<dyn StreamEncode>,
    buf: BytesMut,
    done: bool,
    raw_parser: Option<SseParser>,
    raw_events: Vec<SseEvent>,
    /// Where `usage.cost` comes from, for an OpenAI client.
    cost_from: Option<Settlement>,
    /// The settlement's cost writes seen so far (see [`Settlement::new_cost`]).
    cost_writes: u64,
}

impl EncodeStream {
    /// `bytes` with `usage.cost` when they follow new usage (see
    /// [`with_cost`]); other chunks are not searched.
    fn with_cost(&mut self, bytes: Bytes) -> Bytes {
        let cost = self
            .cost_from
            .as_ref()
            .and_then(|s| s.new_cost(&mut self.cost_writes));
        match cost {
            Some(cost) => splice_cost(&bytes, cost).map_or(bytes, Bytes::from),
            None => bytes,
        }
    }
}

/// `bytes`, a complete answer, with `usage.cost` when a cost is known
/// and they carry usage (a stream's chunks go through
/// [`EncodeStream::with_cost`]).
fn with_cost(settlement: Option<&Settlement>, bytes: Bytes) -> Bytes {
    match settlement.and_then(Settlement::cost_so_far) {
        Some(cost) => splice_cost(&bytes, cost).map_or(bytes, Bytes::from),
        None => bytes,
    }
}

impl Stream for EncodeStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(StreamChunk::Raw(bytes)))) => {
                    if let Some(parser) = &mut this.raw_parser {
                        parser.feed(&bytes, &mut this.raw_events);
                        for ev in this.raw_events.drain(..) {
                            this.encoder.passed_through(&ev);
                        }
                    }
                    return Poll::Ready(Some(Ok(this.with_cost(bytes))));
                }
                Poll::Ready(Some(Ok(StreamChunk::Event(ev)))) => {
                    this.encoder.event(&ev, &mut this.buf);
                }
                // Usage the client did not ask for: the meter has counted it.
                Poll::Ready(Some(Ok(StreamChunk::Usage(_)))) => {}
                Poll::Ready(Some(Err(err))) => {
                    tracing::warn!(error = %err.message(), "stream failed after its first byte");
                    this.encoder.error(&err, &mut this.buf);
                    this.done = true;
                }
            }
            if !this.buf.is_empty() {
                let bytes = this.buf.split().freeze();
                return Poll::Ready(Some(Ok(this.with_cost(bytes))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Nanos;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn only_the_chunk_after_new_usage_gets_the_cost() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let stream = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|b| b.map(|b| Ok(StreamChunk::Raw(b))))
        });
        let mut resp = GatewayResponse::new(ResponseBody::Stream(Box::pin(stream)));
        let settlement = Settlement::new();
        resp.extensions.insert(settlement.clone());
        let mut body = encode_response(WireFormat::OpenAiChat, resp, "req", true).into_body();
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
        let mut next = async |chunk: &'static str| {
            tx.send(Bytes::from_static(chunk.as_bytes())).unwrap();
            let frame = body.frame().await.unwrap().unwrap();
            String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
        };
        // What the meter does as the usage chunk goes by.
        settlement.set_cost_so_far(Nanos(5_000));
        assert!(next(usage).await.contains("\"cost\":0.000005"));
        // A later chunk that repeats a usage object, the cost unchanged:
        // not searched, passed on as it came.
        assert_eq!(next(usage).await, usage);
    }
}
