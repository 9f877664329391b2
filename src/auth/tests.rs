//! The `Auth` layer alone, around a `service_fn`, with an in-memory key
//! store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

use super::*;
use crate::config::{AuthConfig, AuthMode, StaticKeyConfig};
use crate::store::{KeyStore, StoreError, StoreFuture};

/// Keys in a map, counting lookups; `fail` makes every call an error.
#[derive(Default)]
struct MemStore {
    keys: Mutex<HashMap<KeyHash, KeyRecord>>,
    revision: AtomicU64,
    lookups: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
    touched: Mutex<Vec<(String, i64)>>,
}

impl MemStore {
    fn add(&self, key: &str, id: &str, models: &[&str]) {
        let rec = KeyRecord {
            id: id.into(),
            name: format!("{id}-name"),
            prefix: display_prefix(key),
            user: Some("ann".into()),
            team: Some("red".into()),
            tags: vec!["t1".into()],
            models: models.iter().map(|m| m.to_string()).collect(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            rotated_from: None,
            limits: Default::default(),
        };
        self.keys.lock().unwrap().insert(KeyHash::of(key), rec);
        self.revision.fetch_add(1, Ordering::SeqCst);
    }

    fn edit(&self, key: &str, f: impl FnOnce(&mut KeyRecord)) {
        f(self
            .keys
            .lock()
            .unwrap()
            .get_mut(&KeyHash::of(key))
            .unwrap());
        self.revision.fetch_add(1, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError("disk on fire".into()))
        } else {
            Ok(())
        }
    }
}

impl KeyStore for MemStore {
    fn lookup(&self, hash: &KeyHash) -> StoreFuture<'_, Option<KeyRecord>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let r = self
            .check()
            .map(|()| self.keys.lock().unwrap().get(hash).cloned());
        Box::pin(std::future::ready(r))
    }

    fn revision(&self) -> StoreFuture<'_, u64> {
        let r = self.check().map(|()| self.revision.load(Ordering::SeqCst));
        Box::pin(std::future::ready(r))
    }

    fn has_active_keys(&self) -> StoreFuture<'_, bool> {
        let r = self.check().map(|()| {
            self.keys
                .lock()
                .unwrap()
                .values()
                .any(|k| k.unusable_at(i64::MAX / 2).is_none())
        });
        Box::pin(std::future::ready(r))
    }

    fn touch(&self, used: Vec<(String, i64)>) -> StoreFuture<'_, ()> {
        self.touched.lock().unwrap().extend(used);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The layer around a service that answers with the principal's id (and
/// the credential headers it still sees).
fn app(
    auth: Authenticator,
) -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone
       + Send
       + 'static {
    ServiceBuilder::new()
        .layer(AuthLayer::new(auth))
        .service(service_fn(|req: Request<Body>| async move {
            let p = req.extensions().get::<Principal>().cloned();
            let seen = |h: &str| {
                req.headers()
                    .get(h)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let body = serde_json::json!({
                "id": p.as_ref().map(|p| p.id.to_string()),
                "team": p.as_ref().and_then(|p| p.team.as_deref().map(str::to_owned)),
                "method": p.as_ref().map(|p| p.method.as_str()),
                "authorization": seen("authorization"),
                "x-api-key": seen("x-api-key"),
                "x-tollgate-key": seen("x-tollgate-key"),
            });
            Ok(Response::new(Body::from(body.to_string())))
        }))
}

