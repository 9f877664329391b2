//! The usage layer around a `service_fn`, writing to an in-memory ledger.

use bytes::Bytes;
use tower::{service_fn, Layer, ServiceExt};

use super::testing::{prices, request, served, MemStore};
use super::{Nanos, Settlement, UsageLayer};
use crate::error::GatewayError;
use crate::format::WireFormat;
use crate::request::{GatewayRequest, Operation};
use crate::response::{GatewayResponse, ResponseBody};

const MODEL: &str = "claude-x";

/// A long conversation: its body estimate is thousands of tokens.
fn long_body() -> String {
    let text = "word ".repeat(4000);
    format!(r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"{text}"}}]}}"#)
}

#[tokio::test]
async fn a_passed_through_token_count_costs_nothing_and_is_recorded() {
    let store = MemStore::default();
    let ledger = store.ledger();
    let layer = UsageLayer::new(prices(MODEL), Some(ledger.clone()));
    let svc = layer.layer(service_fn(|_req: GatewayRequest| async {
        // Anthropic's answer to count_tokens, passed through as it came.
        let body = ResponseBody::Raw(Bytes::from_static(br#"{"input_tokens":5012}"#));
        Ok::<_, GatewayError>(served(body, MODEL))
    }));
    let req = request(
        WireFormat::Anthropic,
        Operation::CountTokens,
        &long_body(),
        "req_count",
    );
    let resp: GatewayResponse = svc.oneshot(req).await.unwrap();
    let summary = resp
        .extensions
        .get::<Settlement>()
        .and_then(Settlement::summary)
        .expect("settled");
    assert_eq!(summary.cost, Some(Nanos::ZERO));
    assert_eq!(summary.list_cost, Some(Nanos::ZERO));
    assert_eq!(summary.usage, Default::default());
    assert!(!summary.estimated);
    ledger.flush().await;
    let rows = store.rows();
    assert_eq!(rows.len(), 1, "recorded, for /v1/generation");
    let row = &rows[0];
    assert_eq!(&*row.id, "req_count");
    assert_eq!(row.status, 200);
    assert_eq!(row.cost, Some(Nanos::ZERO));
    assert_eq!(row.usage, Default::default());
}

#[tokio::test(start_paused = true)]
async fn a_complete_answer_is_released_when_the_ledger_is_stuck() {
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let store = MemStore::default();
    store.failing.store(true, Ordering::SeqCst);
    let timeout = Duration::from_millis(1500);
    let ledger = store.ledger().with_durable_timeout(timeout);
    let layer = UsageLayer::new(prices(MODEL), Some(ledger.clone()));
    let svc = layer.layer(service_fn(|_req: GatewayRequest| async {
        let body = ResponseBody::Raw(Bytes::from_static(
            br#"{"content":[],"usage":{"input_tokens":3,"output_tokens":4}}"#,
        ));
        let mut resp = served(body, MODEL);
        resp.meta.read_usage(WireFormat::Anthropic, &resp.body);
        Ok::<_, GatewayError>(resp)
    }));
    let req = request(
        WireFormat::Anthropic,
        Operation::Generate,
        &long_body(),
        "req_stuck",
    );
    let started = tokio::time::Instant::now();
    svc.oneshot(req).await.expect("the answer, not a hang");
    assert_eq!(started.elapsed(), timeout);
    assert_eq!(ledger.durable_timeouts(), 1);
    store.failing.store(false, Ordering::SeqCst);
    ledger.flush().await;
    assert_eq!(store.rows()[0].usage.output_tokens, 4);
}
