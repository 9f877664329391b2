//! A request's worst-case cost: what its reservation holds until the
//! answer's real cost replaces it.
//!
//! - Tokens: the request's [`Estimate`]: input
//!   from the body's size in bytes / 4, rounded up (a token is about four
//!   bytes of English or JSON; the mock counts the same way); output from
//!   the largest of the request's own caps (`max_tokens`,
//!   `max_completion_tokens`, `max_output_tokens`: the decoders of each
//!   format prefer a different one; Gemini's
//!   `generationConfig.maxOutputTokens`), else the model's largest answer
//!   from the price table, else [`DEFAULT_MAX_OUTPUT`].
//!   On an Anthropic target, a request that asks for reasoning
//!   (`reasoning_effort`, `reasoning.effort`, `thinking`) is sent with
//!   its thinking budget added to `max_tokens` (see the Anthropic
//!   encoder): that is reserved too. OpenAI's `n` answers (at most
//!   [`MAX_CHOICES`]) multiply the output.
//! - Price: the dearest of every target the request may be served by:
//!   its model's, those of the models it names to fall back to, and the
//!   configured fallbacks', each at its highest rates
//!   ([`Price::worst_case`]: cache writes, reasoning and long-context
//!   tiers included).
//!
//! Only the raw top-level fields are read: no canonical decode.
//!
//! # What cannot be bounded
//!
//! Input the body does not show is not counted: a Responses request's
//! `previous_response_id` or `conversation` (the provider adds the
//! stored conversation), and files or images sent by id. Such a request
//! reserves only what its body shows; its real cost still settles in
//! full, so a budget can end past its amount by what those inputs cost
//! in the requests in flight when it runs out.

use std::sync::Arc;

use serde::Deserialize;

use crate::canonical::Reasoning;
use crate::config::ProviderKind;
use crate::format::anthropic;
use crate::request::{GatewayRequest, Target};
use crate::routing::Routes;
use crate::usage::{Estimate, Nanos, Price, PriceTable, OUTPUT_CAPS};

/// Output tokens reserved when neither the request nor the price table
/// says how long the answer may be.
pub const DEFAULT_MAX_OUTPUT: u64 = 32_768;

/// The most answers (OpenAI's `n`) a reservation counts: OpenAI's own
/// maximum; a larger `n` is the provider's 400 to give.
pub const MAX_CHOICES: u64 = 128;

/// Prices a request's worst case from the routes and the price table.
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    routes: Arc<Routes>,
    prices: Arc<PriceTable>,
}

/// What [`Pricing::price`] found for a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Priced {
    /// The most it can cost on the targets with a known price; `None`
    /// when none has one.
    pub cost: Option<Nanos>,
    /// The first target it may be served by whose price is unknown: a
    /// hard budget cannot cap what it would cost.
    pub unpriced: Option<Target>,
}

impl Pricing {
    /// Requests resolved by `routes` and priced by `prices`.
    pub fn new(routes: Arc<Routes>, prices: Arc<PriceTable>) -> Self {
        Pricing { routes, prices }
    }

    /// The most `req` can cost, or `None` when no target it may be served
    /// by has a known price.
    pub fn worst_case(&self, req: &GatewayRequest) -> Option<Nanos> {
        self.price(req).cost
    }

    /// The most `req` can cost on every target it may be served by, and
    /// the first of them with no known price. Prices are found without
    /// counting a miss: this is an estimate, not the request's cost.
    pub fn price(&self, req: &GatewayRequest) -> Priced {
        let estimate = req.body.estimate();
        let choices = choices(req);
        // Read only when an Anthropic target needs it.
        let mut thinking: Option<Option<u64>> = None;
        let mut priced = Priced::default();
        let fallbacks = self.routes.fallbacks(&req.model);
        let models = std::iter::once(&req.model)
            .chain(req.routing.models.iter())
            .chain(fallbacks);
        for model in models {
            let Ok(targets) = self.routes.candidates(model) else {
                continue;
            };
            for t in targets {
                let Some(price) = self.prices.find(&t.provider, &t.model) else {
                    priced.unpriced.get_or_insert(t);
                    continue;
                };
                let mut output = estimate
                    .max_output_tokens
                    .or(price.max_output_tokens)
                    .unwrap_or(DEFAULT_MAX_OUTPUT);
                let kind = self.routes.provider(&t.provider).and_then(|p| p.kind);
                if kind == Some(ProviderKind::Anthropic) {
                    let budget = *thinking.get_or_insert_with(|| thinking_budget(req));
                    output = output.max(anthropic_max_tokens(req, estimate, budget));
                }
                let cost = price.worst_case(estimate.input_tokens, output.saturating_mul(choices));
                priced.cost = Some(priced.cost.map_or(cost, |w| w.max(cost)));
            }
        }
        priced
    }
}

