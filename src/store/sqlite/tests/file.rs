use super::*;

#[tokio::test]
async fn keys_survive_a_reopen_and_migrations_are_not_rerun() {
    let (_dir, path, store, _clock) = store_at(1_000);
    let (record, key) = store.create(spec("ci")).await.unwrap();
    drop(store);
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.lookup(&key.hash()).await.unwrap(), Some(record));
    let version: i64 = again
        .conn
        .lock()
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, i64::try_from(migrate::MIGRATIONS.len()).unwrap());
}

#[test]
fn a_new_step_is_applied_once_to_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let one = ["CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);"];
    drop(connect(&path, &one).unwrap());
    let two = [one[0], "ALTER TABLE a ADD COLUMN y INTEGER DEFAULT 7;"];
    drop(connect(&path, &two).unwrap());
    let conn = connect(&path, &two).unwrap(); // the second time, nothing to do
    let (x, y): (i64, i64) = conn
        .query_row("SELECT x, y FROM a", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((x, y), (1, 7));
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);

    // A step that fails leaves the file as it was.
    let bad = [one[0], two[1], "CREATE TABLE b (z); NOT SQL;"];
    let err = connect(&path, &bad).unwrap_err();
    assert!(err.to_string().contains("migration 3 failed"), "{err}");
    let conn = connect(&path, &two).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn a_key_made_before_rate_limits_has_none_and_a_bad_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    // A file as the tollgate before key limits left it.
    let conn = connect(&path, &migrate::MIGRATIONS[..2]).unwrap();
    let hash = KeyHash::of("tg_old").to_hex();
    conn.execute(
        "INSERT INTO keys (id, name, hash, prefix, created_at) VALUES ('key_old', 'old', ?1, 'tg_old', 1)",
        [&hash],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    let old = store.lookup(&KeyHash::of("tg_old")).await.unwrap().unwrap();
    assert_eq!(old.limits, KeyLimits::default());
    // The column refuses a limit of zero; one too large for its type is
    // an error, not a key without limits.
    {
        let conn = store.conn.lock().unwrap();
        assert!(conn
            .execute("UPDATE keys SET rpm = 0 WHERE id = 'key_old'", [])
            .is_err());
        conn.execute("UPDATE keys SET rpm = 5000000000 WHERE id = 'key_old'", [])
            .unwrap();
    }
    let err = store.lookup(&KeyHash::of("tg_old")).await.unwrap_err();
    assert!(err.to_string().contains("not a rate limit"), "{err}");
}

#[test]
fn a_file_from_a_newer_tollgate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("version 99") && err.contains("newer") && err.contains("upgrade tollgate"),
        "{err}"
    );
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99, "the file was downgraded");
}

#[test]
fn what_is_not_a_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "these are not the tables you are looking for ".repeat(100),
    )
    .unwrap();
    let err = SqliteStore::open(&text).unwrap_err().to_string();
    assert!(
        err.contains("notes.txt") && err.contains("not an SQLite database"),
        "{err}"
    );

    let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is a directory"), "{err}");
}

#[cfg(unix)]
#[test]
fn the_file_is_private_and_in_wal_mode_with_a_busy_timeout() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new").join("tollgate.db");
    let store = SqliteStore::open(&path).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let conn = store.conn.lock().unwrap();
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let busy: i64 = conn
        .pragma_query_value(None, "busy_timeout", |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 5_000);
    let fk: i64 = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    drop(conn);
    // The write-ahead log gets the database's mode, not the umask's.
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600);
}

#[tokio::test]
async fn a_writer_does_not_wait_for_a_reader_in_another_connection() {
    let (_dir, path, store, _clock) = store_at(1_000);
    store.create(spec("a")).await.unwrap();
    // Another process in the middle of a read (the gateway looking up a
    // key): in WAL mode a write goes through at once.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let n: i64 = reader
        .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let (b, _) = store.create(spec("b")).await.unwrap();
    assert!(store.revoke(&b.id).await.unwrap());
    // The reader still sees its snapshot, then the change.
    let n: i64 = reader
        .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    reader.execute_batch("COMMIT").unwrap();
    let n: i64 = reader
        .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_others_changes() {
    let (_dir, path, gateway, _clock) = store_at(1_000);
    let cli = SqliteStore::open(&path).unwrap();
    let (record, key) = cli.create(spec("ci")).await.unwrap();
    let r = gateway.revision().await.unwrap();
    assert!(gateway.lookup(&key.hash()).await.unwrap().is_some());
    cli.revoke(&record.id).await.unwrap();
    assert_eq!(gateway.revision().await.unwrap(), r + 1);
    let seen = gateway.lookup(&key.hash()).await.unwrap().unwrap();
    assert!(seen.revoked_at.is_some());
}

/// Whether `haystack` holds any 16-character run of `key`.
fn holds_part_of(haystack: &[u8], key: &str) -> bool {
    key.as_bytes()
        .windows(16)
        .any(|run| memchr::memmem::find(haystack, run).is_some())
}

#[tokio::test]
async fn the_files_hold_no_key_only_hashes() {
    let (_dir, path, store, _clock) = store_at(1_000);
    let mut keys = Vec::new();
    for i in 0..5 {
        let (record, key) = store.create(spec(&format!("k{i}"))).await.unwrap();
        if i == 0 {
            let (_, rotated) = store
                .rotate(&record.id, Duration::from_secs(60))
                .await
                .unwrap()
                .unwrap();
            keys.push(rotated);
        }
        keys.push(key);
    }
    let files = |path: &Path| {
        ["", "-wal", "-shm"]
            .map(|s| PathBuf::from(format!("{}{s}", path.display())))
            .into_iter()
            .filter(|p| p.exists())
            .map(|p| std::fs::read(p).unwrap())
            .collect::<Vec<_>>()
    };
    let open = files(&path);
    assert_eq!(open.len(), 3, "the database, its log and its index");
    drop(store);
    let closed = files(&path);
    for bytes in open.iter().chain(&closed) {
        for key in &keys {
            assert!(
                !holds_part_of(bytes, key.expose()),
                "a key is in the store's files"
            );
        }
    }
    // The check can find what it looks for: the hashes are there.
    let all: Vec<u8> = open.concat();
    let hex = keys[0].hash().to_hex();
    assert!(memchr::memmem::find(&all, hex.as_bytes()).is_some());
}
