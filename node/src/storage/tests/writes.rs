//! Registration, idempotency, day sequences, updates and index maintenance.

use std::collections::{BTreeMap, HashSet};

use super::*;

#[tokio::test]
async fn register_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let reg = register(&store, "k1").await;
    assert!(reg.created);
    assert_eq!(reg.case, new_case(DAY, 1).0);
    assert_eq!(
        store.get_case(&reg.case.id).unwrap(),
        Some(reg.case.clone())
    );
    assert_eq!(
        store.case_by_lookup_code(&reg.case.lookup_code).unwrap(),
        Some(reg.case.clone())
    );
    assert_eq!(
        store.history(&reg.case.id).unwrap(),
        vec![new_case(DAY, 1).1]
    );
    assert_eq!(
        store.get_case("610116001001-20250131-000002").unwrap(),
        None
    );
    assert_eq!(store.case_by_lookup_code("nope").unwrap(), None);
    assert!(store.history("nope").unwrap().is_empty());
}

#[tokio::test]
async fn repeated_idempotency_key_returns_the_original_and_consumes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let first = register(&store, "k1").await;
    let again = store
        .register("k1".into(), DAY.into(), |seq| {
            let (mut case, event) = new_case(DAY, seq);
            case.summary = "a different request".into();
            Ok((case, event))
        })
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.case, first.case);
    assert_eq!(
        seq_of(&register(&store, "k2").await.case),
        2,
        "no sequence number consumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_with_one_key_create_one_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { register(&store, "same").await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let reg = t.await.unwrap();
        assert_eq!(seq_of(&reg.case), 1);
        created += usize::from(reg.created);
    }
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_sequences_start_at_one_and_are_unique_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let days = ["20250131", "20250201"];
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let store = store.clone();
            let day = days[i % 2];
            tokio::spawn(async move {
                let reg = store
                    .register(format!("key-{i}"), day.into(), move |seq| {
                        Ok(new_case(day, seq))
                    })
                    .await;
                (day, reg.expect("register").case)
            })
        })
        .collect();
    let mut seqs: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for t in tasks {
        let (day, case) = t.await.unwrap();
        seqs.entry(day).or_default().push(seq_of(&case));
    }
    for day in days {
        let mut got = seqs.remove(day).unwrap();
        got.sort_unstable();
        assert_eq!(got, (1..=60).collect::<Vec<u32>>(), "day {day}");
    }
}

