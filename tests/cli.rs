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
    let out = Command::new(BIN)
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
        Command::new(BIN)
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
    let mock = Command::new(BIN)
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
    let gw = Command::new(BIN)
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

/// Runs `tollgate keys <args>` with the given extra environment;
/// returns (success, stdout, stderr).
fn keys(args: &[&str], env: &[(&str, &std::path::Path)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("keys").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

/// `keys list --json` as a list of objects.
fn listed(store: &str) -> Vec<serde_json::Value> {
    let (ok, out, err) = keys(&["list", "--json", "--store", store], &[]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The key `create` or `rotate` printed: the first line, alone.
fn printed_key(stdout: &str) -> String {
    let key = stdout.lines().next().unwrap_or("").to_string();
    assert!(key.starts_with("tg_") && key.len() == 47, "{stdout:?}");
    assert_eq!(stdout, format!("{key}\n"), "more than the key on stdout");
    key
}

/// Whether any of the store's files (database, log, index) holds a
/// 16-character run of `key`.
fn store_files_hold(store: &std::path::Path, key: &str) -> bool {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::read(format!("{}{s}", store.display())).ok())
        .any(|bytes| {
            key.as_bytes()
                .windows(16)
                .any(|run| memchr::memmem::find(&bytes, run).is_some())
        })
}

#[test]
fn keys_are_created_listed_rotated_and_revoked_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let store = db.to_str().unwrap();

    let (ok, out, err) = keys(
        &[
            "create",
            "--store",
            store,
            "--name",
            "ci",
            "--user",
            "ana",
            "--team",
            "web",
            "--tag",
            "nightly",
            "--tag",
            "eu",
            "--models",
            "gpt-*,claude-*",
            "--expires",
            "30d",
        ],
        &[],
    );
    assert!(ok, "{err}");
    let key = printed_key(&out);
    assert!(err.contains("only time the key is shown"), "{err}");
    assert!(!err.contains(&key[3..]), "the key on stderr: {err}");

    let list = listed(store);
    assert_eq!(list.len(), 1);
    let k = &list[0];
    let id = k["id"].as_str().unwrap().to_string();
    assert_eq!(k["name"], "ci");
    assert_eq!(k["prefix"], key[..7]);
    assert_eq!(k["user"], "ana");
    assert_eq!(k["team"], "web");
    assert_eq!(k["tags"], serde_json::json!(["nightly", "eu"]));
    assert_eq!(k["models"], serde_json::json!(["gpt-*", "claude-*"]));
    assert_eq!(k["status"], "active");
    let lifetime = k["expires_at"].as_i64().unwrap() - k["created_at"].as_i64().unwrap();
    assert_eq!(lifetime, 30 * 86_400);

    let (ok, table, err) = keys(&["list", "--store", store], &[]);
    assert!(ok, "{err}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(&format!("{}…", &key[..7])), "{table}");
    assert!(
        row.contains("nightly,eu") && row.ends_with("active"),
        "{table}"
    );
    assert!(!table.contains(&key[7..]), "the key in the list: {table}");

    // Rotate with no grace: a new key at once; the old one stops.
    let (ok, out, err) = keys(&["rotate", &id, "--grace", "0", "--store", store], &[]);
    assert!(ok, "{err}");
    let new_key = printed_key(&out);
    assert_ne!(new_key, key);
    let list = listed(store);
    let new = list.iter().find(|k| k["id"] != id.as_str()).unwrap();
    let old = list.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(new["rotated_from"], id.as_str());
    assert_eq!(new["name"], "ci");
    assert_eq!(new["expires_at"], k["expires_at"]);
    assert_eq!(new["status"], "active");
    assert_eq!(old["status"], "expired");

    // The old key cannot be rotated again; the new one can be revoked.
    let (ok, _, err) = keys(&["rotate", &id, "--store", store], &[]);
    assert!(!ok);
    assert!(
        err.contains("cannot rotate") && err.contains("expired"),
        "{err}"
    );
    let new_id = new["id"].as_str().unwrap();
    let (ok, out, err) = keys(&["revoke", new_id, "--store", store], &[]);
    assert!(ok, "{err}");
    assert!(out.is_empty() && err.contains("revoked"), "{err}");
    let list = listed(store);
    let new = list.iter().find(|k| k["id"] == new_id).unwrap();
    assert_eq!(new["status"], "revoked");
    assert!(new["revoked_at"].as_i64().is_some());

    // With a grace period the old key keeps working, until then.
    let (ok, out, err) = keys(
        &["create", "--store", store, "--name", "deploy", "--json"],
        &[],
    );
    assert!(ok, "{err}");
    let made: serde_json::Value = serde_json::from_str(&out).unwrap();
    let deploy_key = made["key"].as_str().unwrap().to_string();
    let deploy = made["id"].as_str().unwrap();
    let (ok, out, err) = keys(&["rotate", deploy, "--grace", "2h", "--store", store], &[]);
    assert!(ok, "{err}");
    let rotated_key = printed_key(&out);
    assert!(err.contains("keeps working until"), "{err}");
    let list = listed(store);
    let old = list.iter().find(|k| k["id"] == deploy).unwrap();
    assert_eq!(old["status"], "active");
    let grace = old["expires_at"].as_i64().unwrap() - old["created_at"].as_i64().unwrap();
    assert!((7_200..7_300).contains(&grace), "{grace}");
    let (ok, _, err) = keys(&["rotate", deploy, "--store", store], &[]);
    assert!(!ok);
    assert!(err.contains("already rotated into key_"), "{err}");

    // None of the keys is in the store's files.
    for key in [&key, &new_key, &deploy_key, &rotated_key] {
        assert!(!store_files_hold(&db, key), "a key is in {}", db.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn keys_work_while_a_gateway_holds_the_store_open() {
    use tollgate::store::{KeyStore, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let store = db.to_str().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gateway = SqliteStore::open(&db).unwrap();
    let before = rt.block_on(gateway.revision()).unwrap();
    // The gateway is in the middle of reading when the command writes.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let n: i64 = reader
        .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);

    let (ok, out, err) = keys(&["create", "--store", store, "--name", "live"], &[]);
    assert!(ok, "{err}");
    let key = printed_key(&out);
    let hash = tollgate::auth::KeyHash::of(&key);
    let found = rt.block_on(gateway.lookup(&hash)).unwrap().unwrap();
    assert_eq!(found.name, "live");
    assert!(rt.block_on(gateway.revision()).unwrap() > before);

    let (ok, _, err) = keys(&["revoke", &found.id, "--store", store], &[]);
    assert!(ok, "{err}");
    let found = rt.block_on(gateway.lookup(&hash)).unwrap().unwrap();
    assert!(found.revoked_at.is_some());
    reader.execute_batch("COMMIT").unwrap();

    // The gateway's connection keeps the log and index on disk: the
    // key is in none of the three files, then or after it closes.
    assert!(std::path::Path::new(&format!("{store}-wal")).exists());
    assert!(!store_files_hold(&db, &key));
    drop(reader);
    drop(gateway);
    assert!(!store_files_hold(&db, &key));
}

#[test]
fn keys_find_the_store_from_store_then_config_then_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let from_config = dir.path().join("from-config.db");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!("[store]\npath = {:?}\n", from_config.to_str().unwrap()),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (ok, _, err) = keys(&["create", "--config", config, "--name", "a"], &[]);
    assert!(ok, "{err}");
    assert_eq!(listed(from_config.to_str().unwrap()).len(), 1);

    // --store wins over --config, before or after the subcommand.
    let explicit = dir.path().join("explicit.db");
    let explicit = explicit.to_str().unwrap();
    let (ok, _, err) = keys(
        &[
            "--config", config, "create", "--name", "b", "--store", explicit,
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(listed(explicit).len(), 1);
    assert_eq!(listed(from_config.to_str().unwrap()).len(), 1);
    let (ok, out, err) = keys(&["list", "--config", config], &[]);
    assert!(ok, "{err}");
    assert!(out.contains(" a ") && !out.contains(" b "), "{out}");

    // Neither: the data directory.
    let data = dir.path().join("data");
    let (ok, _, err) = keys(
        &["create", "--name", "c"],
        &[("XDG_DATA_HOME", &data), ("HOME", dir.path())],
    );
    assert!(ok, "{err}");
    assert!(data.join("tollgate").join("tollgate.db").exists());

    // A config that does not load says why.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[store]\npaht = \"x.db\"\n").unwrap();
    let (ok, _, err) = keys(&["list", "--config", bad.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("store.paht"), "{err}");
}

#[test]
fn keys_refuse_bad_input_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let store = db.to_str().unwrap();
    let (ok, _, err) = keys(&["create", "--store", store, "--name", "ci"], &[]);
    assert!(ok, "{err}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database, not even close ".repeat(200)).unwrap();
    let missing = dir.path().join("missing.db");
    for (args, says) in [
        (
            vec!["create", "--store", store, "--name", " "],
            "--name must not be empty",
        ),
        (
            vec!["create", "--store", store, "--name", "x", "--models", ""],
            "--models",
        ),
        (
            vec!["create", "--store", store, "--name", "x", "--expires", "30"],
            "needs a unit",
        ),
        (
            vec![
                "create",
                "--store",
                store,
                "--name",
                "x",
                "--expires",
                "3651d",
            ],
            "ten years",
        ),
        (
            vec!["create", "--store", store, "--name", "x", "--expires", "0s"],
            "at least 1s",
        ),
        (
            vec!["rotate", "key_nope", "--store", store, "--grace", "1y"],
            "unknown unit",
        ),
        (
            vec!["revoke", "key_nope", "--store", store],
            "no key `key_nope`",
        ),
        (
            vec!["rotate", "key_nope", "--store", store],
            "no key `key_nope`",
        ),
        (
            vec!["list", "--store", junk.to_str().unwrap()],
            "not an SQLite database",
        ),
        (
            vec!["revoke", "key_x", "--store", missing.to_str().unwrap()],
            "no store at",
        ),
        (
            vec!["list", "--store", dir.path().to_str().unwrap()],
            "is a directory",
        ),
    ] {
        let (ok, out, err) = keys(&args, &[]);
        assert!(!ok, "{args:?} passed");
        assert!(out.is_empty(), "{args:?}: {out}");
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.starts_with("error:") && first.contains(says),
            "{args:?}: {err}"
        );
    }
    // Nothing was made by the failed commands.
    assert_eq!(listed(store).len(), 1);
    assert!(!missing.exists());
}
