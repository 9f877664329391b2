//! Prices in the config: `[providers.NAME] price` and `[prices]`.
//!
//! ```toml
//! [providers.local]                # every model this provider serves
//! kind = "openai-compatible"
//! base_url = "http://127.0.0.1:8000/v1"
//! price = { input = 0.2, output = 0.6 }
//!
//! [prices]                         # USD per million tokens
//! "gpt-4o" = { input = 2.5, output = 10.0, cache_read = 1.25 }   # on any provider
//! "work/claude-sonnet-4-5" = { input = 3.0, output = 15.0, cache_read = 0.3, cache_write = 3.75, cache_write_1h = 6.0 }
//! ```
//!
//! A `[prices]` key that starts with a configured provider's name and `/`
//! is that provider's model; any other key is a model on any provider.
//! They win over the shipped table (see
//! [`PriceTable`](crate::usage::PriceTable) for the order).

use serde::{Deserialize, Deserializer};

use super::Config;
use crate::usage::{Nanos, Price};

/// One price in the config, in USD per million tokens. Every field but
/// `input` and `output` is optional; unknown fields and negative amounts
/// are errors naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Input tokens (not cached).
    #[serde(deserialize_with = "usd")]
    pub input: Nanos,
    /// Output tokens (reasoning included unless `reasoning` is set).
    #[serde(deserialize_with = "usd")]
    pub output: Nanos,
    /// Input tokens read from the prompt cache. Default: as `input`.
    #[serde(default, deserialize_with = "opt_usd")]
    pub cache_read: Option<Nanos>,
    /// Input tokens written to the prompt cache. Default: as `input`.
    #[serde(default, deserialize_with = "opt_usd")]
    pub cache_write: Option<Nanos>,
    /// Cache writes with a 1 hour lifetime. Default: as `cache_write`.
    #[serde(default, deserialize_with = "opt_usd")]
    pub cache_write_1h: Option<Nanos>,
    /// Reasoning tokens, when billed apart. Default: as `output`.
    #[serde(default, deserialize_with = "opt_usd")]
    pub reasoning: Option<Nanos>,
    /// The model's largest answer in tokens, for budget reservations.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

/// A TOML number of dollars (per million tokens) as nano-dollars: the one
/// place a float becomes money.
fn usd<'de, D: Deserializer<'de>>(d: D) -> Result<Nanos, D::Error> {
    let v = f64::deserialize(d)?;
    Nanos::from_usd_f64(v).map_err(serde::de::Error::custom)
}

fn opt_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Nanos>, D::Error> {
    usd(d).map(Some)
}

impl PriceConfig {
    /// As a [`Price`].
    pub fn to_price(&self) -> Price {
        Price {
            input: self.input,
            output: self.output,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
            cache_write_1h: self.cache_write_1h,
            reasoning: self.reasoning,
            tiers: Vec::new(),
            max_output_tokens: self.max_output_tokens,
        }
    }
}

