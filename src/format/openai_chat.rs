//! OpenAI Chat Completions.

use bytes::BytesMut;

use super::{StreamDecode, StreamEncode};
use crate::canonical::{ChatRequest, ChatResponse, StreamEvent};
use crate::error::GatewayError;
use crate::json::RawObject;
use crate::sse::SseEvent;

/// Which field carries the token limit when encoding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens` (OpenAI; required by its reasoning models).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens` (what most OpenAI-compatible servers read).
    MaxTokens,
}

/// Decodes a client's Chat Completions request.
pub fn decode_request(body: &RawObject) -> Result<ChatRequest, GatewayError> {
    let _ = body;
    Err(GatewayError::internal(
        "openai_chat::decode_request is not built yet",
    ))
}

/// Encodes a canonical request for a Chat Completions provider, for `model`.
/// Streams ask for usage (`stream_options.include_usage`).
pub fn encode_request(req: &ChatRequest, model: &str, max_tokens_field: MaxTokensField) -> Vec<u8> {
    let _ = (req, model, max_tokens_field);
    Vec::new()
}

/// Decodes a provider's Chat Completions response.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let _ = body;
    Err(GatewayError::internal(
        "openai_chat::decode_response is not built yet",
    ))
}

/// Encodes a canonical response for a Chat Completions client.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let _ = resp;
    Vec::new()
}

/// Decodes a provider's Chat Completions stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StreamDecode for StreamDecoder {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        let _ = (event, out);
        Ok(())
    }
    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        let _ = out;
        Ok(())
    }
}

/// Encodes canonical events as a Chat Completions stream.
#[derive(Debug, Default)]
pub struct StreamEncoder {}

impl StreamEncoder {
    /// An encoder for one stream; `include_usage` is the client's
    /// `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        let _ = include_usage;
        Self::default()
    }
}

impl StreamEncode for StreamEncoder {
    fn event(&mut self, event: &StreamEvent, out: &mut BytesMut) {
        let _ = (event, out);
    }
    fn error(&mut self, error: &crate::error::GatewayError, out: &mut BytesMut) {
        let _ = (error, out);
    }
}
