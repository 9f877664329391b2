//! The budgets' tests: reservations, periods, soft budgets, scopes, the
//! layer around a `service_fn`, the store's budgets, and `/v1/credits`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use super::credits::credits_body;
use super::*;
use crate::auth::Principal;
use crate::canonical::Usage;
use crate::error::GatewayError;
use crate::format::{error_body, WireFormat};
use crate::json::RawObject;
use crate::request::{GatewayRequest, Operation};
use crate::response::{GatewayResponse, ResponseBody};
use crate::store::{StoreError, StoreFuture};
use crate::usage::{Nanos, Price, PriceTable, Settlement, Summary};

/// 2026-03-04 (a Wednesday) 15:30:00 UTC.
const WED: i64 = 1_772_638_200;
const DAY: i64 = 86_400;

fn spec(label: &str, nanos: u64, period: Period, soft: bool) -> BudgetSpec {
    BudgetSpec {
        scope: Scope::parse(label).unwrap(),
        amount: Nanos(nanos),
        period,
        soft,
    }
}

/// Budgets over `specs` on a clock the returned handle sets.
fn budgets(specs: Vec<BudgetSpec>) -> (Budgets, Arc<AtomicI64>) {
    let clock = Arc::new(AtomicI64::new(WED));
    let c = clock.clone();
    let b = Budgets::new(specs).with_clock(move || c.load(Ordering::SeqCst));
    (b, clock)
}

fn principal(id: &str, user: Option<&str>, team: Option<&str>, tags: &[&str]) -> Principal {
    Principal {
        id: id.into(),
        user: user.map(Into::into),
        team: team.map(Into::into),
        tags: tags.iter().map(|t| Arc::from(*t)).collect(),
        ..Principal::anonymous()
    }
}

fn spent(b: &Budgets, label: &str) -> (u64, u64) {
    let s = b
        .all()
        .into_iter()
        .find(|s| s.spec.scope.to_string() == label)
        .unwrap();
    (s.spent.0, s.reserved.0)
}

#[test]
fn a_reservation_fits_or_is_refused_and_settles_to_the_real_cost() {
    let (b, _) = budgets(vec![spec("global", 100, Period::Daily, false)]);
    let first = b.reserve(None, Nanos(60)).unwrap();
    assert_eq!(spent(&b, "global"), (0, 60));
    // 60 held + 50 > 100: refused, and nothing is held for it.
    let refused = b.reserve(None, Nanos(50)).unwrap_err();
    assert_eq!(refused.scope, Scope::Global);
    assert_eq!(spent(&b, "global"), (0, 60));
    // Exactly to the amount fits.
    let second = b.reserve(None, Nanos(40)).unwrap();
    first.settle(Nanos(25));
    assert_eq!(spent(&b, "global"), (25, 40));
    // Dropped unsettled: released, nothing spent.
    drop(second);
    assert_eq!(spent(&b, "global"), (25, 0));
    assert!(b.reserve(None, Nanos(75)).is_ok());
    assert_eq!(b.stats().refused, 1);
}

#[test]
fn an_unknown_price_passes_only_while_something_is_left() {
    let (b, _) = budgets(vec![spec("global", 100, Period::None, false)]);
    b.reserve(None, Nanos(100)).unwrap().settle(Nanos(99));
    b.reserve(None, Nanos::ZERO).unwrap().settle(Nanos(1));
    assert_eq!(spent(&b, "global"), (100, 0));
    assert!(b.reserve(None, Nanos::ZERO).is_err());
}

