//! Alerts, the early-warning indexes, gated rule writes, cursors and the format-1 upgrade.

use super::*;
use crate::domain::alert::{Alert, AlertKind};

fn alert(key: &str, at: i64) -> Alert {
    Alert {
        key: key.into(),
        kind: AlertKind::Overdue,
        case_ids: vec!["c".into()],
        node: NODE.into(),
        raised_at: Timestamp(T0 + at),
        message: format!("alert {key}"),
        forward_to: vec!["610116001".into()],
    }
}

/// Alerts meant for nodes above are queued to the parent link with the alert, once; without
/// a parent link they stay here.
#[tokio::test]
async fn new_alerts_are_queued_for_the_nodes_they_are_for() {
    use crate::protocol::message::Body;
    let parent = NodeCode::parse("610116001").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_again(
        dir.path(),
        &StoreOptions {
            uplink: Some(parent.clone()),
            ..options()
        },
    )
    .unwrap();
    let mut for_county = alert("b", 2);
    for_county.forward_to = vec!["610116".into()];
    let mut local_only = alert("c", 3);
    local_only.forward_to.clear();
    store
        .raise_alerts(vec![alert("a", 1), for_county, local_only])
        .await
        .unwrap();
    store.raise_alerts(vec![alert("a", 9)]).await.unwrap();
    let queued = store.outbox_after(&parent, 0, 10, usize::MAX).unwrap();
    let sent: Vec<(String, String)> = queued
        .iter()
        .map(|(_, e)| match &e.message.body {
            Body::Alert(a) => {
                assert!(a.forward_to.is_empty(), "it goes no further");
                (a.key.clone(), e.message.destination.to_string())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("a".to_string(), "610116001".to_string()),
            ("b".to_string(), "610116".to_string())
        ],
        "one message per new alert, routed through the parent"
    );
    store.shutdown().await;
    drop(store);

    // The same store without a parent link queues nothing more.
    let store = open(dir.path());
    store.raise_alerts(vec![alert("z", 5)]).await.unwrap();
    assert_eq!(
        store
            .outbox_after(&parent, 0, 10, usize::MAX)
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn alerts_are_raised_once_and_listed_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let new = store
        .raise_alerts(vec![alert("a", 1), alert("b", 3), alert("c", 2)])
        .await
        .unwrap();
    assert_eq!(new, 3);
    // The same keys again, even with other content: nothing new.
    let again = store
        .raise_alerts(vec![alert("a", 99), alert("d", 4)])
        .await
        .unwrap();
    assert_eq!(again, 1);
    let keys = |v: Vec<Alert>| v.into_iter().map(|a| a.key).collect::<Vec<_>>();
    assert_eq!(keys(store.alerts_newest(10).unwrap()), ["d", "b", "c", "a"]);
    assert_eq!(keys(store.alerts_newest(2).unwrap()), ["d", "b"]);
    let between = store
        .alerts_between(Timestamp(T0 + 2), Timestamp(T0 + 4))
        .unwrap();
    assert_eq!(keys(between), ["c", "b"]);
    assert!(store.has_alert("a").unwrap() && !store.has_alert("z").unwrap());
    assert_eq!(
        store.alerts_newest(10).unwrap()[3],
        alert("a", 1),
        "first one kept"
    );

    store.shutdown().await;
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.alerts_newest(10).unwrap().len(), 4, "durable");
}

fn with_person(id_number: &'static str, created: i64) -> impl Fn(&mut Case) + Send + 'static {
    move |c: &mut Case| {
        c.parties[0].id_number = id_number.into();
        c.created_at = Timestamp(T0 + created);
    }
}

#[tokio::test]
async fn the_person_index_is_keyed_and_windowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = register_shaped(&store, "a", with_person("61010219900101123X", 0)).await;
    let b = register_shaped(&store, "b", with_person("61010219900101123x", 10 * DAY_MS)).await;
    let other = register_shaped(&store, "o", with_person("610102199001011239", 11 * DAY_MS)).await;
    let c = register_shaped(&store, "c", with_person("61010219900101123X", 20 * DAY_MS)).await;
    let ids = |m: Vec<PersonMatch>| m.into_iter().flat_map(|m| m.case_ids).collect::<Vec<_>>();
    let until = Timestamp(T0 + 20 * DAY_MS);
    let all = store.person_matches(&c, Timestamp(T0), until, 10).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id_number, "61010219900101123X");
    assert_eq!(
        ids(all),
        [a.id.clone(), b.id.clone(), c.id.clone()],
        "oldest first"
    );
    let window = store
        .person_matches(&c, Timestamp(T0 + 5 * DAY_MS), until, 10)
        .unwrap();
    assert_eq!(ids(window), [b.id.clone(), c.id.clone()]);
    let before_c = store
        .person_matches(&b, Timestamp(T0), Timestamp(T0 + 10 * DAY_MS), 10)
        .unwrap();
    assert_eq!(ids(before_c), [a.id.clone(), b.id.clone()]);
    assert_eq!(
        ids(store
            .person_matches(&other, Timestamp(T0), until, 10)
            .unwrap()),
        std::slice::from_ref(&other.id)
    );
    // No ID number appears in the index in clear.
    for entry in store.inner.trees.get(TreeId::ByPerson).iter() {
        let (key, _) = entry.unwrap();
        let text = String::from_utf8_lossy(&key);
        assert!(!text.contains("6101021990"), "{text}");
    }
    assert_index_consistency(&store);
    // The secret survives a restart, so do the matches.
    store.shutdown().await;
    drop(store);
    let store = open(dir.path());
    let again = store.person_matches(&c, Timestamp(T0), until, 10).unwrap();
    assert_eq!(ids(again).len(), 3);
    // The limit keeps the newest.
    let newest = store.person_matches(&c, Timestamp(T0), until, 2).unwrap();
    assert_eq!(ids(newest), [b.id.clone(), c.id.clone()]);
}

