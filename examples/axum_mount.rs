//! An existing axum app that mounts the gateway under `/llm`, beside its
//! own routes.
//!
//! ```sh
//! cargo run --example axum_mount                 # serves http://127.0.0.1:3000 until Ctrl-C
//! cargo run --example axum_mount -- --self-test  # a free port, a few requests to itself, exit
//!
//! curl http://127.0.0.1:3000/hello
//! curl http://127.0.0.1:3000/llm/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model": "fast", "messages": [{"role": "user", "content": "Hi"}]}'
//! ```
//!
//! The providers in `CONFIG` point at the mock upstream, which this program
//! starts in-process so that it works offline. To go live, edit `CONFIG`:
//! real base URLs (`https://api.openai.com/v1`, `https://api.anthropic.com`)
//! instead of `${UPSTREAM}`; the keys come from `OPENAI_API_KEY` and
//! `ANTHROPIC_API_KEY`.

use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tollgate::config::Config;

const CONFIG: &str = r#"
[providers.openai]
kind = "openai"
base_url = "${UPSTREAM}/v1"
api_key = "${OPENAI_API_KEY:-mock-key}"

[providers.anthropic]
kind = "anthropic"
base_url = "${UPSTREAM}"
api_key = "${ANTHROPIC_API_KEY:-mock-key}"

[models]
fast = "openai/gpt-4o-mini"
"claude-*" = "anthropic/*"
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test");

    // The gateway, with the same layers as `tollgate serve`; `${UPSTREAM}`
    // is the in-process mock, other `${VAR}`s come from the environment.
    let mock = tollgate::mock::spawn().await?;
    let env = |k: &str| match k {
        "UPSTREAM" => Some(mock.base_url()),
        _ => std::env::var(k).ok(),
    };
    let config = Config::parse(CONFIG, &env)?;
    let gateway = tollgate::server::gateway(&config)?;

    // The app: its own routes, and the gateway's under /llm.
    let app = Router::new()
        .route("/", get(|| async { "my app's home page\n" }))
        .route("/hello", get(|| async { "hello from my app\n" }))
        .nest("/llm", gateway);

    let port = if self_test { 0 } else { 3000 };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    if !self_test {
        println!("listening on {base}: /, /hello and /llm/v1/...; Ctrl-C stops");
        let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or(()) };
        axum::serve(listener, app)
            .with_graceful_shutdown(ctrl_c)
            .await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app).await });

    // --self-test: the app's route, then the gateway in two wire formats.
    let hello = reqwest::get(format!("{base}/hello")).await?.text().await?;
    println!("GET /hello -> {}", hello.trim());
    let mut ok = hello == "hello from my app\n";

    let chat = json!({"model": "fast", "messages": [{"role": "user", "content": "Hi"}]});
    let answer = post(&format!("{base}/llm/v1/chat/completions"), &chat).await?;
    let text = answer["choices"][0]["message"]["content"].as_str();
    println!("POST /llm/v1/chat/completions -> {}", text.unwrap_or("?"));
    ok &= text.is_some_and(|t| t.starts_with("Hello from the mock openai upstream"));

    let messages = json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
                          "messages": [{"role": "user", "content": "Hi"}]});
    let answer = post(&format!("{base}/llm/v1/messages"), &messages).await?;
    let text = answer["content"][0]["text"].as_str();
    println!("POST /llm/v1/messages -> {}", text.unwrap_or("?"));
    ok &= text.is_some_and(|t| t.starts_with("Hello from the mock anthropic upstream"));

    if !ok {
        return Err("FAILED: an answer was not what the app expects".into());
    }
    println!("ok: the app's own route and the mounted gateway both answered");
    Ok(())
}

/// POSTs `body` as JSON; the answer as JSON.
async fn post(url: &str, body: &Value) -> Result<Value, Box<dyn std::error::Error>> {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    Ok(serde_json::from_str(&resp.text().await?)?)
}
