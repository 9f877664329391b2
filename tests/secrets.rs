//! What reaches a client, the log and the provider: no provider key or
//! client credential in anything a client or the log receives, only the
//! query parameters a provider's API defines, and connect errors that name
//! the provider and its host.
//!
//! Each test installs a subscriber that writes the log to a buffer; the
//! runtime is single-threaded, so the gateway's and the mock's tasks log
//! there too.

mod common;

use common::*;

const CLIENTS: &[&str] = &["/v1/chat/completions", "/v1/responses", "/v1/messages"];

/// Every secret the tests put in play contains this: the provider keys of
/// the test config and the client credentials sent below.
const MARK: &str = "SECRET";
const CLIENT_KEY: &str = "client-key-SECRET-1";
const CLIENT_QUERY_KEY: &str = "query-key-SECRET-2";

/// Sends `model` in the client format of `path` with the client's own
/// credential in its headers and in the query (as Gemini-style clients do).
async fn send(stack: &Stack, path: &str, model: &str, stream: bool) -> (u16, String) {
    let body = request(path, model, "hi", stream);
    let url = stack.url(&format!("{path}?beta=true&key={CLIENT_QUERY_KEY}"));
    let mut req = stack.client.post(url).body(body.to_string());
    req = if path == "/v1/messages" {
        req.header("x-api-key", CLIENT_KEY)
            .header("anthropic-version", "2023-06-01")
    } else {
        req.bearer_auth(CLIENT_KEY)
    };
    everything(req.send().await.unwrap()).await
}

/// An upstream that echoes the credentials it received into its error
/// messages, error codes, in-band stream errors and response headers:
/// nothing of them reaches any client, in any format from any provider
/// kind, or the log.
#[tokio::test]
async fn echoed_credentials_never_reach_a_client_or_the_log() {
    let (log, _guard) = Log::capture();
    let stack = Stack::start().await;
    for path in CLIENTS {
        for provider in PROVIDERS {
            let cases = [
                // Error message and code, before the first byte.
                ("leak~status=400", false, 400),
                ("leak~status=400", true, 400),
                // A retryable error (retried, then failed over to nothing).
                ("leak~status=500", false, 500),
                // An in-band error after the first byte.
                ("leak~fail-after=1", true, 200),
                // Response headers of a successful answer.
                ("leak", false, 200),
                ("leak", true, 200),
            ];
            for (directives, stream, want) in cases {
                let ctx = format!("{path} -> {provider} ~{directives} stream={stream}");
                let model = format!("{provider}/m~{directives}");
                let (status, text) = send(&stack, path, &model, stream).await;
                assert_eq!(status, want, "{ctx}: {text}");
                assert!(
                    !text.contains(MARK),
                    "{ctx}: a secret reached the client:\n{text}"
                );
                // Upstream headers pass through an allow-list: the echoed
                // credential headers are not on it, masked or not.
                for echoed in [
                    "authorization:",
                    "x-api-key:",
                    "x-goog-api-key:",
                    "x-mock-leak:",
                ] {
                    assert!(
                        !text.contains(echoed),
                        "{ctx}: `{echoed}` passed through:\n{text}"
                    );
                }
                if directives != "leak" {
                    // The upstream did echo them, and the gateway masked them.
                    assert!(
                        text.contains("[redacted]"),
                        "{ctx}: nothing echoed?\n{text}"
                    );
                }
            }
        }
    }
    let log = log.text();
    assert!(
        log.contains("stream failed after its first byte") && log.contains("[redacted]"),
        "the log did not capture the failures:\n{log}"
    );
    assert!(!log.contains(MARK), "a secret reached the log:\n{log}");
}

/// A same-format request's query never changes the upstream path; only the
/// parameters the provider's API defines (Anthropic's `beta=true`) go on.
#[tokio::test]
async fn only_the_query_a_provider_defines_reaches_it() {
    let stack = Stack::start().await;
    let cases = [
        (
            "/v1/messages",
            "mock-anthropic/m~echo-head",
            "?beta=true&x=/../../admin",
            "/v1/messages?beta=true",
        ),
        (
            "/v1/messages",
            "mock-anthropic/m~echo-head",
            "?x=/../../admin",
            "/v1/messages",
        ),
        (
            "/v1/chat/completions",
            "mock-openai/m~echo-head",
            "?x=/../../admin&beta=true",
            "/v1/chat/completions",
        ),
        (
            "/v1/responses",
            "mock-openai/m~echo-head",
            "?api-version=1/../../admin",
            "/v1/responses",
        ),
        (
            "/v1/chat/completions",
            "mock-compat/m~echo-head",
            "?x=%2F..%2Fadmin",
            "/v1/chat/completions",
        ),
    ];
    for (path, model, query, upstream_path) in cases {
        let ctx = format!("{path}{query} -> {model}");
        let resp = stack
            .client
            .post(stack.url(&format!("{path}{query}")))
            .header("authorization", "Bearer client-key")
            .header("anthropic-version", "2023-06-01")
            .body(request(path, model, "hi", false).to_string())
            .send()
            .await
            .unwrap();
        let (status, v) = json(resp).await;
        assert_eq!(status, 200, "{ctx}: {v}");
        let head: serde_json::Value = serde_json::from_str(&answer_text(path, &v))
            .unwrap_or_else(|e| panic!("{ctx}: not the echoed head ({e}): {v}"));
        assert_eq!(head["path"], upstream_path, "{ctx}");
    }
}

/// A provider that cannot be reached is named, with its host, in the
/// client's error and in the log; its key is in neither.
#[tokio::test]
async fn connect_errors_name_the_provider_and_its_host() {
    let (log, _guard) = Log::capture();
    // A loopback port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let stack = Stack::start_with(&format!(
        r#"
[providers.closed]
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
api_key = "closed-key-{MARK}"
"#
    ))
    .await;
    let host = format!("127.0.0.1:{port}");
    for path in CLIENTS {
        let resp = stack
            .post(path, &request(path, "closed/gpt-4o", "hi", false))
            .await;
        let (status, v) = json(resp).await;
        assert_eq!(status, 502, "{path}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("`closed`") && msg.contains(&host),
            "{path}: the error does not name the provider and {host}: {msg}"
        );
        assert!(!v.to_string().contains(MARK), "{path}: {v}");
    }
    let log = log.text();
    let line = log
        .lines()
        .find(|l| l.contains("provider connection failed"))
        .unwrap_or_else(|| panic!("no log line for the connect error:\n{log}"));
    assert!(
        line.contains("closed") && line.contains(&host),
        "the log line does not name the provider and {host}: {line}"
    );
    assert!(!log.contains(MARK), "a secret reached the log:\n{log}");
}
