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

/// An upstream that tells when a request arrives, then never answers.
async fn silent_upstream() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Read until the client goes away; say so once the
                // request's head is in.
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let had = seen.windows(4).any(|w| w == b"\r\n\r\n");
                    seen.extend_from_slice(&buf[..n]);
                    if !had && seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let _ = tx.send(());
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), rx)
}

#[tokio::test]
async fn a_request_dropped_after_it_reached_the_provider_is_recorded_disconnected() {
    let (base, mut arrived) = silent_upstream().await;
    let text = format!(
        "[providers.p]\nkind = \"anthropic\"\nbase_url = \"{base}\"\napi_key = \"sk-ant-test-SECRET\"\n"
    );
    let config = crate::config::Config::parse(&text, &|_| None).unwrap();
    let providers = crate::provider::Providers::from_config(&config).unwrap();
    let store = MemStore::default();
    let ledger = store.ledger();
    let svc = UsageLayer::new(prices(MODEL), Some(ledger.clone())).layer(providers);
    let body = long_body();
    let mut req = request(
        WireFormat::Anthropic,
        Operation::Generate,
        &body,
        "req_left",
    );
    req.extensions.insert(crate::request::Target {
        provider: "p".into(),
        model: MODEL.into(),
    });
    let call = tokio::spawn(svc.oneshot(req));
    arrived
        .recv()
        .await
        .expect("the request reached the provider");
    // The client leaves while the answer is being generated.
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    ledger.flush().await;
    let rows = store.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(&*row.id, "req_left");
    assert!(row.disconnected && row.estimated);
    assert_eq!(row.status, 499);
    assert_eq!(row.provider.as_deref(), Some("p"));
    assert_eq!(row.credential, Some("gateway"));
    let input = row.usage.input_tokens;
    let bytes = body.len() as u64;
    assert!(input.abs_diff(bytes / 4) < 10, "{input} for {bytes} bytes");
    assert_eq!(row.usage.output_tokens, 0);
    // $1/MTok of input.
    assert_eq!(row.cost, Some(Nanos(input * 1_000)));
}

#[tokio::test]
async fn a_request_dropped_before_any_provider_is_not_recorded() {
    let store = MemStore::default();
    let ledger = store.ledger();
    let svc = UsageLayer::new(prices(MODEL), Some(ledger.clone())).layer(service_fn(
        |_req: GatewayRequest| std::future::pending::<Result<GatewayResponse, GatewayError>>(),
    ));
    let req = request(
        WireFormat::Anthropic,
        Operation::Generate,
        &long_body(),
        "req_queued",
    );
    let mut fut = Box::pin(svc.oneshot(req));
    // Called, and waiting in a queue before any provider.
    assert!(futures_util::FutureExt::now_or_never(&mut fut).is_none());
    drop(fut);
    ledger.flush().await;
    assert!(store.rows().is_empty());
}

#[tokio::test]
async fn counts_no_model_reads_are_cut_before_anyone_settles() {
    let store = MemStore::default();
    let ledger = store.ledger();
    let svc = UsageLayer::new(prices(MODEL), Some(ledger.clone())).layer(service_fn(
        |_req: GatewayRequest| async {
            let body = ResponseBody::Raw(Bytes::from_static(
                br#"{"content":[],"usage":{"input_tokens":18446744073709551615,"output_tokens":99999999999999999}}"#,
            ));
            let mut resp = served(body, MODEL);
            resp.meta.read_usage(WireFormat::Anthropic, &resp.body);
            Ok::<_, GatewayError>(resp)
        },
    ));
    let req = request(
        WireFormat::Anthropic,
        Operation::Generate,
        &long_body(),
        "r",
    );
    let resp = svc.oneshot(req).await.unwrap();
    let s = resp
        .extensions
        .get::<Settlement>()
        .unwrap()
        .summary()
        .unwrap();
    use crate::usage::summary::{MAX_COST, MAX_TOKENS};
    assert_eq!(s.usage.input_tokens, MAX_TOKENS);
    assert_eq!(s.usage.output_tokens, MAX_TOKENS);
    assert_eq!(s.cost, Some(MAX_COST));
    ledger.flush().await;
    assert_eq!(store.rows()[0].cost, Some(MAX_COST));
}

#[tokio::test]
async fn a_failed_request_costs_a_known_zero() {
    use crate::routing::{Attempt, AttemptLog, CredentialKind, Outcome as AttemptOutcome};
    let store = MemStore::default();
    let ledger = store.ledger();
    let svc = UsageLayer::new(prices(MODEL), Some(ledger.clone())).layer(service_fn(
        |req: GatewayRequest| async move {
            let log = req.extensions.get::<AttemptLog>().unwrap();
            log.push(Attempt {
                target: crate::request::Target {
                    provider: "p".into(),
                    model: MODEL.into(),
                },
                deployment: None,
                credential: CredentialKind::Gateway,
                outcome: AttemptOutcome::Status(529),
            });
            Err::<GatewayResponse, _>(GatewayError::new(
                crate::error::ErrorKind::Overloaded,
                "busy",
            ))
        },
    ));
    let mut req = request(
        WireFormat::Anthropic,
        Operation::Generate,
        &long_body(),
        "f",
    );
    req.extensions.insert(AttemptLog::new());
    assert!(svc.oneshot(req).await.is_err());
    ledger.flush().await;
    let row = &store.rows()[0];
    assert_eq!(row.error.as_deref(), Some("overloaded_error"));
    assert_eq!(
        (row.cost, row.list_cost),
        (Some(Nanos::ZERO), Some(Nanos::ZERO))
    );
}
