//! OpenAI Responses (client side; a Responses provider is only used for
//! same-format pass-through).

use bytes::BytesMut;

use super::StreamEncode;
use crate::canonical::{ChatRequest, ChatResponse, StreamEvent};
use crate::error::GatewayError;
use crate::json::RawObject;

/// Decodes a client's Responses request.
pub fn decode_request(body: &RawObject) -> Result<ChatRequest, GatewayError> {
    let _ = body;
    Err(GatewayError::internal(
        "responses::decode_request is not built yet",
    ))
}

/// Encodes a canonical response for a Responses client.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let _ = resp;
    Vec::new()
}

/// Encodes canonical events as a Responses stream.
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
    fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        let _ = (error, out);
    }
}
