//! `tollgate keys` through the real binary: create, list, revoke and
//! rotate; where the store is found; bad input; a store held open by
//! another connection (the gateway); and the key absent from the files.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

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

/// The README's step: `keys create --config tollgate.toml` in a shell
/// without the providers' keys, which only `serve` needs.
#[test]
fn keys_read_only_the_store_table_of_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        "[providers.openai]\nkind = \"openai\"\napi_key = \"${TOLLGATE_TEST_UNSET_PROVIDER_KEY}\"\n\n[store]\npath = \"keys.db\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (ok, out, err) = keys(&["create", "--name", "my-laptop", "--config", config], &[]);
    assert!(ok, "{err}");
    printed_key(&out);
    assert_eq!(
        listed(dir.path().join("keys.db").to_str().unwrap()).len(),
        1
    );
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