#[test]
fn a_new_period_starts_from_nothing_spent() {
    let (b, clock) = budgets(vec![
        spec("global", 100, Period::Daily, false),
        spec("tag:ci", 100, Period::Monthly, false),
    ]);
    let ci = principal("k", None, None, &["ci"]);
    b.reserve(Some(&ci), Nanos(90)).unwrap().settle(Nanos(90));
    assert!(b.reserve(Some(&ci), Nanos(20)).is_err());
    // A request in flight over midnight settles into the day it started in.
    let late = b.reserve(Some(&ci), Nanos(10)).unwrap();
    let midnight = WED - WED % DAY + DAY;
    clock.store(midnight - 1, Ordering::SeqCst);
    assert!(b.reserve(Some(&ci), Nanos(20)).is_err());
    clock.store(midnight, Ordering::SeqCst);
    // The day is new; the month is not: the tag's budget still refuses.
    let refusal = b.reserve(Some(&ci), Nanos(20)).unwrap_err();
    assert_eq!(refusal.scope, Scope::Tag("ci".into()));
    assert_eq!(refusal.resets_at, Some(1_775_001_600)); // 2026-04-01
    assert!(b.reserve(None, Nanos(20)).is_ok());
    late.settle(Nanos(10));
    let day = b
        .all()
        .into_iter()
        .find(|s| s.spec.scope == Scope::Global)
        .unwrap();
    assert_eq!((day.spent, day.reserved), (Nanos(0), Nanos(0)));
    assert_eq!(day.resets_at, Some(midnight + DAY));
    assert_eq!(spent(&b, "tag:ci"), (100, 0));
    clock.store(1_775_001_600, Ordering::SeqCst);
    assert!(b.reserve(Some(&ci), Nanos(100)).is_ok());
}

#[test]
fn a_soft_budget_serves_past_its_amount_and_counts_it() {
    let (b, _) = budgets(vec![spec("team:ml", 100, Period::Weekly, true)]);
    let ml = principal("k", None, Some("ml"), &[]);
    let r = b.reserve(Some(&ml), Nanos(80)).unwrap();
    assert!(!r.is_over_soft());
    r.settle(Nanos(80));
    let r = b.reserve(Some(&ml), Nanos(80)).unwrap();
    assert!(r.is_over_soft());
    r.settle(Nanos(70));
    assert_eq!(spent(&b, "team:ml"), (150, 0));
    assert_eq!(b.stats().over_soft, 1);
    assert_eq!(b.stats().refused, 0);
}

#[test]
fn every_budget_of_every_scope_of_the_principal_applies_and_no_other() {
    let (b, _) = budgets(vec![
        spec("global", 1_000, Period::None, false),
        spec("key:k1", 100, Period::None, false),
        spec("user:ana", 1_000, Period::None, false),
        spec("team:ml", 1_000, Period::None, false),
        spec("tag:ci", 50, Period::None, false),
        spec("team:ops", 1, Period::None, false),
    ]);
    let ana = principal("k1", Some("ana"), Some("ml"), &["ci", "ci"]);
    b.reserve(Some(&ana), Nanos(30)).unwrap().settle(Nanos(30));
    for (label, expect) in [
        ("global", 30),
        ("key:k1", 30),
        ("user:ana", 30),
        ("team:ml", 30),
        ("tag:ci", 30), // the tag listed twice is charged once
        ("team:ops", 0),
    ] {
        assert_eq!(spent(&b, label).0, expect, "{label}");
    }
    // The tag's budget is the tightest: the others are left as they were.
    let refusal = b.reserve(Some(&ana), Nanos(30)).unwrap_err();
    assert_eq!(refusal.scope, Scope::Tag("ci".into()));
    assert_eq!(spent(&b, "global"), (30, 0));
    assert_eq!(spent(&b, "key:k1"), (30, 0));
    // Without a principal only the global budget applies.
    assert!(b.reserve(None, Nanos(900)).is_ok());
    assert_eq!(b.status(None).len(), 1);
    assert_eq!(b.status(Some(&ana)).len(), 5);
}

