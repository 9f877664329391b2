//! Money as integers: nano-dollars.

use std::fmt;

/// An amount of US dollars in nano-dollars (10⁻⁹ USD). Money in tollgate is
/// always an integer; `u64` holds up to about 18 billion dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

/// Nano-dollars in one dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

impl Nanos {
    /// Zero dollars.
    pub const ZERO: Nanos = Nanos(0);

    /// The sum, saturating at `u64::MAX`.
    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }

    /// The difference, saturating at zero.
    pub fn saturating_sub(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(other.0))
    }

    /// Parses a non-negative decimal number of dollars (`"50"`, `"0.25"`,
    /// `"1e-3"` is refused) exactly, to the nano-dollar; more than nine
    /// decimals is an error rather than a silent rounding.
    pub fn parse_usd(s: &str) -> Result<Nanos, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not an amount of dollars (like 50 or 0.25)");
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if frac.len() > 9 {
            return Err(format!("`{s}` has more than nine decimals"));
        }
        let whole: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut nanos: u64 = 0;
        for (i, d) in frac.bytes().enumerate() {
            nanos += u64::from(d - b'0') * 10u64.pow(8 - i as u32);
        }
        whole
            .checked_mul(NANOS_PER_USD)
            .and_then(|w| w.checked_add(nanos))
            .map(Nanos)
            .ok_or_else(|| format!("`{s}` is too large an amount"))
    }

    /// A configured price or amount given as a TOML float, rounded to the
    /// nano-dollar (the one place a float becomes money). Negative, NaN
    /// and infinite values are refused.
    pub fn from_usd_f64(usd: f64) -> Result<Nanos, String> {
        if !usd.is_finite() || usd < 0.0 {
            return Err(format!("{usd} is not a non-negative amount of dollars"));
        }
        let n = (usd * NANOS_PER_USD as f64).round();
        if n >= u64::MAX as f64 {
            return Err(format!("{usd} dollars is too large an amount"));
        }
        Ok(Nanos(n as u64))
    }
}

impl fmt::Display for Nanos {
    /// Dollars as a decimal without trailing zeros: `0.000123`, `50`,
    /// `1.5`; what JSON answers carry (`usage.cost`, `total_cost`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / NANOS_PER_USD;
        let frac = self.0 % NANOS_PER_USD;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:09}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_trip_exactly() {
        for (s, n) in [
            ("0", 0),
            ("50", 50 * NANOS_PER_USD),
            ("0.25", 250_000_000),
            ("0.000000001", 1),
            (".5", 500_000_000),
            ("1.000123", 1_000_123_000),
        ] {
            assert_eq!(Nanos::parse_usd(s), Ok(Nanos(n)), "{s}");
        }
        assert_eq!(Nanos(1_000_123_000).to_string(), "1.000123");
        assert_eq!(Nanos(50 * NANOS_PER_USD).to_string(), "50");
        assert_eq!(Nanos(1).to_string(), "0.000000001");
        for bad in [
            "",
            ".",
            "-1",
            "1e3",
            "0.0000000001",
            "1,5",
            "99999999999999999999",
        ] {
            assert!(Nanos::parse_usd(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configured_floats_round_to_the_nano() {
        assert_eq!(Nanos::from_usd_f64(0.3), Ok(Nanos(300_000_000)));
        assert_eq!(Nanos::from_usd_f64(3.75), Ok(Nanos(3_750_000_000)));
        assert!(Nanos::from_usd_f64(-1.0).is_err());
        assert!(Nanos::from_usd_f64(f64::NAN).is_err());
    }
}
