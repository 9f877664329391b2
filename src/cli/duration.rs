//! Durations on the command line: `90s`, `15m`, `12h`, `30d`.

use std::time::Duration;

/// The longest a key may be made to live: ten years. Longer is a typo
/// (or a key that should have no expiry at all).
const MAX_EXPIRY: Duration = Duration::from_secs(3_650 * 86_400);

/// The longest grace a rotated key may keep: a rotation is meant to end.
const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);

const UNITS: &str = "s, m, h or d (e.g. 90s, 15m, 12h, 30d)";

/// A whole number followed by one unit.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let Some(unit) = text.chars().last() else {
        return Err(format!("an empty duration: use {UNITS}"));
    };
    let per: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        c if c.is_ascii_digit() => return Err(format!("`{text}` needs a unit: {UNITS}")),
        c => return Err(format!("`{text}`: unknown unit `{c}`: use {UNITS}")),
    };
    let number = &text[..text.len() - unit.len_utf8()];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}` is not a whole number followed by {UNITS}"
        ));
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is far too long"))
}

/// `--expires`: from 1 s to ten years.
pub fn expiry(text: &str) -> Result<Duration, String> {
    let d = parse(text)?;
    if d.is_zero() {
        return Err(
            "a key must live at least 1s (leave out --expires for a key that does not expire)"
                .into(),
        );
    }
    if d > MAX_EXPIRY {
        return Err(format!(
            "`{}` is longer than the 3650d (ten years) a key may live; leave out --expires for a key that does not expire",
            text.trim()
        ));
    }
    Ok(d)
}

/// `--grace`: from 0 (the old key stops now) to 30 days.
pub fn grace(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = parse(text)?;
    if d > MAX_GRACE {
        return Err(format!(
            "`{}` is longer than the 30d grace a rotated key may keep",
            text.trim()
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_reads_as_its_seconds() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse(" 30d "), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(grace("0"), Ok(Duration::ZERO));
        assert_eq!(grace("0s"), Ok(Duration::ZERO));
        assert_eq!(expiry("3650d"), Ok(MAX_EXPIRY));
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("30", "needs a unit"),
            ("5y", "unknown unit `y`"),
            ("d", "not a whole number"),
            ("-5m", "not a whole number"),
            ("1.5h", "not a whole number"),
            ("+5m", "not a whole number"),
            ("99999999999999999999d", "far too long"),
            ("5ä", "unknown unit `ä`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        assert!(expiry("0s").unwrap_err().contains("at least 1s"));
        assert!(expiry("3651d").unwrap_err().contains("ten years"));
        assert!(grace("31d").unwrap_err().contains("30d"));
    }
}
