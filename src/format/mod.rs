//! Wire formats: each module translates one format to and from the
//! [canonical](crate::canonical) conversation.
//!
//! | format | client side (edge) | provider side |
//! | --- | --- | --- |
//! | [`openai_chat`] | decode request, encode response and stream | encode request, decode response and stream |
//! | [`anthropic`] | decode request, encode response and stream | encode request, decode response and stream |
//! | [`responses`] | decode request, encode response and stream | (same-format pass-through only) |
//! | [`gemini`] | — | encode request, decode response and stream |
//!
//! What a target format cannot express is dropped knowingly; each module's
//! docs list what it drops.

pub mod anthropic;
pub mod gemini;
pub mod openai_chat;
pub mod responses;

mod errors;
#[cfg(test)]
mod finish_tests;

pub(crate) use errors::{anthropic_type, openai_type};
pub use errors::{error_body, parse_upstream_error};

use bytes::BytesMut;

use crate::canonical::StreamEvent;
use crate::error::GatewayError;
use crate::sse::SseEvent;

/// A wire format, on either side of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    OpenAiChat,
    /// OpenAI Responses (`/v1/responses`).
    OpenAiResponses,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl WireFormat {
    /// A short name for logs and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::OpenAiChat => "openai-chat",
            WireFormat::OpenAiResponses => "openai-responses",
            WireFormat::Anthropic => "anthropic",
            WireFormat::Gemini => "gemini",
        }
    }
}

/// Decodes one provider's stream, event by event, into canonical events.
///
/// Implementations keep the grammar documented on [`StreamEvent`].
pub trait StreamDecode: Send + 'static {
    /// Handles one upstream SSE event, pushing what it completes onto `out`.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError>;

    /// The upstream stream ended. Pushes the final events (`Finish`), or
    /// fails when the stream ended before the provider said it was complete.
    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError>;
}

/// Encodes canonical events as the bytes of one client format's SSE stream.
pub trait StreamEncode: Send + 'static {
    /// Appends the SSE bytes for `event` (possibly none, possibly several events).
    fn event(&mut self, event: &StreamEvent, out: &mut BytesMut);

    /// Notes an event that went to the client as it came from a provider of
    /// the client's own format (pass-through), so that a later [`error`]
    /// continues that stream (same response ID, next sequence number)
    /// instead of starting another. Most formats need nothing.
    ///
    /// [`error`]: StreamEncode::error
    fn passed_through(&mut self, event: &SseEvent) {
        let _ = event;
    }

    /// Appends an in-band error event: the stream failed after its first byte.
    fn error(&mut self, error: &GatewayError, out: &mut BytesMut);
}
