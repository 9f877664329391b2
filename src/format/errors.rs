//! Errors on the wire: rendering ours in the client's format, and reading
//! a provider's error answer.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::WireFormat;
use crate::error::{ErrorKind, GatewayError, LimitScope, MAX_RETRY_AFTER};

/// The JSON body of `err` in the client's format.
///
/// OpenAI formats: `{"error":{"message","type","code","param"}}`;
/// Anthropic: `{"type":"error","error":{"type","message"}}`.
pub fn error_body(format: WireFormat, err: &GatewayError) -> Vec<u8> {
    let body = match format {
        WireFormat::Anthropic => json!({
            "type": "error",
            "error": { "type": anthropic_type(err), "message": err.message() },
        }),
        WireFormat::Gemini => json!({
            "error": { "code": err.status().as_u16(), "message": err.message(), "status": gemini_status(err) },
        }),
        WireFormat::OpenAiChat | WireFormat::OpenAiResponses => json!({
            "error": {
                "message": err.message(),
                "type": openai_type(err),
                "param": err.param(),
                "code": err.code().map(str::to_owned).or_else(|| openai_code(err).map(str::to_owned)),
            },
        }),
    };
    serde_json::to_vec(&body).expect("json serializes")
}

/// The Anthropic error `type` for `err`.
pub(crate) fn anthropic_type(err: &GatewayError) -> &'static str {
    match err.kind() {
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::PayloadTooLarge => "request_too_large",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::InsufficientFunds => "insufficient_funds",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::InvalidRequest
        | ErrorKind::ContextLengthExceeded
        | ErrorKind::UpstreamClient => "invalid_request_error",
        _ => "api_error",
    }
}

/// The OpenAI error `type` for `err`.
pub(crate) fn openai_type(err: &GatewayError) -> &'static str {
    match err.kind() {
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::InsufficientFunds => "insufficient_funds",
        ErrorKind::Timeout => "timeout",
        ErrorKind::InvalidRequest
        | ErrorKind::ContextLengthExceeded
        | ErrorKind::UpstreamClient
        | ErrorKind::PayloadTooLarge => "invalid_request_error",
        _ => "server_error",
    }
}

fn openai_code(err: &GatewayError) -> Option<&'static str> {
    match err.kind() {
        ErrorKind::ContextLengthExceeded => Some("context_length_exceeded"),
        ErrorKind::PayloadTooLarge => Some("request_too_large"),
        ErrorKind::RateLimited => Some("rate_limit_exceeded"),
        _ => None,
    }
}

fn gemini_status(err: &GatewayError) -> &'static str {
    match err.status().as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 => "RESOURCE_EXHAUSTED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Builds the error for a provider's non-2xx answer: its status, its
/// message (from any of the usual error shapes), `Retry-After`, and the
/// context-length case, which changes the route.
pub fn parse_upstream_error(
    format: WireFormat,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> GatewayError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (message, upstream_type, code) = match &parsed {
        Some(v) => {
            let e = v.get("error").unwrap_or(v);
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| e.as_str())
                .or_else(|| v.get("message").and_then(Value::as_str))
                .or_else(|| v.get("detail").and_then(Value::as_str))
                .map(str::to_owned);
            let ty = e
                .get("type")
                .or_else(|| e.get("status"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let code = e.get("code").and_then(|c| match c {
                Value::String(s) => Some(s.clone()),
                _ => None,
            });
            (message, ty, code)
        }
        None => (None, None, None),
    };
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("provider answered {status}")
        } else {
            text.chars().take(512).collect()
        }
    });
    let mut err = GatewayError::from_upstream_status(status, message.clone());
    if upstream_type.as_deref() == Some("overloaded_error") {
        err = err.with_kind(ErrorKind::Overloaded);
    }
    if is_context_length(format, status, code.as_deref(), &message) {
        err = err.with_kind(ErrorKind::ContextLengthExceeded);
    }
    if status == StatusCode::TOO_MANY_REQUESTS && key_wide_limit(headers, code.as_deref()) {
        err = err.with_limit_scope(LimitScope::Key);
    }
    if let Some(code) = code {
        err = err.with_code(code);
    }
    let after = retry_after(headers)
        .or_else(|| anthropic_reset(headers, std::time::SystemTime::now()))
        .or_else(|| anthropic_unified_reset(headers, std::time::SystemTime::now()))
        .or_else(|| parsed.as_ref().and_then(gemini_retry_delay));
    if let Some(after) = after {
        err = err.with_retry_after(after);
    }
    err
}

