//! A deterministic in-process federation: five stores, pushes delivered by hand (in order,
//! twice, out of order), and every answer compared with a brute-force recount.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng as _;
use rand::rngs::StdRng;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::domain::{Case, CaseStatus, Event, EventKind, machine};
use crate::error::Error;
use crate::stats::figures::{self, Figures};
use crate::stats::workload::{self, START};
use crate::storage::{CaseQuery, StoreOptions, WriteError};

const CITY: &str = "6101";
const COUNTY: &str = "610116";
const TOWNSHIP: &str = "610116001";
const V1: &str = "610116001001";
const V2: &str = "610116001002";
const ALL: [&str; 5] = [CITY, COUNTY, TOWNSHIP, V1, V2];

fn c(s: &str) -> NodeCode {
    NodeCode::parse(s).unwrap()
}

struct Sim {
    _dirs: Vec<tempfile::TempDir>,
    nodes: BTreeMap<&'static str, Arc<StatsNode>>,
    clock: Arc<ManualClock>,
    rng: StdRng,
    ids: BTreeMap<&'static str, Vec<String>>,
    now: Timestamp,
    serial: u32,
}

impl Sim {
    fn new(retention: u8) -> Sim {
        let clock = Arc::new(ManualClock::new(START));
        let mut dirs = Vec::new();
        let mut nodes = BTreeMap::new();
        for code in ALL {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), &StoreOptions::new(c(code), START)).unwrap();
            let cfg = StatsConfig {
                retention_depth: retention,
                ..StatsConfig::default()
            };
            nodes.insert(
                code,
                Arc::new(StatsNode::new(c(code), store, clock.clone(), cfg)),
            );
            dirs.push(dir);
        }
        Sim {
            _dirs: dirs,
            nodes,
            clock,
            rng: workload::rng(99),
            ids: BTreeMap::new(),
            now: START,
            serial: 0,
        }
    }

    fn node(&self, code: &str) -> &StatsNode {
        &self.nodes[code]
    }

    /// One random step at `code`: a registration or a command through the machine.
    async fn step(&mut self, code: &'static str) {
        self.now = Timestamp(self.now.0 + self.rng.random_range(0..6 * 3_600_000));
        self.clock.set(self.now);
        let store = self.node(code).store().clone();
        let now = self.now;
        let ids = self.ids.entry(code).or_default();
        if ids.is_empty() || self.rng.random_bool(0.2) {
            self.serial += 1;
            let new = workload::new_case(&mut self.rng, &format!("k{}", self.serial));
            let day = machine::china_day(now);
            let d = day.clone();
            let lookup = format!("L{code}-{}", self.serial);
            let reg = store
                .register(new.idempotency_key.clone(), day, move |seq| {
                    let id = machine::case_id(code, &d, seq);
                    machine::register(&workload::ctx(code, now), &new, id, lookup.clone())
                })
                .await
                .unwrap();
            ids.push(reg.case.id);
        } else {
            let id = ids[self.rng.random_range(0..ids.len())].clone();
            let cmd = workload::command(&mut self.rng);
            let r = store
                .update(id, move |case| {
                    machine::apply(case, &workload::ctx(code, now), &cmd)
                })
                .await;
            assert!(matches!(r, Ok(_) | Err(WriteError::Domain(_))), "{r:?}");
        }
    }

    /// Moves a random live case of `from` to `to` the way the federation does: a tombstone
    /// stays at `from`, the case is installed at `to`.
    async fn move_case(&mut self, from: &'static str, to: &'static str) {
        let Some(ids) = self.ids.get(from).filter(|i| !i.is_empty()) else {
            return;
        };
        let id = ids[self.rng.random_range(0..ids.len())].clone();
        let store = self.node(from).store().clone();
        let Some(case) = store.get_case(&id).unwrap() else {
            return;
        };
        if case.status == CaseStatus::Transferred || !case.status.is_open() {
            return;
        }
        let now = self.now;
        let tomb = store
            .update(id.clone(), move |case| {
                let mut next = case.clone();
                next.status = CaseStatus::Transferred;
                next.moved_to = Some(to.into());
                next.updated_at = now;
                next.history_len += 1;
                let event = Event {
                    seq: next.history_len,
                    at: now,
                    node: from.into(),
                    actor: "spiffe://fengqiao/node/x".into(),
                    kind: EventKind::Assigned,
                    from_status: Some(case.status),
                    to_status: CaseStatus::Transferred,
                    detail: format!("移交{to}"),
                };
                Ok((next, vec![event]))
            })
            .await
            .unwrap();
        let mut live = case.clone();
        live.owner_node = to.into();
        live.epoch = tomb.epoch + 1;
        let arrival = move |seq: u64, from_status| Event {
            seq,
            at: now,
            node: to.into(),
            actor: "spiffe://fengqiao/node/x".into(),
            kind: EventKind::Registered,
            from_status,
            to_status: case.status,
            detail: "接收".into(),
        };
        let target = self.node(to).store().clone();
        if target.get_case(&id).unwrap().is_some() {
            // Back at a node it left: the live case replaces the tombstone.
            target
                .update(id.clone(), move |old| {
                    let mut next = live.clone();
                    next.history_len = old.history_len + 1;
                    Ok((next, vec![arrival(old.history_len + 1, Some(old.status))]))
                })
                .await
                .unwrap();
        } else {
            live.history_len = 1;
            let key = format!("move-{id}-{}", live.epoch);
            target
                .register(key, machine::china_day(now), move |_| {
                    Ok((live.clone(), arrival(1, None)))
                })
                .await
                .unwrap();
        }
        self.ids.entry(to).or_default().push(id);
    }

    /// Everything `child` wrote after local seq `after`, pushed to its parent; returns the
    /// last seq sent.
    async fn deliver(&self, child: &str, after: u64) -> u64 {
        let child = self.node(child);
        let parent_code = child.code().parent().unwrap();
        let parent = self.node(parent_code.as_str());
        let rows = child
            .store()
            .stats_changed_since(after, usize::MAX)
            .unwrap();
        let last = rows.last().map_or(after, |r| r.seq);
        let push = Push {
            full: after == 0,
            entries: rows
                .into_iter()
                .map(|r| Incoming {
                    kind: r.kind,
                    node: r.node,
                    bucket: r.bucket,
                    version: r.version,
                    cells: r.cells,
                })
                .collect(),
            liveness: child
                .report_for_parent(Some(parent.config().retention_depth))
                .unwrap(),
            sent_at: child.now(),
        };
        parent.receive(child.code(), push).await.unwrap();
        last
    }

    /// Pushes everything up the tree, children first.
    async fn sync_all(&self) {
        for code in [V1, V2, TOWNSHIP, COUNTY] {
            self.deliver(code, 0).await;
        }
    }

    /// The brute-force figures of `scope`'s subtree: a recount over every case record held
    /// by every node in it, overdue at the clock's now.
    fn recount(&self, scope: &str) -> Figures {
        let mut total = Figures::default();
        for code in ALL.iter().filter(|n| n.starts_with(scope)) {
            let store = self.node(code).store();
            let mut q = CaseQuery {
                page_size: 500,
                ..Default::default()
            };
            let mut cases: Vec<Case> = Vec::new();
            loop {
                let page = store.list_cases(&q).unwrap();
                cases.extend(page.cases);
                match page.next_page_token {
                    Some(t) => q.page_token = Some(t),
                    None => break,
                }
            }
            for cells in figures::recount(&c(code), &cases).values() {
                total.add(&cells.total);
            }
            total.add(&figures::overdue_snapshot(&cases, self.clock.now()).total);
        }
        total
    }

    async fn refresh_overdue(&self) {
        for node in self.nodes.values() {
            node.store()
                .refresh_overdue(self.clock.now())
                .await
                .unwrap();
        }
    }
}

