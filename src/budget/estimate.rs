//! A request's worst-case cost: what its reservation holds until the
//! answer's real cost replaces it.
//!
//! - Input tokens: the body's size in bytes / 4, rounded up (a token is
//!   about four bytes of English or JSON; the mock counts the same way).
//! - Output tokens: the request's own cap (`max_tokens`,
//!   `max_completion_tokens`, `max_output_tokens`), else the model's
//!   largest answer from the price table, else [`DEFAULT_MAX_OUTPUT`].
//! - Price: the dearest of every target the request may be served by:
//!   its model's, those of the models it names to fall back to, and the
//!   configured fallbacks'. Input is priced as a cache write where that
//!   costs more, output as reasoning where that does.
//!
//! Only the raw top-level fields are read: no canonical decode.

use std::sync::Arc;

use crate::request::GatewayRequest;
use crate::routing::Routes;
use crate::usage::{Nanos, Price, PriceTable};

/// Output tokens reserved when neither the request nor the price table
/// says how long the answer may be.
pub const DEFAULT_MAX_OUTPUT: u64 = 32_768;

/// The body fields that cap an answer's length, in each client format.
const OUTPUT_CAPS: &[&str] = &["max_tokens", "max_completion_tokens", "max_output_tokens"];

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
        let input = input_tokens(req);
        let cap = output_cap(req);
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
                    let output = cap
                        .or(price.max_output_tokens)
                        .unwrap_or(DEFAULT_MAX_OUTPUT);
                    let cost = worst_case(&price, input, output);
                    worst = Some(worst.map_or(cost, |w| w.max(cost)));
                }
            }
        }
        worst
    }
}

/// The input tokens of `req` by its body's size: bytes / 4, rounded up.
pub fn input_tokens(req: &GatewayRequest) -> u64 {
    // The body as compact JSON: `{`, each `"key":value` and its comma, `}`.
    let bytes: usize = req
        .body
        .raw()
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum::<usize>()
        + 1;
    (bytes as u64).div_ceil(4)
}

/// The request's own cap on its answer's tokens, if it sets one.
pub fn output_cap(req: &GatewayRequest) -> Option<u64> {
    let raw = req.body.raw();
    OUTPUT_CAPS
        .iter()
        .find_map(|f| raw.get_as::<u64>(f).ok().flatten())
}

/// What `input` and `output` tokens cost at `price` at worst: input at
/// the dearer of plain input and a cache write, output at the dearer of
/// output and reasoning; rounded up to the nano-dollar.
pub fn worst_case(price: &Price, input: u64, output: u64) -> Nanos {
    let per_input = price.input.max(price.cache_write.unwrap_or(price.input));
    let per_output = price.output.max(price.reasoning.unwrap_or(price.output));
    let total =
        u128::from(input) * u128::from(per_input.0) + u128::from(output) * u128::from(per_output.0);
    Nanos(u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX))
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
    fn input_is_the_compact_bodys_bytes_over_four() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(
            input_tokens(&request(body)),
            (body.len() as u64).div_ceil(4)
        );
        // Whitespace between top-level fields is not the client's prompt.
        let spaced = r#"{ "model" : "m" ,  "messages":[{"role":"user","content":"hi"}] }"#;
        assert_eq!(
            input_tokens(&request(spaced)),
            (body.len() as u64).div_ceil(4)
        );
    }

    #[test]
    fn the_cap_comes_from_any_formats_field() {
        for f in OUTPUT_CAPS {
            let body = format!(r#"{{"model":"m","messages":[],"{f}":77}}"#);
            assert_eq!(output_cap(&request(&body)), Some(77), "{f}");
        }
        assert_eq!(output_cap(&request(r#"{"model":"m","messages":[]}"#)), None);
        // A cap of the wrong type is the provider's 400 to give, not a
        // reason to reserve nothing.
        assert_eq!(
            output_cap(&request(r#"{"model":"m","messages":[],"max_tokens":"x"}"#)),
            None
        );
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
        let input = input_tokens(&capped);
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
