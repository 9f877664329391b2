//! A one-pass look at the keys of JSON text, without parsing it: what the
//! meter uses to tell which SSE events carry usage, a finish reason or an
//! error, and how much text an answer holds.
//!
//! The scan walks from string to string: each `"` it stops at opens a
//! string, whose end is the next quote not escaped by a backslash; a
//! string followed by `:` (whitespace allowed, as some servers write
//! `"key": value`) is a key. So the text of a message, escaped inside
//! its string, is stepped over and never taken for a key.

use memchr::memchr;

use crate::format::WireFormat;

/// Each key of the JSON text `json`, at any depth, in order: its name (as
/// written, escapes and all) and the text after its colon, from the first
/// byte of its value.
pub(crate) fn keys(json: &[u8]) -> Keys<'_> {
    Keys { json, at: 0 }
}

/// See [`keys`].
pub(crate) struct Keys<'a> {
    json: &'a [u8],
    /// Where the scan goes on: never inside a string.
    at: usize,
}

impl<'a> Iterator for Keys<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let json = self.json;
        loop {
            let open = self.at + memchr(b'"', json.get(self.at..)?)?;
            let close = open + 1 + string_len(&json[open + 1..]) as usize;
            let after = json.get(close + 1..).unwrap_or_default();
            let rest = skip_ws(after);
            if let Some(value) = rest.strip_prefix(b":") {
                let value = skip_ws(value);
                self.at = json.len() - value.len();
                return Some((&json[open + 1..close], value));
            }
            self.at = close + 1;
        }
    }
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

/// Bytes up to the closing quote of a JSON string whose opening quote
/// came just before `s` (all of `s` when it does not close).
pub(crate) fn string_len(s: &[u8]) -> u64 {
    let mut from = 0;
    while let Some(i) = memchr(b'"', &s[from..]) {
        let end = from + i;
        let backslashes = s[..end].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 0 {
            return end as u64;
        }
        from = end + 1;
    }
    s.len() as u64
}

/// The keys whose string values are what the model wrote (text,
/// reasoning, tool arguments), in `format`'s stream events (`stream`) or
/// its complete answers.
pub(crate) fn content_keys(format: WireFormat, stream: bool) -> &'static [&'static [u8]] {
    match (format, stream) {
        (WireFormat::OpenAiChat, _) => &[b"content", b"arguments", b"reasoning_content"],
        (WireFormat::Anthropic, true) => &[b"text", b"partial_json", b"thinking"],
        (WireFormat::Anthropic, false) => &[b"text", b"thinking"],
        (WireFormat::OpenAiResponses, true) => &[b"delta"],
        (WireFormat::OpenAiResponses, false) => &[b"text", b"arguments"],
        (WireFormat::Gemini, _) => &[b"text"],
    }
}

/// Bytes of what the model wrote in a complete answer in `format` (each
/// escape counted as written): enough to estimate its output tokens when
/// the answer carries no usage.
pub(crate) fn content_len(format: WireFormat, json: &[u8]) -> u64 {
    let wanted = content_keys(format, false);
    keys(json)
        .filter(|(k, _)| wanted.contains(k))
        .filter_map(|(_, v)| v.strip_prefix(b"\""))
        .map(string_len)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_with_or_without_spaces_and_never_in_text() {
        let json = br#"{"a":1, "b" : {"c":"x \"d\": y", "e":"\\"}, "f":[{"g" :null}]}"#;
        let names: Vec<&[u8]> = keys(json).map(|(k, _)| k).collect();
        assert_eq!(names, [&b"a"[..], b"b", b"c", b"e", b"f", b"g"]);
        let (_, b) = keys(json).nth(1).unwrap();
        assert!(b.starts_with(b"{\"c\""));
        // Cut short: what is there is read, nothing is invented.
        assert_eq!(keys(br#"{"a":"unterminated"#).count(), 1);
        assert_eq!(keys(b"").count(), 0);
    }

    #[test]
    fn content_of_complete_answers() {
        let chat = br#"{"choices":[{"message":{"role":"assistant","content":"Hello there","tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#;
        // Escapes count as written: `{\"a\":1}` is nine bytes.
        assert_eq!(content_len(WireFormat::OpenAiChat, chat), 11 + 9);
        let anthropic =
            br#"{"content":[{"type":"text","text": "Hi"},{"type":"thinking","thinking":"hmm"}]}"#;
        assert_eq!(content_len(WireFormat::Anthropic, anthropic), 5);
        let responses = br#"{"text":{"format":{"type":"text"}},"output":[{"content":[{"type":"output_text","text":"Yes"}]}]}"#;
        assert_eq!(content_len(WireFormat::OpenAiResponses, responses), 3);
    }
}