fn totals(node: &StatsNode, scope: Option<&str>) -> Figures {
    node.answer(scope.map(c), Period::default(), &[])
        .unwrap()
        .totals
}

#[tokio::test]
async fn every_node_equals_a_recount_of_its_subtree_whatever_the_delivery_order() {
    let mut sim = Sim::new(2);
    let mut snapshots = Vec::new();
    for round in 0..6 {
        for _ in 0..40 {
            let at = ALL[sim.rng.random_range(0..ALL.len())];
            sim.step(at).await;
        }
        // 提级办理 up one level, and 交办 down one, between stores.
        sim.move_case(V1, TOWNSHIP).await;
        sim.move_case(COUNTY, V2).await;
        sim.move_case(V2, COUNTY).await;
        sim.refresh_overdue().await;
        // Keep what each village would have pushed now, to deliver it late.
        snapshots.push((
            round,
            sim.node(V1)
                .store()
                .stats_changed_since(0, usize::MAX)
                .unwrap(),
        ));
        sim.sync_all().await;
    }
    for scope in ALL {
        assert_eq!(
            totals(sim.node(scope), None),
            sim.recount(scope),
            "at {scope}"
        );
    }
    let expected_city = sim.recount(CITY);
    assert!(
        expected_city.received > 40 && expected_city.resolved > 0,
        "{expected_city:?}"
    );
    assert!(expected_city.escalated_in + expected_city.transferred_in > 0);

    // Late and duplicated deliveries: the oldest snapshot again, then everything twice.
    let (_, oldest) = snapshots.remove(0);
    let late = Push {
        full: false,
        entries: oldest
            .into_iter()
            .map(|r| Incoming {
                kind: r.kind,
                node: r.node,
                bucket: r.bucket,
                version: r.version,
                cells: r.cells,
            })
            .collect(),
        liveness: Vec::new(),
        sent_at: START,
    };
    sim.node(TOWNSHIP).receive(&c(V1), late).await.unwrap();
    sim.sync_all().await;
    sim.sync_all().await;
    for scope in ALL {
        assert_eq!(
            totals(sim.node(scope), None),
            sim.recount(scope),
            "at {scope}"
        );
    }

    // Drill-down from the city: the county (depth 1) and the township (depth 2, folded).
    let city = sim.node(CITY);
    assert_eq!(totals(city, Some(COUNTY)), sim.recount(COUNTY));
    let township = city
        .answer(Some(c(TOWNSHIP)), Period::default(), &[GroupBy::Child])
        .unwrap();
    assert_eq!(township.totals, sim.recount(TOWNSHIP));
    assert!(township.children_folded);
    assert_eq!(township.groups[0].rows.len(), 1, "one folded row");
    // The village is deeper than the city keeps.
    match city.answer(Some(c(V1)), Period::default(), &[]) {
        Err(Error::Folded { ancestor, .. }) => assert_eq!(ancestor, TOWNSHIP),
        other => panic!("expected Folded, got {other:?}"),
    }
    // The county keeps villages: drill-down there, with rows adding up.
    let county = sim.node(COUNTY);
    let v1 = county.answer(Some(c(V1)), Period::default(), &[]).unwrap();
    assert_eq!(v1.totals, sim.recount(V1));
    let by_child = county
        .answer(None, Period::default(), &[GroupBy::Child])
        .unwrap();
    let mut sum = Figures::default();
    for (_, f) in &by_child.groups[0].rows {
        sum.add(f);
    }
    assert_eq!(sum, by_child.totals);
}

