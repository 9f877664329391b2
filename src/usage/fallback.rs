//! The input tokens a summary stands in when the provider's count never
//! came (the client left first, or the answer carried no usage): the
//! request's body estimate, with inline media discounted and a cap.
//!
//! The body estimate is a quarter of the body's bytes, which is right for
//! text and far off for an image or a PDF sent inline as base64: a
//! megabyte of base64 is a few thousand tokens to the provider, not a
//! quarter of a million. The estimate itself stays as it is (budgets
//! reserve with it, and an overestimate is safe there); what is recorded
//! as spent is corrected here, only when it is needed, so that the body
//! is searched for media only in that rare case.

use memchr::memmem;

use crate::request::RequestBody;

/// No provider reads more than this in one request today: the largest
/// context windows are 1 to 2 million tokens. The price table does not
/// know each model's window, so one cap serves all.
pub(crate) const MAX_INPUT_TOKENS: u64 = 2_000_000;

/// What one inline image or document counts instead of its base64 text:
/// about what an image of a megapixel costs on Anthropic or OpenAI (a
/// PDF's pages cost more each, but a guess of this size is closer than
/// the bytes).
pub(crate) const TOKENS_PER_MEDIA: u64 = 1_600;

/// Base64 runs shorter than this are left in the estimate: a short
/// string under a `data` key is as likely text as media.
const MIN_MEDIA_BYTES: u64 = 1_024;

/// `estimate` (input tokens, from the body's size) with the base64 media
/// of `body` counted as [`TOKENS_PER_MEDIA`] each instead of their bytes,
/// and at most [`MAX_INPUT_TOKENS`].
pub(crate) fn input_tokens(estimate: u64, body: Option<&RequestBody>) -> u64 {
    let (bytes, count) = body.map_or((0, 0), |b| {
        b.raw()
            .iter()
            .map(|(_, v)| inline_media(v.get().as_bytes()))
            .fold((0, 0), |(b, c), (b2, c2)| (b + b2, c + c2))
    });
    estimate
        .saturating_sub(bytes / 4)
        .saturating_add(count.saturating_mul(TOKENS_PER_MEDIA))
        .min(MAX_INPUT_TOKENS)
}

/// Bytes of base64 media in raw JSON `json`, and how many: data URLs
/// (`"data:image/png;base64,…"`, OpenAI's images and files) and the
/// string values of `data` keys (Anthropic's `source.data`, Gemini's
/// `inlineData.data`) that are long enough to be media.
fn inline_media(json: &[u8]) -> (u64, u64) {
    let (mut bytes, mut count) = (0u64, 0u64);
    let mut add = |len: u64| {
        if len >= MIN_MEDIA_BYTES {
            bytes += len;
            count += 1;
        }
    };
    for at in memmem::find_iter(json, b";base64,") {
        add(string_len(&json[at + 8..]));
    }
    for at in memmem::find_iter(json, b"\"data\"") {
        let rest = skip_ws(&json[at + 6..]);
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        let Some(value) = skip_ws(rest).strip_prefix(b"\"") else {
            continue;
        };
        // A data URL under a `data` key was counted above.
        if !value.starts_with(b"data:") {
            add(string_len(value));
        }
    }
    (bytes, count)
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

/// Bytes up to the closing quote of the JSON string `s` is inside of.
/// Base64 has no escapes, so the first quote ends it; text with escapes
/// is cut short, which only keeps more of it in the estimate.
fn string_len(s: &[u8]) -> u64 {
    memchr::memchr(b'"', s).unwrap_or(s.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::RawObject;

    fn body(s: &str) -> RequestBody {
        RequestBody::new(RawObject::parse(s.as_bytes()).unwrap())
    }

    #[test]
    fn base64_media_counts_as_an_image_not_as_its_bytes() {
        let image = "A".repeat(400_000);
        let text = "word ".repeat(200);
        let b = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[
                {{"type":"text","text":"{text}"}},
                {{"type":"image","source":{{"type":"base64","media_type":"image/png","data": "{image}"}}}},
                {{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}},
                {{"type":"text","text":"data"}}]}}]}}"#
        );
        let naive = (b.len() as u64).div_ceil(4);
        let got = input_tokens(naive, Some(&body(&b)));
        // The text, the JSON around it, and two images.
        let want = naive - 2 * 400_000 / 4 + 2 * TOKENS_PER_MEDIA;
        assert_eq!(got, want);
        assert!(got < 5_000, "{got}");
        // Short `data` strings are text.
        let b = r#"{"model":"m","messages":[{"role":"user","content":"x"}],"data":"abc"}"#;
        assert_eq!(input_tokens(20, Some(&body(b))), 20);
    }

    #[test]
    fn the_estimate_is_capped() {
        assert_eq!(input_tokens(u64::MAX, None), MAX_INPUT_TOKENS);
        assert_eq!(input_tokens(7, None), 7);
    }
}