/// The time until Anthropic's exhausted rate limit resets, from its
/// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`
/// headers (RFC 3339); a limit whose `-remaining` is above zero is not the
/// one that was hit.
fn anthropic_reset(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .iter()
        .filter(|kind| {
            headers
                .get(format!("anthropic-ratelimit-{kind}-remaining"))
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v.trim() == "0")
        })
        .filter_map(|kind| {
            let v = headers.get(format!("anthropic-ratelimit-{kind}-reset"))?;
            unix_seconds(v.to_str().ok()?)
        })
        .max()
        .filter(|at| *at > now)
        .map(|at| Duration::from_secs(at - now))
}

/// Whether a 429 says its limit covers every model of the key rather than
/// the one asked for: an Anthropic subscription's (unified) limit, or
/// OpenAI's exhausted quota. The routing layers act on the
/// [`LimitScope`] this sets, never on these names.
fn key_wide_limit(headers: &HeaderMap, code: Option<&str>) -> bool {
    code == Some("insufficient_quota")
        || headers
            .get("anthropic-ratelimit-unified-status")
            .is_some_and(|v| v.as_bytes() == b"rejected")
}

/// The time until an Anthropic subscription's limit resets, from
/// `anthropic-ratelimit-unified-reset` (Unix seconds).
fn anthropic_unified_reset(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let at: u64 = headers
        .get("anthropic-ratelimit-unified-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (at > now).then(|| Duration::from_secs(at - now))
}

/// Seconds since the Unix epoch of an RFC 3339 time
/// (`2026-11-21T10:00:00Z`, `...00.5+01:00`).
fn unix_seconds(t: &str) -> Option<u64> {
    let b = t.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(b.get(r)?).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = 19;
    if b.get(rest) == Some(&b'.') {
        rest += 1;
        while b.get(rest).is_some_and(u8::is_ascii_digit) {
            rest += 1;
        }
    }
    let offset = match b.get(rest)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let off = num(rest + 1..rest + 3)? * 3600 + num(rest + 4..rest + 6)? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    u64::try_from(days * 86400 + h * 3600 + mi * 60 + sec - offset).ok()
}

/// Gemini's `RetryInfo` detail (`"retryDelay": "2s"`).
fn gemini_retry_delay(body: &Value) -> Option<Duration> {
    body.get("error")?
        .get("details")?
        .as_array()?
        .iter()
        .find(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })?
        .get("retryDelay")?
        .as_str()?
        .strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .and_then(seconds)
}

/// The providers say "context too long" only in their messages (Anthropic,
/// Gemini) or in OpenAI's `code`; this is the one place that reads them.
fn is_context_length(
    format: WireFormat,
    status: StatusCode,
    code: Option<&str>,
    msg: &str,
) -> bool {
    if code == Some("context_length_exceeded") {
        return true;
    }
    if status != StatusCode::BAD_REQUEST {
        return false;
    }
    let msg = msg.to_ascii_lowercase();
    match format {
        WireFormat::Anthropic => msg.contains("prompt is too long"),
        WireFormat::Gemini => msg.contains("exceeds the maximum number of tokens"),
        _ => msg.contains("maximum context length") || msg.contains("context length"),
    }
}

/// `retry-after-ms` or `retry-after` (seconds) from a response's headers.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(after) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|ms| seconds(ms / 1000.0))
    {
        return Some(after);
    }
    let secs = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    seconds(secs)
}

