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
    let out = tollgate()
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
    let out = tollgate()
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
    let out = tollgate()
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
    let (_mock, mut gw, port) = start_mock_and_gateway(
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

/// Runs `tollgate check-config` on `text`; returns (success, stdout, stderr).
fn check_config(name: &str, text: &str) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("tollgate-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let out = tollgate()
        .args(["check-config"])
        .arg(&file)
        .env_remove("TOLLGATE_UNSET_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_names_unknown_fields_and_missing_variables() {
    let head = "[providers.p]\nkind = \"anthropic\"\napi_key = \"k\"\n";
    for (name, entry, expected) in [
        (
            "fallback.toml",
            "[models.m]\ntargets = [\"p/a\"]\nfallback = [\"p/b\"]\n",
            "models.m.fallback: unknown field `fallback`, expected one of `targets`, `fallbacks`, `context_window`",
        ),
        (
            "window.toml",
            "[models.m]\ntargets = [\"p/a\"]\ncontext_windw = 1000\n",
            "models.m.context_windw: unknown field `context_windw`",
        ),
        (
            "target.toml",
            "[models]\nm = { target = [\"p/a\"] }\n",
            "models.m.target: unknown field `target`",
        ),
        (
            "var.toml",
            "[providers.q]\nkind = \"openai\"\napi_key = \"${TOLLGATE_UNSET_KEY}\"\n",
            "providers.q.api_key: environment variable `TOLLGATE_UNSET_KEY` is not set",
        ),
    ] {
        let (ok, _, err) = check_config(name, &format!("{head}{entry}"));
        assert!(!ok, "{name} passed");
        assert!(err.contains(expected), "{name}: {err}");
    }
}

#[test]
fn check_config_warns_of_a_provider_without_credentials() {
    let (ok, out, err) = check_config(
        "nokey.toml",
        "[providers.keyed]\nkind = \"openai\"\napi_key = \"k\"\n[providers.local]\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:11434/v1\"\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("ok (2 providers, 0 models)"), "{out}");
    assert!(
        err.contains("warning: providers.local: no `api_key`"),
        "{err}"
    );
    assert!(!err.contains("providers.keyed"), "{err}");
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let port = free_port();
    let mut mock = Proc(
        tollgate()
            .args(["mock-upstream", "--listen", &format!("127.0.0.1:{port}")])
            // Colour is the default for a terminal: only the pipe turns it off.
            .env_remove("NO_COLOR")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    let logs = stop_and_read_log(&mut mock);
    let text = String::from_utf8_lossy(&logs);
    assert!(text.contains("mock upstream listening"), "{text}");
    assert!(!logs.contains(&0x1b), "colour codes in {text:?}");
}

/// Starts the mock upstream on a free port.
fn start_mock() -> (Proc, u16) {
    let port = free_port();
    let mock = tollgate()
        .args(["mock-upstream", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    (Proc(mock), port)
}

/// Starts `tollgate serve` with `config` on a free port, its log piped.
fn start_gateway(config: &str) -> (Proc, u16) {
    let dir = std::env::temp_dir().join(format!("tollgate-gw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let file = dir.join(format!("{port}.toml"));
    std::fs::write(&file, config).unwrap();
    let gw = tollgate()
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port);
    (Proc(gw), port)
}

/// Stops `p` with SIGTERM and returns what it logged.
fn stop_and_read_log(p: &mut Proc) -> Vec<u8> {
    let pid = p.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    p.0.wait().unwrap();
    let mut logs = Vec::new();
    p.0.stderr.take().unwrap().read_to_end(&mut logs).unwrap();
    logs
}

#[test]
fn models_lists_each_providers_upstream_models_and_logs_a_failure_without_its_key() {
    let (_mock, mock_port) = start_mock();
    let (mut gw, port) = start_gateway(&format!(
        "[providers.m]\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:{mock_port}\"\napi_key = \"sk-ant-cli-SECRET\"\n[providers.gone]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{mock_port}/gone/v1\"\napi_key = \"sk-gone-cli-SECRET\"\n"
    ));
    let list = http(
        port,
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(list.starts_with("HTTP/1.1 200"), "{list}");
    assert!(list.contains(r#""id":"m/claude-sonnet-4-5""#), "{list}");
    assert!(!list.contains("gone") && !list.contains("SECRET"), "{list}");
    let logs = String::from_utf8(stop_and_read_log(&mut gw)).unwrap();
    assert!(
        logs.contains("gone") && logs.contains("404"),
        "the failure is not logged: {logs}"
    );
    assert!(!logs.contains("SECRET"), "key in logs: {logs}");
}

/// Starts the mock upstream and the gateway (with `server` as its
/// `[server]` table, `ulimit -n` set to `nofile` when given, and its logs
/// to `stderr`) on free ports; returns both and the gateway's port.
fn start_mock_and_gateway(server: &str, nofile: Option<u32>, stderr: Stdio) -> (Proc, Proc, u16) {
    let mock_port = free_port();
    let mock = Proc(
        tollgate()
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
            c.env("XDG_DATA_HOME", data_home());
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(BIN);
            c
        }
        None => tollgate(),
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
///
/// The cap is the default (4096), which the gateway lowers to what 128
/// descriptors can hold, and says so.
#[test]
fn health_and_requests_answer_under_a_slow_loris_attack() {
    let log = std::env::temp_dir().join(format!("tollgate-loris-{}.log", std::process::id()));
    let (_mock, _gw, port) = start_mock_and_gateway(
        "header_read_timeout_secs = 1\nidle_timeout_secs = 1\nbody_read_timeout_secs = 1",
        Some(128),
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("max_connections lowered") && logged.contains("lowered_to=48"),
        "{logged}"
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
    let _ = std::fs::remove_file(&log);
}

/// SIGTERM with a short grace period: a stream that outlives it ends with
/// the format's in-band error, and the gateway exits.
#[test]
fn streams_outliving_the_grace_period_end_with_an_error_event() {
    let (_mock, mut gw, port) =
        start_mock_and_gateway("shutdown_grace_secs = 1", None, Stdio::null());
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

/// The binary, with its data directory (where the default store lives)
/// in a temporary folder of this test run, never the user's.
fn tollgate() -> Command {
    let mut c = Command::new(BIN);
    c.env("XDG_DATA_HOME", data_home());
    c
}

/// One fresh folder for this test binary (never a stale one of a reused
/// pid); statics are not dropped, so it stays in the temp dir after.
fn data_home() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

#[test]
fn serve_refuses_a_non_loopback_address_without_keys_and_says_how_to_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = dir.join("c.toml");
    std::fs::write(&config, "[store]\npath = \"keys.db\"\n").unwrap();
    let out = tollgate()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{err}"
    );
    assert!(
        err.contains("tollgate keys create") && err.contains("mode = \"none\""),
        "{err}"
    );

    // With a key in the store (relative to the config), it starts.
    let key = tollgate()
        .args(["keys", "create", "--name", "ops", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    assert!(dir.join("keys.db").exists());
    let status = status_on_all_addresses(&config);
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");

    // `mode = "none"` serves anyone, on purpose.
    std::fs::write(&config, "[auth]\nmode = \"none\"\n").unwrap();
    let status = status_on_all_addresses(&config);
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
}

/// Serves `config` on 0.0.0.0 and returns the answer to a keyless
/// request with an empty JSON body (the gateway is stopped after).
fn status_on_all_addresses(config: &std::path::Path) -> String {
    let port = free_port();
    let _gw = Proc(
        tollgate()
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &format!("0.0.0.0:{port}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    http(
        port,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
}
