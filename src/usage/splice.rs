//! `usage.cost` written into OpenAI-format answers, as OpenRouter does: a
//! JSON number of dollars (`"cost":0.00123`) added to the `usage` object
//! of bytes already encoded, without re-encoding the rest.

use std::sync::LazyLock;

use memchr::memmem::FinderRev;

use super::money::Nanos;

static USAGE: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(b"\"usage\":"));

/// `bytes` with `,"cost":<cost>` added at the end of its last `usage`
/// object; `None` when it has none (or `null`), or when that object
/// already has a `cost` (an upstream's own, left as it is).
pub(crate) fn splice_cost(bytes: &[u8], cost: Nanos) -> Option<Vec<u8>> {
    let at = USAGE.rfind(bytes)?;
    let mut open = at + USAGE.needle().len();
    while bytes.get(open)?.is_ascii_whitespace() {
        open += 1;
    }
    if bytes[open] != b'{' {
        return None;
    }
    let (close, empty, has_cost) = object_end(&bytes[open..])?;
    if has_cost {
        return None;
    }
    let close = open + close;
    let field = format!("{}\"cost\":{cost}", if empty { "" } else { "," });
    let mut out = Vec::with_capacity(bytes.len() + field.len());
    out.extend_from_slice(&bytes[..close]);
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(&bytes[close..]);
    Some(out)
}

/// For the JSON object at the start of `s`: the offset of its closing
/// brace, whether it is empty, and whether it has a top-level `cost` key.
fn object_end(s: &[u8]) -> Option<(usize, bool, bool)> {
    let mut depth = 0usize;
    let mut i = 0;
    let mut empty = true;
    let mut has_cost = false;
    while i < s.len() {
        match s[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < s.len() && s[i] != b'"' {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 && &s[start..i.min(s.len())] == b"cost" {
                    has_cost = true;
                }
                empty = false;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some((i, empty, has_cost));
                }
            }
            b if !b.is_ascii_whitespace() && depth >= 1 => empty = false,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splice(s: &str, nanos: u64) -> Option<String> {
        splice_cost(s.as_bytes(), Nanos(nanos)).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn cost_goes_at_the_end_of_the_usage_object() {
        assert_eq!(
            splice(r#"data: {"choices":[],"usage":{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":0}}}"#, 1_230_000).as_deref(),
            Some(r#"data: {"choices":[],"usage":{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"cost":0.00123}}"#)
        );
        assert_eq!(
            splice(r#"{"usage": {}}"#, 1).as_deref(),
            Some(r#"{"usage": {"cost":0.000000001}}"#)
        );
        assert_eq!(splice(r#"{"usage":null}"#, 1), None);
        assert_eq!(
            splice(r#"{"choices":[{"delta":{"content":"\"usage\":{}"}}]}"#, 1),
            None
        );
        assert_eq!(splice(r#"{"usage":{"cost":0.5}}"#, 1), None);
        assert_eq!(
            splice(r#"{"usage":{"a":"}"}}"#, 1).as_deref(),
            Some(r#"{"usage":{"a":"}","cost":0.000000001}}"#)
        );
    }
}
