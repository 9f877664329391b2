//! Anthropic Messages.

use bytes::BytesMut;

use super::{StreamDecode, StreamEncode};
use crate::canonical::{ChatRequest, ChatResponse, StreamEvent};
use crate::error::GatewayError;
use crate::json::RawObject;
use crate::sse::SseEvent;

/// Decodes a client's Anthropic Messages request.
pub fn decode_request(body: &RawObject) -> Result<ChatRequest, GatewayError> {
    let _ = body;
    Err(GatewayError::internal(
        "anthropic::decode_request is not built yet",
    ))
}

/// Encodes a canonical request for a Anthropic Messages provider, for `model`.
pub fn encode_request(req: &ChatRequest, model: &str) -> Vec<u8> {
    let _ = (req, model);
    Vec::new()
}

/// Decodes a provider's Anthropic Messages response.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let _ = body;
    Err(GatewayError::internal(
        "anthropic::decode_response is not built yet",
    ))
}

/// Encodes a canonical response for a Anthropic Messages client.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let _ = resp;
    Vec::new()
}

/// Decodes a provider's Anthropic Messages stream.
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

/// Encodes canonical events as a Anthropic Messages stream.
#[derive(Debug, Default)]
pub struct StreamEncoder {}

impl StreamEncoder {
    /// An encoder for one stream.
    pub fn new() -> Self {
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

/// Encodes a canonical request as a `count_tokens` body for `model`.
pub fn encode_count_tokens(req: &ChatRequest, model: &str) -> Vec<u8> {
    let _ = (req, model);
    Vec::new()
}
