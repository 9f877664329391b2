//! A request's worst-case cost: what its reservation holds until the
//! answer's real cost replaces it.
//!
//! - Tokens: the request's [`Estimate`](crate::usage::Estimate), its
//!   input from the body's size and its output from its own cap, else the
//!   model's largest answer from the price table, else
//!   [`DEFAULT_MAX_OUTPUT`].
//! - Price: the dearest of every target the request may be served by:
//!   its model's, those of the models it names to fall back to, and the
//!   configured fallbacks'; at each, the highest input and output rates
//!   the price has ([`Price::worst_case`]).
//!
//! Only the raw top-level fields are read: no canonical decode.

use std::sync::Arc;

use crate::request::GatewayRequest;
use crate::routing::Routes;
use crate::usage::{Nanos, Price, PriceTable};

/// Output tokens reserved when neither the request nor the price table
/// says how long the answer may be.
pub const DEFAULT_MAX_OUTPUT: u64 = 32_768;

/// Prices a request's worst case from the routes and the price table.
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    routes: Arc<Routes>,
    prices: Arc<PriceTable>,
}

impl Pricing {
    /// Requests resolved by `routes` and priced by `prices`.
    pub fn new(routes: Arc<Routes>, prices: Arc<PriceTable>) -> Self {
        Pricing { routes, prices }
    }

    /// The most `req` can cost, or `None` when no target it may be served
    /// by has a known price.
    pub fn worst_case(&self, req: &GatewayRequest) -> Option<Nanos> {
        let estimate = req.body.estimate();
        let mut worst: Option<Nanos> = None;
        let fallbacks = self.routes.fallbacks(&req.model);
        let models = std::iter::once(&req.model)
            .chain(req.routing.models.iter())
            .chain(fallbacks);
        for model in models {
            let Ok(targets) = self.routes.candidates(model) else {
                continue;
            };
            for t in targets {
                if let Some(price) = self.prices.lookup(&t.provider, &t.model) {
                    let output = estimate
                        .max_output_tokens
                        .or(price.max_output_tokens)
                        .unwrap_or(DEFAULT_MAX_OUTPUT);
                    let cost = price.worst_case(estimate.input_tokens, output);
                    worst = Some(worst.map_or(cost, |w| w.max(cost)));
                }
            }
        }
        worst
    }
}

/// What `input` and `output` tokens cost at `price` at worst
/// ([`Price::worst_case`]): every token at the dearest rate of its kind,
/// rounded up to the nano-dollar.
pub fn worst_case(price: &Price, input: u64, output: u64) -> Nanos {
    price.worst_case(input, output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::format::WireFormat;
    use crate::json::RawObject;
    use crate::request::Operation;

    fn request(body: &str) -> GatewayRequest {
        let raw = RawObject::parse(body.as_bytes()).unwrap();
        GatewayRequest::new(WireFormat::OpenAiChat, Operation::Generate, raw).unwrap()
    }

    fn usd(per_mtok: u64) -> Nanos {
        Nanos(per_mtok * crate::usage::NANOS_PER_USD)
    }

    #[test]
    fn the_dearest_target_of_the_chain_prices_the_request() {
        let config = Config::parse(
            r#"
[providers.a]
kind = "anthropic"
[providers.o]
kind = "openai"
[models.big]
targets = ["a/claude", "o/gpt"]
fallbacks = ["cheap"]
[models]
cheap = "o/mini"
"#,
            &|_| None,
        )
        .unwrap();
        let routes = Arc::new(Routes::from_config(&config));
        let price = |input, output, max| Price {
            input: usd(input),
            output: usd(output),
            max_output_tokens: max,
            ..Price::default()
        };
        let table = PriceTable::default()
            .with_price(Some("a"), "claude", price(3, 15, Some(1000)))
            .with_price(Some("o"), "gpt", price(5, 10, None))
            .with_price(None, "mini", price(1, 1, None));
        let pricing = Pricing::new(routes, Arc::new(table));
        let body = r#"{"model":"big","messages":[]}"#;
        let input = (body.len() as u64).div_ceil(4);
        let req = request(body);
        // claude: input·3 + 1000·15; gpt: input·5 + 32768·10 (no cap known).
        let gpt = worst_case(&price(5, 10, None), input, DEFAULT_MAX_OUTPUT);
        assert_eq!(pricing.worst_case(&req), Some(gpt));
        let capped = request(r#"{"model":"big","messages":[],"max_tokens":10}"#);
        let input = capped.body.estimate().input_tokens;
        let claude = worst_case(&price(3, 15, None), input, 10);
        let gpt = worst_case(&price(5, 10, None), input, 10);
        assert_eq!(pricing.worst_case(&capped), Some(claude.max(gpt)));
        // Only a fallback is priced: it still prices the request.
        let only_mini = Pricing::new(
            Arc::new(Routes::from_config(&config)),
            Arc::new(PriceTable::default().with_price(None, "mini", price(1, 1, None))),
        );
        assert!(only_mini.worst_case(&req).is_some());
        let unknown = request(r#"{"model":"o/unpriced","messages":[]}"#);
        assert_eq!(pricing.worst_case(&unknown), None);
    }

    #[test]
    fn cache_writes_and_reasoning_count_at_their_dearer_price() {
        let p = Price {
            input: usd(3),
            output: usd(15),
            cache_write: Some(Nanos(3_750_000_000)),
            reasoning: Some(usd(20)),
            ..Price::default()
        };
        assert_eq!(worst_case(&p, 1_000_000, 0), Nanos(3_750_000_000));
        assert_eq!(worst_case(&p, 0, 1_000_000), usd(20));
        // One token at $3/MTok is 3000 nano-dollars; a fraction rounds up.
        let tiny = Price {
            input: Nanos(1),
            cache_write: None,
            ..p
        };
        assert_eq!(worst_case(&tiny, 1, 0), Nanos(1));
    }
}
