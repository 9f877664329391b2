//! What a request will use, guessed from its body before it is sent:
//! the one estimate that budgets and rate limits reserve, the cost sort
//! ranks providers by, and the meter stands in with when a provider's
//! counts never come.
//!
//! Only the body's top-level fields are read, never decoded further, so a
//! request passed through in its own format is still never decoded. A
//! request computes it once ([`RequestBody::estimate`]), on first use,
//! and every layer and attempt shares it.

use crate::json::RawObject;
#[cfg(doc)]
use crate::request::RequestBody;

/// What a request will use at most, as far as its body tells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// About how many input tokens the body holds
    /// ([`estimate_input_tokens`]).
    pub input_tokens: u64,
    /// The most output tokens it asks for, if it names a limit
    /// ([`requested_max_output_tokens`]).
    pub max_output_tokens: Option<u64>,
}

impl Estimate {
    /// The estimate of `body`.
    pub fn of(body: &RawObject) -> Self {
        Estimate {
            input_tokens: estimate_input_tokens(body),
            max_output_tokens: requested_max_output_tokens(body),
        }
    }
}

/// About how many input tokens a request body holds: its size in bytes
/// written compactly (as a client's JSON encoder sends it) over four, a
/// common rule of thumb for English text and JSON (and what the mock
/// upstream counts), rounded up. Summed from the parsed top-level fields,
/// without serializing them.
pub fn estimate_input_tokens(body: &RawObject) -> u64 {
    // `"key":value,` is the key and value plus four bytes; the last field
    // has no comma, and the braces add two.
    let fields: usize = body.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum();
    let bytes = (fields + 1).max(2);
    (bytes as u64).div_ceil(4)
}

/// The top-level body fields that cap an answer's length, in each client
/// format but Gemini's (which nests its own in `generationConfig`).
pub(crate) const OUTPUT_CAPS: &[&str] =
    &["max_tokens", "max_completion_tokens", "max_output_tokens"];

/// The most output tokens the request asks for: the largest of
/// `max_tokens` (Chat Completions, Anthropic), `max_completion_tokens`
/// (Chat Completions) and `max_output_tokens` (Responses), whichever its
/// format's decoder reads (each prefers a different one), else
/// `generationConfig.maxOutputTokens` (Gemini). `None` when it asks for
/// no limit, or gives one that is not a count (the provider's 400 to
/// give, not a reason to reserve nothing).
pub fn requested_max_output_tokens(body: &RawObject) -> Option<u64> {
    OUTPUT_CAPS
        .iter()
        .filter_map(|f| body.get_as::<u64>(f).ok().flatten())
        .max()
        .or_else(|| {
            let config = body
                .get_as::<serde_json::Value>("generationConfig")
                .ok()??;
            config.get("maxOutputTokens")?.as_u64()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> RawObject {
        RawObject::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn input_is_the_compact_bodys_bytes_over_four() {
        let text = "x".repeat(4001);
        let b = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{text}"}}]}}"#);
        assert_eq!(
            estimate_input_tokens(&body(&b)),
            (b.len() as u64).div_ceil(4)
        );
        // Whitespace between top-level fields is not the client's prompt.
        let compact = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let spaced = r#"{ "model" : "m" ,  "messages":[{"role":"user","content":"hi"}] }"#;
        assert_eq!(
            estimate_input_tokens(&body(spaced)),
            (compact.len() as u64).div_ceil(4)
        );
        assert_eq!(estimate_input_tokens(&body("{}")), 1);
    }

    #[test]
    fn the_estimate_holds_both() {
        let e = Estimate::of(&body(r#"{"model":"m","messages":[],"max_tokens":9}"#));
        assert_eq!(e.max_output_tokens, Some(9));
        assert_eq!(
            e.input_tokens,
            (r#"{"model":"m","messages":[],"max_tokens":9}"#.len() as u64).div_ceil(4)
        );
    }

    #[test]
    fn max_output_in_each_format() {
        for (b, want) in [
            (r#"{"max_tokens":100}"#, Some(100)),
            (
                r#"{"max_completion_tokens":200,"max_tokens":100}"#,
                Some(200),
            ),
            // Several: the largest, whichever a decoder would read.
            (
                r#"{"max_completion_tokens":10,"max_tokens":5000}"#,
                Some(5000),
            ),
            (r#"{"max_output_tokens":300,"max_tokens":10}"#, Some(300)),
            (r#"{"max_output_tokens":300}"#, Some(300)),
            (r#"{"generationConfig":{"maxOutputTokens":400}}"#, Some(400)),
            (r#"{"max_tokens":-1}"#, None),
            (r#"{"max_tokens":"many"}"#, None),
            (r#"{"messages":[]}"#, None),
        ] {
            assert_eq!(requested_max_output_tokens(&body(b)), want, "{b}");
        }
    }
}
