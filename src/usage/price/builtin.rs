//! The price table shipped with tollgate: `prices.json` beside this file,
//! made by `scripts/refresh_prices.py` from LiteLLM's
//! `model_prices_and_context_window.json` (MIT licence; the file records
//! the release it came from and when). Parsed once per process.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::{Price, PriceTier};
use crate::config::ProviderKind;
use crate::usage::Nanos;

/// The data file, compiled in.
const DATA: &str = include_str!("prices.json");

/// Prices by provider kind, then by model name as the provider knows it.
#[derive(Debug, Default)]
pub(super) struct Builtin {
    openai: HashMap<Box<str>, Arc<Price>>,
    anthropic: HashMap<Box<str>, Arc<Price>>,
    gemini: HashMap<Box<str>, Arc<Price>>,
}

impl Builtin {
    /// The shipped table, parsed on first use. Broken data (which the
    /// tests rule out) leaves every price unknown, logged, rather than a
    /// gateway that does not start.
    pub(super) fn get() -> Arc<Builtin> {
        static TABLE: OnceLock<Arc<Builtin>> = OnceLock::new();
        TABLE
            .get_or_init(|| match Builtin::parse(DATA) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    tracing::error!(error = %e, "the built-in price table does not parse: every price is unknown until set in the config");
                    Arc::default()
                }
            })
            .clone()
    }

    /// The models of `kind` (none for an OpenAI-compatible server, whose
    /// prices only the config can know).
    pub(super) fn kind(&self, kind: ProviderKind) -> Option<&HashMap<Box<str>, Arc<Price>>> {
        match kind {
            ProviderKind::OpenAi => Some(&self.openai),
            ProviderKind::Anthropic => Some(&self.anthropic),
            ProviderKind::Gemini => Some(&self.gemini),
            ProviderKind::OpenAiCompatible => None,
        }
    }

    fn parse(text: &str) -> Result<Builtin, String> {
        let file: DataFile = serde_json::from_str(text).map_err(|e| format!("prices.json: {e}"))?;
        let kind = |models: HashMap<String, Entry>, name: &str| {
            models
                .into_iter()
                .map(|(model, e)| {
                    let price = e.price().map_err(|e| format!("{name}.{model}: {e}"))?;
                    Ok((model.into_boxed_str(), Arc::new(price)))
                })
                .collect::<Result<HashMap<_, _>, String>>()
        };
        Ok(Builtin {
            openai: kind(file.openai, "openai")?,
            anthropic: kind(file.anthropic, "anthropic")?,
            gemini: kind(file.gemini, "gemini")?,
        })
    }
}

/// `prices.json`: where the data came from, then one object per provider
/// kind of model names to prices in USD per million tokens, as decimal
/// strings (read exactly: no float ever holds money).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataFile {
    #[allow(dead_code)] // Read by people and by the tests.
    source: HashMap<String, String>,
    openai: HashMap<String, Entry>,
    anthropic: HashMap<String, Entry>,
    gemini: HashMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    input: String,
    output: String,
    cache_read: Option<String>,
    cache_write: Option<String>,
    cache_write_1h: Option<String>,
    reasoning: Option<String>,
    #[serde(default)]
    tiers: Vec<TierEntry>,
    max_output_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierEntry {
    above_input_tokens: u64,
    input: Option<String>,
    output: Option<String>,
    cache_read: Option<String>,
    cache_write: Option<String>,
    cache_write_1h: Option<String>,
}

fn usd(s: &str) -> Result<Nanos, String> {
    Nanos::parse_usd(s)
}

fn opt(s: &Option<String>) -> Result<Option<Nanos>, String> {
    s.as_deref().map(usd).transpose()
}