#[test]
fn the_402_names_scope_and_period_in_every_format_and_no_amount() {
    let refusal = Refusal {
        scope: Scope::Team("ml".into()),
        period: Period::Monthly,
        resets_at: Some(1_775_001_600),
    };
    let err = refusal.to_error();
    assert_eq!(err.status(), 402);
    assert_eq!(
        err.message(),
        "budget exceeded: team `ml`'s monthly budget does not cover this request; it resets at 2026-04-01T00:00:00Z"
    );
    let body = |f| serde_json::from_slice::<Value>(&error_body(f, &err)).unwrap();
    for f in [WireFormat::OpenAiChat, WireFormat::OpenAiResponses] {
        let v = body(f);
        assert_eq!(v["error"]["type"], "insufficient_funds", "{f:?}");
        assert_eq!(v["error"]["code"], "budget_exceeded", "{f:?}");
        assert_eq!(v["error"]["message"], err.message());
    }
    let v = body(WireFormat::Anthropic);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "insufficient_funds");
    assert_eq!(v["error"]["message"], err.message());
    assert_eq!(body(WireFormat::Gemini)["error"]["code"], 402);
    let global = Refusal {
        scope: Scope::Global,
        period: Period::None,
        resets_at: None,
    };
    assert_eq!(
        global.to_error().message(),
        "budget exceeded: the gateway's budget does not cover this request"
    );
    let key = Refusal {
        scope: Scope::Key("key_secretish".into()),
        period: Period::Daily,
        resets_at: None,
    };
    assert!(!key.to_error().message().contains("key_secretish"));
}

// The layer, around a `service_fn`.

/// $1 per million input tokens, $2 per million output tokens.
fn price() -> Price {
    Price {
        input: Nanos(1_000_000_000),
        output: Nanos(2_000_000_000),
        ..Price::default()
    }
}

fn pricing() -> Pricing {
    let config = crate::config::Config::parse(
        "[providers.p]\nkind = \"openai\"\n[models]\nm = \"p/m\"\n",
        &|_| None,
    )
    .unwrap();
    Pricing::new(
        Arc::new(crate::routing::Routes::from_config(&config)),
        Arc::new(PriceTable::default().with_price(None, "m", price())),
    )
}

