//! Helpers for the mock's own tests.

use std::time::Duration;

use serde_json::Value;

use crate::sse::{SseEvent, SseParser};

/// A plain-HTTP client with a timeout that keeps every test bounded.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A body read to its end: the bytes, and whether it ended cleanly (false
/// when the connection was closed mid-body).
pub(crate) struct ReadBody {
    pub bytes: Vec<u8>,
    pub clean: bool,
}

/// Reads `resp` chunk by chunk until the end or an error.
pub(crate) async fn read_body(mut resp: reqwest::Response) -> ReadBody {
    let mut bytes = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c),
            Ok(None) => return ReadBody { bytes, clean: true },
            Err(_) => {
                return ReadBody {
                    bytes,
                    clean: false,
                }
            }
        }
    }
}

/// Parses SSE bytes into events.
pub(crate) fn sse_events(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.feed(bytes, &mut out);
    out
}

/// The JSON data of each SSE event (events whose data is not JSON are
/// skipped).
pub(crate) fn sse_json(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    sse_events(bytes)
        .into_iter()
        .filter_map(|e| {
            serde_json::from_str(&e.data)
                .ok()
                .map(|v: Value| (e.event, v))
        })
        .collect()
}

/// Parses a JSON body.
pub(crate) fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON body")
}