#[tokio::test]
async fn pushes_are_checked_and_scopes_are_confined() {
    let mut sim = Sim::new(2);
    for _ in 0..10 {
        sim.step(V1).await;
    }
    let township = sim.node(TOWNSHIP);
    let rows = sim.node(V1).store().stats_changed_since(0, 10).unwrap();
    let entry = |node: &str| Incoming {
        kind: rows[0].kind,
        node: c(node),
        bucket: rows[0].bucket,
        version: rows[0].version,
        cells: rows[0].cells.clone(),
    };
    let push = |entries| Push {
        full: true,
        entries,
        liveness: Vec::new(),
        sent_at: START,
    };
    // Only a child may push, and only about its own subtree; a bad push stores nothing.
    let r = township
        .receive(&c(COUNTY), push(vec![entry(COUNTY)]))
        .await;
    assert!(matches!(r, Err(Error::PermissionDenied(_))), "{r:?}");
    let r = township
        .receive(&c(V1), push(vec![entry(V1), entry(V2)]))
        .await;
    assert!(matches!(r, Err(Error::Domain(_))), "{r:?}");
    assert!(!township.store().stats_has(Kind::Own, &c(V1)).unwrap());
    let reply = township
        .receive(&c(V1), push(vec![entry(V1)]))
        .await
        .unwrap();
    assert_eq!(
        reply,
        PushReply {
            retention_depth: 2,
            resync: false
        }
    );

    // Operators see their subtree only; a known child with no figures yet is answered.
    let village = sim.node(V1);
    assert!(matches!(
        village.answer(Some(c(TOWNSHIP)), Period::default(), &[]),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        township.answer(Some(c("610116001009")), Period::default(), &[]),
        Err(Error::NoFigures(_))
    ));
    assert!(township.answer(Some(c(V1)), Period::default(), &[]).is_ok());
}

#[tokio::test]
async fn a_silent_child_is_reported_stale_up_the_tree_then_recovers() {
    let mut sim = Sim::new(2);
    sim.step(V1).await;
    sim.step(V2).await;
    sim.sync_all().await;
    let stale_at = |sim: &Sim, node: &str| -> Vec<String> {
        sim.node(node)
            .answer(None, Period::default(), &[])
            .unwrap()
            .stale
            .into_iter()
            .map(|s| s.node.to_string())
            .collect()
    };
    assert!(stale_at(&sim, CITY).is_empty());
    // V2 falls silent; everyone else keeps pushing.
    let later = Timestamp(sim.now.0 + 31_000);
    sim.clock.set(later);
    for code in [V1, TOWNSHIP, COUNTY] {
        sim.deliver(code, 0).await;
    }
    assert_eq!(stale_at(&sim, TOWNSHIP), vec![V2.to_string()]);
    assert_eq!(stale_at(&sim, COUNTY), vec![V2.to_string()]);
    assert_eq!(
        stale_at(&sim, CITY),
        vec![V2.to_string()],
        "relayed beyond retention"
    );
    let township = sim
        .node(TOWNSHIP)
        .answer(None, Period::default(), &[])
        .unwrap();
    let v2 = township.children.iter().find(|s| s.node == c(V2)).unwrap();
    assert!(v2.stale && v2.last_heard.is_some_and(|t| t < later));
    // V2 is back.
    sim.sync_all().await;
    assert!(stale_at(&sim, CITY).is_empty());
}
