//! Model prices, and what a request costs.
//!
//! - [`Price`]: a model's rates in nano-dollars per million tokens, and
//!   the cost of a [`Usage`] at them, in exact integer arithmetic rounded
//!   up once, at the end.
//! - [`PriceTable`]: the prices shipped with tollgate (see
//!   [`PriceTable::builtin`] for the source and how to refresh it) under
//!   the config's overrides, looked up by configured provider and served
//!   model.
//!
//! ```
//! use tollgate::canonical::Usage;
//! use tollgate::usage::{Nanos, PriceTable};
//!
//! let prices = PriceTable::builtin();
//! // An unconfigured provider name that is a kind reads that kind's prices;
//! // OpenAI answers with a dated model name.
//! let price = prices.lookup("openai", "gpt-4o-2024-08-06").unwrap();
//! let usage = Usage { input_tokens: 1000, output_tokens: 100, ..Usage::default() };
//! // 1000 × $2.50/MTok + 100 × $10/MTok
//! assert_eq!(price.cost(&usage), Nanos(3_500_000));
//! ```

mod builtin;
mod table;

pub use table::PriceTable;

use crate::canonical::Usage;

use super::money::Nanos;

/// A model's price, in nano-dollars per million tokens for each kind of
/// token; built from the shipped table or the config (see
/// [`PriceTable`]).
///
/// Fields added since the skeleton (`cache_write_1h`, `tiers`) default to
/// "none", so `Price { input, output, ..Price::default() }` keeps working.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Price {
    /// Input tokens not read from or written to the prompt cache.
    pub input: Nanos,
    /// Output tokens (reasoning included unless [`Price::reasoning`] is set).
    pub output: Nanos,
    /// Input tokens read from the prompt cache (`None`: as input).
    pub cache_read: Option<Nanos>,
    /// Input tokens written to the prompt cache with the default (5
    /// minute) lifetime (`None`: as input).
    pub cache_write: Option<Nanos>,
    /// Input tokens written to the prompt cache for an hour, where that
    /// costs more (`None`: as [`Price::cache_write`]): the
    /// [`Usage::cache_write_1h_tokens`] of the writes.
    pub cache_write_1h: Option<Nanos>,
    /// Reasoning tokens, when billed apart from output (`None`: as output).
    pub reasoning: Option<Nanos>,
    /// Higher rates for long prompts, by increasing threshold: the last
    /// tier whose threshold the request's input tokens (cached ones
    /// included) exceed prices the *whole* request, as Gemini and
    /// Anthropic bill them.
    pub tiers: Vec<PriceTier>,
    /// The largest answer the model gives, in tokens (for worst-case
    /// reservations), when known.
    pub max_output_tokens: Option<u64>,
}

/// The rates of a [`Price`] above an input size; a rate left `None` is
/// the base price's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTier {
    /// Applies when the request has more input tokens than this.
    pub above_input_tokens: u64,
    /// Input tokens not read from or written to the cache.
    pub input: Option<Nanos>,
    /// Output tokens.
    pub output: Option<Nanos>,
    /// Cache reads.
    pub cache_read: Option<Nanos>,
    /// Cache writes (5 minutes).
    pub cache_write: Option<Nanos>,
    /// Cache writes (1 hour).
    pub cache_write_1h: Option<Nanos>,
}

/// The rates that apply to one request, every fallback resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rates {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cache_write_1h: u64,
    reasoning: u64,
}

const MTOK: u128 = 1_000_000;

impl Price {
    /// A price of `input` and `output` per million tokens, every other
    /// rate as those.
    pub fn new(input: Nanos, output: Nanos) -> Self {
        Price {
            input,
            output,
            ..Price::default()
        }
    }

