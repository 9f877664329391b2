//! `reasoning_details`: where a Chat Completions answer carries reasoning
//! that must come back unchanged (Anthropic's signed `thinking` and
//! `redacted_thinking`), and where a client's next request brings it back.
//!
//! The shape is OpenRouter's, which several SDKs and agents already send
//! back: `{type: "reasoning.text", text, signature, format, index}` and
//! `{type: "reasoning.encrypted", data, format, index}`, with `format:
//! "anthropic-claude-v1"`. Clients pass the assistant message back as they
//! got it (the official openai SDKs keep unknown fields), and streamed
//! entries carry an `index` so that the openai SDKs' stream accumulators
//! merge them.

use serde_json::{json, Value};

use super::decode_request::bad;
use crate::canonical::Part;
use crate::error::GatewayError;

/// The `format` of entries whose signature or data Anthropic issued.
const ANTHROPIC: &str = "anthropic-claude-v1";

/// The entry for a reasoning part that must come back unchanged, numbered
/// `index`; `None` for reasoning without a signature, which needs none.
pub(super) fn entry(part: &Part, index: usize) -> Option<Value> {
    match part {
        Part::Reasoning {
            text,
            signature: Some(sig),
        } if !sig.is_empty() => Some(signed(text, sig, index)),
        Part::RedactedReasoning { data } => Some(redacted(data, index)),
        _ => None,
    }
}

/// A `reasoning.text` entry with its signature.
pub(super) fn signed(text: &str, signature: &str, index: usize) -> Value {
    json!({"type": "reasoning.text", "text": text, "signature": signature,
           "format": ANTHROPIC, "index": index})
}

/// A `reasoning.encrypted` entry.
pub(super) fn redacted(data: &str, index: usize) -> Value {
    json!({"type": "reasoning.encrypted", "data": data, "format": ANTHROPIC, "index": index})
}

/// The reasoning parts of an assistant message's `reasoning_details`, in
/// order. Signatures and encrypted data are kept only from entries marked
/// as Anthropic's (another provider's would be refused there); summaries
/// and unsigned text become unsigned reasoning; unknown entry types are
/// skipped.
pub(super) fn decode(details: &Value, path: &str) -> Result<Vec<Part>, GatewayError> {
    let Value::Array(entries) = details else {
        return Err(bad(path, format!("`{path}` must be an array")));
    };
    let mut parts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let obj = e
            .as_object()
            .ok_or_else(|| bad(&p, format!("`{p}` must be an object")))?;
        let field = |key: &str| obj.get(key).and_then(Value::as_str);
        let anthropic = field("format") == Some(ANTHROPIC);
        match field("type") {
            Some("reasoning.text") => {
                let signature = field("signature")
                    .filter(|s| anthropic && !s.is_empty())
                    .map(str::to_owned);
                parts.push(Part::Reasoning {
                    text: field("text").unwrap_or_default().to_owned(),
                    signature,
                });
            }
            Some("reasoning.summary") => {
                if let Some(text) = field("summary").filter(|s| !s.is_empty()) {
                    parts.push(Part::Reasoning {
                        text: text.to_owned(),
                        signature: None,
                    });
                }
            }
            Some("reasoning.encrypted") if anthropic => {
                if let Some(data) = field("data").filter(|s| !s.is_empty()) {
                    parts.push(Part::RedactedReasoning {
                        data: data.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_and_redacted_parts_round_trip() {
        let parts = vec![
            Part::Reasoning {
                text: "Two cities.".into(),
                signature: Some("sig-1".into()),
            },
            Part::RedactedReasoning {
                data: "opaque".into(),
            },
        ];
        let details: Vec<Value> = parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| entry(p, i))
            .collect();
        assert_eq!(
            details[0],
            json!({"type": "reasoning.text", "text": "Two cities.", "signature": "sig-1",
                   "format": "anthropic-claude-v1", "index": 0})
        );
        assert_eq!(decode(&Value::Array(details), "d").unwrap(), parts);
        let unsigned = Part::Reasoning {
            text: "x".into(),
            signature: None,
        };
        assert_eq!(entry(&unsigned, 0), None);
    }

    #[test]
    fn foreign_signatures_are_not_kept() {
        let details = json!([
            {"type": "reasoning.text", "text": "t", "signature": "gemini-sig", "format": "google-gemini-v1"},
            {"type": "reasoning.encrypted", "data": "gAAAA", "format": "openai-responses-v1"},
            {"type": "reasoning.summary", "summary": "s"},
            {"type": "something.else"}
        ]);
        assert_eq!(
            decode(&details, "d").unwrap(),
            vec![
                Part::Reasoning {
                    text: "t".into(),
                    signature: None
                },
                Part::Reasoning {
                    text: "s".into(),
                    signature: None
                },
            ]
        );
        let e = decode(&json!({"x": 1}), "messages[1].reasoning_details").unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(decode(&json!([3]), "d").is_err());
    }
}
