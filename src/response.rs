//! The gateway response: metadata for the layers, and a body that is a
//! complete answer or a stream.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::Stream;
use http::{Extensions, HeaderMap, StatusCode};

use crate::canonical::{ChatResponse, FinishReason, StreamEvent, Usage};
use crate::error::GatewayError;

/// What the layers learn about a response.
#[derive(Debug, Clone, Default)]
pub struct ResponseMeta {
    /// The provider that served.
    pub provider: Option<Arc<str>>,
    /// The model, as the provider knows it.
    pub model: Option<Arc<str>>,
    /// Token counts, when known before the body is read (complete answers).
    pub usage: Option<Usage>,
    /// Why generation stopped, when known before the body is read
    /// (complete answers passed through in the client's format, whose
    /// body the edge never decodes).
    pub finish: Option<FinishReason>,
    /// Upstream response headers worth passing on (same-format only).
    pub headers: HeaderMap,
    /// Every attempt made for this request, the serving one last.
    pub attempts: Vec<crate::routing::Attempt>,
    /// Which kind of credential served (set by the gateway's providers;
    /// the edge answers it as `x-tollgate-credential`).
    pub credential: Option<crate::routing::CredentialKind>,
}

impl ResponseMeta {
    /// Reads `usage` and `finish` out of a complete answer passed through
    /// in `format` (only those fields are parsed, never the messages).
    pub fn read_usage(&mut self, format: crate::format::WireFormat, body: &ResponseBody) {
        if let ResponseBody::Raw(bytes) = body {
            if let Some((usage, finish)) = crate::usage::read_complete(format, bytes) {
                self.usage = Some(usage);
                self.finish = finish;
            }
        }
    }
}

/// A piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamChunk {
    /// SSE bytes already in the client's wire format (same-format pass-through).
    Raw(Bytes),
    /// A canonical event, to be encoded in the client's format.
    Event(StreamEvent),
    /// Usage the gateway asked the provider for and the client did not
    /// (OpenAI's `include_usage` chunk): the meter counts it, encoders
    /// send nothing for it.
    Usage(Usage),
}

/// A stream of answer chunks; an `Err` ends it with an in-band error.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamChunk, GatewayError>> + Send>>;

/// The body of a response.
pub enum ResponseBody {
    /// A complete JSON answer already in the client's wire format.
    Raw(Bytes),
    /// A complete answer in canonical form.
    Message(ChatResponse),
    /// An input token count (`count_tokens`).
    TokenCount(u64),
    /// A streamed answer.
    Stream(ChunkStream),
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseBody::Raw(b) => f.debug_tuple("Raw").field(&b.len()).finish(),
            ResponseBody::Message(m) => f.debug_tuple("Message").field(m).finish(),
            ResponseBody::TokenCount(n) => f.debug_tuple("TokenCount").field(n).finish(),
            ResponseBody::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// A response as the layers see it.
#[derive(Debug)]
pub struct GatewayResponse {
    /// The HTTP status to answer with (2xx).
    pub status: StatusCode,
    /// What the layers learn about it.
    pub meta: ResponseMeta,
    /// The answer.
    pub body: ResponseBody,
    /// Typed values that layers hand to each other.
    pub extensions: Extensions,
}

impl GatewayResponse {
    /// A 200 response with `body`.
    pub fn new(body: ResponseBody) -> Self {
        GatewayResponse {
            status: StatusCode::OK,
            meta: ResponseMeta::default(),
            body,
            extensions: Extensions::new(),
        }
    }
}
