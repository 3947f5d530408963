//! Tests of the store through its public API, plus raw access to simulate damage and to recount
//! indexes. Cases and events are built directly: the state machine is not needed here.
//!
//! * [`writes`] — registration, idempotency, day sequences, updates, refused writes, indexes.
//! * [`durability`] — restart, shutdown, failed syncs, damaged values, format checks.
//! * [`listing`] — filters, index choice, pagination and page tokens.
//! * [`federation`] — outboxes, acknowledgements, inbox watermarks, supervision copies.
//! * [`rules`] — alerts, the early-warning indexes, gated rule writes, cursors, the upgrade.

mod durability;
mod federation;
mod listing;
mod rules;
mod search;
mod stats;
mod writes;

use std::collections::BTreeSet;
use std::path::Path;

use super::keys::{self, TreeId};
use super::*;
use crate::domain::{Channel, EventKind, Party, PartyRole};
use crate::stats::Kind;

const NODE: &str = "610116001001";
const DAY: &str = "20250131";
const T0: i64 = 1_738_281_600_000;
const DAY_MS: i64 = 86_400_000;

/// A store opened at the epoch: the floors of its counters (`federation::raise_floors`) are
/// 0, so tests read the numbers a store hands out from 1. `counters_start_above_a_floor_from_the_clock`
/// opens one at `T0`.
fn options() -> StoreOptions {
    StoreOptions::new(NodeCode::parse(NODE).unwrap(), Timestamp(0))
}

/// Opens the database in `dir` directly (through `db`, with the engine's default settings),
/// as tests that simulate damage or older layouts do. After a handle on the same folder was
/// dropped, sled's background I/O threads may hold its file lock for a moment longer: a lock
/// error is retried for up to 5 seconds, as in [`Store::open_again`].
fn db_again(dir: &Path) -> db::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match db::Db::open_default(dir) {
            Err(e) if e.is_locked() && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.expect("open the database"),
        }
    }
}

/// A run of events (key and value in the events tree) as formats before 4 kept it: each event
/// under its own key, as a single event.
fn single_events(key: &[u8], run: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (case_prefix, _) = key.split_at(key.len() - 8);
    codec::decode_events(TreeId::Events, key, run)
        .unwrap()
        .iter()
        .map(|e| {
            let single = [case_prefix, &e.seq.to_be_bytes()].concat();
            (single, codec::encode(ValueKind::Event, e).unwrap())
        })
        .collect()
}

/// Every key and value of one tree of the store, read directly.
fn raw_entries(store: &Store, tree: TreeId) -> Vec<(db::Bytes, db::Bytes)> {
    store
        .inner
        .trees
        .get(tree)
        .iter()
        .map(Result::unwrap)
        .collect()
}

/// The status, risk and category index entries of formats 1 to 4 for a facets index key.
fn legacy_index_entries(facets: &[u8]) -> Vec<(TreeId, Vec<u8>)> {
    let (codes, id) = facets.split_at(keys::FACETS_LEN);
    [TreeId::ByStatus, TreeId::ByRisk, TreeId::ByCategory]
        .into_iter()
        .zip(codes)
        .map(|(tree, code)| (tree, [&[*code], id].concat()))
        .collect()
}

/// Rewrites the closed store in `dir` the way format 1 or 2 laid it out: one sled tree per
/// tree, named after it, each event under its own key, separate status, risk and category
/// indexes, and `format` in the meta tree.
fn to_older_layout(dir: &Path, format: u32) {
    let db = db_again(dir);
    let store = db.open_tree(space::STORE_TREE).unwrap();
    for item in store.iter() {
        let (key, value) = item.unwrap();
        let id = TreeId::ALL
            .iter()
            .find(|t| t.prefix() == key[0])
            .expect("a known prefix");
        let older = db.open_tree(id.name()).unwrap();
        if *id == TreeId::Events {
            for (single, bytes) in single_events(&key[1..], &value) {
                older.insert(single, bytes).unwrap();
            }
        } else if *id == TreeId::ByFacets {
            // Formats before 5 had an index each for status, risk and category.
            for (tree, code) in legacy_index_entries(&key[1..]) {
                db.open_tree(tree.name())
                    .unwrap()
                    .insert(code, b"")
                    .unwrap();
            }
        } else {
            older.insert(&key[1..], value).unwrap();
        }
    }
    db.drop_tree(space::STORE_TREE).unwrap();
    db.open_tree(TreeId::Meta.name())
        .unwrap()
        .insert(keys::META_FORMAT, codec::encode_format(format).unwrap())
        .unwrap();
    db.flush().unwrap();
}

fn open(dir: &Path) -> Store {
    Store::open_again(dir, &options()).expect("open store")
}

