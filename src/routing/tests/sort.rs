//! ProviderOrder with a sort: providers ranked by cost for the request's
//! size or by observed time to first token, before the client's `order`.

use super::*;
use crate::usage::{Nanos, Price, PriceTable, PriceTier};

fn usd(s: &str) -> Nanos {
    Nanos::parse_usd(s).unwrap()
}

/// `m` costs $5 on a, $1 on b, and has no known price on c.
fn prices() -> PriceTable {
    PriceTable::default()
        .with_price(Some("a"), "m", Price::new(usd("5"), usd("5")))
        .with_price(Some("b"), "m", Price::new(usd("1"), usd("1")))
}

/// Every candidate fails with a 503, so the calls show the whole order.
async fn order_with(layer: ProviderOrderLayer, body: &str) -> Vec<String> {
    let (inner, calls) = provider(|_, _| Err(upstream(503)));
    let svc = ServiceBuilder::new().layer(layer).service(inner);
    svc.oneshot(req(body)).await.unwrap_err();
    calls.list()
}

#[tokio::test(start_paused = true)]
async fn cost_sort_tries_the_cheapest_first_and_unknown_prices_last() {
    for body in [
        r#"{"model":"m","messages":[],"providerOptions":{"gateway":{"sort":"cost"}}}"#,
        r#"{"model":"m","messages":[],"provider":{"sort":"price"}}"#,
        r#"{"model":"m","messages":[],"provider":{"sort":{"by":"price"}}}"#,
    ] {
        let calls = order_with(order_layer().with_prices(prices()), body).await;
        assert_eq!(calls, ["b/m", "a/m", "c/m"], "{body}");
    }
    // Without a sort, the configured order.
    let calls = order_with(
        order_layer().with_prices(prices()),
        r#"{"model":"m","messages":[]}"#,
    )
    .await;
    assert_eq!(calls, ["a/m", "b/m", "c/m"]);
    // Without prices, a cost sort keeps the configured order.
    let calls = order_with(
        order_layer(),
        r#"{"model":"m","messages":[],"provider":{"sort":"price"}}"#,
    )
    .await;
    assert_eq!(calls, ["a/m", "b/m", "c/m"]);
}

#[tokio::test(start_paused = true)]
async fn the_clients_order_goes_before_the_sort() {
    let calls = order_with(
        order_layer().with_prices(prices()),
        r#"{"model":"m","messages":[],"provider":{"sort":"price","order":["c"]}}"#,
    )
    .await;
    assert_eq!(calls, ["c/m", "b/m", "a/m"]);
    // `only` filters the ranked list; no fallbacks keeps its first.
    let calls = order_with(
        order_layer().with_prices(prices()),
        r#"{"model":"m","messages":[],"provider":{"sort":"price","only":["a","c"]}}"#,
    )
    .await;
    assert_eq!(calls, ["a/m", "c/m"]);
    let calls = order_with(
        order_layer().with_prices(prices()),
        r#"{"model":"m","messages":[],"provider":{"sort":"price","allow_fallbacks":false}}"#,
    )
    .await;
    assert_eq!(calls, ["b/m"]);
}

#[tokio::test(start_paused = true)]
async fn cost_depends_on_the_requests_size() {
    // a is cheaper for short prompts, dearer above 1,000 input tokens.
    let tiered = Price {
        tiers: vec![PriceTier {
            above_input_tokens: 1_000,
            input: Some(usd("10")),
            ..PriceTier::default()
        }],
        ..Price::new(usd("1"), usd("1"))
    };
    let table = PriceTable::default()
        .with_price(Some("a"), "m", tiered)
        .with_price(Some("b"), "m", Price::new(usd("2"), usd("1")))
        .with_price(Some("c"), "m", Price::new(usd("3"), usd("1")));
    let short =
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"provider":{"sort":"price"}}"#;
    let calls = order_with(order_layer().with_prices(table.clone()), short).await;
    assert_eq!(calls, ["a/m", "b/m", "c/m"]);
    // About 2,000 tokens of input (8,000 bytes).
    let long = short.replace("hi", &"word ".repeat(1600));
    let calls = order_with(order_layer().with_prices(table.clone()), &long).await;
    assert_eq!(calls, ["b/m", "c/m", "a/m"]);
    // The output asked for counts too: b's output at $50 makes it dearest.
    let table = table.with_price(Some("b"), "m", Price::new(usd("2"), usd("50")));
    let capped = short.replace(r#""messages""#, r#""max_tokens":1000,"messages""#);
    let calls = order_with(order_layer().with_prices(table), &capped).await;
    assert_eq!(calls, ["a/m", "c/m", "b/m"]);
}

