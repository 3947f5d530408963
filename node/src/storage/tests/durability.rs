//! Restart, shutdown, failed syncs, damaged values and the store format check.

use super::*;

fn expect_corrupt<T: std::fmt::Debug>(r: Result<T, StorageError>, tree: TreeId, key: &str) {
    match r {
        Err(StorageError::Corrupt {
            tree: t, key: k, ..
        }) => assert_eq!((t, k.as_str()), (tree.name(), key)),
        other => panic!("expected Corrupt in {}, got {other:?}", tree.name()),
    }
}

/// Registers cases "a", "b" and "c" and rejects "b"; returns the ids and "b" as rejected.
async fn three_cases_one_rejected(store: &Store) -> (Vec<String>, Case) {
    let mut ids = Vec::new();
    for key in ["a", "b", "c"] {
        ids.push(register(store, key).await.case.id);
    }
    let updated = store
        .update(ids[1].clone(), |c| {
            Ok(step(c, 1, |n| n.status = CaseStatus::Rejected))
        })
        .await
        .unwrap();
    (ids, updated)
}

/// What [`three_cases_one_rejected`] wrote is all there, by every way of reading it, and the
/// idempotency keys and day counter still work.
async fn assert_three_cases(store: &Store, ids: &[String], updated: Case) {
    assert_eq!(store.get_case(&ids[1]).unwrap(), Some(updated.clone()));
    assert_eq!(store.history(&ids[1]).unwrap().len(), 2);
    assert_eq!(
        store.case_by_lookup_code(&updated.lookup_code).unwrap(),
        Some(updated)
    );
    let all = store.list_cases(&CaseQuery::default()).unwrap();
    assert_eq!(
        all.cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert!(!register(store, "a").await.created, "idempotency survives");
    assert_eq!(
        seq_of(&register(store, "d").await.case),
        4,
        "the day counter survives"
    );
    assert_index_consistency(store);
}

#[tokio::test]
async fn data_survives_shutdown_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (ids, updated) = three_cases_one_rejected(&store).await;
    store.shutdown().await;
    let closed = store
        .register("d".into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
        .await;
    assert!(matches!(
        closed,
        Err(WriteError::Storage(StorageError::Closed))
    ));
    store.shutdown().await; // a second shutdown returns at once
    assert_eq!(
        store.get_case(&ids[1]).unwrap(),
        Some(updated.clone()),
        "reads work until dropped"
    );
    drop(store);

    let store = open(dir.path());
    assert_three_cases(&store, &ids, updated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_queued_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .register(format!("k{i}"), DAY.into(), |seq| Ok(new_case(DAY, seq)))
                    .await
            })
        })
        .collect();
    store.shutdown().await;
    let mut acked = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(reg) => acked.push(reg.case),
            Err(WriteError::Storage(StorageError::Closed)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    drop(store);
    let store = open(dir.path());
    for case in &acked {
        assert_eq!(store.get_case(&case.id).unwrap().as_ref(), Some(case));
    }
    assert_eq!(
        store
            .list_cases(&CaseQuery {
                page_size: 500,
                ..Default::default()
            })
            .unwrap()
            .cases
            .len(),
        acked.len()
    );
}

#[tokio::test]
async fn a_failed_sync_fails_the_batch_and_every_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = register(&store, "k1").await.case.id;
    store
        .inner
        .writer
        .fail_next_sync
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = store
        .register("k2".into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
        .await;
    assert!(
        matches!(r, Err(WriteError::Storage(StorageError::Failed(_)))),
        "{r:?}"
    );
    let r = store.update(id.clone(), |c| Ok(step(c, 1, |_| {}))).await;
    assert!(
        matches!(r, Err(WriteError::Storage(StorageError::Failed(_)))),
        "{r:?}"
    );
    assert_eq!(
        store.history(&id).unwrap().len(),
        1,
        "the refused update did not run"
    );
    assert!(store.get_case(&id).unwrap().is_some(), "reads keep working");
    let refusing = store.refusing_writes().borrow().clone();
    assert!(
        refusing.is_some_and(|r| r.contains("injected failure")),
        "health is told why"
    );
}

