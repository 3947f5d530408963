//! Statistics in the store: the own contribution under random workloads through the real
//! state machine, merging of pushed entries (duplicates, reordering, late versions), and the
//! rebuild on open.

use rand::Rng as _;

use super::*;
use crate::domain::machine;
use crate::stats::Dim;
use crate::stats::figures::{self, Buckets};
use crate::stats::workload::{self, START};
use crate::storage::change::{Change, abort};
use crate::storage::secret::Secret;
use crate::storage::stats as store_stats;
use crate::storage::trees::Trees as StoreTrees;

const VILLAGE: &str = "610116001001";
const TOWNSHIP: &str = "610116001";

fn code(s: &str) -> NodeCode {
    NodeCode::parse(s).unwrap()
}

fn open_as(dir: &Path, node: &str) -> Store {
    Store::open_again(dir, &StoreOptions::new(code(node), START)).expect("open store")
}

/// Every stored entry of (kind, node), zero buckets dropped.
fn stored(store: &Store, kind: Kind, node: &str) -> Buckets {
    stored_in(&store.inner.trees, kind, node).unwrap()
}

/// [`stored`] read through `trees` (on the writer thread: after an early write-out).
fn stored_in(trees: &StoreTrees, kind: Kind, node: &str) -> Result<Buckets, StorageError> {
    let node = code(node);
    let mut out: Buckets = store_stats::months(trees, kind, &node, 1, Bucket::MAX, &Dim::ALL)?
        .into_iter()
        .collect();
    if let Some(e) = store_stats::entry(trees, kind, &node, figures::CURRENT, &Dim::ALL)? {
        out.insert(figures::CURRENT, e.cells);
    }
    out.retain(|_, c| !c.is_zero());
    Ok(out)
}

fn all_cases(store: &Store) -> Vec<Case> {
    let mut q = CaseQuery {
        page_size: 500,
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let page = store.list_cases(&q).unwrap();
        out.extend(page.cases);
        match page.next_page_token {
            Some(t) => q.page_token = Some(t),
            None => return out,
        }
    }
}

/// Runs `steps` random registrations and commands at `node` through the machine.
async fn random_workload(store: &Store, node: &'static str, seed: u64, steps: usize) -> Timestamp {
    let mut rng = workload::rng(seed);
    let mut ids: Vec<String> = Vec::new();
    let mut now = START;
    for i in 0..steps {
        now = Timestamp(now.0 + rng.random_range(0..8 * 3_600_000));
        if ids.is_empty() || rng.random_bool(0.3) {
            let new = workload::new_case(&mut rng, &format!("k{seed}-{i}"));
            let day = machine::china_day(now);
            let build_day = day.clone();
            let reg = store
                .register(new.idempotency_key.clone(), day, move |seq| {
                    let id = machine::case_id(node, &build_day, seq);
                    machine::register(&workload::ctx(node, now), &new, id, format!("L{seq}{i}"))
                })
                .await
                .expect("register");
            ids.push(reg.case.id);
        } else {
            let id = ids[rng.random_range(0..ids.len())].clone();
            let cmd = workload::command(&mut rng);
            let r = store
                .update(id, move |c| {
                    machine::apply(c, &workload::ctx(node, now), &cmd)
                })
                .await;
            assert!(matches!(r, Ok(_) | Err(WriteError::Domain(_))), "{r:?}");
        }
    }
    now
}

#[tokio::test]
async fn own_contribution_equals_a_recount_under_random_workloads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(dir.path(), VILLAGE);
    let now = random_workload(&store, VILLAGE, 11, 300).await;
    let cases = all_cases(&store);
    let recount = figures::recount(&code(VILLAGE), &cases);
    assert!(
        recount.len() > 3,
        "the workload spans months: {:?}",
        recount.keys()
    );
    assert_eq!(stored(&store, Kind::Own, VILLAGE), recount);
    assert_eq!(
        stored(&store, Kind::Subtree, VILLAGE),
        recount,
        "no children: the subtree is the node"
    );

    // The overdue refresh sets exactly the snapshot at `now`, and only changes when it must.
    let later = Timestamp(now.0 + 10 * 86_400_000);
    assert!(store.refresh_overdue(later).await.unwrap());
    assert!(!store.refresh_overdue(later).await.unwrap(), "no change");
    let snapshot = figures::overdue_snapshot(&cases, later);
    assert!(snapshot.total.overdue_review + snapshot.total.overdue_resolve > 0);
    let mut with_overdue = recount.clone();
    with_overdue
        .entry(figures::CURRENT)
        .or_default()
        .replace_overdue(&snapshot);
    assert_eq!(stored(&store, Kind::Own, VILLAGE), with_overdue);
    assert_eq!(store.overdue_now(later).unwrap(), snapshot);

    // Reopened, the store holds the same; a store may not be opened as another node.
    store.shutdown().await;
    drop(store);
    assert!(matches!(
        Store::open_again(dir.path(), &StoreOptions::new(code(TOWNSHIP), START)),
        Err(StorageError::WrongNode { .. })
    ));
    let store = open_as(dir.path(), VILLAGE);
    assert_eq!(stored(&store, Kind::Own, VILLAGE), with_overdue);
}