#[tokio::test(start_paused = true)]
async fn a_models_configured_sort_is_its_default() {
    let config = Config::parse(
        &format!(
            "{CONFIG}\ncheap = {{ targets = [\"a/m\", \"b/m\", \"c/m\"], sort = \"cost\" }}\n\
             \"fast-*\" = {{ targets = [\"a/*\", \"b/*\"], sort = \"price\" }}\n"
        ),
        &|_| None,
    )
    .unwrap();
    let routes = Arc::new(Routes::from_config(&config));
    let layer =
        || ProviderOrderLayer::new(routes.clone(), Cooldowns::default()).with_prices(prices());
    let calls = order_with(layer(), r#"{"model":"cheap","messages":[]}"#).await;
    assert_eq!(calls, ["b/m", "a/m", "c/m"]);
    // A prefix alias's sort applies to the names it matches.
    let table = PriceTable::default()
        .with_price(Some("a"), "fast-x", Price::new(usd("5"), usd("5")))
        .with_price(Some("b"), "fast-x", Price::new(usd("1"), usd("1")));
    let fast = ProviderOrderLayer::new(routes.clone(), Cooldowns::default()).with_prices(table);
    let calls = order_with(fast, r#"{"model":"fast-x","messages":[]}"#).await;
    assert_eq!(calls, ["b/fast-x", "a/fast-x"]);
    // The request's own sort wins over the model's.
    let calls = order_with(
        layer(),
        r#"{"model":"cheap","messages":[],"providerOptions":{"gateway":{"sort":"ttft"}}}"#,
    )
    .await;
    assert_eq!(calls, ["a/m", "b/m", "c/m"], "nothing measured yet");
    // A sort the config does not know is an error naming it.
    let e = Config::parse(
        &format!("{CONFIG}\nx = {{ targets = [\"a/m\"], sort = \"tps\" }}\n"),
        &|_| None,
    )
    .unwrap_err();
    assert!(e.0.starts_with("models.x.sort:"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn ttft_sort_measures_each_provider_then_prefers_the_fastest() {
    // a answers in 300 ms, b in 100 ms, c in 200 ms.
    let (inner, calls) = provider_async(|l, _| {
        let l = l.to_string();
        Box::pin(async move {
            let ms = match &l[..1] {
                "a" => 300,
                "b" => 100,
                _ => 200,
            };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ok(&l)
        })
    });
    let layer = order_layer();
    let svc = ServiceBuilder::new().layer(layer.clone()).service(inner);
    let body = r#"{"model":"m","messages":[],"providerOptions":{"gateway":{"sort":"ttft"}}}"#;
    let mut served_by = Vec::new();
    for _ in 0..4 {
        let resp = svc.clone().oneshot(req(body)).await.unwrap();
        served_by.push(served(&resp));
    }
    // Each unmeasured provider is tried once, in configured order; then
    // the fastest serves.
    assert_eq!(served_by, ["a/m", "b/m", "c/m", "b/m"]);
    assert_eq!(calls.len(), 4, "no attempt failed");
    // The whole ranking, seen through failures (which measure nothing),
    // with the same layer's estimates; OpenRouter's spelling.
    let (failing, calls) = provider(|_, _| Err(upstream(503)));
    let svc = ServiceBuilder::new().layer(layer).service(failing);
    let body = r#"{"model":"m","messages":[],"provider":{"sort":"latency"}}"#;
    svc.oneshot(req(body)).await.unwrap_err();
    assert_eq!(calls.list(), ["b/m", "c/m", "a/m"]);
}