pub(super) fn new_case(day: &str, seq: u32) -> (Case, Event) {
    let case = Case {
        id: format!("{NODE}-{day}-{seq:06}"),
        lookup_code: format!("Q{day}{seq:06}"),
        status: CaseStatus::Registered,
        owner_node: NODE.into(),
        origin_node: NODE.into(),
        epoch: 1,
        moved_to: None,
        category: Category::Labor,
        channel: Channel::WalkIn,
        risk: RiskLevel::Blue,
        summary: "拖欠工资".into(),
        description: "五轮调解".into(),
        parties: vec![Party {
            role: PartyRole::Applicant,
            name: "王某".into(),
            phone: "13800000000".into(),
            id_number: "610116199001010000".into(),
        }],
        amount_fen: 440_000,
        grid_id: "G-07".into(),
        handler: None,
        created_at: Timestamp(T0),
        updated_at: Timestamp(T0),
        review_due_at: Timestamp(T0 + 3 * DAY_MS),
        resolve_due_at: None,
        settled_amount_fen: 0,
        reopen_count: 0,
        reason: String::new(),
        guidance: String::new(),
        agreement: String::new(),
        confirmation: None,
        satisfaction: None,
        mediation_type: None,
        mediation_sessions: 0,
        resolved_at: None,
        closed_at: None,
        history_len: 1,
        supervising_nodes: Vec::new(),
        resolve_started_at: None,
        follow_up_due_at: None,
        deadline_extended: false,
        rule_supervision: Vec::new(),
        plan: Default::default(),
    };
    let event = event(1, CaseStatus::Registered, None);
    (case, event)
}

fn event(seq: u64, to: CaseStatus, from: Option<CaseStatus>) -> Event {
    Event {
        seq,
        at: Timestamp(T0 + seq as i64),
        node: NODE.into(),
        actor: format!("spiffe://fengqiao/op/{NODE}/intake/li"),
        kind: EventKind::Mediation,
        from_status: from,
        to_status: to,
        detail: format!("step {seq}"),
    }
}

/// A pure transition for tests: applies `edit`, then appends `n` events continuing the history.
fn step(case: &Case, n: u64, edit: impl Fn(&mut Case)) -> (Case, Vec<Event>) {
    let mut next = case.clone();
    edit(&mut next);
    let events = (1..=n)
        .map(|i| event(case.history_len + i, next.status, Some(case.status)))
        .collect();
    next.history_len += n;
    (next, events)
}

async fn register(store: &Store, key: &str) -> Registered {
    store
        .register(key.into(), DAY.into(), |seq| Ok(new_case(DAY, seq)))
        .await
        .expect("register")
}

/// Registers a case already shaped by `shape` (any status, risk, ...).
async fn register_shaped(
    store: &Store,
    key: &str,
    shape: impl Fn(&mut Case) + Send + 'static,
) -> Case {
    let build = move |seq| {
        let (mut case, mut event) = new_case(DAY, seq);
        shape(&mut case);
        event.to_status = case.status;
        Ok((case, event))
    };
    store
        .register(key.into(), DAY.into(), build)
        .await
        .expect("register")
        .case
}

fn seq_of(case: &Case) -> u32 {
    case.id
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("seq in id")
}

fn invalid_record(r: Result<impl std::fmt::Debug, WriteError>) -> String {
    match r {
        Err(WriteError::Storage(StorageError::InvalidRecord(why))) => why,
        other => panic!("expected InvalidRecord, got {other:?}"),
    }
}

/// Every index equals a recount over the cases tree; lookups and events match too.
fn assert_index_consistency(store: &Store) {
    let trees = &store.inner.trees;
    let mut expected: BTreeSet<(&str, Vec<u8>)> = BTreeSet::new();
    let mut lookups = BTreeSet::new();
    let mut events = 0;
    for entry in trees.get(TreeId::Cases).iter() {
        let (key, value) = entry.unwrap();
        let case: Case = codec::decode_case(TreeId::Cases, &key, &value).unwrap();
        expected.extend(
            keys::index_entries(&case, &store.inner.secret)
                .into_iter()
                .map(|(t, k)| (t.name(), k)),
        );
        lookups.insert((case.lookup_code.clone(), case.id.clone()));
        events += case.history_len as usize;
        assert_eq!(
            store.history(&case.id).unwrap().len() as u64,
            case.history_len,
            "history of {}",
            case.id
        );
    }
    let mut actual = BTreeSet::new();
    for tree in [
        TreeId::ByStatus,
        TreeId::ByRisk,
        TreeId::ByCategory,
        TreeId::ByFacets,
        TreeId::ByDeadline,
        TreeId::ByPerson,
        TreeId::ByRespondent,
        TreeId::ByPhone,
        TreeId::BySupervised,
        TreeId::ByHandler,
    ] {
        for entry in trees.get(tree).iter() {
            let (key, value) = entry.unwrap();
            assert!(value.is_empty());
            actual.insert((tree.name(), key.to_vec()));
        }
    }
    assert_eq!(actual, expected);
    let stored_lookups: BTreeSet<_> = trees
        .get(TreeId::LookupCodes)
        .iter()
        .map(|e| {
            let (k, v) = e.unwrap();
            let id: String = codec::decode(ValueKind::CaseId, TreeId::LookupCodes, &k, &v).unwrap();
            (String::from_utf8(k.to_vec()).unwrap(), id)
        })
        .collect();
    assert_eq!(stored_lookups, lookups);
    // No events beyond the cases' histories (a run holds one or more).
    let stored_events: usize = trees
        .get(TreeId::Events)
        .iter()
        .map(|e| {
            let (k, v) = e.unwrap();
            codec::decode_events(TreeId::Events, &k, &v).unwrap().len()
        })
        .sum();
    assert_eq!(stored_events, events);
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}
