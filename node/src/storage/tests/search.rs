//! Exact searches through the keyed-hash indexes, and the console's queues by handler and by
//! supervision from above.

use super::*;
use crate::domain::{Party, PartyRole};

fn party(phone: &str, id: &str) -> Party {
    Party {
        role: PartyRole::Applicant,
        name: "张三".into(),
        phone: phone.into(),
        id_number: id.into(),
    }
}

#[tokio::test]
async fn phones_ids_handlers_and_supervision_find_their_cases() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = register_shaped(&store, "a", |c| {
        c.parties = vec![party("138-1234-5678", "610102199001011231")];
    })
    .await;
    let b = register_shaped(&store, "b", |c| {
        c.parties = vec![party("+86 13812345678", "")];
        c.status = CaseStatus::Accepted;
        c.handler = Some("张调解".into());
        c.supervising_nodes = vec!["610116001".into()];
    })
    .await;
    let other = register_shaped(&store, "c", |c| {
        c.parties = vec![party("02988886666", "610102199002021236")];
        c.status = CaseStatus::Accepted;
        c.handler = Some("司法所".into());
    })
    .await;

    // The same phone however it is written; newest (highest id) first.
    let ids = |cases: Vec<Case>| cases.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.cases_by_phone("13812345678").unwrap()),
        [b.id.as_str(), a.id.as_str()]
    );
    assert_eq!(
        ids(store.cases_by_phone("029-8888 6666").unwrap()),
        [other.id.as_str()]
    );
    assert!(store.cases_by_phone("13900000000").unwrap().is_empty());
    assert_eq!(
        ids(store.cases_by_id_number("610102199001011231").unwrap()),
        [a.id.as_str()]
    );
    // No phone or ID number in clear in any key of the store.
    for item in store.inner.trees.store_tree().iter() {
        let (key, _) = item.unwrap();
        let key = String::from_utf8_lossy(&key);
        assert!(!key.contains("13812345678") && !key.contains("610102199001011231"));
    }

    let (mine, more) = store.cases_by_handler(&["张调解", "zhang"], 20).unwrap();
    assert_eq!((ids(mine), more), (vec![b.id.clone()], false));
    let (above, more) = store.supervised_here(20).unwrap();
    assert_eq!((ids(above), more), (vec![b.id.clone()], false));

    // Leaving work leaves the handler index; the supervision index follows the case.
    let done = b.id.clone();
    store
        .update(done.clone(), move |c| {
            let mut next = c.clone();
            next.status = CaseStatus::Closed;
            next.supervising_nodes.clear();
            Ok((next, Vec::new()))
        })
        .await
        .unwrap();
    assert!(
        store
            .cases_by_handler(&["张调解"], 20)
            .unwrap()
            .0
            .is_empty()
    );
    assert!(store.supervised_here(20).unwrap().0.is_empty());
    let (limited, more) = store.cases_by_handler(&["司法所"], 0).unwrap();
    assert!(limited.is_empty() && more);
}
