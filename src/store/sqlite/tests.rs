use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::auth::KeyHash;

/// A store in a fresh folder, its clock at `t` (Unix seconds) and moved
/// by the returned handle.
fn store_at(t: i64) -> (tempfile::TempDir, PathBuf, SqliteStore, Arc<AtomicI64>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("tollgate.db");
    let clock = Arc::new(AtomicI64::new(t));
    let c = clock.clone();
    let store = SqliteStore::open(&path)
        .unwrap()
        .with_clock(move || c.load(Ordering::SeqCst));
    (dir, path, store, clock)
}

fn spec(name: &str) -> KeySpec {
    KeySpec {
        name: name.into(),
        ..KeySpec::default()
    }
}

#[tokio::test]
async fn a_created_key_is_found_by_its_hash_with_what_it_was_made_for() {
    let (_dir, _path, store, _clock) = store_at(1_000);
    let (record, key) = store
        .create(KeySpec {
            name: "ci".into(),
            user: Some("ana".into()),
            team: Some("platform".into()),
            tags: vec!["ci".into(), "nightly".into()],
            models: vec!["gpt-*".into(), "anthropic/*".into()],
            expires_in: Some(Duration::from_secs(60)),
        })
        .await
        .unwrap();
    assert!(record.id.starts_with("key_"), "{}", record.id);
    assert_eq!(record.prefix, key.display_prefix());
    assert_eq!(record.created_at, 1_000);
    assert_eq!(record.expires_at, Some(1_060));

    let found = store.lookup(&key.hash()).await.unwrap();
    assert_eq!(found.as_ref(), Some(&record));
    let found = found.unwrap();
    assert_eq!(found.user.as_deref(), Some("ana"));
    assert_eq!(found.team.as_deref(), Some("platform"));
    assert_eq!(found.tags, ["ci", "nightly"]);
    assert_eq!(found.models, ["gpt-*", "anthropic/*"]);

    assert_eq!(store.lookup(&KeyHash::of("tg_other")).await.unwrap(), None);
    assert_eq!(
        store.lookup(&KeyHash::of(key.expose())).await.unwrap(),
        Some(record)
    );
}

#[tokio::test]
async fn a_key_needs_a_name() {
    let (_dir, _path, store, _clock) = store_at(1_000);
    let err = store.create(spec("  ")).await.unwrap_err();
    assert!(err.to_string().contains("needs a name"), "{err}");
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn list_shows_every_key_newest_first() {
    let (_dir, _path, store, clock) = store_at(1_000);
    store.create(spec("first")).await.unwrap();
    store.create(spec("second")).await.unwrap(); // the same second
    clock.store(2_000, Ordering::SeqCst);
    let (revoked, _) = store.create(spec("third")).await.unwrap();
    store.revoke(&revoked.id).await.unwrap();
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["third", "second", "first"]);
}

#[tokio::test]
async fn a_revoked_key_is_kept_and_says_so() {
    let (_dir, _path, store, clock) = store_at(1_000);
    let (record, key) = store.create(spec("ci")).await.unwrap();
    let before = store.revision().await.unwrap();
    clock.store(1_500, Ordering::SeqCst);
    assert!(store.revoke(&record.id).await.unwrap());
    assert_eq!(store.revision().await.unwrap(), before + 1);

    let found = store.lookup(&key.hash()).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(1_500));
    assert_eq!(
        found.unusable_at(1_500),
        Some("the gateway key was revoked")
    );
    assert!(!store.has_active_keys().await.unwrap());

    // Again: not an error, and the first time stands.
    clock.store(1_600, Ordering::SeqCst);
    assert!(store.revoke(&record.id).await.unwrap());
    let found = store.lookup(&key.hash()).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(1_500));
    assert_eq!(store.revision().await.unwrap(), before + 1);

    assert!(!store.revoke("key_nosuchkey00").await.unwrap());
}