    /// The rates for a request with `input_tokens` input tokens.
    fn rates(&self, input_tokens: u64) -> Rates {
        let tier = self
            .tiers
            .iter()
            .rev()
            .find(|t| input_tokens > t.above_input_tokens);
        // A tier's rate, or the base one.
        let or =
            |f: fn(&PriceTier) -> Option<Nanos>, base: Option<Nanos>| tier.and_then(f).or(base);
        let input = or(|t| t.input, Some(self.input)).unwrap_or(self.input);
        let output = or(|t| t.output, Some(self.output)).unwrap_or(self.output);
        let cache_write = or(|t| t.cache_write, self.cache_write).unwrap_or(input);
        Rates {
            input: input.0,
            output: output.0,
            cache_read: or(|t| t.cache_read, self.cache_read).unwrap_or(input).0,
            cache_write: cache_write.0,
            cache_write_1h: or(|t| t.cache_write_1h, self.cache_write_1h)
                .unwrap_or(cache_write)
                .0,
            // No provider tiers reasoning apart from output today.
            reasoning: self.reasoning.unwrap_or(output).0,
        }
    }

    /// What `usage` costs at this price, rounded up to the nano-dollar.
    ///
    /// Canonical usage counts cached tokens inside `input_tokens` and
    /// reasoning inside `output_tokens` (see [`crate::canonical`]): the
    /// plain input is what is left after cache reads and writes, and
    /// reasoning is priced apart only where [`Price::reasoning`] is set.
    /// The cache writes of [`Usage::cache_write_1h_tokens`] are priced at
    /// the hour's rate, the others at the 5 minute one.
    pub fn cost(&self, usage: &Usage) -> Nanos {
        self.cost_with_1h_writes(usage, usage.cache_write_1h_tokens)
    }

    /// [`Price::cost`] where `writes_1h` of the cache writes were for an
    /// hour, whatever `usage.cache_write_1h_tokens` says.
    pub fn cost_with_1h_writes(&self, usage: &Usage, writes_1h: u64) -> Nanos {
        let r = self.rates(usage.input_tokens);
        let writes_1h = writes_1h.min(usage.cache_write_tokens);
        let cached = usage
            .cache_read_tokens
            .saturating_add(usage.cache_write_tokens);
        let reasoning = if self.reasoning.is_some() {
            usage.reasoning_tokens.min(usage.output_tokens)
        } else {
            0
        };
        let total = [
            (usage.input_tokens.saturating_sub(cached), r.input),
            (usage.cache_read_tokens, r.cache_read),
            (usage.cache_write_tokens - writes_1h, r.cache_write),
            (writes_1h, r.cache_write_1h),
            (usage.output_tokens - reasoning, r.output),
            (reasoning, r.reasoning),
        ]
        .iter()
        .fold(0u128, |sum, &(tokens, rate)| {
            sum.saturating_add(u128::from(tokens) * u128::from(rate))
        });
        to_nanos(total)
    }

    /// The most a request with `input_tokens` input tokens and at most
    /// `max_output_tokens` output tokens can cost, for a budget to reserve
    /// before it is sent: every input token at the highest input rate this
    /// price has (cache writes and long-context tiers included), every
    /// output token at the highest output rate. Rounded up.
    pub fn worst_case(&self, input_tokens: u64, max_output_tokens: u64) -> Nanos {
        let tiers = self.tiers.iter();
        let input = [Some(self.input), self.cache_write, self.cache_write_1h]
            .into_iter()
            .chain(
                tiers
                    .clone()
                    .flat_map(|t| [t.input, t.cache_write, t.cache_write_1h]),
            )
            .flatten()
            .max()
            .unwrap_or(self.input);
        let output = [Some(self.output), self.reasoning]
            .into_iter()
            .chain(tiers.map(|t| t.output))
            .flatten()
            .max()
            .unwrap_or(self.output);
        to_nanos(
            (u128::from(input_tokens) * u128::from(input.0))
                .saturating_add(u128::from(max_output_tokens) * u128::from(output.0)),
        )
    }

