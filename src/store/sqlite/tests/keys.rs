use super::*;

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
            limits: KeyLimits {
                rpm: NonZeroU32::new(60),
                tpm: NonZeroU64::new(5_000_000_000),
            },
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
    assert_eq!(found.limits.rpm.map(|v| v.get()), Some(60));
    assert_eq!(found.limits.tpm.map(|v| v.get()), Some(5_000_000_000));

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
async fn a_blank_model_pattern_is_refused_not_read_as_every_model() {
    let (_dir, _path, store, _clock) = store_at(1_000);
    for models in [vec![" ".to_string()], vec!["gpt-*".into(), String::new()]] {
        let err = store
            .create(KeySpec {
                models,
                ..spec("ci")
            })
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("model pattern must not be empty"),
            "{err}"
        );
    }
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
            limits: KeyLimits {
                rpm: NonZeroU32::new(5),
                tpm: None,
            },
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
    assert_eq!(new.limits, old.limits, "rotation dropped the rate limits");
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
