//! Model prices, and what a request costs.
//!
//! SKELETON (session 5): the types are fixed; the table, its data file and
//! the config overrides are being built.

use std::sync::Arc;

use crate::canonical::Usage;

use super::money::Nanos;

/// A model's price, in nano-dollars per million tokens for each kind of
/// token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Price {
    /// Input tokens not read from or written to the prompt cache.
    pub input: Nanos,
    /// Output tokens (reasoning included unless [`Price::reasoning`] is set).
    pub output: Nanos,
    /// Input tokens read from the prompt cache (`None`: as input).
    pub cache_read: Option<Nanos>,
    /// Input tokens written to the prompt cache (`None`: as input).
    pub cache_write: Option<Nanos>,
    /// Reasoning tokens, when billed apart from output (`None`: as output).
    pub reasoning: Option<Nanos>,
    /// The largest answer the model gives, in tokens (for worst-case
    /// reservations), when known.
    pub max_output_tokens: Option<u64>,
}

const MTOK: u128 = 1_000_000;

impl Price {
    /// What `usage` costs at this price, rounded up to the nano-dollar.
    pub fn cost(&self, usage: &Usage) -> Nanos {
        let cached = usage.cache_read_tokens + usage.cache_write_tokens;
        let plain_input = usage.input_tokens.saturating_sub(cached);
        // Output counts reasoning; priced apart only when its rate is set.
        let reasoning = usage.reasoning_tokens.min(usage.output_tokens);
        let per = |tokens: u64, price: Nanos| u128::from(tokens) * u128::from(price.0);
        let total = per(plain_input, self.input)
            + per(
                usage.cache_read_tokens,
                self.cache_read.unwrap_or(self.input),
            )
            + per(
                usage.cache_write_tokens,
                self.cache_write.unwrap_or(self.input),
            )
            + per(usage.output_tokens.saturating_sub(reasoning), self.output)
            + per(reasoning, self.reasoning.unwrap_or(self.output));
        Nanos(u64::try_from(total.div_ceil(MTOK)).unwrap_or(u64::MAX))
    }
}

/// Prices by provider and model: the table shipped with tollgate, under
/// the config's overrides.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    rules: Vec<(Option<String>, String, Arc<Price>)>,
}

impl PriceTable {
    /// This table with `price` for `model`, served by the configured
    /// provider `provider` (`None`: by any provider); it wins over what
    /// the table knew.
    pub fn with_price(mut self, provider: Option<&str>, model: &str, price: Price) -> Self {
        self.rules.insert(
            0,
            (
                provider.map(str::to_owned),
                model.to_owned(),
                Arc::new(price),
            ),
        );
        self
    }

    /// The price of `model` served by the configured provider `provider`,
    /// if known.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<Arc<Price>> {
        self.rules
            .iter()
            .find(|(p, m, _)| m == model && p.as_deref().is_none_or(|p| p == provider))
            .map(|(_, _, price)| price.clone())
    }
}