/// Every entry a node would push, as `Incoming` values.
fn pushable(store: &Store) -> Vec<Incoming> {
    store
        .stats_changed_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| Incoming {
            kind: r.kind,
            node: r.node,
            bucket: r.bucket,
            version: r.version,
            cells: r.cells,
        })
        .collect()
}

#[tokio::test]
async fn merging_is_idempotent_and_keeps_the_latest_version() {
    let vdir = tempfile::tempdir().unwrap();
    let village = open_as(vdir.path(), VILLAGE);
    random_workload(&village, VILLAGE, 21, 60).await;
    let early = pushable(&village);
    random_workload(&village, VILLAGE, 22, 60).await;
    let late = pushable(&village);
    assert!(
        early.iter().any(|e| !late.contains(e)),
        "the workload changed entries"
    );

    let tdir = tempfile::tempdir().unwrap();
    let township = open_as(tdir.path(), TOWNSHIP);
    random_workload(&township, TOWNSHIP, 23, 40).await;
    let child = code(VILLAGE);

    // Late state first, then the early one (reordered), then the late one again (duplicate).
    let first = township
        .merge_contributions(child.clone(), late.clone())
        .await
        .unwrap();
    assert_eq!(first.applied, late.len());
    let reordered = township
        .merge_contributions(child.clone(), early.clone())
        .await
        .unwrap();
    assert_eq!(reordered.applied, 0, "every early entry is older");
    let dup = township
        .merge_contributions(child.clone(), late.clone())
        .await
        .unwrap();
    assert_eq!((dup.applied, dup.ignored), (0, late.len()));

    let village_subtree = stored(&village, Kind::Subtree, VILLAGE);
    assert_eq!(stored(&township, Kind::Subtree, VILLAGE), village_subtree);
    assert_eq!(stored(&township, Kind::Own, VILLAGE), village_subtree);
    // The township's subtree is its own plus the village's, bucket by bucket.
    let mut expected = stored(&township, Kind::Own, TOWNSHIP);
    for (bucket, cells) in &village_subtree {
        expected.entry(*bucket).or_default().merge(cells, true);
    }
    expected.retain(|_, c| !c.is_zero());
    assert_eq!(stored(&township, Kind::Subtree, TOWNSHIP), expected);
    assert_eq!(
        township
            .stats_children(Kind::Subtree, &code(TOWNSHIP))
            .unwrap(),
        vec![child.clone()]
    );

    // Early then late, one entry at a time in shuffled order: same result.
    let tdir2 = tempfile::tempdir().unwrap();
    let other = open_as(tdir2.path(), TOWNSHIP);
    let mut all: Vec<Incoming> = early.into_iter().chain(late).collect();
    let mut rng = workload::rng(24);
    for i in (1..all.len()).rev() {
        all.swap(i, rng.random_range(0..=i));
    }
    for e in all {
        other
            .merge_contributions(child.clone(), vec![e])
            .await
            .unwrap();
    }
    assert_eq!(stored(&other, Kind::Subtree, TOWNSHIP), village_subtree);
}

#[tokio::test]
async fn a_store_without_statistics_is_rebuilt_on_open_with_higher_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(dir.path(), VILLAGE);
    random_workload(&store, VILLAGE, 31, 80).await;
    let before = stored(&store, Kind::Own, VILLAGE);
    let last = store.stats_last_seq().unwrap();
    // Simulate a store from before statistics existed: no marker, no entries.
    let trees = store.inner.trees.clone();
    trees
        .get(TreeId::Meta)
        .remove(keys::META_STATS_FORMAT)
        .unwrap();
    trees.get(TreeId::StatsEntries).clear().unwrap();
    trees.get(TreeId::StatsChanges).clear().unwrap();
    drop(trees);
    store.shutdown().await;
    drop(store);

    // Opened later: versions jump past anything the old store handed out.
    let later = Timestamp(START.0 + 365 * 86_400_000);
    let store = Store::open_again(dir.path(), &StoreOptions::new(code(VILLAGE), later)).unwrap();
    assert_eq!(stored(&store, Kind::Own, VILLAGE), before);
    assert_eq!(stored(&store, Kind::Subtree, VILLAGE), before);
    let entries = store.stats_changed_since(0, usize::MAX).unwrap();
    assert_eq!(entries.len(), 2 * before.len());
    assert!(entries.iter().all(|e| e.version > last));
    assert!(entries.iter().all(|e| e.version > (later.0 as u64) << 20));
}