#[tokio::test]
async fn a_sync_that_cannot_start_fails_only_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = register(&store, "k1").await.case.id;
    store
        .inner
        .writer
        .fail_syncs_transiently
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let r = store
        .register("k2".into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
        .await;
    match &r {
        Err(WriteError::Storage(e @ StorageError::Unavailable(_))) => {
            assert!(e.is_transient(), "callers get UNAVAILABLE")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(store.refusing_writes().borrow().is_none(), "not latched");
    store
        .update(id.clone(), |c| Ok(step(c, 1, |_| {})))
        .await
        .expect("the next batch works");
    assert_eq!(store.history(&id).unwrap().len(), 2);
    // The refused batch was written to sled and made durable by the next sync: a retry with
    // the same idempotency key finds it instead of creating a second case.
    assert!(!register(&store, "k2").await.created);
    store.shutdown().await;
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.list_cases(&CaseQuery::default()).unwrap().cases.len(),
        2
    );
}

#[tokio::test]
async fn an_outstanding_sync_is_retried_without_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    register(&store, "k1").await;
    let mut durable = store.changes();
    durable.borrow_and_update();
    store
        .inner
        .writer
        .fail_syncs_transiently
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let r = store
        .register("k2".into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
        .await;
    assert!(
        matches!(r, Err(WriteError::Storage(StorageError::Unavailable(_)))),
        "{r:?}"
    );
    // The writer retries on its own (every RETRY_SYNC_EVERY); two more failures, then success.
    tokio::time::timeout(std::time::Duration::from_secs(20), durable.changed())
        .await
        .expect("the outstanding batch became durable without another write")
        .unwrap();
    assert_eq!(
        store
            .inner
            .writer
            .fail_syncs_transiently
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    store.inner.trees.signals.wait_durable().await.unwrap();
    assert!(store.refusing_writes().borrow().is_none());
}

#[tokio::test]
async fn damaged_values_are_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let case = register(&store, "k1").await.case;
    let other = register(&store, "k2").await.case;
    let mut bytes = store
        .inner
        .trees
        .get(TreeId::Cases)
        .get(&case.id)
        .unwrap()
        .unwrap()
        .to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    store.raw_insert(TreeId::Cases, case.id.as_bytes(), &bytes);
    expect_corrupt(store.get_case(&case.id), TreeId::Cases, &case.id);
    expect_corrupt(
        store.case_by_lookup_code(&case.lookup_code),
        TreeId::Cases,
        &case.id,
    );
    // A listing skips the damaged record (so one bad sector does not stop every listing,
    // sweep and report), and the store names it (for the sweep's alert and the metrics).
    let listed = store.list_cases(&CaseQuery::default()).unwrap();
    assert_eq!(
        listed
            .cases
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&other.id)
    );
    let by_status = CaseQuery {
        status: Some(CaseStatus::Registered),
        ..Default::default()
    };
    let listed = store.list_cases(&by_status).unwrap();
    assert_eq!(listed.cases.len(), 1);
    let damaged = store.damaged_records();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert!(damaged[0].0.contains(&case.id), "{damaged:?}");
    let r = store
        .update(case.id.clone(), |c| Ok(step(c, 1, |_| {})))
        .await;
    assert!(
        matches!(r, Err(WriteError::Storage(StorageError::Corrupt { .. }))),
        "{r:?}"
    );

    let event_key = keys::event(&other.id, 1);
    store.raw_insert(TreeId::Events, &event_key, b"FQ\x02\x01garbage");
    expect_corrupt(
        store.history(&other.id),
        TreeId::Events,
        &keys::display(&event_key),
    );
    store.raw_insert(TreeId::LookupCodes, other.lookup_code.as_bytes(), b"");
    expect_corrupt(
        store.case_by_lookup_code(&other.lookup_code),
        TreeId::LookupCodes,
        &other.lookup_code,
    );

    // A corrupt value fails the request that met it, not the store.
    let r = store
        .update(other.id.clone(), |c| Ok(step(c, 1, |_| {})))
        .await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn open_checks_the_store_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.raw_insert(
        TreeId::Meta,
        keys::META_FORMAT,
        &codec::encode_format(super::super::STORE_FORMAT + 1).unwrap(),
    );
    store.shutdown().await;
    drop(store);
    let r = Store::open_again(dir.path(), &options()).map(|_| ());
    assert!(
        matches!(
            r,
            Err(StorageError::UnsupportedFormat { found, supported })
                if found == super::super::STORE_FORMAT + 1 && supported == super::super::STORE_FORMAT
        ),
        "{r:?}"
    );

    let store = {
        let db = super::db_again(dir.path());
        db.open_tree(TreeId::Meta.name())
            .unwrap()
            .insert(keys::META_FORMAT, b"FQ\x05\x01\0\0\0\0\x01".as_slice())
            .unwrap();
        db.flush().unwrap();
        drop(db);
        Store::open_again(dir.path(), &options()).map(|_| ())
    };
    assert!(
        matches!(store, Err(StorageError::Corrupt { tree: "meta", .. })),
        "{store:?}"
    );
}

