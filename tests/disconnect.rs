//! Upstream connections: a client that goes away mid-stream takes the
//! upstream request with it, and completed streams leave the pooled
//! connection reusable.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tollgate::config::Config;

#[tokio::test]
async fn client_disconnect_closes_the_upstream_connection() {
    // A hand-rolled upstream: answers one streamed event, then waits to see
    // whether the gateway closes the connection.
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<bool>();
    tokio::spawn(async move {
        let (mut sock, _) = upstream.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let mut seen = Vec::new();
        // Read the request head and body (the body is small JSON).
        while !String::from_utf8_lossy(&seen).contains("\"messages\"") {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        sock.write_all(head.as_bytes()).await.unwrap();
        let event = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"first\"},\"finish_reason\":null}]}\n\n";
        sock.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
            .await
            .unwrap();
        // Never finish the stream; report whether the gateway hangs up.
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok();
        let _ = closed_tx.send(closed);
    });

    let text = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"http://{up_addr}/v1\"\napi_key = \"k\"\n"
    );
    let config = Config::parse(&text, &|_| None).unwrap();
    let app = tollgate::server::gateway(&config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let mut resp = client
        .post(format!("http://{gw}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model":"up/m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("the first event arrives before the stream ends")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));
    drop(resp);
    drop(client);

    let closed = closed_rx.await.unwrap();
    assert!(
        closed,
        "the upstream connection stayed open after the client left"
    );
}

/// A TCP relay in front of `target` that counts the connections it accepts.
async fn counting_relay(
    target: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn completed_streams_leave_the_upstream_connection_reusable() {
    let mock = tollgate::mock::spawn().await.unwrap();
    let (relay, accepted) = counting_relay(mock.addr()).await;
    let text = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"http://{relay}/v1\"\napi_key = \"k\"\n"
    );
    let config = Config::parse(&text, &|_| None).unwrap();
    let app = tollgate::server::gateway(&config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    // Pass-through (OpenAI client) and decoded (Anthropic client) streams.
    let calls = [
        (
            "/v1/chat/completions",
            r#"{"model":"up/m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            "/v1/messages",
            r#"{"model":"up/m","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"up/m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            "/v1/messages",
            r#"{"model":"up/m","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
    ];
    for (path, body) in calls {
        let text = client
            .post(format!("http://{gw}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("[DONE]") || text.contains("message_stop"),
            "{text}"
        );
        // The drain of the upstream terminator runs in the background.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "each stream opened a new upstream connection"
    );
}