#[tokio::test]
async fn wait_durable_answers_after_a_sync_and_fails_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(dir.path(), VILLAGE);
    random_workload(&store, VILLAGE, 41, 5).await;
    store.wait_durable().await.unwrap();
    // A write whose sync fails: from then on nothing can be vouched for.
    store
        .inner
        .writer
        .fail_next_sync
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        store.refresh_overdue(START).await.is_err(),
        "the write fails"
    );
    assert!(store.wait_durable().await.is_err());
}

/// Runs `work` on the store's writer thread as one request: every transaction it runs is a
/// transaction of one group-commit batch, which is settled, written out and synced once
/// `work` has returned, exactly as for a batch of separate requests.
async fn one_batch<T: Send + 'static>(
    store: &Store,
    work: impl FnOnce(&StoreTrees, &Secret) -> Result<T, WriteError> + Send + 'static,
) -> Result<T, WriteError> {
    let secret = store.inner.secret.clone();
    store
        .inner
        .writer
        .submit(move |trees| work(trees, &secret))
        .await
}

/// One registration at `node` as its own transaction, with the test case shape of `new_case`.
fn register_at(
    trees: &StoreTrees,
    secret: &Secret,
    node: &'static str,
    key: &str,
) -> Result<Registered, WriteError> {
    super::change::register(trees, secret, key, DAY, &|seq| {
        let (mut case, event) = new_case(DAY, seq);
        case.id = machine::case_id(node, DAY, seq);
        case.owner_node = node.into();
        case.origin_node = node.into();
        Ok((case, event))
    })
}

#[tokio::test]
async fn a_batch_of_registrations_settles_once_and_equals_a_recount() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(dir.path(), VILLAGE);
    // A first batch, so that the next one changes entries already in sled.
    one_batch(&store, |t, s| register_at(t, s, VILLAGE, "first"))
        .await
        .unwrap();
    let seq = store.stats_last_seq().unwrap();

    one_batch(&store, |trees, secret| {
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(
                register_at(trees, secret, VILLAGE, &format!("k{i}"))?
                    .case
                    .id,
            );
        }
        // An update of a case registered in the same batch.
        super::change::update(trees, secret, &ids[0], None, &|c: &Case| {
            let (next, events) = step(c, 1, |n| n.status = CaseStatus::Accepted);
            Ok((next, events, Vec::new()))
        })?;
        Ok(())
    })
    .await
    .unwrap();

    let cases = all_cases(&store);
    assert_eq!(cases.len(), 7);
    let recount = figures::recount(&code(VILLAGE), &cases);
    assert_eq!(stored(&store, Kind::Own, VILLAGE), recount);
    assert_eq!(stored(&store, Kind::Subtree, VILLAGE), recount);
    assert_eq!(
        store.stats_last_seq().unwrap(),
        seq + 1,
        "one seq for the whole batch"
    );
    let current = store
        .stats_entry(Kind::Own, &code(VILLAGE), figures::CURRENT, &[])
        .unwrap()
        .unwrap();
    assert_eq!((current.seq, current.version), (seq + 1, seq + 1));
    // One change-index key per entry: the batch's moves of them left nothing behind.
    let changes = store.stats_changed_since(0, usize::MAX).unwrap();
    assert_eq!(changes.len(), 2 * recount.len());

    // Outside the writer thread (as at open) a transaction settles its own deltas.
    let secret = store.inner.secret.clone();
    register_at(&store.inner.trees, &secret, VILLAGE, "direct").unwrap();
    let cases = all_cases(&store);
    assert_eq!(cases.len(), 8);
    let recount = figures::recount(&code(VILLAGE), &cases);
    assert_eq!(stored(&store, Kind::Own, VILLAGE), recount);
    assert_eq!(stored(&store, Kind::Subtree, VILLAGE), recount);
    assert_eq!(store.stats_last_seq().unwrap(), seq + 2);
}