#[tokio::test]
async fn a_key_expires_at_its_time() {
    let (_dir, _path, store, clock) = store_at(1_000);
    let (_, key) = store
        .create(KeySpec {
            expires_in: Some(Duration::from_millis(29_500)), // rounds up
            ..spec("short")
        })
        .await
        .unwrap();
    let found = store.lookup(&key.hash()).await.unwrap().unwrap();
    assert_eq!(found.expires_at, Some(1_030));
    assert_eq!(found.unusable_at(1_029), None);
    assert_eq!(
        found.unusable_at(1_030),
        Some("the gateway key has expired")
    );

    clock.store(1_029, Ordering::SeqCst);
    assert!(store.has_active_keys().await.unwrap());
    clock.store(1_030, Ordering::SeqCst);
    assert!(!store.has_active_keys().await.unwrap());

    let err = store
        .create(KeySpec {
            expires_in: Some(Duration::from_secs(u64::MAX)),
            ..spec("forever")
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too far"), "{err}");
}

#[tokio::test]
async fn has_active_keys_only_counts_keys_that_work() {
    let (_dir, _path, store, _clock) = store_at(1_000);
    assert!(!store.has_active_keys().await.unwrap());
    let (a, _) = store.create(spec("a")).await.unwrap();
    assert!(store.has_active_keys().await.unwrap());
    store.revoke(&a.id).await.unwrap();
    assert!(!store.has_active_keys().await.unwrap());
}

#[tokio::test]
async fn rotate_copies_the_key_and_gives_the_old_one_a_grace_period() {
    let (_dir, _path, store, clock) = store_at(1_000);
    let (old, old_key) = store
        .create(KeySpec {
            name: "deploy".into(),
            user: Some("bo".into()),
            team: Some("web".into()),
            tags: vec!["prod".into()],
            models: vec!["gpt-*".into()],
            expires_in: Some(Duration::from_secs(86_400)),
        })
        .await
        .unwrap();
    clock.store(2_000, Ordering::SeqCst);
    let before = store.revision().await.unwrap();
    let (new, new_key) = store
        .rotate(&old.id, Duration::from_secs(3_600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.revision().await.unwrap(), before + 1);
    assert_ne!(new.id, old.id);
    assert_ne!(new_key.expose(), old_key.expose());
    assert_eq!(new.rotated_from.as_deref(), Some(old.id.as_str()));
    assert_eq!(
        (&new.name, &new.user, &new.team, &new.tags, &new.models),
        (&old.name, &old.user, &old.team, &old.tags, &old.models)
    );
    assert_eq!(new.created_at, 2_000);
    assert_eq!(new.expires_at, old.expires_at, "rotation extended the key");
    assert_eq!(
        store.lookup(&new_key.hash()).await.unwrap(),
        Some(new.clone())
    );

    let old_now = store.lookup(&old_key.hash()).await.unwrap().unwrap();
    assert_eq!(old_now.expires_at, Some(5_600));
    assert_eq!(old_now.unusable_at(5_599), None);
    assert!(old_now.unusable_at(5_600).is_some());

    // It has a successor: rotating it again would make a second one.
    assert!(store
        .rotate(&old.id, Duration::from_secs(60))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .rotate(&new.id, Duration::ZERO)
        .await
        .unwrap()
        .is_some());

    // A grace longer than the key had left does not lengthen it.
    let (short, short_key) = store
        .create(KeySpec {
            expires_in: Some(Duration::from_secs(60)),
            ..spec("short")
        })
        .await
        .unwrap();
    store
        .rotate(&short.id, Duration::from_secs(3_600))
        .await
        .unwrap()
        .unwrap();
    let short_now = store.lookup(&short_key.hash()).await.unwrap().unwrap();
    assert_eq!(short_now.expires_at, Some(2_060));
}

#[tokio::test]
async fn rotate_without_grace_stops_the_old_key_now() {
    let (_dir, _path, store, _clock) = store_at(1_000);
    let (old, old_key) = store.create(spec("ci")).await.unwrap();
    let (new, _) = store
        .rotate(&old.id, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.expires_at, None);
    let old_now = store.lookup(&old_key.hash()).await.unwrap().unwrap();
    assert!(old_now.unusable_at(1_000).is_some());
    // It no longer works, so it cannot be rotated again.
    assert!(store
        .rotate(&old.id, Duration::ZERO)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn revoked_and_unknown_keys_are_not_rotated() {
    let (_dir, _path, store, _clock) = store_at(1_000);
    let (old, _) = store.create(spec("ci")).await.unwrap();
    store.revoke(&old.id).await.unwrap();
    let before = store.revision().await.unwrap();
    assert!(store
        .rotate(&old.id, Duration::from_secs(60))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .rotate("key_nosuchkey00", Duration::ZERO)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.list().await.unwrap().len(), 1);
    assert_eq!(store.revision().await.unwrap(), before);
}

#[tokio::test]
async fn every_change_to_which_keys_work_bumps_the_revision() {
    let (_dir, _path, store, _clock) = store_at(1_000);
    let r0 = store.revision().await.unwrap();
    let (a, _) = store.create(spec("a")).await.unwrap();
    let r1 = store.revision().await.unwrap();
    let (b, _) = store
        .rotate(&a.id, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let r2 = store.revision().await.unwrap();
    store.revoke(&b.id).await.unwrap();
    let r3 = store.revision().await.unwrap();
    assert!(r0 < r1 && r1 < r2 && r2 < r3, "{r0} {r1} {r2} {r3}");
    // Reading and touching change nothing that matters to a cache.
    store.list().await.unwrap();
    store.touch(vec![(a.id.clone(), 1_001)]).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), r3);
}

#[tokio::test]
async fn touch_records_the_latest_use_and_never_goes_back() {
    let (_dir, _path, store, _clock) = store_at(1_000);
    let (a, key_a) = store.create(spec("a")).await.unwrap();
    let (b, key_b) = store.create(spec("b")).await.unwrap();
    store
        .touch(vec![
            (a.id.clone(), 1_100),
            (b.id.clone(), 1_050),
            ("key_nosuchkey00".into(), 1_100),
        ])
        .await
        .unwrap();
    store.touch(vec![(a.id.clone(), 1_090)]).await.unwrap(); // late, older
    store.touch(vec![]).await.unwrap();
    let last = |k: &NewKey| {
        let store = store.clone();
        let hash = k.hash();
        async move { store.lookup(&hash).await.unwrap().unwrap().last_used_at }
    };
    assert_eq!(last(&key_a).await, Some(1_100));
    assert_eq!(last(&key_b).await, Some(1_050));
}

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