/// A request for model `model` capped at `max_tokens`, from `p`.
fn ask(model: &str, max_tokens: u64, p: Option<&Principal>) -> GatewayRequest {
    let body = format!(r#"{{"model":"{model}","messages":[],"max_tokens":{max_tokens}}}"#);
    let raw = RawObject::parse(body.as_bytes()).unwrap();
    let mut req = GatewayRequest::new(WireFormat::OpenAiChat, Operation::Generate, raw).unwrap();
    if let Some(p) = p {
        req.extensions.insert(p.clone());
    }
    req
}

fn worst(max_tokens: u64) -> Nanos {
    pricing().worst_case(&ask("m", max_tokens, None)).unwrap()
}

fn summary(cost: Option<Nanos>) -> Summary {
    Summary::settled(Usage::default(), cost)
}

#[tokio::test]
async fn the_layer_settles_the_real_cost_when_the_answer_settles() {
    let (b, _) = budgets(vec![spec("global", worst(1000).0 * 2, Period::None, false)]);
    let settlements: Arc<Mutex<Vec<Settlement>>> = Arc::default();
    let kept = settlements.clone();
    let svc = ServiceBuilder::new()
        .layer(BudgetLayer::new(b.clone(), pricing()))
        .service(service_fn(move |_req: GatewayRequest| {
            let kept = kept.clone();
            async move {
                let mut resp = GatewayResponse::new(ResponseBody::TokenCount(0));
                let s = Settlement::new();
                kept.lock().unwrap().push(s.clone());
                resp.extensions.insert(s);
                Ok::<_, GatewayError>(resp)
            }
        }));
    let resp = svc.clone().oneshot(ask("m", 1000, None)).await.unwrap();
    assert!(!resp.meta.headers.contains_key(BUDGET_HEADER));
    // The stream is still going: its worst case is held.
    assert_eq!(spent(&b, "global"), (0, worst(1000).0));
    settlements.lock().unwrap()[0].settle(summary(Some(Nanos(7))));
    assert_eq!(spent(&b, "global"), (7, 0));
    // A settlement without a cost (the price turned out unknown) keeps
    // what was reserved.
    svc.clone().oneshot(ask("m", 10, None)).await.unwrap();
    settlements.lock().unwrap()[1].settle(summary(None));
    assert_eq!(spent(&b, "global"), (7 + worst(10).0, 0));
}

#[tokio::test]
async fn the_layer_releases_on_an_error_and_refuses_with_a_402() {
    let (b, _) = budgets(vec![spec("key:k1", worst(100).0, Period::None, false)]);
    let k1 = principal("k1", None, None, &[]);
    let failing = ServiceBuilder::new()
        .layer(BudgetLayer::new(b.clone(), pricing()))
        .service(service_fn(|_req: GatewayRequest| async {
            Err::<GatewayResponse, _>(GatewayError::new(
                crate::error::ErrorKind::Overloaded,
                "busy",
            ))
        }));
    let err = failing.oneshot(ask("m", 100, Some(&k1))).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(spent(&b, "key:k1"), (0, 0));

    // No meter inside: the worst case is what is spent.
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let served = ServiceBuilder::new()
        .layer(BudgetLayer::new(b.clone(), pricing()))
        .service(service_fn(move |_req: GatewayRequest| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, GatewayError>(GatewayResponse::new(ResponseBody::TokenCount(0))) }
        }));
    served
        .clone()
        .oneshot(ask("m", 100, Some(&k1)))
        .await
        .unwrap();
    assert_eq!(spent(&b, "key:k1"), (worst(100).0, 0));
    let err = served
        .clone()
        .oneshot(ask("m", 1, Some(&k1)))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 402);
    assert_eq!(err.kind(), crate::error::ErrorKind::InsufficientFunds);
    // The refused request never reached the inner service; another key did.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let k2 = principal("k2", None, None, &[]);
    served.oneshot(ask("m", 1, Some(&k2))).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_request_dropped_before_its_answer_releases_its_reservation() {
    let (b, _) = budgets(vec![spec("global", u64::MAX / 2, Period::None, false)]);
    let svc = ServiceBuilder::new()
        .layer(BudgetLayer::new(b.clone(), pricing()))
        .service(service_fn(|_req: GatewayRequest| async {
            std::future::pending::<Result<GatewayResponse, GatewayError>>().await
        }));
    let mut call = Box::pin(svc.oneshot(ask("m", 100, None)));
    assert!(futures_util::FutureExt::now_or_never(call.as_mut()).is_none());
    assert_eq!(spent(&b, "global").1, worst(100).0);
    drop(call);
    assert_eq!(spent(&b, "global"), (0, 0));
}

#[tokio::test]
async fn a_soft_budget_marks_the_answer_and_an_unknown_price_reserves_nothing() {
    let (b, _) = budgets(vec![spec("global", 1, Period::None, true)]);
    let svc = ServiceBuilder::new()
        .layer(BudgetLayer::new(b.clone(), pricing()))
        .service(service_fn(|_req: GatewayRequest| async {
            Ok::<_, GatewayError>(GatewayResponse::new(ResponseBody::TokenCount(0)))
        }));
    let resp = svc.clone().oneshot(ask("m", 100, None)).await.unwrap();
    assert_eq!(resp.meta.headers[BUDGET_HEADER], "over");
    assert_eq!(b.stats().over_soft, 1);
    // `p/other` has no price: served, nothing reserved, counted.
    let resp = svc.oneshot(ask("p/other", 100, None)).await.unwrap();
    assert_eq!(resp.meta.headers[BUDGET_HEADER], "over");
    assert_eq!(b.stats().unknown_price, 1);
    assert_eq!(spent(&b, "global"), (worst(100).0, 0));
}

// The store's budgets.

#[derive(Default)]
struct FakeStore {
    budgets: Mutex<Vec<BudgetSpec>>,
    revision: AtomicU64,
    ledger: Mutex<Vec<(Scope, i64, u64)>>,
    reads: AtomicU64,
    lists: AtomicU64,
}

