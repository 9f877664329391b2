//! Runs each program in `examples/` with `--self-test`: each starts the mock
//! upstream in-process, serves on a free loopback port, calls itself,
//! checks the answers and exits. Here we check that it exits successfully
//! and printed what a reader of the example is promised.
//!
//! `cargo test` builds the examples before it runs any test, so the
//! binaries are never stale.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The directory holding the example binaries. `cargo test` builds every
/// example before it runs the tests, next to the test binary's `deps`.
fn examples_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // This test is `<target>/<profile>/deps/examples-<hash>`.
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test binary lives in <target>/<profile>/deps")
            .join("examples");
        assert!(
            dir.join("custom_gateway").exists(),
            "{} holds no example binaries: run `cargo test` (which builds them) or `cargo build --examples`",
            dir.display()
        );
        dir
    })
}

/// Runs example `name` with `args`; kills it after [`TIMEOUT`]. Returns
/// its stdout once it exited successfully.
fn run_example(name: &str, args: &[&str]) -> String {
    let path = examples_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "example binary {} not found", path.display());
    let mut child = Command::new(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    // Read both pipes on threads so that a chatty child never blocks.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        None => {
            panic!("{name} still ran after {TIMEOUT:?}; killed.\nstdout:\n{out}\nstderr:\n{err}")
        }
        Some(s) if !s.success() => panic!("{name} failed ({s}).\nstdout:\n{out}\nstderr:\n{err}"),
        Some(_) => out,
    }
}

#[test]
fn fallback_alone_backup_answers_for_the_failing_primary() {
    let out = run_example("fallback_alone", &["--self-test"]);
    assert!(out.contains("primary -> Err(Overloaded)"), "{out}");
    assert!(
        out.contains("=> Ok(\"backup says: you asked `hello`\")"),
        "{out}"
    );
    assert!(out.contains("=> Err(BadRequest)"), "{out}");
    assert!(out.contains("ok: the backup answered"), "{out}");
}

#[test]
fn axum_mount_serves_app_routes_beside_the_gateway() {
    let out = run_example("axum_mount", &["--self-test"]);
    assert!(out.contains("GET /hello -> hello from my app"), "{out}");
    assert!(
        out.contains("POST /llm/v1/chat/completions -> Hello from the mock openai upstream"),
        "{out}"
    );
    assert!(
        out.contains("POST /llm/v1/messages -> Hello from the mock anthropic upstream"),
        "{out}"
    );
    assert!(
        out.contains("ok: the app's own route and the mounted gateway"),
        "{out}"
    );
}

#[test]
fn custom_gateway_attempts_header_lists_failing_then_healthy_target() {
    let out = run_example("custom_gateway", &["--self-test"]);
    // Provider order within model `x`, then model fallback from `flaky`.
    assert!(
        out.contains(
            "model x: 200 OK, x-tollgate-attempts: a/gpt-4o~status=503=503, b/claude-sonnet-4-5=200"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "model flaky: 200 OK, x-tollgate-attempts: a/gpt-4o~status=500=500, b/claude-haiku-4-5=200"
        ),
        "{out}"
    );
    assert!(out.contains("ok: each request fell back"), "{out}");
}

#[test]
fn auth_alone_lets_in_a_known_key_only() {
    let out = run_example("auth_alone", &["--self-test"]);
    assert!(
        out.contains("GET /whoami key=tg_demo_alic -> 200 you are alice of team search"),
        "{out}"
    );
    assert!(out.contains("GET /whoami key=tg_demo_mall -> 401"), "{out}");
    assert!(out.contains("GET /whoami key=none -> 401"), "{out}");
    assert!(out.contains("GET /health key=none -> 200 ok"), "{out}");
    assert!(out.contains("ok: alice is let in"), "{out}");
}
