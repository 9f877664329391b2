//! The `Auth` layer on its own, in front of an ordinary axum app, checking
//! keys against your own user table.
//!
//! ```sh
//! cargo run --example auth_alone              # serves on 127.0.0.1:3001
//! curl -H 'authorization: Bearer tg_demo_alice_0123456789' http://127.0.0.1:3001/whoami
//! cargo run --example auth_alone -- --self-test
//! ```
//!
//! The app knows nothing of tollgate's gateway: it reads the `Principal`
//! that the layer put in the request's extensions. Keys live wherever you
//! keep them: implement `KeyStore::lookup` (by the key's SHA-256; the
//! layer never hands you the key itself). Here, a map in memory. Paths
//! left public (`/health`) need no key; a missing or wrong key is a 401
//! with an OpenAI-style JSON error body.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Extension;
use axum::routing::get;
use axum::Router;
use tollgate::auth::{AuthLayer, Authenticator, KeyHash, KeyRecord, Principal};
use tollgate::config::AuthMode;
use tollgate::store::{KeyStore, StoreFuture};

/// Your user table: key hash -> who it is.
struct Users(HashMap<KeyHash, KeyRecord>);

impl KeyStore for Users {
    fn lookup(&self, hash: &KeyHash) -> StoreFuture<'_, Option<KeyRecord>> {
        Box::pin(std::future::ready(Ok(self.0.get(hash).cloned())))
    }
}

fn user(key: &str, id: &str, team: &str) -> (KeyHash, KeyRecord) {
    let record = KeyRecord {
        id: id.into(),
        name: format!("{id}'s laptop"),
        prefix: tollgate::auth::display_prefix(key),
        user: Some(id.into()),
        team: Some(team.into()),
        tags: vec![],
        models: vec![],
        created_at: 0,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
        rotated_from: None,
        limits: Default::default(),
    };
    (KeyHash::of(key), record)
}

async fn whoami(Extension(p): Extension<Principal>) -> String {
    format!(
        "you are {} of team {}",
        p.user.as_deref().unwrap_or("?"),
        p.team.as_deref().unwrap_or("?")
    )
}

fn app() -> Router {
    let users = Users(HashMap::from([user(
        "tg_demo_alice_0123456789",
        "alice",
        "search",
    )]));
    // `Required`: every request needs a key, wherever the app listens.
    let auth = Authenticator::new(AuthMode::Required, false).with_store(Arc::new(users));
    Router::new()
        .route("/whoami", get(whoami))
        .route("/health", get(|| async { "ok" }))
        .layer(AuthLayer::new(auth).public_paths(["/health"]))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test");
    let addr = if self_test {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3001"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    if !self_test {
        println!("listening on {base}");
        axum::serve(listener, app()).await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app()).await });

    let client = reqwest::Client::new();
    let mut ok = true;
    for (path, key) in [
        ("/whoami", Some("tg_demo_alice_0123456789")),
        ("/whoami", Some("tg_demo_mallory_00000000")),
        ("/whoami", None),
        ("/health", None),
    ] {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        println!(
            "GET {path} key={} -> {status} {text}",
            key.map_or("none", |k| &k[..12])
        );
        let want = match (path, key) {
            ("/health", _) => 200,
            (_, Some(k)) if k.contains("alice") => 200,
            _ => 401,
        };
        ok &= status == want;
    }
    if !ok {
        return Err("an answer was not what the comments say".into());
    }
    println!("ok: alice is let in, a wrong or missing key is not, /health is open");
    Ok(())
}