/// A store of format 2 (a sled tree per tree) opens with everything in place, its trees moved
/// into the store tree; a move interrupted after part of the copy runs again.
#[tokio::test]
async fn a_format_2_store_is_moved_into_one_tree_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (ids, updated) = three_cases_one_rejected(&store).await;
    store.shutdown().await;
    drop(store);
    super::to_older_layout(dir.path(), 2);
    {
        // An earlier move that stopped part-way: some keys already in the store tree.
        let db = super::db_again(dir.path());
        let store_tree = db.open_tree(space::STORE_TREE).unwrap();
        let cases = db.open_tree(TreeId::Cases.name()).unwrap();
        let (key, value) = cases.iter().next().unwrap().unwrap();
        store_tree
            .insert(space::full_key(TreeId::Cases, &key), value)
            .unwrap();
        db.flush().unwrap();
    }

    let store = Store::open_again(dir.path(), &options()).unwrap();
    assert_three_cases(&store, &ids, updated).await;
    store.shutdown().await;
    drop(store);

    // Only the store tree is left, and the old meta tree holds the format alone, so that an
    // older binary refuses the store instead of starting an empty one in it.
    let db = super::db_again(dir.path());
    for id in TreeId::ALL.iter().filter(|&&t| t != TreeId::Meta) {
        assert!(!db.has_tree(id.name()), "{} left behind", id.name());
    }
    let meta = db.open_tree(TreeId::Meta.name()).unwrap();
    assert_eq!(meta.len(), 1);
    let format: u32 = codec::decode_format(
        keys::META_FORMAT,
        &meta.get(keys::META_FORMAT).unwrap().unwrap(),
    )
    .unwrap();
    assert_eq!(format, super::super::STORE_FORMAT);
}