    /// What a request of about `input_tokens` input tokens and
    /// `output_tokens` output tokens costs at the rates for its size, no
    /// cache assumed: how [`sort = "cost"`](crate::routing::ProviderSort)
    /// ranks a model's providers.
    pub fn estimate(&self, input_tokens: u64, output_tokens: u64) -> Nanos {
        let r = self.rates(input_tokens);
        to_nanos(
            (u128::from(input_tokens) * u128::from(r.input))
                .saturating_add(u128::from(output_tokens) * u128::from(r.output)),
        )
    }
}

/// Token-times-rate (nano-dollars per million tokens) as nano-dollars,
/// rounded up: a fraction of a nano-dollar is still charged.
fn to_nanos(total: u128) -> Nanos {
    Nanos(u64::try_from(total.div_ceil(MTOK)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `usd` dollars per million tokens.
    fn per_mtok(usd: &str) -> Nanos {
        Nanos::parse_usd(usd).unwrap()
    }

    /// Claude Sonnet's shape: cache reads and two write rates.
    fn sonnet() -> Price {
        Price {
            cache_read: Some(per_mtok("0.3")),
            cache_write: Some(per_mtok("3.75")),
            cache_write_1h: Some(per_mtok("6")),
            max_output_tokens: Some(64_000),
            ..Price::new(per_mtok("3"), per_mtok("15"))
        }
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    #[test]
    fn each_kind_of_token_at_its_rate() {
        let p = sonnet();
        // 1M plain input tokens: $3; 1M output: $15.
        assert_eq!(p.cost(&usage(1_000_000, 0)), Nanos(3_000_000_000));
        assert_eq!(p.cost(&usage(0, 1_000_000)), Nanos(15_000_000_000));
        // 10,000 input of which 6,000 cache reads and 2,000 writes:
        // 2,000 × 3 + 6,000 × 0.3 + 2,000 × 3.75 = 6,000 + 1,800 + 7,500
        // micro-dollars; 500 output × 15 = 7,500.
        let u = Usage {
            input_tokens: 10_000,
            cache_read_tokens: 6_000,
            cache_write_tokens: 2_000,
            output_tokens: 500,
            reasoning_tokens: 200,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(p.cost(&u), Nanos(22_800_000));
        // 500 of the writes for an hour: 500 × (6 - 3.75) more.
        let hour = Usage {
            cache_write_1h_tokens: 500,
            ..u
        };
        assert_eq!(p.cost(&hour), Nanos(22_800_000 + 1_125_000));
        assert_eq!(
            p.cost_with_1h_writes(&u, 500),
            Nanos(22_800_000 + 1_125_000)
        );
        // More 1 h writes than writes is capped at the writes.
        assert_eq!(
            p.cost_with_1h_writes(&u, 99_999),
            Nanos(22_800_000 + 4_500_000)
        );
    }

    #[test]
    fn missing_cache_rates_fall_back_to_input() {
        let p = Price::new(per_mtok("2"), per_mtok("8"));
        let u = Usage {
            input_tokens: 1_000,
            cache_read_tokens: 400,
            cache_write_tokens: 100,
            ..Usage::default()
        };
        assert_eq!(p.cost(&u), p.cost(&usage(1_000, 0)));
        assert_eq!(p.cost(&u), Nanos(2_000_000));
    }

    #[test]
    fn reasoning_is_output_unless_billed_apart() {
        let u = Usage {
            output_tokens: 1_000,
            reasoning_tokens: 600,
            ..Usage::default()
        };
        let plain = Price::new(per_mtok("1"), per_mtok("10"));
        assert_eq!(plain.cost(&u), Nanos(10_000_000));
        let apart = Price {
            reasoning: Some(per_mtok("3.5")),
            ..plain
        };
        // 400 × 10 + 600 × 3.5 micro-dollars.
        assert_eq!(apart.cost(&u), Nanos(4_000_000 + 2_100_000));
    }

    #[test]
    fn long_prompts_price_the_whole_request_at_the_tier() {
        // Gemini 2.5 Pro: $1.25 / $10, over 200k input $2.50 / $15.
        let p = Price {
            cache_read: Some(per_mtok("0.125")),
            tiers: vec![PriceTier {
                above_input_tokens: 200_000,
                input: Some(per_mtok("2.5")),
                output: Some(per_mtok("15")),
                cache_read: Some(per_mtok("0.25")),
                ..PriceTier::default()
            }],
            ..Price::new(per_mtok("1.25"), per_mtok("10"))
        };
        // At the threshold: base rates.
        assert_eq!(
            p.cost(&usage(200_000, 1_000)),
            Nanos(250_000_000 + 10_000_000)
        );
        // One token over: every token at the tier's rates.
        assert_eq!(
            p.cost(&usage(200_001, 1_000)),
            Nanos(500_002_500 + 15_000_000)
        );
        // Cached tokens count toward the size, and take the tier's cache rate.
        let u = Usage {
            input_tokens: 300_000,
            cache_read_tokens: 100_000,
            ..Usage::default()
        };
        assert_eq!(p.cost(&u), Nanos(500_000_000 + 25_000_000));
        assert_eq!(p.estimate(300_000, 0), Nanos(750_000_000));
        assert_eq!(p.estimate(100_000, 0), Nanos(125_000_000));
    }

    #[test]
    fn rounds_up_once_at_the_end() {
        // $0.0004 and $0.0003 per MTok: a token costs a fraction of a
        // nano-dollar.
        let p = Price::new(Nanos(400_000), Nanos(300_000));
        assert_eq!(p.cost(&usage(1, 0)), Nanos(1), "a fraction is charged");
        // Rounded per kind, 0.4 + 0.3 would be 1 + 1; summed first, one
        // rounding: 1.
        assert_eq!(p.cost(&usage(1, 1)), Nanos(1));
        assert_eq!(p.cost(&usage(0, 0)), Nanos::ZERO);
        // No overflow on absurd counts: saturates.
        let huge = Price::new(Nanos(u64::MAX), Nanos(u64::MAX));
        assert_eq!(huge.cost(&usage(u64::MAX, u64::MAX)), Nanos(u64::MAX));
        assert_eq!(huge.worst_case(u64::MAX, u64::MAX), Nanos(u64::MAX));
        assert_eq!(huge.estimate(u64::MAX, u64::MAX), Nanos(u64::MAX));
    }

    #[test]
    fn inconsistent_usage_is_never_negative() {
        // A provider reporting more cached than input tokens: the plain
        // input is zero, the cached ones are still charged.
        let u = Usage {
            input_tokens: 10,
            cache_read_tokens: 50,
            output_tokens: 0,
            reasoning_tokens: 99,
            ..Usage::default()
        };
        let p = Price {
            reasoning: Some(per_mtok("1")),
            ..sonnet()
        };
        // 50 × $0.30/MTok.
        assert_eq!(p.cost(&u), Nanos(15_000));
    }

    #[test]
    fn worst_case_takes_the_highest_rates() {
        let p = sonnet();
        // All input at the 1 h write rate ($6), output at $15.
        assert_eq!(
            p.worst_case(100_000, 64_000),
            Nanos(600_000_000 + 960_000_000)
        );
        let tiered = Price {
            tiers: vec![PriceTier {
                above_input_tokens: 200_000,
                input: Some(per_mtok("2.5")),
                output: Some(per_mtok("15")),
                ..PriceTier::default()
            }],
            ..Price::new(per_mtok("1.25"), per_mtok("10"))
        };
        assert_eq!(
            tiered.worst_case(1_000, 1_000),
            Nanos(2_500_000 + 15_000_000)
        );
        // Never below the real cost of the same counts.
        for (i, o) in [(1, 1), (199_999, 7), (250_000, 9_999)] {
            let real = tiered.cost(&usage(i, o));
            assert!(tiered.worst_case(i, o) >= real, "{i} {o}");
        }
    }
}
