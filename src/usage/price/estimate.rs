//! What a request will use, guessed from its body before it is sent: for
//! ranking providers by cost, and for budget reservations.

use crate::json::RawObject;

/// About how many input tokens a request body holds: its size in bytes
/// over four (a common rule of thumb for English text and JSON), rounded
/// up. Read from the parsed top-level fields, without serializing them.
pub fn estimate_input_tokens(body: &RawObject) -> u64 {
    // `"key":value,` for each field, and the braces.
    let bytes: usize = body
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum::<usize>()
        + 2;
    (bytes as u64).div_ceil(4)
}

/// The most output tokens the request asks for, in whichever field its
/// format names it: `max_tokens` (Chat Completions, Anthropic),
/// `max_completion_tokens` (Chat Completions), `max_output_tokens`
/// (Responses), `generationConfig.maxOutputTokens` (Gemini). `None` when
/// it asks for no limit (or gives one that is not a count).
pub fn requested_max_output_tokens(body: &RawObject) -> Option<u64> {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .into_iter()
        .find_map(|f| body.get_as::<u64>(f).ok().flatten())
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
    fn input_is_about_a_quarter_of_the_bytes() {
        let text = "x".repeat(4000);
        let b = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{text}"}}]}}"#);
        let est = estimate_input_tokens(&body(&b));
        let real = (b.len() as u64).div_ceil(4);
        assert!(est.abs_diff(real) <= 2, "{est} vs {real}");
        assert!(estimate_input_tokens(&body("{}")) >= 1);
    }

    #[test]
    fn max_output_in_each_format() {
        for (b, want) in [
            (r#"{"max_tokens":100}"#, Some(100)),
            (
                r#"{"max_completion_tokens":200,"max_tokens":100}"#,
                Some(200),
            ),
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
