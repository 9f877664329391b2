//! The `x-ratelimit-*` headers, as OpenAI sends them: counts as integers,
//! resets as Go durations (`1s`, `6m0s`, `12ms`).

use std::fmt::Write;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::limits::{Figures, Standing};

/// Requests the tightest limit allows per minute.
pub const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
/// Requests left before it refuses.
pub const REMAINING_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-requests");
/// Until it is back to full.
pub const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
/// Tokens the tightest limit allows per minute.
pub const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
/// Tokens left before it refuses.
pub const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
/// Until it is back to full.
pub const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// The headers of `standing`, one name and value at a time.
pub(crate) fn each(standing: &Standing, mut put: impl FnMut(HeaderName, HeaderValue)) {
    let mut kind = |f: Option<Figures>, [limit, remaining, reset]: [HeaderName; 3]| {
        if let Some(f) = f {
            put(limit, HeaderValue::from(f.limit));
            put(remaining, HeaderValue::from(f.remaining));
            if let Ok(v) = HeaderValue::try_from(go_duration(f.reset)) {
                put(reset, v);
            }
        }
    };
    kind(
        standing.requests,
        [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS],
    );
    kind(
        standing.tokens,
        [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS],
    );
}

/// Removes an upstream's rate-limit headers (`x-ratelimit-*`,
/// `anthropic-ratelimit-*`, as the providers pass them on): on an answer
/// served with the gateway's own credential they describe the gateway's
/// provider account, its headroom shared by every caller, not this one.
pub(crate) fn remove_upstream(headers: &mut HeaderMap) {
    let is_limit = |n: &HeaderName| {
        crate::provider::RATE_LIMIT_HEADER_PREFIXES
            .iter()
            .any(|p| n.as_str().starts_with(p))
    };
    let names: Vec<HeaderName> = headers.keys().filter(|n| is_limit(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// Sets the headers of `standing` in `headers`, replacing any of the same
/// names.
pub(crate) fn set(standing: &Standing, headers: &mut HeaderMap) {
    each(standing, |k, v| {
        headers.insert(k, v);
    });
}

/// `d` as Go prints a `time.Duration`, to the millisecond (rounded up, so
/// that a wait is never understated): `0s`, `12ms`, `1s`, `1.5s`, `6m0s`,
/// `1h0m0s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{s}");
    if frac > 0 {
        let _ = write!(out, ".{}", format!("{frac:03}").trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ms"),
            (Duration::from_millis(12), "12ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(59_999), "59.999s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_millis(61_250), "1m1.25s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3723), "1h2m3s"),
        ] {
            assert_eq!(go_duration(d), s, "{d:?}");
        }
    }
}
