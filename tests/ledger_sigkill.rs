//! Nothing completed is lost: the real `tollgate` binary, with `tollgate
//! mock-upstream` as its upstream, serves 16 clients sending streamed and
//! complete requests in two formats; once 150 answers have been read to
//! their last byte it is killed with SIGKILL while requests are in
//! flight. Every answer a client read to the end must then be in the
//! ledger of the store it leaves behind.

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tollgate::store::{LedgerStore, SqliteStore};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
const CLIENTS: usize = 16;
const COMPLETED_BEFORE_KILL: usize = 150;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
}

fn spawn(args: &[&str], data: &Path) -> Proc {
    Proc(
        Command::new(BIN)
            .args(args)
            .env("XDG_DATA_HOME", data)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// What one request sends, and how its client knows it read the end.
#[derive(Clone, Copy)]
enum Kind {
    ChatStream,
    Chat,
    MessagesStream,
    Messages,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::ChatStream,
        Kind::Chat,
        Kind::MessagesStream,
        Kind::Messages,
    ];

    fn streamed(self) -> bool {
        matches!(self, Kind::ChatStream | Kind::MessagesStream)
    }

    fn request(self, client: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
        // Streams of 8 chunks 5 ms apart: some are always mid-stream.
        let (path, body) = match self {
            Kind::ChatStream | Kind::Chat => (
                "/v1/chat/completions",
                serde_json::json!({
                    "model": "mock-openai/gpt-4o~chunks=8~gap=5",
                    "stream": self.streamed(),
                    "messages": [{"role": "user", "content": "hi"}],
                }),
            ),
            Kind::MessagesStream | Kind::Messages => (
                "/v1/messages",
                serde_json::json!({
                    "model": "mock-anthropic/claude-x~chunks=8~gap=5",
                    "stream": self.streamed(), "max_tokens": 64,
                    "messages": [{"role": "user", "content": "hi"}],
                }),
            ),
        };
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .body(body.to_string())
    }

    /// Whether `body` is a whole answer: the last event of a stream, or
    /// a complete JSON answer.
    fn complete(self, body: &[u8]) -> bool {
        let text = String::from_utf8_lossy(body);
        match self {
            Kind::ChatStream => text.trim_end().ends_with("data: [DONE]"),
            Kind::MessagesStream => text.contains("event: message_stop"),
            Kind::Chat => serde_json::from_slice::<serde_json::Value>(body)
                .is_ok_and(|v| v["choices"][0]["finish_reason"].is_string()),
            Kind::Messages => serde_json::from_slice::<serde_json::Value>(body)
                .is_ok_and(|v| v["stop_reason"].is_string()),
        }
    }
}

#[derive(Default)]
struct Seen {
    /// Request ids of answers read to the end, and whether each streamed.
    completed: Mutex<Vec<(String, bool)>>,
    in_flight: AtomicUsize,
    stop: AtomicBool,
    enough: tokio::sync::Notify,
}

async fn client(n: usize, base: String, seen: Arc<Seen>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut i = n;
    while !seen.stop.load(Ordering::SeqCst) {
        let kind = Kind::ALL[i % Kind::ALL.len()];
        i += 1;
        seen.in_flight.fetch_add(1, Ordering::SeqCst);
        let answer = async {
            let resp = kind.request(&http, &base).send().await.ok()?;
            if resp.status() != 200 {
                return None;
            }
            let id = resp
                .headers()
                .get("x-tollgate-request-id")?
                .to_str()
                .ok()?
                .to_owned();
            let body = resp.bytes().await.ok()?;
            kind.complete(&body).then_some(id)
        }
        .await;
        seen.in_flight.fetch_sub(1, Ordering::SeqCst);
        let Some(id) = answer else {
            continue; // cut by the kill (or refused after it)
        };
        let mut done = seen.completed.lock().unwrap();
        done.push((id, kind.streamed()));
        if done.len() == COMPLETED_BEFORE_KILL {
            seen.enough.notify_one();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answer_read_to_its_end_is_in_the_ledger_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tollgate.db");
    let mock_port = free_port();
    let _mock = spawn(
        &[
            "mock-upstream",
            "--listen",
            &format!("127.0.0.1:{mock_port}"),
        ],
        dir.path(),
    );
    wait_for_port(mock_port);
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
path = "{db}"
[providers.mock-openai]
kind = "openai"
base_url = "http://127.0.0.1:{mock_port}/v1"
api_key = "sk-test"
[providers.mock-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock_port}"
api_key = "sk-ant-test"
"#,
            db = db.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut gateway = spawn(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        dir.path(),
    );
    wait_for_port(port);

    let seen = Arc::new(Seen::default());
    let enough = seen.enough.notified();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(n, format!("http://127.0.0.1:{port}"), seen.clone())))
        .collect();
    tokio::time::timeout(Duration::from_secs(60), enough)
        .await
        .expect("the clients complete 150 requests");

    // Kill mid-load: no shutdown, no flush.
    let in_flight = seen.in_flight.load(Ordering::SeqCst);
    gateway.0.kill().unwrap(); // SIGKILL
    gateway.0.wait().unwrap();
    seen.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    assert!(in_flight > 0, "no request was in flight at the kill");

    let completed = seen.completed.lock().unwrap().clone();
    assert!(completed.len() >= COMPLETED_BEFORE_KILL);
    let ids: HashSet<&str> = completed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), completed.len(), "request ids are unique");

    let store = SqliteStore::open(&db).unwrap();
    let mut missing = Vec::new();
    for (id, streamed) in &completed {
        match store.generation(id).await.unwrap() {
            Some(row) => assert_eq!(row.streamed, *streamed, "{id}"),
            None => missing.push(id.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} completed requests are not in the ledger: {missing:?}",
        missing.len(),
        completed.len()
    );
}
