//! Listing: filters, their combinations, overdue cases, pagination and page tokens.

use std::collections::HashSet;

use super::*;

/// 60 cases spread over statuses, risks, categories and deadlines.
async fn listing_fixture(store: &Store) -> Vec<Case> {
    const STATUSES: [CaseStatus; 4] = [
        CaseStatus::Registered,
        CaseStatus::Accepted,
        CaseStatus::InMediation,
        CaseStatus::Closed,
    ];
    let mut all = Vec::new();
    for i in 0..60_i64 {
        let case = register_shaped(store, &format!("k{i}"), move |c| {
            c.status = STATUSES[i as usize % 4];
            c.risk = RiskLevel::ALL[i as usize % 3];
            c.category = Category::ALL[i as usize % 5];
            c.review_due_at = Timestamp(T0 + (i % 7) * DAY_MS);
            c.resolve_due_at = (i % 2 == 0).then_some(Timestamp(T0 + (i % 11) * DAY_MS));
        })
        .await;
        all.push(case);
    }
    all
}

/// Follows the page tokens to the end, checking page sizes and that no case repeats.
fn list_all(store: &Store, q: &CaseQuery) -> Vec<Case> {
    let mut q = q.clone();
    let mut out: Vec<Case> = Vec::new();
    for _ in 0..1000 {
        let page = store.list_cases(&q).unwrap();
        assert!(page.cases.len() <= query::page_size(q.page_size));
        out.extend(page.cases);
        match page.next_page_token {
            Some(token) => q.page_token = Some(token),
            None => {
                let ids: HashSet<_> = out.iter().map(|c| c.id.clone()).collect();
                assert_eq!(ids.len(), out.len(), "a case was listed twice");
                return out;
            }
        }
    }
    panic!("pagination does not end");
}

#[tokio::test]
async fn listings_filter_combine_and_paginate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let all = listing_fixture(&store).await;
    let now = Timestamp(T0 + 4 * DAY_MS);
    let queries = [
        CaseQuery::default(),
        CaseQuery {
            status: Some(CaseStatus::Accepted),
            ..Default::default()
        },
        CaseQuery {
            risk: Some(RiskLevel::Yellow),
            ..Default::default()
        },
        CaseQuery {
            category: Some(Category::Neighbor),
            ..Default::default()
        },
        CaseQuery {
            overdue_at: Some(now),
            ..Default::default()
        },
        CaseQuery {
            status: Some(CaseStatus::Registered),
            risk: Some(RiskLevel::Blue),
            ..Default::default()
        },
        CaseQuery {
            risk: Some(RiskLevel::Orange),
            category: Some(Category::Labor),
            ..Default::default()
        },
        CaseQuery {
            status: Some(CaseStatus::InMediation),
            overdue_at: Some(now),
            ..Default::default()
        },
        CaseQuery {
            category: Some(Category::PropertyManagement),
            overdue_at: Some(now),
            ..Default::default()
        },
        CaseQuery {
            status: Some(CaseStatus::Closed),
            overdue_at: Some(now),
            ..Default::default()
        },
        CaseQuery {
            status: Some(CaseStatus::Resolved),
            ..Default::default()
        },
    ];
    for q in queries {
        let mut expected: Vec<&Case> = all.iter().filter(|c| query::matches(&q, c)).collect();
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        for (page_size, newest_first) in [0, 1, 7, 500]
            .into_iter()
            .flat_map(|n| [(n, false), (n, true)])
        {
            let q = CaseQuery {
                page_size,
                newest_first,
                ..q.clone()
            };
            let mut got = list_all(&store, &q);
            if newest_first && q.overdue_at.is_none() {
                assert!(
                    got.windows(2).all(|w| w[0].id > w[1].id),
                    "newest first, merged over the ranges: {q:?}"
                );
            }
            if q == CaseQuery::default() {
                assert!(
                    got.windows(2).all(|w| w[0].id < w[1].id),
                    "unfiltered listing is in id order"
                );
            }
            got.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(got.iter().collect::<Vec<_>>(), expected, "{q:?}");
        }
    }
    // Sanity of the fixture: overdue means an open deadline before now.
    let overdue = list_all(
        &store,
        &CaseQuery {
            overdue_at: Some(now),
            ..Default::default()
        },
    );
    assert!(
        !overdue.is_empty()
            && overdue
                .iter()
                .all(|c| c.status.is_open() && c.is_overdue(now))
    );
    let deadlines: Vec<_> = overdue.iter().map(|c| c.open_deadline()).collect();
    assert!(
        deadlines.is_sorted(),
        "the overdue listing is ordered by deadline"
    );
}

#[tokio::test]
async fn bad_page_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    listing_fixture(&store).await;
    let accepted = CaseQuery {
        status: Some(CaseStatus::Accepted),
        page_size: 2,
        ..Default::default()
    };
    let token = store
        .list_cases(&accepted)
        .unwrap()
        .next_page_token
        .expect("more pages");
    let bad = |q: CaseQuery| matches!(store.list_cases(&q), Err(StorageError::BadPageToken(_)));
    let with = |q: &CaseQuery, t: &str| CaseQuery {
        page_token: Some(t.to_owned()),
        ..q.clone()
    };
    assert!(bad(with(&accepted, "garbage")));
    assert!(bad(with(&accepted, "")));
    assert!(bad(with(
        &CaseQuery {
            risk: Some(RiskLevel::Blue),
            ..Default::default()
        },
        &token
    )));
    assert!(bad(with(
        &CaseQuery {
            status: Some(CaseStatus::Closed),
            ..Default::default()
        },
        &token
    )));
    assert!(bad(with(&CaseQuery::default(), &token)));
    assert!(!bad(with(&accepted, &token)));
}