impl FakeStore {
    fn set(&self, budgets: Vec<BudgetSpec>) {
        *self.budgets.lock().unwrap() = budgets;
        self.revision.fetch_add(1, Ordering::SeqCst);
    }
}

impl BudgetStore for FakeStore {
    fn budgets(&self) -> StoreFuture<'_, Vec<BudgetSpec>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        let b = self.budgets.lock().unwrap().clone();
        Box::pin(async move { Ok(b) })
    }

    fn budget_revision(&self) -> StoreFuture<'_, u64> {
        let r = self.revision.load(Ordering::SeqCst);
        Box::pin(async move { Ok(r) })
    }

    fn spent_since<'a>(&'a self, scope: &'a Scope, since_ms: i64) -> StoreFuture<'a, Nanos> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let sum = self
            .ledger
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, t, _)| s == scope && *t >= since_ms)
            .map(|(_, _, c)| c)
            .sum();
        Box::pin(async move { Ok::<_, StoreError>(Nanos(sum)) })
    }
}

#[tokio::test]
async fn the_stores_budgets_start_from_the_ledger_and_keep_their_spend_across_changes() {
    let store = Arc::new(FakeStore::default());
    let today_ms = (WED - WED % DAY) * 1000;
    store.ledger.lock().unwrap().extend([
        (Scope::Global, today_ms - 1, 1_000), // yesterday
        (Scope::Global, today_ms + 5, 30),
        (Scope::Team("ml".into()), today_ms, 40),
    ]);
    *store.budgets.lock().unwrap() = vec![spec("team:ml", 100, Period::Daily, false)];
    let clock = move || WED;
    let b = Budgets::new(vec![spec("global", 1_000, Period::Daily, false)])
        .with_store(store.clone())
        .with_clock(clock);
    b.refresh().await.unwrap();
    assert_eq!(spent(&b, "global"), (30, 0));
    assert_eq!(spent(&b, "team:ml"), (40, 0));
    let ml = principal("k", None, Some("ml"), &[]);
    let held = b.reserve(Some(&ml), Nanos(50)).unwrap();
    // Nothing changed: the budgets are not read again.
    let lists = store.lists.load(Ordering::SeqCst);
    b.refresh().await.unwrap();
    assert_eq!(store.lists.load(Ordering::SeqCst), lists);
    // A new amount for the team, a budget for a tag: the team keeps what
    // it spent and holds; the tag starts from the ledger.
    *store.budgets.lock().unwrap() = vec![
        spec("team:ml", 200, Period::Daily, false),
        spec("tag:ci", 10, Period::Daily, false),
    ];
    store.revision.fetch_add(1, Ordering::SeqCst);
    b.refresh().await.unwrap();
    assert_eq!(spent(&b, "team:ml"), (40, 50));
    held.settle(Nanos(45));
    assert_eq!(spent(&b, "team:ml"), (85, 0));
    assert!(b.reserve(Some(&ml), Nanos(115)).is_ok());
    // Deleted: it no longer applies.
    store.budgets.lock().unwrap().clear();
    store.revision.fetch_add(1, Ordering::SeqCst);
    b.refresh().await.unwrap();
    assert_eq!(b.status(Some(&ml)).len(), 1); // the config's global one
}