/// A change's events are one run under one key. Format 3 stored each event under its own key:
/// such a history is read as it is, the store opens as the current format without rewriting
/// it, and later changes append runs after it. A gap between runs is corrupt. (Its status, risk
/// and category indexes give way to the facets index: `assert_three_cases` checks them.)
#[tokio::test]
async fn histories_of_single_events_and_of_runs_read_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (ids, updated) = three_cases_one_rejected(&store).await;
    let three = store
        .update(ids[0].clone(), |c| Ok(step(c, 3, |_| {})))
        .await
        .unwrap();
    let prefix = keys::events_prefix(&ids[0]);
    let keys_of = |store: &Store| {
        store
            .inner
            .trees
            .get(TreeId::Events)
            .scan_prefix(&prefix)
            .count()
    };
    assert_eq!(keys_of(&store), 2, "registration, then one run of three");
    assert_eq!(store.history(&ids[0]).unwrap().len(), 4);

    // What format 3 wrote: every event under its own key, as a single event.
    for (key, value) in super::raw_entries(&store, TreeId::Events) {
        for (single, bytes) in super::single_events(&key, &value) {
            store.raw_insert(TreeId::Events, &single, &bytes);
        }
    }
    // And its status, risk and category indexes.
    for (key, _) in super::raw_entries(&store, TreeId::ByFacets) {
        for (tree, entry) in super::legacy_index_entries(&key) {
            store.raw_insert(tree, &entry, b"");
        }
    }
    let format_3 = codec::encode_format(3).unwrap();
    store.raw_insert(TreeId::Meta, keys::META_FORMAT, &format_3);
    store.shutdown().await;
    drop(store);
    {
        // The old meta tree of a format-3 store holds that format; a stray key in it must not
        // be taken for the metadata of a store still to be moved into the store tree.
        let db = super::db_again(dir.path());
        let legacy = db.open_tree(TreeId::Meta.name()).unwrap();
        legacy.insert(keys::META_FORMAT, format_3.clone()).unwrap();
        legacy.insert(b"stray", b"x".as_slice()).unwrap();
        db.flush().unwrap();
    }

    let store = Store::open_again(dir.path(), &options()).unwrap();
    assert_eq!(keys_of(&store), 4, "nothing rewritten at open");
    assert!(store.tree(TreeId::Meta).get(b"stray").unwrap().is_none());
    let format: u32 = codec::decode_format(
        keys::META_FORMAT,
        &store
            .tree(TreeId::Meta)
            .get(keys::META_FORMAT)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(format, super::super::STORE_FORMAT);
    assert_eq!(store.history(&ids[0]).unwrap().len(), 4);
    let six = store
        .update(ids[0].clone(), |c| Ok(step(c, 2, |_| {})))
        .await
        .unwrap();
    assert_eq!(six.history_len, three.history_len + 2);
    let history = store.history(&ids[0]).unwrap();
    assert_eq!(
        history.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(keys_of(&store), 5);
    assert_three_cases(&store, &ids, updated).await;

    // A run that does not follow the one before it.
    let (_, events) = step(&six, 1, |_| {});
    let mut late = events;
    late[0].seq = 8;
    let key = keys::event(&ids[0], 8);
    let bytes = codec::encode(ValueKind::Events, &late).unwrap();
    store.raw_insert(TreeId::Events, &key, &bytes);
    expect_corrupt(store.history(&ids[0]), TreeId::Events, &keys::display(&key));
    store.shutdown().await;
    drop(store);

    // Builds that read format 3 now refuse the store: the old meta tree says the current one.
    let db = super::db_again(dir.path());
    let legacy = db.open_tree(TreeId::Meta.name()).unwrap();
    let bytes = legacy.get(keys::META_FORMAT).unwrap().unwrap();
    let format: u32 = codec::decode_format(keys::META_FORMAT, &bytes).unwrap();
    assert_eq!(format, super::super::STORE_FORMAT);
    assert_eq!(legacy.len(), 1);
}

/// A store of format 5 kept the parties of its tombstones; opened by this version, they lose
/// them (and their person-index entries), and nothing else changes.
#[tokio::test]
async fn tombstones_of_older_stores_lose_their_personal_data_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let moved = register(&store, "moved").await.case;
    let kept = register(&store, "kept").await.case;
    let tomb = store
        .update(moved.id.clone(), |c| {
            // What an older version wrote when the case moved away: parties in full.
            Ok(step(c, 1, |n| {
                n.status = CaseStatus::Transferred;
                n.moved_to = Some("6101".into());
                n.owner_node = "6101".into();
            }))
        })
        .await
        .unwrap();
    assert!(!tomb.parties.is_empty());
    let in_index = |store: &Store, case: &Case| {
        store
            .person_matches(case, Timestamp(0), Timestamp(i64::MAX), 10)
            .unwrap()
            .iter()
            .flat_map(|m| m.case_ids.clone())
            .filter(|id| *id == case.id)
            .count()
    };
    assert_eq!(in_index(&store, &moved), 1);
    store.raw_insert(
        TreeId::Meta,
        keys::META_FORMAT,
        &codec::encode_format(5).unwrap(),
    );
    store.shutdown().await;
    drop(store);

    let store = Store::open_again(dir.path(), &options()).unwrap();
    let stripped = store.get_case(&moved.id).unwrap().unwrap();
    assert!(stripped.parties.is_empty(), "{:?}", stripped.parties);
    assert!(stripped.description.is_empty());
    assert_eq!(
        (
            stripped.status,
            &stripped.moved_to,
            &stripped.summary,
            stripped.history_len
        ),
        (
            CaseStatus::Transferred,
            &tomb.moved_to,
            &tomb.summary,
            tomb.history_len
        )
    );
    assert_eq!(
        in_index(&store, &moved),
        0,
        "its person-index entries went with them"
    );
    assert_eq!(
        store.get_case(&kept.id).unwrap().unwrap(),
        kept,
        "a live case is untouched"
    );
    assert_eq!(in_index(&store, &kept), 1);
    assert_index_consistency(&store);
}