#[tokio::test]
async fn update_appends_events_in_order_and_moves_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = register(&store, "k1").await.case.id;
    let accepted = store
        .update(id.clone(), |c| {
            Ok(step(c, 1, |n| {
                n.status = CaseStatus::Accepted;
                n.resolve_due_at = Some(Timestamp(T0 + 30 * DAY_MS));
            }))
        })
        .await
        .unwrap();
    assert_eq!(accepted.history_len, 2);
    let escalated = store
        .update(id.clone(), |c| {
            Ok(step(c, 2, |n| {
                n.status = CaseStatus::InMediation;
                n.risk = RiskLevel::Red;
                n.category = Category::Lease;
                n.resolve_due_at = Some(Timestamp(T0 + 10 * DAY_MS));
            }))
        })
        .await
        .unwrap();
    assert_eq!(store.get_case(&id).unwrap(), Some(escalated.clone()));
    let seqs: Vec<u64> = store.history(&id).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);

    let count = |q: CaseQuery| store.list_cases(&q).unwrap().cases.len();
    let by_status = |s| CaseQuery {
        status: Some(s),
        ..Default::default()
    };
    assert_eq!(count(by_status(CaseStatus::Registered)), 0);
    assert_eq!(count(by_status(CaseStatus::Accepted)), 0);
    assert_eq!(count(by_status(CaseStatus::InMediation)), 1);
    assert_eq!(
        count(CaseQuery {
            risk: Some(RiskLevel::Blue),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        count(CaseQuery {
            risk: Some(RiskLevel::Red),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(CaseQuery {
            category: Some(Category::Labor),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        count(CaseQuery {
            category: Some(Category::Lease),
            ..Default::default()
        }),
        1
    );
    let overdue = |days| CaseQuery {
        overdue_at: Some(Timestamp(T0 + days * DAY_MS)),
        ..Default::default()
    };
    assert_eq!(count(overdue(11)), 1, "the new deadline is indexed");
    assert_eq!(
        count(overdue(9)),
        0,
        "the old review and resolve deadlines are gone"
    );
    assert_index_consistency(&store);
}

#[tokio::test]
async fn update_of_a_missing_case_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = store
        .update("nope".into(), |c| Ok(step(c, 1, |_| {})))
        .await;
    assert!(matches!(r, Err(WriteError::NotFound(id)) if id == "nope"));
}

#[tokio::test]
async fn domain_errors_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let refused = store
        .register("k1".into(), DAY.into(), |_| {
            Err(DomainError::invalid("summary", "empty"))
        })
        .await;
    assert!(matches!(
        refused,
        Err(WriteError::Domain(DomainError::InvalidArgument {
            field: "summary",
            ..
        }))
    ));
    let reg = register(&store, "k1").await;
    assert!(reg.created, "the refused key was not recorded");
    assert_eq!(
        seq_of(&reg.case),
        1,
        "the refused request consumed no sequence number"
    );

    let illegal = DomainError::IllegalTransition {
        action: "resolve",
        status: CaseStatus::Registered,
    };
    let r = store
        .update(reg.case.id.clone(), move |_| Err(illegal.clone()))
        .await;
    assert!(matches!(
        r,
        Err(WriteError::Domain(DomainError::IllegalTransition { .. }))
    ));
    assert_eq!(
        store.get_case(&reg.case.id).unwrap(),
        Some(reg.case.clone())
    );
    assert_eq!(store.history(&reg.case.id).unwrap().len(), 1);

    let empty_key = store
        .register(String::new(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
        .await;
    assert!(matches!(
        empty_key,
        Err(WriteError::Domain(DomainError::InvalidArgument { .. }))
    ));
    assert_index_consistency(&store);
}

#[tokio::test]
async fn records_breaking_storage_invariants_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let case = register(&store, "k1").await.case;
    let id = case.id.clone();

    let gap = store
        .update(id.clone(), |c| {
            Ok((c.clone(), vec![event(c.history_len + 2, c.status, None)]))
        })
        .await;
    assert!(invalid_record(gap).contains("seq"));
    let stale_len = store
        .update(id.clone(), |c| {
            Ok((c.clone(), vec![event(c.history_len + 1, c.status, None)]))
        })
        .await;
    assert!(invalid_record(stale_len).contains("history_len"));
    let renamed = store
        .update(id.clone(), |c| Ok(step(c, 1, |n| n.id.push('x'))))
        .await;
    assert!(invalid_record(renamed).contains("returned case"));
    let taken_code = store
        .register("k2".into(), DAY.into(), |seq| {
            let (mut case, event) = new_case(DAY, seq);
            case.lookup_code = new_case(DAY, 1).0.lookup_code;
            Ok((case, event))
        })
        .await;
    assert!(
        matches!(
            &taken_code,
            Err(WriteError::Storage(StorageError::LookupCodeTaken { holder, .. })) if *holder == id
        ),
        "{taken_code:?}"
    );
    let reused_id = store
        .register("k3".into(), DAY.into(), |_| Ok(new_case(DAY, 1)))
        .await;
    assert!(invalid_record(reused_id).contains("already exists"));
    let bad_day = store
        .register("k4".into(), "2025-1-31".into(), |seq| {
            Ok(new_case(DAY, seq))
        })
        .await;
    assert!(invalid_record(bad_day).contains("YYYYMMDD"));

    assert_eq!(store.get_case(&id).unwrap(), Some(case));
    assert_eq!(
        seq_of(&register(&store, "k5").await.case),
        2,
        "refused registrations consumed nothing"
    );
    assert_index_consistency(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_match_a_recount_after_random_updates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(register(&store, &format!("k{i}")).await.case.id);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _round in 0..12 {
        let mut tasks = Vec::new();
        let mut touched = HashSet::new();
        for _ in 0..8 {
            let id = ids[rng.below(ids.len())].clone();
            touched.insert(id.clone());
            let status = CaseStatus::ALL[rng.below(CaseStatus::ALL.len())];
            let risk = RiskLevel::ALL[rng.below(RiskLevel::ALL.len())];
            let category = Category::ALL[rng.below(Category::ALL.len())];
            let due = [None, Some(Timestamp(T0 + rng.below(40) as i64 * DAY_MS))][rng.below(2)];
            let events = rng.below(3) as u64;
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let edit = move |c: &Case| {
                    Ok(step(c, events, |n| {
                        n.status = status;
                        n.risk = risk;
                        n.category = category;
                        n.resolve_due_at = due;
                    }))
                };
                store.update(id, edit).await.expect("update")
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(!touched.is_empty());
        assert_index_consistency(&store);
    }
    for id in &ids {
        let seqs: Vec<u64> = store.history(id).unwrap().iter().map(|e| e.seq).collect();
        let len = store.get_case(id).unwrap().unwrap().history_len;
        assert_eq!(seqs, (1..=len).collect::<Vec<_>>(), "history of {id}");
    }
}

/// The writer runs a batch's requests against pending writes and hands them to sled at once:
/// each request sees those before it, a refused one leaves nothing behind, and nothing reaches
/// sled (or another reader) before the write-out.
#[tokio::test]
async fn requests_of_one_batch_see_each_other_and_a_refused_one_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let secret = &store.inner.secret;
    let writer = store.inner.trees.for_writer(secret);
    let build = |seq| Ok(new_case(DAY, seq));

    let first = super::change::register(&writer, secret, "a", DAY, &build).unwrap();
    let taken = super::change::register(&writer, secret, "b", DAY, &|seq| {
        let (mut case, event) = new_case(DAY, seq);
        case.lookup_code = new_case(DAY, 1).0.lookup_code;
        Ok((case, event))
    });
    assert!(
        matches!(
            taken,
            Err(WriteError::Storage(StorageError::LookupCodeTaken { .. }))
        ),
        "{taken:?}"
    );
    let second = super::change::register(&writer, secret, "c", DAY, &build).unwrap();
    assert_eq!(
        seq_of(&second.case),
        2,
        "the refused request consumed nothing"
    );
    let again = super::change::register(&writer, secret, "a", DAY, &build).unwrap();
    assert!(
        !again.created,
        "the idempotency key of a pending request is seen"
    );
    let id = first.case.id.clone();
    let updated = super::change::update(&writer, secret, &id, None, &|c: &Case| {
        let (next, events) = step(c, 1, |n| n.status = CaseStatus::Accepted);
        Ok((next, events, Vec::new()))
    })
    .unwrap()
    .unwrap();
    assert_eq!(updated.history_len, 2, "the update read the pending case");

    assert_eq!(
        store.get_case(&id).unwrap(),
        None,
        "not in sled before the write-out"
    );
    assert!(writer.write_out().unwrap() > 0);
    assert_eq!(store.get_case(&id).unwrap(), Some(updated));
    assert_eq!(store.history(&id).unwrap().len(), 2);
    assert_eq!(
        store.case_by_lookup_code(&second.case.lookup_code).unwrap(),
        Some(second.case)
    );
    assert_eq!(
        store.list_cases(&CaseQuery::default()).unwrap().cases.len(),
        2
    );
    assert_index_consistency(&store);
}

#[tokio::test]
async fn a_change_that_would_make_the_case_too_large_is_refused_and_writes_nothing() {
    use crate::domain::validate::CASE_MAX_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let case = register(&store, "big").await.case;
    // Each change appends ten events of 2,000 characters (about 60 KiB).
    let grow = |c: &Case| {
        let (next, mut events) = step(c, 10, |_| {});
        for e in &mut events {
            e.detail = "调".repeat(2_000);
        }
        Ok((next, events))
    };
    let mut refused = None;
    for _ in 0..(2 * CASE_MAX_BYTES / (60 * 1024)) {
        match store.update(case.id.clone(), grow).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("the cap was reached");
    assert!(
        matches!(&err, WriteError::Domain(DomainError::Refused { reason, .. }) if reason.contains("案件记录已达上限")),
        "{err:?}"
    );
    let held = store.get_case(&case.id).unwrap().unwrap();
    let history = store.history(&case.id).unwrap();
    assert_eq!(
        history.len() as u64,
        held.history_len,
        "nothing half-written"
    );
    let size = crate::protocol::case_bytes(&held, &history, &[]);
    assert!(size <= CASE_MAX_BYTES, "{size}");
    assert!(
        size > CASE_MAX_BYTES - 60 * 1024,
        "refused only near the cap: {size}"
    );
}

/// A store opened on an empty folder (a replaced PC) or an older copy never hands out a case
/// number or a link seq it handed out before: each open raises the counters to a floor from
/// the clock.
#[tokio::test]
async fn counters_start_above_a_floor_from_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    // 2025-01-31 08:00 in China: 28,800 s after midnight.
    let opened = |at: i64| StoreOptions::new(NodeCode::parse(NODE).unwrap(), Timestamp(at));
    let store = Store::open_again(dir.path(), &opened(T0)).unwrap();
    let first = store
        .register("a".into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
        .await
        .unwrap()
        .case;
    assert!(first.id.ends_with("-288001"), "{}", first.id);
    store
        .send(vec![super::federation::order(&first.id, 1)])
        .await
        .unwrap();
    let parent = NodeCode::parse(super::federation::PARENT).unwrap();
    let (seq, entry) = store
        .outbox_after(&parent, 0, 10, 1 << 20)
        .unwrap()
        .remove(0);
    let floor = u64::try_from(T0).unwrap() * 1_000;
    assert_eq!((seq, entry.prev_seq), (floor + 1, Some(0)));
    assert_eq!(entry.message.origin_seq, floor + 1);
    store.shutdown().await;
    drop(store);

    // The same folder a minute later (a restart, or this folder restored elsewhere):
    // numbers jump on, never back.
    let store = Store::open_again(dir.path(), &opened(T0 + 60_000)).unwrap();
    let second = store
        .register("b".into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
        .await
        .unwrap()
        .case;
    assert!(second.id.ends_with("-288601"), "{}", second.id);
    store
        .send(vec![super::federation::order(&first.id, 2)])
        .await
        .unwrap();
    let queued = store.outbox_after(&parent, 0, 10, 1 << 20).unwrap();
    let (seq, entry) = &queued[1];
    let floor = u64::try_from(T0 + 60_000).unwrap() * 1_000;
    assert_eq!((*seq, entry.prev_seq), (floor + 1, Some(queued[0].0)));
    assert_eq!(store.outbox_stats(&parent).unwrap().len, 2);
}
