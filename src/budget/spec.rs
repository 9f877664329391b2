//! What a budget is: whose spend it caps ([`Scope`]), how much, over
//! which window of time ([`Period`]), and whether it refuses or only warns.

use std::fmt;
use std::sync::Arc;

use crate::auth::Principal;
use crate::usage::Nanos;

/// Whose spend a budget caps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every request the gateway serves.
    Global,
    /// One principal: a key's id (`key_…`), a static key's name, a JWT subject.
    Key(Arc<str>),
    /// Every principal acting for this user.
    User(Arc<str>),
    /// Every principal of this team.
    Team(Arc<str>),
    /// Every principal with this tag.
    Tag(Arc<str>),
}

impl Scope {
    /// `global`, `key`, `user`, `team` or `tag`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Key(_) => "key",
            Scope::User(_) => "user",
            Scope::Team(_) => "team",
            Scope::Tag(_) => "tag",
        }
    }

    /// The key id, user, team or tag; empty for [`Scope::Global`].
    pub fn value(&self) -> &str {
        match self {
            Scope::Global => "",
            Scope::Key(v) | Scope::User(v) | Scope::Team(v) | Scope::Tag(v) => v,
        }
    }

    /// The scope of `kind` and `value`, as the store and `kind:value`
    /// labels name them; the error says what is wrong.
    pub fn from_parts(kind: &str, value: &str) -> Result<Scope, String> {
        let value = value.trim();
        let named = |f: fn(Arc<str>) -> Scope| {
            if value.is_empty() {
                return Err(format!("a {kind} budget needs a {kind} to name"));
            }
            if value.chars().any(char::is_control) || value.chars().count() > 200 {
                return Err(format!(
                    "the {kind} name must be printable and at most 200 characters"
                ));
            }
            Ok(f(value.into()))
        };
        match kind {
            "global" if value.is_empty() => Ok(Scope::Global),
            "global" => Err("a global budget names nothing (`global`, not `global:…`)".into()),
            "key" => named(Scope::Key),
            "user" => named(Scope::User),
            "team" => named(Scope::Team),
            "tag" => named(Scope::Tag),
            _ => Err(format!(
                "`{kind}` is not a budget scope: use global, key:ID, user:NAME, team:NAME or tag:NAME"
            )),
        }
    }

    /// Parses a label: `global`, `key:key_…`, `user:ana`, `team:ml`, `tag:ci`.
    pub fn parse(label: &str) -> Result<Scope, String> {
        let (kind, value) = label.trim().split_once(':').unwrap_or((label.trim(), ""));
        Scope::from_parts(kind, value)
    }

    /// Whether a request from `principal` counts against this scope.
    pub fn covers(&self, principal: &Principal) -> bool {
        match self {
            Scope::Global => true,
            Scope::Key(k) => *principal.id == **k,
            Scope::User(u) => principal.user.as_deref() == Some(&**u),
            Scope::Team(t) => principal.team.as_deref() == Some(&**t),
            Scope::Tag(t) => principal.tags.iter().any(|x| **x == **t),
        }
    }

    /// The budget's name in a message to a client: `the gateway's global
    /// budget`'s owner, `team \`ml\``, `this gateway key`.
    pub(crate) fn described(&self) -> String {
        match self {
            Scope::Global => "the gateway's".into(),
            Scope::Key(_) => "this gateway key's".into(),
            Scope::User(u) => format!("user `{u}`'s"),
            Scope::Team(t) => format!("team `{t}`'s"),
            Scope::Tag(t) => format!("tag `{t}`'s"),
        }
    }
}

impl fmt::Display for Scope {
    /// The label [`Scope::parse`] reads: `global`, `team:ml`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            s => write!(f, "{}:{}", s.kind(), s.value()),
        }
    }
}

const DAY: i64 = 24 * 60 * 60;

/// The window a budget's spend is counted over; each starts at zero.
/// Windows are UTC calendar windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Period {
    /// No reset: the amount is for all time.
    #[default]
    None,
    /// From 00:00 UTC each day.
    Daily,
    /// From Monday 00:00 UTC (ISO weeks).
    Weekly,
    /// From 00:00 UTC on the first of each month.
    Monthly,
}

impl Period {
    /// `none`, `daily`, `weekly` or `monthly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::None => "none",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }

    /// Reads what [`Period::as_str`] writes.
    pub fn parse(s: &str) -> Result<Period, String> {
        match s.trim() {
            "none" => Ok(Period::None),
            "daily" => Ok(Period::Daily),
            "weekly" => Ok(Period::Weekly),
            "monthly" => Ok(Period::Monthly),
            other => Err(format!(
                "`{other}` is not a budget period: use daily, weekly, monthly or none"
            )),
        }
    }