/// How many answers the request asks for (OpenAI's `n`), from 1 to
/// [`MAX_CHOICES`].
fn choices(req: &GatewayRequest) -> u64 {
    let n = req.body.raw().get_as::<u64>("n").ok().flatten();
    n.unwrap_or(1).clamp(1, MAX_CHOICES)
}

/// The `max_tokens` an Anthropic target is sent for `req` with a thinking
/// budget of `budget`, at worst over the caps the request sets (each
/// decoder reads its own).
fn anthropic_max_tokens(req: &GatewayRequest, estimate: Estimate, budget: Option<u64>) -> u64 {
    let raw = req.body.raw();
    let sent = |cap| anthropic::max_tokens_sent(cap, budget);
    // Each field, not only the largest: a budget is added to a cap it
    // covers, so a smaller cap may be sent as more. The estimate's own
    // (the largest, or Gemini's when none is set) counts too.
    OUTPUT_CAPS
        .iter()
        .filter_map(|f| raw.get_as::<u64>(f).ok().flatten())
        .map(|cap| sent(Some(cap)))
        .fold(sent(estimate.max_output_tokens), u64::max)
}

/// The thinking budget the Anthropic encoder would give the reasoning
/// `req` asks for in any format, if any.
fn thinking_budget(req: &GatewayRequest) -> Option<u64> {
    #[derive(Deserialize)]
    struct Effort {
        effort: Option<String>,
    }
    #[derive(Deserialize)]
    struct Thinking {
        #[serde(rename = "type")]
        kind: Option<String>,
        budget_tokens: Option<u64>,
    }
    let raw = req.body.raw();
    let effort = |e: String| Reasoning {
        disabled: e == "none",
        effort: Some(e),
        ..Reasoning::default()
    };
    let reasoning = if let Some(e) = raw.get_as::<String>("reasoning_effort").ok().flatten() {
        effort(e)
    } else if let Some(e) = raw
        .get_as::<Effort>("reasoning")
        .ok()
        .flatten()
        .and_then(|r| r.effort)
    {
        effort(e)
    } else {
        let t = raw.get_as::<Thinking>("thinking").ok().flatten()?;
        Reasoning {
            disabled: t.kind.as_deref() == Some("disabled"),
            budget_tokens: t
                .budget_tokens
                .filter(|_| t.kind.as_deref() == Some("enabled")),
            ..Reasoning::default()
        }
    };
    anthropic::thinking_budget(&reasoning)
}

