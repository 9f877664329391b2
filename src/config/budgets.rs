//! `[[budgets]]`: spend caps written in the config (those set with
//! `tollgate budgets set` live in the store; both apply).
//!
//! ```toml
//! [[budgets]]
//! scope = "team:ml"     # global | key:ID | user:NAME | team:NAME | tag:NAME
//! usd = 50              # per period
//! period = "monthly"    # daily | weekly | monthly (UTC windows) | none
//! soft = false          # true: serve past it, mark `x-tollgate-budget: over`
//! ```

use serde::Deserialize;

use super::ConfigError;
use crate::budget::{BudgetSpec, Period, Scope};
use crate::usage::Nanos;

/// One `[[budgets]]` entry, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// `global`, `key:ID`, `user:NAME`, `team:NAME` or `tag:NAME`.
    pub scope: String,
    /// The amount per period, in US dollars.
    pub usd: f64,
    /// `daily`, `weekly`, `monthly` or `none`.
    pub period: String,
    /// Serve past the amount (marking the answers) instead of refusing.
    /// Default false.
    #[serde(default)]
    pub soft: bool,
}

impl BudgetConfig {
    /// The budget this entry sets; the error names what is wrong.
    pub fn spec(&self) -> Result<BudgetSpec, String> {
        Ok(BudgetSpec {
            scope: Scope::parse(&self.scope)?,
            amount: Nanos::from_usd_f64(self.usd)?,
            period: Period::parse(&self.period)?,
            soft: self.soft,
        })
    }
}

/// Every entry reads, and no scope has two.
pub(super) fn check(budgets: &[BudgetConfig]) -> Result<Vec<BudgetSpec>, ConfigError> {
    let mut specs: Vec<BudgetSpec> = Vec::with_capacity(budgets.len());
    for (i, b) in budgets.iter().enumerate() {
        let spec = b
            .spec()
            .map_err(|e| ConfigError(format!("budgets[{i}]: {e}")))?;
        if let Some(j) = specs.iter().position(|s| s.scope == spec.scope) {
            return Err(ConfigError(format!(
                "budgets[{i}].scope: `{}` already has a budget (budgets[{j}]); one per scope",
                spec.scope
            )));
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use crate::budget::{Period, Scope};
    use crate::config::Config;
    use crate::usage::Nanos;

    #[test]
    fn budgets_read_with_the_field_at_fault_named() {
        let c = Config::parse(
            "[[budgets]]\nscope = \"team:ml\"\nusd = 12.5\nperiod = \"monthly\"\n\n[[budgets]]\nscope = \"global\"\nusd = 100\nperiod = \"none\"\nsoft = true\n",
            &|_| None,
        )
        .unwrap();
        let specs = c.budget_specs();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].scope, Scope::Team("ml".into()));
        assert_eq!(specs[0].amount, Nanos(12_500_000_000));
        assert_eq!(specs[0].period, Period::Monthly);
        assert!(!specs[0].soft && specs[1].soft);
        for (text, says) in [
            (
                "scope = \"org:x\"\nusd = 1\nperiod = \"daily\"",
                "budgets[0]: `org` is not a budget scope",
            ),
            (
                "scope = \"global\"\nusd = -1\nperiod = \"daily\"",
                "budgets[0]: -1 is not",
            ),
            (
                "scope = \"global\"\nusd = 1\nperiod = \"yearly\"",
                "budgets[0]: `yearly`",
            ),
            (
                "scope = \"global\"\nusd = 1\nperiod = \"daily\"\nhard = true",
                "unknown field `hard`",
            ),
            ("scope = \"global\"\nusd = 1", "missing field `period`"),
        ] {
            let e = Config::parse(&format!("[[budgets]]\n{text}\n"), &|_| None).unwrap_err();
            assert!(e.0.contains(says), "{text}: {e}");
        }
        let twice = "[[budgets]]\nscope = \"tag:ci\"\nusd = 1\nperiod = \"daily\"\n[[budgets]]\nscope = \"tag:ci\"\nusd = 2\nperiod = \"weekly\"\n";
        let e = Config::parse(twice, &|_| None).unwrap_err();
        assert!(
            e.0.contains("budgets[1].scope: `tag:ci` already has a budget"),
            "{e}"
        );
    }
}