async fn send(
    svc: &mut (impl Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible>
              + Clone),
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = svc
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn static_auth(mode: AuthMode) -> Authenticator {
    let config = AuthConfig {
        mode,
        keys: vec![StaticKeyConfig {
            name: "ci".into(),
            key: "ci-key-0123456789abcdef".into(),
            user: None,
            team: Some("ci-team".into()),
            tags: vec![],
            models: vec![],
        }],
        oidc: None,
    };
    Authenticator::from_config(&config, None, true).unwrap()
}

#[tokio::test]
async fn a_loopback_gateway_without_keys_serves_openly() {
    let mut svc = app(Authenticator::new(AuthMode::Auto, true));
    let (status, body) = send(
        &mut svc,
        "/v1/messages",
        &[("authorization", "Bearer sk-ant-oat01-x")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["method"], "none");
    // The client's own credential stays for a pass-through provider.
    assert_eq!(body["authorization"], "Bearer sk-ant-oat01-x");
}

#[tokio::test]
async fn a_gateway_off_loopback_without_keys_refuses_everyone() {
    let mut svc = app(Authenticator::new(AuthMode::Auto, false));
    let (status, body) = send(&mut svc, "/v1/chat/completions", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn static_keys_work_in_every_header_and_wrong_ones_get_a_401_in_the_clients_format() {
    let mut svc = app(static_auth(AuthMode::Auto));
    for h in ["authorization", "x-api-key", "x-tollgate-key"] {
        let v = if h == "authorization" {
            "Bearer ci-key-0123456789abcdef".to_string()
        } else {
            "ci-key-0123456789abcdef".to_string()
        };
        let (status, body) = send(&mut svc, "/v1/chat/completions", &[(h, &v)]).await;
        assert_eq!(status, 200, "{h}: {body}");
        assert_eq!(body["id"], "ci");
        assert_eq!(body["team"], "ci-team");
        assert_eq!(body["method"], "static-key");
        assert!(body[h].is_null(), "{h} is taken off the request: {body}");
    }

    // OpenAI format: authentication_error / invalid_api_key.
    let (status, body) = send(
        &mut svc,
        "/v1/chat/completions",
        &[("authorization", "Bearer ci-key-wrong")],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(!body.to_string().contains("ci-key-wrong"), "{body}");

    // Anthropic format, missing key.
    let (status, body) = send(&mut svc, "/v1/messages", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("x-tollgate-key"));

    // Health checks need no key.
    let resp = svc
        .clone()
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn x_tollgate_key_leaves_the_provider_credential_in_place() {
    let mut svc = app(static_auth(AuthMode::Auto));
    let (status, body) = send(
        &mut svc,
        "/v1/messages",
        &[
            ("x-tollgate-key", "ci-key-0123456789abcdef"),
            ("authorization", "Bearer sk-ant-oat01-abc"),
            ("x-api-key", "sk-ant-api-xyz"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "ci");
    assert_eq!(body["authorization"], "Bearer sk-ant-oat01-abc");
    assert_eq!(body["x-api-key"], "sk-ant-api-xyz");
    assert!(body["x-tollgate-key"].is_null());

    // Without it, a provider credential is not a gateway key, and the
    // error says what to do.
    let (status, body) = send(
        &mut svc,
        "/v1/messages",
        &[("authorization", "Bearer sk-ant-oat01-abc")],
    )
    .await;
    assert_eq!(status, 401);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("x-tollgate-key"), "{msg}");
    assert!(!msg.contains("sk-ant-oat01-abc"), "{msg}");
}

#[tokio::test]
async fn mode_required_refuses_a_request_without_a_key_even_with_no_keys() {
    let mut svc = app(Authenticator::new(AuthMode::Required, true));
    let (status, _) = send(&mut svc, "/v1/chat/completions", &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_gateway_key_in_an_open_gateway_is_still_checked() {
    let mut svc = app(Authenticator::new(AuthMode::Auto, true));
    let (status, _) = send(
        &mut svc,
        "/v1/chat/completions",
        &[("authorization", "Bearer tg_not_a_real_key")],
    )
    .await;
    assert_eq!(status, 401, "a tg_ key is a gateway key, and a wrong one");
}

#[tokio::test(start_paused = true)]
async fn store_keys_are_cached_and_revocation_lands_within_the_refresh_period() {
    let store = Arc::new(MemStore::default());
    store.add("tg_alice", "key_alice", &[]);
    store.add("tg_bob", "key_bob", &[]);
    let auth = Authenticator::new(AuthMode::Auto, true).with_store(store.clone());
    auth.refresh().await.unwrap();
    let mut svc = app(auth);
    let bearer = [("authorization", "Bearer tg_alice")];

    for _ in 0..5 {
        let (status, body) = send(&mut svc, "/v1/chat/completions", &bearer).await;
        assert_eq!(status, 200);
        assert_eq!(body["id"], "key_alice");
        assert_eq!(body["method"], "key");
    }
    assert_eq!(
        store.lookups.load(Ordering::SeqCst),
        1,
        "a key seen once is not looked up again"
    );

    // Revoked in the store (by `tollgate keys revoke` in another process).
    store.edit("tg_alice", |k| k.revoked_at = Some(1));
    tokio::time::sleep(REFRESH_EVERY + Duration::from_millis(10)).await;
    let (status, body) = send(&mut svc, "/v1/chat/completions", &bearer).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    let (status, _) = send(
        &mut svc,
        "/v1/chat/completions",
        &[("authorization", "Bearer tg_bob")],
    )
    .await;
    assert_eq!(status, 200, "other keys keep working");

    // Last-used times reach the store.
    tokio::time::sleep(REFRESH_EVERY * 2).await;
    let touched = store.touched.lock().unwrap().clone();
    assert!(touched.iter().any(|(id, _)| id == "key_bob"), "{touched:?}");
}

#[tokio::test]
async fn unknown_keys_are_remembered_and_expired_keys_refused() {
    let store = Arc::new(MemStore::default());
    store.add("tg_old", "key_old", &[]);
    store.edit("tg_old", |k| k.expires_at = Some(1000));
    let auth = Authenticator::new(AuthMode::Auto, true).with_store(store.clone());
    auth.refresh().await.unwrap();
    let mut svc = app(auth);
    for _ in 0..3 {
        let (status, body) = send(
            &mut svc,
            "/v1/chat/completions",
            &[("authorization", "Bearer tg_nobody")],
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["message"], "invalid gateway key");
    }
    assert_eq!(store.lookups.load(Ordering::SeqCst), 1);
    let (status, body) = send(&mut svc, "/v1/messages", &[("x-api-key", "tg_old")]).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[tokio::test]
async fn a_store_that_fails_is_a_503_not_an_open_door() {
    let store = Arc::new(MemStore::default());
    store.add("tg_alice", "key_alice", &[]);
    let auth = Authenticator::new(AuthMode::Auto, true).with_store(store.clone());
    auth.refresh().await.unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let mut svc = app(auth);
    let (status, body) = send(
        &mut svc,
        "/v1/chat/completions",
        &[("authorization", "Bearer tg_alice")],
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("disk on fire"));
}

#[tokio::test]
async fn an_unasked_store_is_asked_before_serving_openly() {
    // Keys exist, but nobody called refresh(): the first keyless request
    // must not get through.
    let store = Arc::new(MemStore::default());
    store.add("tg_alice", "key_alice", &[]);
    let mut svc = app(Authenticator::new(AuthMode::Auto, true).with_store(store));
    let (status, _) = send(&mut svc, "/v1/chat/completions", &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_unasked_store_that_fails_is_a_503_for_a_keyless_request_too() {
    // Loopback, `auto`, the store never answered: a keyless request may
    // be served openly only once the store says it has no keys.
    let store = Arc::new(MemStore::default());
    store.fail.store(true, Ordering::SeqCst);
    let mut svc = app(Authenticator::new(AuthMode::Auto, true).with_store(store));
    let (status, _) = send(&mut svc, "/v1/chat/completions", &[]).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_principal_from_an_outer_layer_is_kept() {
    // The outer layer checks the key; the inner one (open: no keys of its
    // own) must neither replace its principal nor ask again.
    let outer = static_auth(AuthMode::Auto);
    let inner = Authenticator::new(AuthMode::Auto, true);
    let mut svc = ServiceBuilder::new()
        .layer(AuthLayer::new(outer))
        .service(app(inner));
    let (status, body) = send(
        &mut svc,
        "/v1/chat/completions",
        &[("authorization", "Bearer ci-key-0123456789abcdef")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "ci");
    assert_eq!(body["method"], "static-key");
}