#[tokio::test]
async fn the_respondent_index_holds_open_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let employer = |name: &'static str| {
        move |c: &mut Case| {
            c.parties.push(Party {
                role: PartyRole::Respondent,
                name: name.into(),
                phone: String::new(),
                id_number: String::new(),
            });
        }
    };
    let a = register_shaped(&store, "a", employer("某建筑有限公司")).await;
    let b = register_shaped(&store, "b", employer("某建筑 有限公司")).await;
    let _other = register_shaped(&store, "c", employer("另一家公司")).await;
    let m = store.respondent_matches(&b, 10).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].case_ids, [a.id.clone(), b.id.clone()]);
    // Closing a case takes it out of the count.
    store
        .update(a.id.clone(), |c| {
            Ok(step(c, 1, |n| n.status = CaseStatus::Closed))
        })
        .await
        .unwrap();
    assert_eq!(
        store.respondent_matches(&b, 10).unwrap()[0].case_ids,
        std::slice::from_ref(&b.id)
    );
    assert_index_consistency(&store);
}

#[tokio::test]
async fn a_gated_write_happens_once_with_its_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let case = register(&store, "k").await.case;
    let write = |store: Store| {
        let id = case.id.clone();
        async move {
            store
                .apply_once(id, "gate".into(), |c| {
                    let (next, events) = step(c, 1, |n| n.risk = RiskLevel::Yellow);
                    Ok((next, events, vec![alert("gate", 5), alert("other", 6)]))
                })
                .await
                .unwrap()
        }
    };
    let first = write(store.clone()).await.expect("written");
    assert_eq!((first.risk, first.history_len), (RiskLevel::Yellow, 2));
    assert!(store.has_alert("gate").unwrap() && store.has_alert("other").unwrap());
    assert_eq!(write(store.clone()).await, None, "gated");
    assert_eq!(store.get_case(&case.id).unwrap().unwrap().history_len, 2);
    // An alert raised with an update that fails is not stored.
    let r = store
        .update_raising(case.id.clone(), |_| {
            Err(crate::domain::DomainError::invalid("x", "no"))
        })
        .await;
    assert!(matches!(r, Err(WriteError::Domain(_))));
}

#[tokio::test]
async fn cursors_and_scans() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.cursor("x").unwrap(), None);
    store.set_cursor("x", b"abc".to_vec()).await.unwrap();
    assert_eq!(store.cursor("x").unwrap(), Some(b"abc".to_vec()));
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for k in ["a", "b", "c"] {
            v.push(register(&store, k).await.case.id);
        }
        v
    };
    let prefix = format!("{NODE}-");
    assert_eq!(
        store.last_case_id(&prefix).unwrap().as_deref(),
        Some(ids[2].as_str())
    );
    assert_eq!(store.last_case_id("9-").unwrap(), None);
    let after: Vec<String> = store
        .cases_after(&prefix, Some(&ids[0]), 10)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(after, ids[1..]);
    assert_eq!(store.cases_after(&prefix, None, 2).unwrap().len(), 2);
    let mut seen = 0;
    store
        .visit_cases(|_| -> Result<(), StorageError> {
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, 3);
}