impl Entry {
    fn price(&self) -> Result<Price, String> {
        let mut tiers = self
            .tiers
            .iter()
            .map(|t| {
                Ok(PriceTier {
                    above_input_tokens: t.above_input_tokens,
                    input: opt(&t.input)?,
                    output: opt(&t.output)?,
                    cache_read: opt(&t.cache_read)?,
                    cache_write: opt(&t.cache_write)?,
                    cache_write_1h: opt(&t.cache_write_1h)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        tiers.sort_by_key(|t| t.above_input_tokens);
        Ok(Price {
            input: usd(&self.input)?,
            output: usd(&self.output)?,
            cache_read: opt(&self.cache_read)?,
            cache_write: opt(&self.cache_write)?,
            cache_write_1h: opt(&self.cache_write_1h)?,
            reasoning: opt(&self.reasoning)?,
            tiers,
            max_output_tokens: self.max_output_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Nanos {
        Nanos::parse_usd(s).unwrap()
    }

    #[test]
    fn the_shipped_file_parses_and_names_its_source() {
        let b = Builtin::parse(DATA).expect("prices.json parses");
        assert!(b.openai.len() > 50 && b.anthropic.len() > 5 && b.gemini.len() > 10);
        let file: DataFile = serde_json::from_str(DATA).unwrap();
        for field in ["repository", "license", "version", "retrieved", "refresh"] {
            assert!(
                file.source.get(field).is_some_and(|v| !v.is_empty()),
                "source.{field}"
            );
        }
        assert!(file.source["license"].starts_with("MIT"));
    }

    #[test]
    fn flagship_models_have_sane_prices() {
        let b = Builtin::parse(DATA).unwrap();
        let flagships = [
            (ProviderKind::OpenAi, "gpt-4o"),
            (ProviderKind::OpenAi, "gpt-4o-mini"),
            (ProviderKind::OpenAi, "gpt-4.1"),
            (ProviderKind::OpenAi, "o3"),
            (ProviderKind::OpenAi, "gpt-5"),
            (ProviderKind::Anthropic, "claude-sonnet-4-5"),
            (ProviderKind::Anthropic, "claude-sonnet-4-5-20250929"),
            (ProviderKind::Anthropic, "claude-opus-4-5"),
            (ProviderKind::Anthropic, "claude-haiku-4-5"),
            (ProviderKind::Gemini, "gemini-2.5-pro"),
            (ProviderKind::Gemini, "gemini-2.5-flash"),
        ];
        for (kind, model) in flagships {
            let p = b.kind(kind).unwrap().get(model);
            let p = p.unwrap_or_else(|| panic!("{kind:?} {model} is in the table"));
            // Between $0.01 and $100 per million input tokens, output
            // dearer than input, cache reads cheaper.
            assert!(p.input > usd("0.01") && p.input < usd("100"), "{model}");
            assert!(p.output > p.input, "{model}");
            assert!(p.cache_read.is_none_or(|c| c < p.input), "{model}");
            assert!(p.max_output_tokens.is_some_and(|m| m >= 4096), "{model}");
        }
        // Known list prices, to the cent.
        let openai = &b.openai;
        assert_eq!(
            (openai["gpt-4o"].input, openai["gpt-4o"].output),
            (usd("2.5"), usd("10"))
        );
        assert_eq!(openai["gpt-4o"].cache_read, Some(usd("1.25")));
        assert_eq!(
            (openai["gpt-4.1"].input, openai["gpt-4.1"].output),
            (usd("2"), usd("8"))
        );
        let sonnet = &b.anthropic["claude-sonnet-4-5"];
        assert_eq!((sonnet.input, sonnet.output), (usd("3"), usd("15")));
        assert_eq!(sonnet.cache_read, Some(usd("0.3")));
        assert_eq!(sonnet.cache_write, Some(usd("3.75")));
        assert_eq!(sonnet.cache_write_1h, Some(usd("6")));
        // Gemini 2.5 Pro doubles its input rate over 200k tokens.
        let pro = &b.gemini["gemini-2.5-pro"];
        assert_eq!((pro.input, pro.output), (usd("1.25"), usd("10")));
        assert_eq!(pro.tiers.len(), 1);
        assert_eq!(pro.tiers[0].above_input_tokens, 200_000);
        assert_eq!(pro.tiers[0].input, Some(usd("2.5")));
        assert_eq!(pro.tiers[0].output, Some(usd("15")));
    }

    #[test]
    fn every_price_is_sane() {
        let b = Builtin::parse(DATA).unwrap();
        for (name, kind) in [
            ("openai", &b.openai),
            ("anthropic", &b.anthropic),
            ("gemini", &b.gemini),
        ] {
            for (model, p) in kind {
                // Nothing over $1,000 per million tokens, nothing free.
                assert!(
                    p.output < usd("1000") && p.input < usd("1000"),
                    "{name}/{model}"
                );
                assert!(p.output > Nanos::ZERO, "{name}/{model}");
                for t in &p.tiers {
                    assert!(t.input.is_none_or(|i| i >= p.input), "{name}/{model}");
                }
            }
        }
    }

    #[test]
    fn bad_data_is_an_error_naming_the_model() {
        let bad = r#"{"source":{},"openai":{"m":{"input":"-1","output":"2"}},"anthropic":{},"gemini":{}}"#;
        let e = Builtin::parse(bad).unwrap_err();
        assert!(e.starts_with("openai.m:"), "{e}");
        let unknown_field = r#"{"source":{},"openai":{"m":{"input":"1","output":"2","inptu":"3"}},"anthropic":{},"gemini":{}}"#;
        assert!(Builtin::parse(unknown_field).is_err());
    }
}
