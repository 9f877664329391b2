//! What the `Auth` layer costs per request: the same request through a
//! trivial service, without the layer, and with it checking a gateway key
//! that the store already answered for (the hot path: a SHA-256, a cache
//! hit, the principal put in the extensions), a static key from the
//! config, and no key on an open (loopback, keyless) gateway.
//!
//! Run: `cargo bench --bench auth`

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use tollgate::auth::{display_prefix, AuthLayer, Authenticator, KeyHash, KeyRecord, Principal};
use tollgate::config::AuthMode;
use tollgate::store::{KeyStore, StoreFuture};
use tower::{service_fn, Layer, Service, ServiceExt};

const KEY: &str = "tg_benchBENCHbench0123456789abcdefghijABCDEFGHIJ";

struct OneKey;

impl KeyStore for OneKey {
    fn lookup(&self, hash: &KeyHash) -> StoreFuture<'_, Option<KeyRecord>> {
        let found = (*hash == KeyHash::of(KEY)).then(|| KeyRecord {
            id: "key_bench".into(),
            name: "bench".into(),
            prefix: display_prefix(KEY),
            user: Some("ann".into()),
            team: Some("perf".into()),
            tags: vec!["a".into(), "b".into()],
            models: vec![],
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            rotated_from: None,
            limits: Default::default(),
        });
        Box::pin(std::future::ready(Ok(found)))
    }
}

fn request(key: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("user-agent", "OpenAI/Python 1.99.0");
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    r.body(Body::empty()).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inner = service_fn(|req: Request<Body>| async move {
        std::hint::black_box(req.extensions().get::<Principal>().is_some());
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let mut g = c.benchmark_group("auth");
    g.bench_function("no layer, no key", |b| {
        b.iter(|| rt.block_on(inner.oneshot(request(None))).unwrap())
    });
    g.bench_function("no layer", |b| {
        b.iter(|| rt.block_on(inner.oneshot(request(Some(KEY)))).unwrap())
    });

    let store_auth = Authenticator::new(AuthMode::Auto, true).with_store(Arc::new(OneKey));
    let with_store = AuthLayer::new(store_auth).layer(inner);
    // The first request fills the cache; the loop measures the hits.
    let first = rt
        .block_on(with_store.clone().oneshot(request(Some(KEY))))
        .unwrap();
    assert_eq!(first.status(), 200);
    g.bench_function("store key, cached", |b| {
        b.iter(|| {
            let mut s = with_store.clone();
            rt.block_on(async { s.ready().await.unwrap().call(request(Some(KEY))).await })
                .unwrap()
        })
    });

    let static_auth = Authenticator::new(AuthMode::Auto, true).with_static_key(
        KEY,
        Principal {
            method: tollgate::auth::AuthMethod::StaticKey,
            ..Principal::anonymous()
        },
    );
    let with_static = AuthLayer::new(static_auth).layer(inner);
    g.bench_function("static key", |b| {
        b.iter(|| {
            rt.block_on(with_static.clone().oneshot(request(Some(KEY))))
                .unwrap()
        })
    });

    let open = AuthLayer::new(Authenticator::new(AuthMode::Auto, true)).layer(inner);
    g.bench_function("open, no key", |b| {
        b.iter(|| rt.block_on(open.clone().oneshot(request(None))).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