    /// The window holding `now` (Unix seconds): its start, and its end
    /// (the next reset; `None` for [`Period::None`], whose window starts
    /// at the epoch and never ends).
    pub fn window(self, now: i64) -> (i64, Option<i64>) {
        let day = now.div_euclid(DAY) * DAY;
        match self {
            Period::None => (0, None),
            Period::Daily => (day, Some(day + DAY)),
            Period::Weekly => {
                // 1970-01-01 was a Thursday: three days after a Monday.
                let since_monday = (now.div_euclid(DAY) + 3).rem_euclid(7);
                let start = day - since_monday * DAY;
                (start, Some(start + 7 * DAY))
            }
            Period::Monthly => {
                let Ok(t) = time::OffsetDateTime::from_unix_timestamp(now) else {
                    return (day, Some(day + DAY)); // out of the calendar: a day
                };
                let first = |year: i32, month: time::Month| {
                    time::Date::from_calendar_date(year, month, 1)
                        .map(|d| d.midnight().assume_utc().unix_timestamp())
                };
                let (y, m) = (t.year(), t.month());
                let next_year = if m == time::Month::December { y + 1 } else { y };
                match (first(y, m), first(next_year, m.next())) {
                    (Ok(start), Ok(end)) => (start, Some(end)),
                    (Ok(start), Err(_)) => (start, None),
                    _ => (day, Some(day + DAY)),
                }
            }
        }
    }
}

/// A budget: at most `amount` of spend per `period` for requests in `scope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpec {
    /// Whose spend it caps.
    pub scope: Scope,
    /// The cap, per period.
    pub amount: Nanos,
    /// When the spend counted against it starts again at zero.
    pub period: Period,
    /// A soft budget serves past its amount, marking the answers
    /// (`x-tollgate-budget: over`), logging and counting; a hard one
    /// refuses with a 402.
    pub soft: bool,
}

/// An RFC 3339 UTC time (`2026-06-01T00:00:00Z`) for a Unix time in seconds.
pub(crate) fn rfc3339(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-04 (a Wednesday) 15:30:00 UTC.
    const WED: i64 = 1_772_638_200;

    #[test]
    fn windows_start_at_the_utc_calendar_boundaries() {
        let show = |(s, e): (i64, Option<i64>)| (rfc3339(s), e.map(rfc3339));
        assert_eq!(rfc3339(WED), "2026-03-04T15:30:00Z");
        assert_eq!(
            show(Period::Daily.window(WED)),
            (
                "2026-03-04T00:00:00Z".into(),
                Some("2026-03-05T00:00:00Z".into())
            )
        );
        assert_eq!(
            show(Period::Weekly.window(WED)),
            (
                "2026-03-02T00:00:00Z".into(),
                Some("2026-03-09T00:00:00Z".into())
            )
        );
        assert_eq!(
            show(Period::Monthly.window(WED)),
            (
                "2026-03-01T00:00:00Z".into(),
                Some("2026-04-01T00:00:00Z".into())
            )
        );
        assert_eq!(Period::None.window(WED), (0, None));
        // December rolls into the next year; a Monday starts its own week;
        // the last second of a window is still in it.
        let dec = 1_796_083_200; // 2026-12-01T00:00:00Z
        assert_eq!(
            show(Period::Monthly.window(dec + 40 * DAY / 2)),
            (
                "2026-12-01T00:00:00Z".into(),
                Some("2027-01-01T00:00:00Z".into())
            )
        );
        let monday = 1_772_409_600; // 2026-03-02T00:00:00Z
        assert_eq!(Period::Weekly.window(monday).0, monday);
        assert_eq!(Period::Weekly.window(monday - 1).0, monday - 7 * DAY);
        assert_eq!(Period::Daily.window(monday - 1).1, Some(monday));
    }

    #[test]
    fn scopes_read_and_print_their_labels() {
        for label in ["global", "key:key_abc", "user:ana", "team:ml", "tag:ci"] {
            assert_eq!(Scope::parse(label).unwrap().to_string(), label);
        }
        for bad in ["", "team", "team: ", "org:x", "global:x", "tag:a\nb"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
        let p = Principal {
            user: Some("ana".into()),
            team: Some("ml".into()),
            tags: Arc::new(["ci".into()]),
            ..Principal::anonymous()
        };
        for (label, covers) in [
            ("global", true),
            ("key:anonymous", true),
            ("key:other", false),
            ("user:ana", true),
            ("team:ml", true),
            ("team:ops", false),
            ("tag:ci", true),
            ("tag:prod", false),
        ] {
            assert_eq!(Scope::parse(label).unwrap().covers(&p), covers, "{label}");
        }
        assert_eq!(Period::parse("monthly"), Ok(Period::Monthly));
        assert!(Period::parse("yearly").is_err());
    }
}