#[tokio::test]
async fn a_failed_transaction_of_a_batch_counts_for_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(dir.path(), VILLAGE);
    // Registered in another month than the rest, so that it alone would create entries.
    let (mut lost, event) = new_case(DAY, 99);
    lost.created_at = Timestamp(T0 + 40 * DAY_MS);
    let lost_buckets: Vec<Bucket> = figures::case_parts(&code(VILLAGE), &lost)
        .parts
        .iter()
        .map(|(b, _)| *b)
        .filter(|b| *b != figures::CURRENT)
        .collect();
    assert!(!lost_buckets.is_empty());
    let case = lost.clone();

    let refused = one_batch(&store, move |trees, secret| {
        register_at(trees, secret, VILLAGE, "a")?;
        // The whole case change is applied, then the transaction fails.
        let refused = trees.transaction(secret, |tx| {
            let change = Change {
                before: None,
                after: &case,
                events: std::slice::from_ref(&event),
                alerts: &[],
                outgoing: &[],
            };
            change.apply(tx)?;
            Err::<(), _>(abort(StorageError::InvalidRecord("refused".into())))
        });
        register_at(trees, secret, VILLAGE, "b")?;
        Ok(refused)
    })
    .await
    .unwrap();
    assert!(
        matches!(
            refused,
            Err(WriteError::Storage(StorageError::InvalidRecord(_)))
        ),
        "{refused:?}"
    );

    let cases = all_cases(&store);
    assert_eq!(cases.len(), 2);
    assert!(store.get_case(&lost.id).unwrap().is_none());
    let recount = figures::recount(&code(VILLAGE), &cases);
    assert_eq!(stored(&store, Kind::Own, VILLAGE), recount);
    assert_eq!(stored(&store, Kind::Subtree, VILLAGE), recount);
    for bucket in lost_buckets {
        assert_eq!(
            store
                .stats_entry(Kind::Own, &code(VILLAGE), bucket, &[])
                .unwrap(),
            None,
            "bucket {bucket}"
        );
    }
}

#[tokio::test]
async fn a_merge_in_a_batch_of_registrations_sees_and_keeps_both() {
    let vdir = tempfile::tempdir().unwrap();
    let village = open_as(vdir.path(), VILLAGE);
    random_workload(&village, VILLAGE, 51, 40).await;
    let incoming = pushable(&village);
    let village_subtree = stored(&village, Kind::Subtree, VILLAGE);
    assert!(!village_subtree.is_empty());

    let tdir = tempfile::tempdir().unwrap();
    let township = open_as(tdir.path(), TOWNSHIP);
    one_batch(&township, |t, s| register_at(t, s, TOWNSHIP, "t0"))
        .await
        .unwrap();
    let sent = incoming.len();
    let outcome = one_batch(&township, move |trees, secret| {
        for i in 1..4 {
            register_at(trees, secret, TOWNSHIP, &format!("t{i}"))?;
        }
        let outcome = store_stats::merge(trees, secret, &code(VILLAGE), &incoming)?;
        for i in 4..6 {
            register_at(trees, secret, TOWNSHIP, &format!("t{i}"))?;
        }
        Ok(outcome)
    })
    .await
    .unwrap();
    assert_eq!((outcome.applied, outcome.ignored), (sent, 0));

    let cases = all_cases(&township);
    assert_eq!(cases.len(), 6);
    let own = figures::recount(&code(TOWNSHIP), &cases);
    assert_eq!(stored(&township, Kind::Own, TOWNSHIP), own);
    let mut subtree = own.clone();
    for (bucket, cells) in &village_subtree {
        subtree.entry(*bucket).or_default().merge(cells, true);
    }
    subtree.retain(|_, c| !c.is_zero());
    assert_eq!(stored(&township, Kind::Subtree, TOWNSHIP), subtree);
    assert_eq!(stored(&township, Kind::Subtree, VILLAGE), village_subtree);
}

#[tokio::test]
async fn an_early_write_out_carries_the_statistics_of_the_batch_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(dir.path(), VILLAGE);
    let (in_sled, stats_in_sled) = one_batch(&store, |trees, secret| {
        for i in 0..3 {
            register_at(trees, secret, VILLAGE, &format!("k{i}"))?;
        }
        // A direct read of sled (a range scan) writes the batch so far out first.
        let mut cases = Vec::new();
        for item in trees.get(TreeId::Cases).iter() {
            let (key, bytes) = item.map_err(StorageError::from)?;
            cases.push(codec::decode_case(TreeId::Cases, &key, &bytes)?);
        }
        let stats = (
            stored_in(trees, Kind::Own, VILLAGE)?,
            stored_in(trees, Kind::Subtree, VILLAGE)?,
        );
        for i in 3..5 {
            register_at(trees, secret, VILLAGE, &format!("k{i}"))?;
        }
        Ok((cases, stats))
    })
    .await
    .unwrap();
    assert_eq!(in_sled.len(), 3);
    let recount = figures::recount(&code(VILLAGE), &in_sled);
    assert_eq!(stats_in_sled, (recount.clone(), recount));

    let cases = all_cases(&store);
    assert_eq!(cases.len(), 5);
    let recount = figures::recount(&code(VILLAGE), &cases);
    assert_eq!(stored(&store, Kind::Own, VILLAGE), recount);
    assert_eq!(stored(&store, Kind::Subtree, VILLAGE), recount);
}
