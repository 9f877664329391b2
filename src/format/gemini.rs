//! Google Gemini `generateContent` (provider side).

use super::StreamDecode;
use crate::canonical::{ChatRequest, ChatResponse, StreamEvent};
use crate::error::GatewayError;
use crate::sse::SseEvent;

/// Encodes a canonical request as a `generateContent` /
/// `streamGenerateContent` body (the model travels in the URL).
pub fn encode_request(req: &ChatRequest) -> Vec<u8> {
    let _ = req;
    Vec::new()
}

/// Encodes a canonical request as a `countTokens` body.
pub fn encode_count_tokens(req: &ChatRequest, model: &str) -> Vec<u8> {
    let _ = (req, model);
    Vec::new()
}

/// Decodes a `generateContent` response.
pub fn decode_response(body: &[u8], model: &str) -> Result<ChatResponse, GatewayError> {
    let _ = (body, model);
    Err(GatewayError::internal(
        "gemini::decode_response is not built yet",
    ))
}

/// Decodes a `streamGenerateContent?alt=sse` stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {}

impl StreamDecoder {
    /// A decoder for one stream of `model`.
    pub fn new(model: &str) -> Self {
        let _ = model;
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
