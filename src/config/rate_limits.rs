//! `[[rate_limits]]`: requests and tokens per minute, per key, user or
//! team (see [`crate::ratelimit`]).

use serde::Deserialize;

use super::ConfigError;

/// One `[[rate_limits]]` entry.
///
/// ```toml
/// [[rate_limits]]
/// scope = "team"        # key | user | team
/// name = "research"     # a key's id (key_…) or name, a user, a team
/// rpm = 600             # requests per minute
/// tpm = 2000000         # tokens per minute, input and output together
///
/// [[rate_limits]]       # no name: each key (user, team) of its own
/// scope = "key"
/// rpm = 60
/// ```
///
/// Where several limits cover the same key (its own, one naming it, one
/// for every key), the tightest of each kind applies; a request must pass
/// its key's, its user's and its team's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// What the limit counts: each key, user or team on its own.
    pub scope: RateLimitScope,
    /// The key (its id or name), user or team it is for; `None`: every
    /// one of the scope, each with a limit of its own.
    pub name: Option<String>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute, input and output together.
    pub tpm: Option<u64>,
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitScope {
    /// Each gateway key (or JWT subject).
    Key,
    /// Each user, across their keys.
    User,
    /// Each team, across its keys.
    Team,
}

impl RateLimitScope {
    /// The name the config uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitScope::Key => "key",
            RateLimitScope::User => "user",
            RateLimitScope::Team => "team",
        }
    }
}

/// Each entry limits something, by at least one; no name is blank; no
/// two entries are for the same scope and name (which would leave the
/// reader guessing which one applies).
pub(super) fn check(limits: &[RateLimitConfig]) -> Result<(), ConfigError> {
    for (i, l) in limits.iter().enumerate() {
        let field = format!("rate_limits[{i}]");
        if l.rpm.is_none() && l.tpm.is_none() {
            return Err(ConfigError(format!(
                "{field}: set `rpm`, `tpm` or both (an entry with neither limits nothing)"
            )));
        }
        if l.rpm == Some(0) {
            return Err(ConfigError(format!(
                "{field}.rpm: at least 1 (to stop a key, revoke it)"
            )));
        }
        if l.tpm == Some(0) {
            return Err(ConfigError(format!(
                "{field}.tpm: at least 1 (to stop a key, revoke it)"
            )));
        }
        if l.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(ConfigError(format!(
                "{field}.name: must not be empty (leave it out for every {} of its own)",
                l.scope.as_str()
            )));
        }
        if let Some(j) = limits[..i]
            .iter()
            .position(|o| o.scope == l.scope && o.name == l.name)
        {
            let whom = l
                .name
                .as_deref()
                .map_or_else(|| "every one".to_string(), |n| format!("`{n}`"));
            return Err(ConfigError(format!(
                "{field}: rate_limits[{j}] is already for {} {whom}; put both limits in one entry",
                l.scope.as_str()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, &|_| None).map_err(|e| e.0)
    }

    #[test]
    fn entries_parse_with_and_without_a_name() {
        let c = parse(
            r#"
            [[rate_limits]]
            scope = "team"
            name = "research"
            rpm = 600
            tpm = 2000000
            [[rate_limits]]
            scope = "key"
            rpm = 60
            "#,
        )
        .unwrap();
        assert_eq!(
            c.rate_limits,
            [
                RateLimitConfig {
                    scope: RateLimitScope::Team,
                    name: Some("research".into()),
                    rpm: Some(600),
                    tpm: Some(2_000_000),
                },
                RateLimitConfig {
                    scope: RateLimitScope::Key,
                    name: None,
                    rpm: Some(60),
                    tpm: None,
                },
            ]
        );
    }

    #[test]
    fn bad_entries_are_refused_naming_the_field() {
        for (text, expect) in [
            (
                "scope = \"key\"",
                "rate_limits[0]: set `rpm`, `tpm` or both",
            ),
            ("scope = \"key\"\nrpm = 0", "rate_limits[0].rpm: at least 1"),
            (
                "scope = \"user\"\ntpm = 0",
                "rate_limits[0].tpm: at least 1",
            ),
            (
                "scope = \"team\"\nname = \" \"\nrpm = 1",
                "rate_limits[0].name: must not be empty",
            ),
            ("scope = \"org\"\nrpm = 1", "rate_limits[0].scope"),
            ("scope = \"key\"\nrpm = -1", "rate_limits[0].rpm"),
            ("scope = \"key\"\nrps = 1", "unknown field `rps`"),
        ] {
            let err = parse(&format!("[[rate_limits]]\n{text}")).unwrap_err();
            assert!(err.contains(expect), "{text}: {err}");
        }
        let err = parse(
            "[[rate_limits]]\nscope = \"team\"\nname = \"a\"\nrpm = 1\n\
             [[rate_limits]]\nscope = \"team\"\nname = \"a\"\ntpm = 1",
        )
        .unwrap_err();
        assert!(
            err.contains("rate_limits[1]: rate_limits[0] is already for team `a`"),
            "{err}"
        );
        // The same name in another scope is another subject.
        parse(
            "[[rate_limits]]\nscope = \"team\"\nname = \"a\"\nrpm = 1\n\
             [[rate_limits]]\nscope = \"user\"\nname = \"a\"\nrpm = 1",
        )
        .unwrap();
    }
}