/// `secs` as a duration (a day when too large for one: the error caps
/// every wait at [`MAX_RETRY_AFTER`]); `None` when negative or not a number.
fn seconds(secs: f64) -> Option<Duration> {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) => Some(d),
        // Too large for a `Duration` (NaN compares false).
        Err(_) if secs > 0.0 => Some(MAX_RETRY_AFTER),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `upstream_error` fuzz target: a `retry-after` (or
    /// `retry-after-ms`, or Gemini `retryDelay`) too large for a `Duration`
    /// panicked; one that fits a `Duration` but not the clock panicked in
    /// the cooldowns.
    #[test]
    fn a_retry_after_too_large_is_capped() {
        for (name, value) in [("retry-after", "2e30"), ("retry-after-ms", "1e300")] {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            let err = parse_upstream_error(
                WireFormat::OpenAiChat,
                StatusCode::TOO_MANY_REQUESTS,
                &h,
                b"{}",
            );
            assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER), "{name}: {value}");
        }
        let body = br#"{"error":{"code":429,"message":"slow down","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1e300s"}]}}"#;
        let err = parse_upstream_error(
            WireFormat::Gemini,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            body,
        );
        assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER));
        let mut h = HeaderMap::new();
        h.insert("retry-after", "NaN".parse().unwrap());
        let err = parse_upstream_error(
            WireFormat::OpenAiChat,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            b"{}",
        );
        assert_eq!(err.retry_after(), None);
        // Past a day, a wait is a day: routing adds it to the clock.
        let mut h = HeaderMap::new();
        h.insert("retry-after", "1e19".parse().unwrap());
        h.insert(
            "anthropic-ratelimit-requests-reset",
            "9999-12-31T00:00:00Z".parse().unwrap(),
        );
        for format in [WireFormat::OpenAiChat, WireFormat::Anthropic] {
            let err = parse_upstream_error(format, StatusCode::TOO_MANY_REQUESTS, &h, b"{}");
            assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER));
            let _ = std::time::Instant::now() + err.retry_after().unwrap();
        }
        h.remove("retry-after");
        let err = parse_upstream_error(
            WireFormat::Anthropic,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            b"{}",
        );
        assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER));
        // The subscription limit's reset, in Unix seconds, far ahead.
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-ratelimit-unified-reset",
            "99999999999999999".parse().unwrap(),
        );
        let err = parse_upstream_error(
            WireFormat::Anthropic,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            b"{}",
        );
        assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER));
        let _ = std::time::Instant::now() + err.retry_after().unwrap();
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        let err = parse_upstream_error(
            WireFormat::OpenAiChat,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            b"{}",
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn rate_limit_resets_from_anthropic_and_gemini() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2026-11-21T10:00:00Z"), Some(1_795_255_200));
        assert_eq!(
            unix_seconds("2026-11-21T11:00:00.25+01:00"),
            Some(1_795_255_200)
        );
        assert_eq!(unix_seconds("not a time"), None);
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_795_255_190);
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-ratelimit-requests-reset",
            "2026-11-21T10:00:00Z".parse().unwrap(),
        );
        assert_eq!(anthropic_reset(&h, now), Some(Duration::from_secs(10)));
        // A limit with requests left is not the one that was hit.
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            "5".parse().unwrap(),
        );
        assert_eq!(anthropic_reset(&h, now), None);
        h.insert("anthropic-ratelimit-tokens-remaining", "0".parse().unwrap());
        h.insert(
            "anthropic-ratelimit-tokens-reset",
            "2026-11-21T10:00:30Z".parse().unwrap(),
        );
        assert_eq!(anthropic_reset(&h, now), Some(Duration::from_secs(40)));

        let body = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"quota",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2.5s"}]}}"#;
        let e = parse_upstream_error(
            WireFormat::Gemini,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            body,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn a_limit_of_the_whole_key_says_so() {
        let limited = |format, headers: &HeaderMap, body: &[u8]| {
            parse_upstream_error(format, StatusCode::TOO_MANY_REQUESTS, headers, body)
        };
        // Per-model limits say nothing: the provider's usual scope applies.
        let e = limited(
            WireFormat::Anthropic,
            &HeaderMap::new(),
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(e.limit_scope(), None);
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-ratelimit-unified-status",
            "rejected".parse().unwrap(),
        );
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        h.insert(
            "anthropic-ratelimit-unified-reset",
            reset.to_string().parse().unwrap(),
        );
        let e = limited(
            WireFormat::Anthropic,
            &h,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"limit reached"}}"#,
        );
        assert_eq!(e.limit_scope(), Some(LimitScope::Key));
        let after = e.retry_after().unwrap();
        assert!(after > Duration::from_secs(3590) && after <= Duration::from_secs(3600));
        let e = limited(
            WireFormat::OpenAiChat,
            &HeaderMap::new(),
            br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        );
        assert_eq!(e.limit_scope(), Some(LimitScope::Key));
    }

    #[test]
    fn renders_each_format() {
        let err = GatewayError::invalid_param("model", "missing `model`");
        let v: Value = serde_json::from_slice(&error_body(WireFormat::OpenAiChat, &err)).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["message"], "missing `model`");
        let v: Value = serde_json::from_slice(&error_body(WireFormat::Anthropic, &err)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn reads_upstream_errors() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        let e = parse_upstream_error(
            WireFormat::Anthropic,
            StatusCode::from_u16(529).unwrap(),
            &h,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        assert_eq!(e.status().as_u16(), 529);
        assert_eq!(e.message(), "Overloaded");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));

        let e = parse_upstream_error(
            WireFormat::OpenAiChat,
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);

        let e = parse_upstream_error(
            WireFormat::OpenAiChat,
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.kind(), ErrorKind::UpstreamServer);
        assert!(e.is_retryable());
    }
}
