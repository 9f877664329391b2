//! A gateway assembled by hand from the routing layers you want, served
//! with axum.
//!
//! ```sh
//! cargo run --example custom_gateway                 # serves http://127.0.0.1:3000 until Ctrl-C
//! cargo run --example custom_gateway -- --self-test  # a free port, two requests to itself, exit
//!
//! curl -i http://127.0.0.1:3000/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model": "x", "messages": [{"role": "user", "content": "Hi"}]}'
//! ```
//!
//! The stack: model fallback, provider order, a first-byte timeout (no
//! same-target retries, unlike `tollgate serve`). Model `x`'s first target
//! fails on purpose (the mock answers `~status=503` with a 503), so
//! provider order moves on to `b`; model `flaky`'s only target fails, so
//! model fallback moves on to `steady`. The `x-tollgate-attempts` header
//! lists every attempt. After three failures in a row provider `a`'s
//! circuit opens for 30 s, and model `x` goes straight to `b`.
//!
//! The providers point at the mock upstream, started in-process so that
//! this works offline. To go live, edit `CONFIG`: real base URLs instead of
//! `${UPSTREAM}`, real model names, keys in `A_API_KEY` and `B_API_KEY`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tollgate::config::Config;
use tollgate::edge::{router, EdgeConfig, ATTEMPTS_HEADER};
use tollgate::provider::Providers;
use tollgate::routing::{Cooldowns, FallbackLayer, ModelChain, ProviderOrderLayer, TimeoutLayer};
use tower::ServiceBuilder;

const CONFIG: &str = r#"
[providers.a]
kind = "openai"
base_url = "${UPSTREAM}/v1"
api_key = "${A_API_KEY:-mock-key}"

[providers.b]
kind = "anthropic"
base_url = "${UPSTREAM}"
api_key = "${B_API_KEY:-mock-key}"

[models.x]
targets = ["a/gpt-4o~status=503", "b/claude-sonnet-4-5"]

[models.flaky]
targets = ["a/gpt-4o~status=500"]
fallbacks = ["steady"]

[models.steady]
targets = ["b/claude-haiku-4-5"]
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test");

    let mock = tollgate::mock::spawn().await?;
    let env = |k: &str| match k {
        "UPSTREAM" => Some(mock.base_url()),
        _ => std::env::var(k).ok(),
    };
    let config = Config::parse(CONFIG, &env)?;

    // Outermost first. Every layer reads the same routing table.
    let providers = Providers::from_config(&config)?;
    let routes = providers.routes();
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::new(ModelChain::new(routes.clone())))
        .layer(ProviderOrderLayer::new(routes, Cooldowns::default()))
        .layer(TimeoutLayer::new().first_byte(Duration::from_secs(20)))
        .service(providers);
    let app = router(service, EdgeConfig::from_config(&config));

    let port = if self_test { 0 } else { 3000 };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    if !self_test {
        println!("listening on {base}: models x, flaky, steady; Ctrl-C stops");
        let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or(()) };
        axum::serve(listener, app)
            .with_graceful_shutdown(ctrl_c)
            .await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app).await });

    // --self-test: one request per model; the header tells what happened.
    let mut ok = true;
    for (model, expected) in [
        ("x", "a/gpt-4o~status=503=503, b/claude-sonnet-4-5=200"),
        ("flaky", "a/gpt-4o~status=500=500, b/claude-haiku-4-5=200"),
    ] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]});
        let resp = reqwest::Client::new()
            .post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let attempts = resp.headers().get(ATTEMPTS_HEADER).cloned();
        let attempts = attempts
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        println!("model {model}: {status}, {ATTEMPTS_HEADER}: {attempts}");
        ok &= status == 200 && attempts == expected;
        let answer: Value = serde_json::from_str(&resp.text().await?)?;
        println!("  {}", answer["choices"][0]["message"]["content"]);
    }

    if !ok {
        return Err("FAILED: expected each failing target, then the healthy one".into());
    }
    println!("ok: each request fell back from the failing target to the healthy one");
    Ok(())
}