/// What `input` and `output` tokens cost at `price` at worst
/// ([`Price::worst_case`]: the highest input and output rates it has,
/// tiers included), rounded up to the nano-dollar.
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

    #[test]
    fn the_largest_cap_counts_whichever_field_sets_it() {
        for body in [
            r#"{"model":"m","messages":[],"max_tokens":10,"max_completion_tokens":500}"#,
            r#"{"model":"m","messages":[],"max_completion_tokens":10,"max_tokens":500}"#,
            r#"{"model":"m","messages":[],"max_output_tokens":500,"max_tokens":10}"#,
        ] {
            assert_eq!(
                request(body).body.estimate().max_output_tokens,
                Some(500),
                "{body}"
            );
        }
    }

    /// Routes to `a` (Anthropic) and `o` (OpenAI), each model at $1 / $10
    /// per million tokens.
    fn two_kinds() -> Pricing {
        let config = Config::parse(
            r#"
[providers.a]
kind = "anthropic"
[providers.o]
kind = "openai"
[models]
claude = "a/claude"
gpt = "o/gpt"
"#,
            &|_| None,
        )
        .unwrap();
        let table = PriceTable::default()
            .with_price(None, "claude", Price::new(usd(1), usd(10)))
            .with_price(None, "gpt", Price::new(usd(1), usd(10)));
        Pricing::new(Arc::new(Routes::from_config(&config)), Arc::new(table))
    }

    fn output_reserved(pricing: &Pricing, req: &GatewayRequest) -> u64 {
        let input = req.body.estimate().input_tokens;
        let cost = pricing.worst_case(req).unwrap();
        // $10 per million output tokens: 10,000 nano-dollars a token.
        (cost.0 - Price::new(usd(1), usd(10)).worst_case(input, 0).0) / 10_000
    }

    #[test]
    fn reasoning_sent_to_anthropic_reserves_the_thinking_budget_too() {
        let p = two_kinds();
        let at = |format, body: &str| {
            let raw = RawObject::parse(body.as_bytes()).unwrap();
            let req = GatewayRequest::new(format, Operation::Generate, raw).unwrap();
            output_reserved(&p, &req)
        };
        let high = anthropic::thinking_budget(&Reasoning {
            effort: Some("high".into()),
            ..Reasoning::default()
        })
        .unwrap();
        let low = anthropic::thinking_budget(&Reasoning {
            effort: Some("low".into()),
            ..Reasoning::default()
        })
        .unwrap();
        // The encoder sends the budget on top of the answer asked for.
        let chat =
            r#"{"model":"claude","messages":[],"max_tokens":1000,"reasoning_effort":"high"}"#;
        assert_eq!(at(WireFormat::OpenAiChat, chat), high + 1000);
        let responses = r#"{"model":"claude","input":"x","max_output_tokens":1000,"reasoning":{"effort":"low"}}"#;
        assert_eq!(at(WireFormat::OpenAiResponses, responses), low + 1000);
        // No cap: the encoder's default answer and the budget, or the
        // model's largest answer if that is more.
        let uncapped = r#"{"model":"claude","messages":[],"reasoning_effort":"high"}"#;
        assert_eq!(
            at(WireFormat::OpenAiChat, uncapped),
            DEFAULT_MAX_OUTPUT.max(high + 4096)
        );
        // Anthropic's own thinking already fits in its max_tokens.
        let native = r#"{"model":"claude","messages":[],"max_tokens":6000,"thinking":{"type":"enabled","budget_tokens":5000}}"#;
        assert_eq!(at(WireFormat::Anthropic, native), 6000);
        // Reasoning turned off, and an OpenAI target: the cap alone.
        let off = r#"{"model":"claude","messages":[],"max_tokens":1000,"reasoning_effort":"none"}"#;
        assert_eq!(at(WireFormat::OpenAiChat, off), 1000);
        let gpt = r#"{"model":"gpt","messages":[],"max_tokens":1000,"reasoning_effort":"high"}"#;
        assert_eq!(at(WireFormat::OpenAiChat, gpt), 1000);
    }

    #[test]
    fn n_answers_reserve_n_times_the_output_up_to_a_bound() {
        let p = two_kinds();
        let n = |n: &str| {
            let body = format!(r#"{{"model":"gpt","messages":[],"max_tokens":100,"n":{n}}}"#);
            output_reserved(&p, &request(&body))
        };
        assert_eq!(n("3"), 300);
        assert_eq!(n("1000000"), 100 * MAX_CHOICES);
        assert_eq!(n("0"), 100);
        assert_eq!(n("\"x\""), 100);
    }

    #[test]
    fn long_context_tiers_price_the_reservation() {
        let config = Config::parse(
            "[providers.g]\nkind = \"gemini\"\n[models]\npro = \"g/pro\"\n",
            &|_| None,
        )
        .unwrap();
        let tiered = Price {
            tiers: vec![crate::usage::PriceTier {
                above_input_tokens: 200_000,
                input: Some(usd(2)),
                output: Some(usd(15)),
                ..Default::default()
            }],
            ..Price::new(usd(1), usd(10))
        };
        let pricing = Pricing::new(
            Arc::new(Routes::from_config(&config)),
            Arc::new(PriceTable::default().with_price(None, "pro", tiered)),
        );
        let req = request(r#"{"model":"pro","messages":[],"max_tokens":1000}"#);
        let input = req.body.estimate().input_tokens;
        // The tier's rates, though this prompt is short: a reservation
        // cannot know how the provider will count it.
        assert_eq!(
            pricing.worst_case(&req),
            Some(Nanos(input * 2_000 + 1000 * 15_000))
        );
    }

    #[test]
    fn a_target_without_a_price_is_named() {
        let config = Config::parse(
            r#"
[providers.a]
kind = "anthropic"
[providers.local]
kind = "openai-compatible"
base_url = "http://127.0.0.1:1/v1"
[models.m]
targets = ["a/claude", "local/llama"]
"#,
            &|_| None,
        )
        .unwrap();
        let table = PriceTable::default().with_price(None, "claude", Price::new(usd(1), usd(1)));
        let pricing = Pricing::new(
            Arc::new(Routes::from_config(&config)),
            Arc::new(table.clone()),
        );
        let priced = pricing.price(&request(r#"{"model":"m","messages":[]}"#));
        assert!(priced.cost.is_some());
        let t = priced.unpriced.unwrap();
        assert_eq!((&*t.provider, &*t.model), ("local", "llama"));
        // An estimate, not a cost: the table's count of unknown prices
        // (what the meter reports) does not move.
        assert_eq!(table.unknown_count(), 0);
    }
}