#[tokio::test]
async fn a_format_1_store_is_upgraded_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let case = register_shaped(&store, "a", with_person("610102199001011234", 0)).await;
    store.shutdown().await;
    drop(store);
    // What a version-1 store looks like: a sled tree per tree, no person index, format 1.
    super::to_older_layout(dir.path(), 1);
    {
        let db = super::db_again(dir.path());
        db.drop_tree(TreeId::ByPerson.name()).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    let m = store
        .person_matches(&case, Timestamp(T0), Timestamp(T0), 10)
        .unwrap();
    assert_eq!(m[0].case_ids, std::slice::from_ref(&case.id));
    assert_index_consistency(&store);
    let format = store
        .inner
        .trees
        .get(TreeId::Meta)
        .get(keys::META_FORMAT)
        .unwrap()
        .unwrap();
    let format: u32 = codec::decode_format(keys::META_FORMAT, &format).unwrap();
    assert_eq!(format, super::super::STORE_FORMAT);
}

/// With the federation's person key, a registration reports its people to the parent in the
/// same write, by a hash equal at every store holding the key; without the key, nothing.
#[tokio::test]
async fn registrations_report_people_up_by_the_federation_hash() {
    use crate::protocol::message::Body;
    let parent = NodeCode::parse("610116001").unwrap();
    let sightings = |store: &Store| -> Vec<crate::protocol::message::Sighting> {
        store
            .outbox_after(&parent, 0, 10, usize::MAX)
            .unwrap()
            .into_iter()
            .filter_map(|(_, e)| match e.message.body {
                Body::Sighting(s) => Some(s),
                _ => None,
            })
            .collect()
    };
    let mut seen = Vec::new();
    for with_key in [true, true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_again(
            dir.path(),
            &StoreOptions {
                uplink: Some(parent.clone()),
                person_key: with_key.then(super::super::PersonKey::for_tests),
                ..options()
            },
        )
        .unwrap();
        let reg = store
            .register("k".into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
            .await
            .unwrap();
        // A repeat of the registration reports nothing more.
        store
            .register("k".into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
            .await
            .unwrap();
        let s = sightings(&store);
        if !with_key {
            assert!(s.is_empty(), "{s:?}");
            continue;
        }
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].case_id, reg.case.id);
        assert_eq!(s[0].registered_at, reg.case.created_at);
        assert_eq!(s[0].node.as_str(), NODE);
        // No ID number in the message, in any form.
        let queued = format!(
            "{:?}",
            store.outbox_after(&parent, 0, 10, usize::MAX).unwrap()
        );
        assert!(!queued.contains("610116199001010000"));
        seen.push(s[0].person);
        store.shutdown().await;
    }
    assert_eq!(
        seen[0], seen[1],
        "the same person hashes alike at two stores"
    );
}

/// A store of format 7 has no activity index: it is built at open, so a report of a period
/// before the upgrade counts what happened then.
#[tokio::test]
async fn the_activity_index_is_built_for_a_format_7_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    register_shaped(&store, "a", |_| {}).await;
    let count = |store: &Store| {
        let mut seen = Vec::new();
        store
            .activity_between(Timestamp(0), Timestamp(i64::MAX / 2), |k, amount| {
                seen.push((k, amount))
            })
            .unwrap();
        seen
    };
    let before = count(&store);
    assert_eq!(before.len(), 1, "{before:?}");
    store.shutdown().await;
    drop(store);
    {
        // What format 7 wrote: no activity entries.
        let db = super::db_again(dir.path());
        let tree = db.open_tree(space::STORE_TREE).unwrap();
        let prefix = [TreeId::ByActivity.prefix()];
        for item in tree.scan_prefix(prefix) {
            tree.remove(item.unwrap().0).unwrap();
        }
        let meta = space::Space::new(&tree, TreeId::Meta);
        meta.insert(keys::META_FORMAT, codec::encode_format(7).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(count(&store), before);
}
