//! The `tollgate` binary: check-config, serve with --listen, graceful
//! shutdown on SIGTERM, and the mock-upstream subcommand.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn post(port: u16, path: &str, body: &str) -> String {
    http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn check_config_reports_the_field_at_fault() {
    let dir = std::env::temp_dir().join(format!("tollgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[providers.a]\nkind = \"openai\"\n[models]\nx = \"b/gpt\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("models.x.targets[0]: unknown provider `b`"),
        "{err}"
    );

    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[providers.a]\nkind = \"anthropic\"\napi_key = \"${TOLLGATE_TEST_KEY}\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&good)
        .env("TOLLGATE_TEST_KEY", "k")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&good)
        .env_remove("TOLLGATE_TEST_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOLLGATE_TEST_KEY"));
}

#[test]
fn serve_listens_where_told_and_drains_streams_on_sigterm() {
    let (_mock, mut gw, port) = start_gateway(
        "listen = \"127.0.0.1:1\"\nshutdown_grace_secs = 10",
        None,
        Stdio::piped(),
    );
    let health = http(
        port,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // A stream that takes ~1.5 s: 15 chunks 100 ms apart.
    let body = r#"{"model":"m/gpt~chunks=15~gap=100","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let streamer = std::thread::spawn(move || post(port, "/v1/chat/completions", body));
    std::thread::sleep(Duration::from_millis(400));
    let pid = gw.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = streamer.join().unwrap();
    assert!(
        out.contains("data: [DONE]"),
        "the in-flight stream was cut: {out}"
    );
    let status = gw.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    if let Some(mut e) = gw.0.stderr.take() {
        let _ = e.read_to_string(&mut logs);
    }
    assert!(
        !logs.contains("\"k\"") && !logs.contains("Bearer k"),
        "key in logs: {logs}"
    );
}

/// Starts the mock upstream and the gateway (with `server` as its
/// `[server]` table, `ulimit -n` set to `nofile` when given, and its logs
/// to `stderr`) on free ports; returns both and the gateway's port.
fn start_gateway(server: &str, nofile: Option<u32>, stderr: Stdio) -> (Proc, Proc, u16) {
    let mock_port = free_port();
    let mock = Proc(
        Command::new(BIN)
            .args([
                "mock-upstream",
                "--listen",
                &format!("127.0.0.1:{mock_port}"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(mock_port);
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("tollgate-cli-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\n{server}\n[providers.m]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{mock_port}/v1\"\napi_key = \"k\"\n"
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = match nofile {
        // `exec` keeps the gateway's pid the shell's, for signals.
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &listen])
        .stderr(stderr);
    let gw = Proc(cmd.spawn().unwrap());
    wait_for_port(port);
    (mock, gw, port)
}

/// `http`, but gives up after `limit` (and says so in the answer).
fn http_within(port: u16, request: &str, limit: Duration) -> String {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, limit) else {
        return "<connect failed>".into();
    };
    s.set_read_timeout(Some(limit)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        return format!("<{e}> {}", String::from_utf8_lossy(&out));
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Hundreds of connections that send half a request head and then wait
/// (more than the process has file descriptors for) do not stop `/health`
/// or a normal request: the cap keeps descriptors free, and the header
/// timeout frees the slots the attackers hold.
#[test]
fn health_and_requests_answer_under_a_slow_loris_attack() {
    let (_mock, _gw, port) = start_gateway(
        "max_connections = 48\nheader_read_timeout_secs = 1\nidle_timeout_secs = 1\nbody_read_timeout_secs = 1",
        Some(128),
        Stdio::null(),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // A full listen backlog makes a connect wait for SYN retries: bound it.
    let attackers: Vec<TcpStream> = (0..250)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
                .ok()?;
            Some(s)
        })
        .collect();
    assert!(attackers.len() >= 200, "only {} attackers", attackers.len());

    let t0 = Instant::now();
    let health = http_within(
        port,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(20),
    );
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "/health under attack ({:?}): {health}",
        t0.elapsed()
    );
    let body = r#"{"model":"m/gpt","messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = http_within(port, &request, Duration::from_secs(20));
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("chat.completion"),
        "request under attack: {answer}"
    );
    drop(attackers);
}

/// SIGTERM with a short grace period: a stream that outlives it ends with
/// the format's in-band error, and the gateway exits.
#[test]
fn streams_outliving_the_grace_period_end_with_an_error_event() {
    let (_mock, mut gw, port) = start_gateway("shutdown_grace_secs = 1", None, Stdio::null());
    // ~20 s of stream: 200 chunks 100 ms apart.
    let body = r#"{"model":"m/gpt~chunks=200~gap=100","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let streamer = std::thread::spawn(move || post(port, "/v1/chat/completions", body));
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &gw.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = streamer.join().unwrap();
    assert!(out.contains("chat.completion.chunk"), "no stream: {out}");
    assert!(
        out.contains("data: {\"error\":") && out.contains("shutting down"),
        "the stream was cut without an error event: {out}"
    );
    assert!(!out.contains("data: [DONE]"), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let status = gw.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