impl Config {
    /// A `[prices]` key as (configured provider, model): `"NAME/model"`
    /// with a configured provider `NAME`, else a model on any provider.
    pub fn price_key<'a>(&self, key: &'a str) -> (Option<&'a str>, &'a str) {
        match key.split_once('/') {
            Some((p, m)) if !m.is_empty() && self.providers.contains_key(p) => (Some(p), m),
            _ => (None, key),
        }
    }

    /// A `[prices]` key `x/model` where `x` is no configured provider
    /// prices a model named `x/model` on any provider, which is legal (an
    /// OpenAI-compatible server's `org/model`) but may be a typo of a
    /// provider's name.
    pub(super) fn price_warnings(&self, out: &mut Vec<String>) {
        for key in self.prices.keys() {
            if let (None, Some((p, _))) = (self.price_key(key).0, key.split_once('/')) {
                out.push(format!(
                    "prices.\"{key}\": `{p}` is not a configured provider, so this prices the model named `{key}` on any provider"
                ));
            }
        }
    }

    /// `[prices]` keys must name a model.
    pub(super) fn check_prices(&self) -> Result<(), super::ConfigError> {
        for key in self.prices.keys() {
            if key.trim().is_empty() || key.ends_with('/') {
                return Err(super::ConfigError(format!(
                    "prices.\"{key}\": a key is a model name, or `provider/model` with a configured provider"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::usage::{Nanos, PriceTable};

    fn usd(s: &str) -> Nanos {
        Nanos::parse_usd(s).unwrap()
    }

    const PRICED: &str = r#"
[providers.local]
kind = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1"
price = { input = 0.2, output = 0.6 }
[providers.work]
kind = "anthropic"
[prices]
"gpt-4o" = { input = 3, output = 12.5, cache_read = 1.5 }
"work/claude-sonnet-4-5" = { input = 2.0, output = 10.0, cache_write_1h = 4.0, max_output_tokens = 8192 }
"meta/llama" = { input = 0.1, output = 0.1 }
"#;

    #[test]
    fn prices_are_read_exactly_and_win() {
        let c = Config::parse(PRICED, &|_| None).unwrap();
        let t = PriceTable::from_config(&c);
        let local = t.lookup("local", "whatever-it-serves").unwrap();
        assert_eq!((local.input, local.output), (usd("0.2"), usd("0.6")));
        // A model override wins over the provider's price.
        assert_eq!(t.lookup("local", "gpt-4o").unwrap().input, usd("3"));
        let gpt = t.lookup("openai", "gpt-4o-2024-11-20").unwrap();
        assert_eq!(gpt.output, usd("12.5"));
        assert_eq!(gpt.cache_read, Some(usd("1.5")));
        let sonnet = t.lookup("work", "claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(sonnet.input, usd("2"));
        assert_eq!(sonnet.cache_write_1h, Some(usd("4")));
        assert_eq!(sonnet.max_output_tokens, Some(8192));
        // Only on `work`; elsewhere the shipped price.
        assert_eq!(
            t.lookup("anthropic", "claude-sonnet-4-5").unwrap().input,
            usd("3")
        );
        // `meta` is not a provider: `meta/llama` is a model's name.
        assert_eq!(t.lookup("local", "meta/llama").unwrap().input, usd("0.1"));
        // Shipped prices for a configured provider of a known kind.
        assert!(t.lookup("work", "claude-opus-4-5").is_some());
        // `meta/llama` may be a typo of a provider's name: said once.
        let w = c.warnings();
        let w: Vec<_> = w.iter().filter(|w| w.starts_with("prices.")).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("prices.\"meta/llama\": `meta`"), "{w:?}");
    }

    #[test]
    fn bad_prices_are_errors_naming_the_field() {
        for (text, field) in [
            (
                "[prices]\nm = { input = -1.0, output = 1.0 }\n",
                "prices.m.input:",
            ),
            (
                "[prices]\nm = { input = 1.0, output = 1.0, cache_reed = 0.1 }\n",
                "prices.m.cache_reed:",
            ),
            ("[prices]\nm = { input = 1.0 }\n", "prices.m:"),
            (
                "[prices]\nm = { input = \"1\", output = 1.0 }\n",
                "prices.m.input:",
            ),
            (
                "[providers.p]\nkind = \"openai\"\nprice = { input = 1.0, output = nan }\n",
                "providers.p.price.output:",
            ),
            (
                "[providers.p]\nkind = \"openai\"\nprice = { input = 1.0, output = 2.0, typo = 1 }\n",
                "providers.p.price.typo:",
            ),
            ("[prices]\n\"\" = { input = 1.0, output = 1.0 }\n", "prices.\"\":"),
        ] {
            let e = Config::parse(text, &|_| None).unwrap_err();
            assert!(e.0.starts_with(field), "{text}: {e}");
        }
        let e = Config::parse("[prices]\nm = { input = 1.0 }\n", &|_| None).unwrap_err();
        assert!(e.0.contains("output"), "{e}");
    }
}