#[tokio::test(start_paused = true)]
async fn a_running_gateway_reads_a_changed_budget_within_a_second() {
    let store = Arc::new(FakeStore::default());
    let b = Budgets::none().with_store(store.clone());
    assert!(b.reserve(None, Nanos(5)).is_ok()); // starts the refresher
    *store.budgets.lock().unwrap() = vec![spec("global", 1, Period::None, false)];
    store.revision.fetch_add(1, Ordering::SeqCst);
    let start = tokio::time::Instant::now();
    while b.reserve(None, Nanos(5)).is_ok() {
        assert!(start.elapsed() <= REFRESH_EVERY * 2, "not picked up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// `GET /v1/credits`.

#[test]
fn credits_answer_the_tightest_budget_in_vercels_shape() {
    let (b, _) = budgets(vec![
        spec("user:ana", 100_000_000_000, Period::None, false), // $100
        spec("team:ml", 50_000_000_000, Period::Monthly, false), // $50
        spec("key:k", 1_000_000_000, Period::Daily, true),      // $1, soft
    ]);
    let ana = principal("k", Some("ana"), Some("ml"), &[]);
    b.reserve(Some(&ana), Nanos(4_500_000_000))
        .unwrap()
        .settle(Nanos(4_500_000_000));
    let v = credits_body(&b.status(Some(&ana)), Some(&ana));
    assert_eq!(v["balance"], "45.5");
    assert_eq!(v["total_used"], "4.5");
    assert_eq!(v["budget"]["scope"], "team:ml");
    assert_eq!(v["budget"]["period"], "monthly");
    assert_eq!(v["budget"]["resets_at"], "2026-04-01T00:00:00Z");
    // A caller under a soft budget only, past it: a negative balance.
    let (b, _) = budgets(vec![spec("key:k", 1_000_000_000, Period::None, true)]);
    b.reserve(Some(&ana), Nanos(1_250_000_000))
        .unwrap()
        .settle(Nanos(1_250_000_000));
    let v = credits_body(&b.status(Some(&ana)), Some(&ana));
    assert_eq!(v["balance"], "-0.25");
    assert_eq!(v["budget"]["resets_at"], Value::Null);
    // No budget applies: nothing to say.
    let x = principal("x", None, None, &[]);
    let v = credits_body(&b.status(Some(&x)), Some(&x));
    assert_eq!(
        v,
        serde_json::json!({"balance": null, "total_used": null, "budget": null})
    );
}

#[test]
fn credits_never_show_other_tenants_figures() {
    let (b, _) = budgets(vec![
        spec("global", 100_000_000_000, Period::None, false),
        spec("tag:ci", 2_000_000_000, Period::Daily, false),
        spec("team:ml", 50_000_000_000, Period::Monthly, false),
    ]);
    // Another team's key, tagged `ci` too, spends.
    let other = Principal {
        method: crate::auth::AuthMethod::Key,
        ..principal("key_o", None, Some("ops"), &["ci"])
    };
    b.reserve(Some(&other), Nanos(1_500_000_000))
        .unwrap()
        .settle(Nanos(1_500_000_000));
    let ml = Principal {
        method: crate::auth::AuthMethod::Key,
        ..principal("key_m", None, Some("ml"), &["ci"])
    };
    // The tag's and the gateway's budgets are tighter, and not ml's to see.
    let v = credits_body(&b.status(Some(&ml)), Some(&ml));
    assert_eq!(v["budget"]["scope"], "team:ml", "{v}");
    assert_eq!(v["total_used"], "0");
    // Only budgets over many tenants apply: nothing is shown.
    let lone = Principal {
        method: crate::auth::AuthMethod::Jwt,
        ..principal("sub", None, None, &["ci"])
    };
    let v = credits_body(&b.status(Some(&lone)), Some(&lone));
    assert_eq!(v["budget"], Value::Null, "{v}");
    // The operator of an open gateway sees the gateway's.
    let operator = Principal::anonymous();
    let v = credits_body(&b.status(Some(&operator)), Some(&operator));
    assert_eq!(v["budget"]["scope"], "global", "{v}");
    assert_eq!(v["total_used"], "1.5");
}

// Budgets changed while requests are in flight.

/// Budgets with `store`'s, at `WED`, read once.
async fn with_store(store: &Arc<FakeStore>) -> Budgets {
    let b = Budgets::none().with_store(store.clone()).with_clock(|| WED);
    b.refresh().await.unwrap();
    b
}

#[tokio::test]
async fn a_new_period_keeps_what_requests_in_flight_hold_and_their_spend() {
    let store = Arc::new(FakeStore::default());
    let today_ms = (WED - WED % DAY) * 1000;
    let month_ms = 1_772_323_200 * 1000; // 2026-03-01
    store.ledger.lock().unwrap().extend([
        (Scope::Team("ml".into()), month_ms, 20),
        (Scope::Team("ml".into()), today_ms, 40),
    ]);
    store.set(vec![spec("team:ml", 100, Period::Daily, false)]);
    let b = with_store(&store).await;
    let ml = principal("k", None, Some("ml"), &[]);
    assert_eq!(spent(&b, "team:ml"), (40, 0));
    let held = b.reserve(Some(&ml), Nanos(50)).unwrap();
    store.set(vec![spec("team:ml", 200, Period::Monthly, false)]);
    b.refresh().await.unwrap();
    // The month's spend from the ledger, and the request still held.
    assert_eq!(spent(&b, "team:ml"), (60, 50));
    assert!(b.reserve(Some(&ml), Nanos(91)).is_err());
    held.settle(Nanos(45));
    assert_eq!(spent(&b, "team:ml"), (105, 0));
}

#[tokio::test]
async fn a_budget_deleted_and_set_again_keeps_its_requests_in_flight() {
    let store = Arc::new(FakeStore::default());
    store.set(vec![spec("team:ml", 100, Period::Daily, false)]);
    let b = with_store(&store).await;
    let ml = principal("k", None, Some("ml"), &[]);
    let held = b.reserve(Some(&ml), Nanos(60)).unwrap();
    store.set(Vec::new());
    b.refresh().await.unwrap();
    assert!(b.status(Some(&ml)).is_empty());
    store.set(vec![spec("team:ml", 100, Period::Daily, false)]);
    b.refresh().await.unwrap();
    // Set again while the request is in flight: it still holds its 60.
    assert_eq!(spent(&b, "team:ml"), (0, 60));
    assert!(b.reserve(Some(&ml), Nanos(50)).is_err());
    held.settle(Nanos(55));
    assert_eq!(spent(&b, "team:ml"), (55, 0));
}

#[tokio::test]
async fn spend_the_ledger_has_and_the_budget_missed_is_caught_up_each_tick() {
    let store = Arc::new(FakeStore::default());
    let today_ms = (WED - WED % DAY) * 1000;
    store.set(vec![spec("global", 1_000, Period::None, false)]);
    let b = with_store(&store).await;
    // A request in flight before the team had a budget holds nothing on
    // it; when it ends, the ledger has its spend.
    let ml = principal("k", None, Some("ml"), &[]);
    let early = b.reserve(Some(&ml), Nanos(30)).unwrap();
    store.set(vec![
        spec("global", 1_000, Period::None, false),
        spec("team:ml", 100, Period::Daily, false),
    ]);
    b.refresh().await.unwrap();
    assert_eq!(spent(&b, "team:ml"), (0, 0));
    early.settle(Nanos(30));
    store.ledger.lock().unwrap().extend([
        (Scope::Team("ml".into()), today_ms + 1, 30),
        (Scope::Global, today_ms + 1, 30),
    ]);
    b.refresh().await.unwrap();
    assert_eq!(spent(&b, "team:ml"), (30, 0));
    // Spend settled here and not yet in the ledger is never lowered.
    assert_eq!(spent(&b, "global"), (30, 0));
    b.reserve(None, Nanos(5)).unwrap().settle(Nanos(5));
    b.refresh().await.unwrap();
    assert_eq!(spent(&b, "global"), (35, 0));
}

#[tokio::test]
async fn many_budgets_are_caught_up_in_turns() {
    let store = Arc::new(FakeStore::default());
    let count = RECONCILED_PER_TICK + 4;
    let specs = (0..count)
        .map(|i| spec(&format!("team:t{i}"), 100, Period::None, false))
        .collect();
    store.set(specs);
    let b = with_store(&store).await;
    store
        .ledger
        .lock()
        .unwrap()
        .extend((0..count).map(|i| (Scope::Team(format!("t{i}").into()), 1, 7)));
    let reads = store.reads.load(Ordering::SeqCst);
    b.refresh().await.unwrap();
    assert_eq!(
        store.reads.load(Ordering::SeqCst) - reads,
        RECONCILED_PER_TICK as u64
    );
    b.refresh().await.unwrap();
    for i in 0..count {
        assert_eq!(spent(&b, &format!("team:t{i}")), (7, 0), "t{i}");
    }
}

// Unknown prices and free requests.

#[tokio::test]
async fn a_hard_budget_refuses_a_model_of_unknown_price_and_says_how_to_price_it() {
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let layer = |b: &Budgets| {
        let c = c.clone();
        ServiceBuilder::new()
            .layer(BudgetLayer::new(b.clone(), pricing()))
            .service(service_fn(move |_req: GatewayRequest| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, GatewayError>(GatewayResponse::new(ResponseBody::TokenCount(0))) }
            }))
    };
    let (hard, _) = budgets(vec![spec("team:ml", 1_000_000_000, Period::Daily, false)]);
    let ml = principal("k", None, Some("ml"), &[]);
    let err = layer(&hard)
        .oneshot(ask("p/llama", 10, Some(&ml)))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 402);
    assert_eq!(err.kind(), crate::error::ErrorKind::InsufficientFunds);
    let msg = err.message();
    assert!(msg.contains("`llama`") && msg.contains("`p`"), "{msg}");
    assert!(msg.contains("team `ml`'s daily budget"), "{msg}");
    assert!(
        msg.contains("[prices]") && msg.contains("[providers.p] price"),
        "{msg}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(hard.stats().refused, 1);
    // A priced model that names an unpriced one to fall back to: the
    // fallback could be what serves it.
    let body = r#"{"model":"m","models":["p/llama"],"messages":[],"max_tokens":10}"#;
    let mut req = GatewayRequest::new(
        WireFormat::OpenAiChat,
        Operation::Generate,
        RawObject::parse(body.as_bytes()).unwrap(),
    )
    .unwrap();
    req.extensions.insert(ml.clone());
    assert_eq!(layer(&hard).oneshot(req).await.unwrap_err().status(), 402);
    // Another team, no budget: served, never priced.
    let ops = principal("k2", None, Some("ops"), &[]);
    layer(&hard)
        .oneshot(ask("p/llama", 10, Some(&ops)))
        .await
        .unwrap();
    // Under a soft budget only: served.
    let (soft, _) = budgets(vec![spec("team:ml", 1_000_000_000, Period::Daily, true)]);
    layer(&soft)
        .oneshot(ask("p/llama", 10, Some(&ml)))
        .await
        .unwrap();
    assert_eq!(soft.stats().unknown_price, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn counting_tokens_is_never_refused_and_reserves_nothing() {
    let (b, _) = budgets(vec![spec("global", 1, Period::None, false)]);
    b.reserve(None, Nanos(1)).unwrap().settle(Nanos(1));
    let svc = ServiceBuilder::new()
        .layer(BudgetLayer::new(b.clone(), pricing()))
        .service(service_fn(|_req: GatewayRequest| async {
            Ok::<_, GatewayError>(GatewayResponse::new(ResponseBody::TokenCount(3)))
        }));
    let body = RawObject::parse(br#"{"model":"m","messages":[]}"#).unwrap();
    let count = GatewayRequest::new(WireFormat::Anthropic, Operation::CountTokens, body).unwrap();
    svc.clone().oneshot(count).await.unwrap();
    assert_eq!(spent(&b, "global"), (1, 0));
    assert_eq!(b.stats().refused, 0);
    // A generation is still refused.
    assert_eq!(
        svc.oneshot(ask("m", 1, None)).await.unwrap_err().status(),
        402
    );
}
