//! End to end: figures for higher tiers across five real `fqnode` processes (city, county,
//! township, two villages) linked child → parent over mutual TLS.
//!
//! A scripted workload runs at every node; then, at every node, `GetAggregates` must equal a
//! brute-force recount over the cases each node of its subtree lists (written here, apart
//! from the node's code). A village is then killed (a partition): its ancestors must report it
//! stale, and after a restart everything must converge again. Last, cases move between nodes
//! through the federation (提级办理 up, 交办 two hops down, 提级督办 with a supervised copy),
//! and every node must still equal the recount, each case counted once. Every wait is
//! bounded; nothing asserts on timing.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use pb::stats_exchange_client::StatsExchangeClient;
use pb::stats_service_client::StatsServiceClient;
use support::*;
use tonic::Code;
use tonic::transport::Channel;

const CITY: &str = "6101";
const COUNTY: &str = "610116";
const TOWNSHIP: &str = "610116001";
const V1: &str = "610116001001";
const V2: &str = "610116001002";
/// Parents before children.
const NODES: [&str; 5] = [CITY, COUNTY, TOWNSHIP, V1, V2];

/// Short intervals so that the test converges in seconds.
const STATS: &str = "[stats]\npush_delay = \"50ms\"\nheartbeat = \"500ms\"\nstale_after = \"3s\"\n\
                     overdue_refresh = \"500ms\"\n";
/// Village 2 must review within an hour; after the workload its clock is moved two hours
/// ahead (a restart with `clock_offset`), so its unreviewed cases are overdue without waiting.
const V2_DEADLINES: &str = "[deadlines]\nreview = \"1h\"\n";
/// How far village 2's clock is moved ahead, as configured and in milliseconds.
const V2_AHEAD: (&str, i64) = ("2h", 2 * 3_600_000);
/// How long any one condition may take to come true.
const WAIT: Duration = Duration::from_secs(90);

struct Fed {
    pki: Pki,
    root: tempfile::TempDir,
    nodes: BTreeMap<&'static str, NodeProc>,
    /// How far each node's clock runs ahead of the test's, in milliseconds.
    ahead_ms: BTreeMap<&'static str, i64>,
}

impl Fed {
    fn start() -> Fed {
        let pki = Pki::new();
        let root = tempfile::tempdir().unwrap();
        let mut nodes: BTreeMap<&'static str, NodeProc> = BTreeMap::new();
        for code in NODES {
            let parent = NODES
                .iter()
                .filter(|p| p.len() < code.len() && code.starts_with(**p))
                .max_by_key(|p| p.len())
                .map(|p| nodes[*p].federation_url());
            let extra = if code == V2 {
                format!("{STATS}{V2_DEADLINES}{FAST_LINKS}")
            } else {
                format!("{STATS}{FAST_LINKS}")
            };
            let opts = NodeOpts {
                parent,
                extra,
                ..NodeOpts::default()
            };
            let node = NodeProc::start_with(&pki, root.path(), code, &opts);
            nodes.insert(code, node);
        }
        Fed {
            pki,
            root,
            nodes,
            ahead_ms: BTreeMap::new(),
        }
    }

    /// Restarts `code` with its clock `ahead` (config text, milliseconds) of the test's.
    fn move_clock(&mut self, code: &'static str, ahead: (&str, i64)) {
        let root = self.root.path().to_path_buf();
        let node = self.nodes.get_mut(code).unwrap();
        restart_at(node, &root, ahead.0);
        self.ahead_ms.insert(code, ahead.1);
    }

    /// Now at `code`, by its clock.
    fn now_at(&self, code: &str) -> i64 {
        now_ms() + self.ahead_ms.get(code).copied().unwrap_or(0)
    }

    async fn channel(&self, code: &str) -> Channel {
        let (cert, key) = self.pki.operator(code, "director", "zhao");
        channel(self.nodes[code].listen, &self.pki.ca(), Some((&cert, &key)))
            .await
            .expect("connect")
    }

    async fn cases(&self, code: &str) -> CaseServiceClient<Channel> {
        CaseServiceClient::new(self.channel(code).await)
    }

    async fn stats(&self, code: &str) -> StatsServiceClient<Channel> {
        StatsServiceClient::new(self.channel(code).await)
    }

    /// Every case record `code` holds, as listed to its director.
    async fn list(&self, code: &str) -> Vec<pb::Case> {
        let mut client = self.cases(code).await;
        list_all(&mut client, pb::ListCasesRequest::default()).await
    }
}

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

fn ms(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref()
        .map(|t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
}

type Figs = BTreeMap<&'static str, i64>;

/// The figures of an answer, by name.
fn from_answer(f: &pb::Figures) -> Figs {
    let mut m: Figs = [
        ("received", f.received as i64),
        ("accepted", f.accepted as i64),
        ("rejected", f.rejected as i64),
        ("resolved", f.resolved as i64),
        ("unresolved", f.unresolved as i64),
        ("closed", f.closed as i64),
        ("amount_received_fen", f.amount_received_fen),
        ("amount_resolved_fen", f.amount_resolved_fen),
        ("settled_fen", f.settled_fen),
        ("resolution_ms_total", f.resolution_ms_total),
        ("satisfaction_total", f.satisfaction_total as i64),
        ("satisfaction_count", f.satisfaction_count as i64),
        ("reopened", f.reopened as i64),
        ("escalated_in", f.escalated_in as i64),
        ("escalated_out", f.escalated_out as i64),
        ("transferred_in", f.transferred_in as i64),
        ("transferred_out", f.transferred_out as i64),
        ("open", f.open as i64),
        ("unreviewed", f.unreviewed as i64),
        ("awaiting_follow_up", f.awaiting_follow_up as i64),
        ("overdue_review", f.overdue_review as i64),
        ("overdue_resolve", f.overdue_resolve as i64),
        ("overdue_follow_up", f.overdue_follow_up as i64),
    ]
    .into();
    for t in &f.resolved_by_tier {
        *m.entry(tier_key(t.tier)).or_default() += t.resolved as i64;
    }
    m.retain(|_, v| *v != 0);
    m
}

fn tier_key(tier: i32) -> &'static str {
    match pb::Tier::try_from(tier) {
        Ok(pb::Tier::Village) => "resolved_village",
        Ok(pb::Tier::Township) => "resolved_township",
        Ok(pb::Tier::County) => "resolved_county",
        Ok(pb::Tier::City) => "resolved_city",
        _ => "resolved_other",
    }
}

/// The brute force: figures of the records `holder` holds, straight from the definitions in
/// docs/aggregates.md (every month, overdue as of `now`).
fn recount(holder: &str, cases: &[pb::Case], now: i64, into: &mut Figs) {
    use pb::CaseStatus as S;
    let mut add = |k: &'static str, v: i64| *into.entry(k).or_default() += v;
    for c in cases {
        let status = S::try_from(c.status).unwrap();
        let live = status != S::Transferred;
        if c.origin_node == holder {
            add("received", 1);
            add("amount_received_fen", c.amount_fen);
        } else if c.origin_node.starts_with(holder) {
            add("escalated_in", 1);
        } else {
            add("transferred_in", 1);
        }
        if !live {
            if holder.starts_with(c.moved_to.as_str()) {
                add("escalated_out", 1);
            } else {
                add("transferred_out", 1);
            }
            continue;
        }
        match status {
            S::Registered => {}
            S::Rejected => add("rejected", 1),
            _ => add("accepted", 1),
        }
        if c.satisfaction > 0 {
            add("satisfaction_total", i64::from(c.satisfaction));
            add("satisfaction_count", 1);
        }
        add("reopened", i64::from(c.reopen_count));
        if let (true, Some(at)) = (
            matches!(status, S::Resolved | S::Unresolved | S::Closed),
            ms(&c.resolved_at),
        ) {
            add("resolution_ms_total", at - ms(&c.created_at).unwrap());
            if c.confirmation != 0 {
                add("resolved", 1);
                add("amount_resolved_fen", c.amount_fen);
                add("settled_fen", c.settled_amount_fen);
                add(
                    match holder.len() {
                        12 => "resolved_village",
                        9 => "resolved_township",
                        6 => "resolved_county",
                        4 => "resolved_city",
                        _ => "resolved_other",
                    },
                    1,
                );
            } else {
                add("unresolved", 1);
            }
        }
        match status {
            S::Closed => add("closed", 1),
            S::Registered => {
                add("open", 1);
                add("unreviewed", 1);
                if ms(&Some(c.review_due_at.unwrap())).unwrap() < now {
                    add("overdue_review", 1);
                }
            }
            S::Accepted | S::InMediation => {
                add("open", 1);
                if ms(&c.resolve_due_at).is_some_and(|d| d < now) {
                    add("overdue_resolve", 1);
                }
            }
            S::Resolved | S::Unresolved => {
                add("awaiting_follow_up", 1);
                if ms(&c.follow_up_due_at).is_some_and(|d| d < now) {
                    add("overdue_follow_up", 1);
                }
            }
            _ => {}
        }
    }
    into.retain(|_, v| *v != 0);
}

/// The recount of `scope`'s subtree; `frozen` gives the listing of nodes that are down.
/// Each node's cases are counted overdue or not by that node's clock.
async fn expected(fed: &Fed, scope: &str, frozen: &BTreeMap<&str, Vec<pb::Case>>) -> Figs {
    let mut out = Figs::new();
    for code in NODES.iter().filter(|c| c.starts_with(scope)) {
        let cases = match frozen.get(code) {
            Some(cases) => cases.clone(),
            None => fed.list(code).await,
        };
        recount(code, &cases, fed.now_at(code), &mut out);
    }
    out
}

async fn answer(fed: &Fed, at: &str, scope: &str, group_by: &[pb::GroupBy]) -> pb::Aggregates {
    fed.stats(at)
        .await
        .get_aggregates(pb::GetAggregatesRequest {
            scope_node: scope.into(),
            group_by: group_by.iter().map(|g| *g as i32).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Polls until every node's own answer equals the recount of its subtree and `extra` holds
/// for the city's figures; panics with the last difference after [`WAIT`].
async fn converge(fed: &Fed, frozen: &BTreeMap<&str, Vec<pb::Case>>, extra: fn(&Figs) -> bool) {
    let start = Instant::now();
    loop {
        let mut diff = None;
        for code in NODES.iter().filter(|c| !frozen.contains_key(*c)) {
            let want = expected(fed, code, frozen).await;
            let got = from_answer(&answer(fed, code, "", &[]).await.totals.unwrap());
            if got != want || (*code == CITY && !extra(&want)) {
                diff = Some(format!("at {code}:\n  answer  {got:?}\n  recount {want:?}"));
                break;
            }
        }
        let Some(diff) = diff else { return };
        assert!(start.elapsed() < WAIT, "figures did not converge: {diff}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stale_at(fed: &Fed, at: &str) -> Vec<String> {
    let a = answer(fed, at, "", &[]).await;
    a.stale_descendants.into_iter().map(|s| s.node).collect()
}

async fn wait_stale(fed: &Fed, at: &str, want: &[&str]) {
    let start = Instant::now();
    loop {
        let got = stale_at(fed, at).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "stale at {at}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// --- the scripted workload --------------------------------------------------------------

async fn register(
    c: &mut CaseServiceClient<Channel>,
    key: &str,
    category: pb::Category,
    yuan: i64,
) -> String {
    let mut req = register_request(key);
    req.category = category as i32;
    req.amount_fen = yuan * 100;
    c.register_case(req).await.unwrap().into_inner().id
}

async fn accept(c: &mut CaseServiceClient<Channel>, id: &str) {
    c.review_case(pb::ReviewCaseRequest {
        case_id: id.into(),
        accept: true,
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn mediate(c: &mut CaseServiceClient<Channel>, id: &str, t: pb::MediationType) {
    c.record_mediation(pb::RecordMediationRequest {
        case_id: id.into(),
        method: pb::MediationMethod::Phone as i32,
        mediation_type: t as i32,
        mediator: "王调解员".into(),
        notes: String::new(),
        result: pb::MediationResult::Agreed as i32,
    })
    .await
    .unwrap();
}

async fn resolve(c: &mut CaseServiceClient<Channel>, id: &str, ok: bool, settled_yuan: i64) {
    c.resolve_case(pb::ResolveCaseRequest {
        case_id: id.into(),
        resolved: ok,
        agreement: if ok {
            "分期支付"
        } else {
            "建议申请劳动仲裁"
        }
        .into(),
        settled_amount_fen: if ok { settled_yuan * 100 } else { 0 },
        confirmation: pb::Confirmation::Judicial as i32,
    })
    .await
    .unwrap();
}

async fn follow_up(c: &mut CaseServiceClient<Channel>, id: &str, score: u32) {
    c.record_follow_up(pb::RecordFollowUpRequest {
        case_id: id.into(),
        satisfaction: score,
        notes: String::new(),
    })
    .await
    .unwrap();
}

async fn workload(fed: &Fed) {
    use pb::Category::*;
    let mut v1 = fed.cases(V1).await;
    let c1 = register(&mut v1, "v1-1", Labor, 4_400).await;
    accept(&mut v1, &c1).await;
    mediate(&mut v1, &c1, pb::MediationType::Peoples).await;
    resolve(&mut v1, &c1, true, 4_400).await;
    follow_up(&mut v1, &c1, 5).await;
    let c2 = register(&mut v1, "v1-2", Neighbor, 0).await;
    accept(&mut v1, &c2).await;
    resolve(&mut v1, &c2, false, 0).await;
    follow_up(&mut v1, &c2, 4).await;
    let c3 = register(&mut v1, "v1-3", PropertyManagement, 6_000).await;
    v1.review_case(pb::ReviewCaseRequest {
        case_id: c3,
        accept: false,
        reason: "不属本辖区".into(),
        guidance: "请到物业所在社区申请".into(),
    })
    .await
    .unwrap();
    let c4 = register(&mut v1, "v1-4", Lease, 150_000).await;
    accept(&mut v1, &c4).await;
    resolve(&mut v1, &c4, true, 100_000).await;
    follow_up(&mut v1, &c4, 2).await; // reopened
    register(&mut v1, "v1-5", Labor, 800).await;

    let mut v2 = fed.cases(V2).await;
    register(&mut v2, "v2-1", Labor, 1_000).await; // overdue once village 2's clock moves
    register(&mut v2, "v2-2", LandContract, 0).await;
    let d3 = register(&mut v2, "v2-3", MarriageFamily, 20_000).await;
    accept(&mut v2, &d3).await;
    mediate(&mut v2, &d3, pb::MediationType::Administrative).await;
    resolve(&mut v2, &d3, true, 20_000).await;

    let mut t = fed.cases(TOWNSHIP).await;
    let t1 = register(&mut t, "t-1", ConstructionDemolition, 300_000).await;
    accept(&mut t, &t1).await;
    resolve(&mut t, &t1, true, 250_000).await;
    follow_up(&mut t, &t1, 3).await;

    let mut k = fed.cases(COUNTY).await;
    let k1 = register(&mut k, "k-1", Medical, 90_000).await;
    accept(&mut k, &k1).await;

    let mut m = fed.cases(CITY).await;
    let m1 = register(&mut m, "m-1", Finance, 1_500_000).await;
    accept(&mut m, &m1).await;
    resolve(&mut m, &m1, true, 1_500_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_stay_exact_across_the_tree_through_a_partition() {
    init();
    let mut fed = Fed::start();
    for code in NODES {
        if let Some(parent) = NODES
            .iter()
            .filter(|p| p.len() < code.len() && code.starts_with(**p))
            .max_by_key(|p| p.len())
        {
            linked(&fed.pki, &fed.nodes[*parent], parent, code).await;
        }
    }
    workload(&fed).await;
    fed.move_clock(V2, V2_AHEAD);
    let none = BTreeMap::new();
    // Equal everywhere, with village 2's unreviewed cases overdue.
    converge(&fed, &none, |city| city.get("overdue_review") == Some(&2)).await;
    let city = expected(&fed, CITY, &none).await;
    assert_eq!(city["received"], 11);
    assert_eq!(city["resolved"], 4);
    assert_eq!(city["resolved_village"], 2);

    drill_down(&fed).await;
    fqctl_stats(&fed).await;
    refused_pushes(&fed).await;

    // Partition: village 2 dies. Its last listing stands in for it in the recount.
    let frozen: BTreeMap<&str, Vec<pb::Case>> = [(V2, fed.list(V2).await)].into();
    fed.nodes.get_mut(V2).unwrap().kill9();
    for at in [TOWNSHIP, COUNTY, CITY] {
        wait_stale(&fed, at, &[V2]).await;
    }
    let township = answer(&fed, TOWNSHIP, "", &[]).await;
    let v2 = township.children.iter().find(|c| c.node == V2).unwrap();
    assert!(v2.stale && v2.last_heard.is_some(), "{v2:?}");
    // The rest of the tree keeps flowing.
    register(
        &mut fed.cases(V1).await,
        "v1-6",
        pb::Category::Traffic,
        3_000,
    )
    .await;
    converge(&fed, &frozen, |_| true).await;

    // Repair: village 2 comes back (same data, new ports) and catches up.
    let root = fed.root.path().to_path_buf();
    fed.nodes.get_mut(V2).unwrap().restart(&root);
    register(
        &mut fed.cases(V2).await,
        "v2-4",
        pb::Category::Consumer,
        500,
    )
    .await;
    for at in [TOWNSHIP, COUNTY, CITY] {
        wait_stale(&fed, at, &[]).await;
    }
    converge(&fed, &none, |city| city.get("received") == Some(&13)).await;

    // Moves between nodes: counted once, received where registered, resolved where resolved.
    moves(&fed).await;
    converge(&fed, &none, |city| city.get("received") == Some(&16)).await;
    let city = expected(&fed, CITY, &none).await;
    let (v1, township) = (
        expected(&fed, V1, &none).await,
        expected(&fed, TOWNSHIP, &none).await,
    );
    assert_eq!(v1.get("escalated_out"), Some(&1), "{v1:?}");
    assert_eq!(city.get("escalated_in"), Some(&1), "{city:?}");
    assert_eq!(city.get("transferred_out"), Some(&1), "{city:?}");
    assert_eq!(city.get("transferred_in"), Some(&1), "{city:?}");
    assert_eq!(city["resolved"], 6, "two more, once each");
    assert_eq!(township["resolved_township"], 2);
    assert_eq!(city["resolved_village"], 3);
}

/// Waits (bounded) until `code` owns `id`.
async fn owned_at(fed: &Fed, code: &str, id: &str) {
    let start = Instant::now();
    let mut c = fed.cases(code).await;
    loop {
        let case = c.get_case(pb::GetCaseRequest { case_id: id.into() }).await;
        if case.is_ok_and(|r| r.get_ref().owner_node == code && r.get_ref().status != 8) {
            return;
        }
        assert!(start.elapsed() < WAIT, "{id} never arrived at {code}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 提级办理 from a village to its township, which resolves it; 交办 from the county two hops
/// down to a village, which resolves it; 提级督办 (supervision only: the township holds a copy,
/// which must not be counted).
async fn moves(fed: &Fed) {
    let mut v1 = fed.cases(V1).await;
    let up = register(&mut v1, "v1-move", pb::Category::Labor, 2_000).await;
    accept(&mut v1, &up).await;
    v1.escalate_case(pb::EscalateCaseRequest {
        case_id: up.clone(),
        mode: pb::EscalationMode::TakeOver as i32,
        reason: "需乡镇统筹".into(),
    })
    .await
    .unwrap();
    owned_at(fed, TOWNSHIP, &up).await;
    resolve(&mut fed.cases(TOWNSHIP).await, &up, true, 2_000).await;

    let mut k = fed.cases(COUNTY).await;
    let down = register(&mut k, "k-move", pb::Category::Lease, 8_000).await;
    k.transfer_case(pb::TransferCaseRequest {
        case_id: down.clone(),
        to_node: V2.into(),
        reason: "交办属地".into(),
    })
    .await
    .unwrap();
    owned_at(fed, V2, &down).await;
    let mut v2 = fed.cases(V2).await;
    accept(&mut v2, &down).await;
    resolve(&mut v2, &down, true, 8_000).await;

    let watched = register(&mut v1, "v1-watched", pb::Category::Neighbor, 0).await;
    v1.escalate_case(pb::EscalateCaseRequest {
        case_id: watched,
        mode: pb::EscalationMode::Supervise as i32,
        reason: "请乡镇督办".into(),
    })
    .await
    .unwrap();
}

async fn drill_down(fed: &Fed) {
    let none = BTreeMap::new();
    // The city keeps counties and townships (retention 2): the township is folded.
    let t = answer(fed, CITY, TOWNSHIP, &[pb::GroupBy::Child]).await;
    assert_eq!(
        from_answer(&t.totals.unwrap()),
        expected(fed, TOWNSHIP, &none).await
    );
    assert!(t.children_folded);
    // A village is deeper than the city keeps.
    let err = fed
        .stats(CITY)
        .await
        .get_aggregates(pb::GetAggregatesRequest {
            scope_node: V1.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains(TOWNSHIP), "{}", err.message());
    // The township drills into its villages.
    let v = answer(fed, TOWNSHIP, V1, &[]).await;
    assert_eq!(
        from_answer(&v.totals.unwrap()),
        expected(fed, V1, &none).await
    );
    // Breakdowns add up; the county's own row is there.
    let k = answer(
        fed,
        COUNTY,
        "",
        &[pb::GroupBy::Child, pb::GroupBy::Category],
    )
    .await;
    let rows = &k.groups[0].rows;
    let keys: Vec<_> = rows.iter().map(|r| r.key.clone().unwrap()).collect();
    use pb::group_row::Key;
    assert_eq!(
        keys,
        vec![Key::Node(COUNTY.into()), Key::Node(TOWNSHIP.into())]
    );
    let sum: u64 = rows
        .iter()
        .map(|r| r.figures.as_ref().unwrap().received)
        .sum();
    assert_eq!(sum, k.totals.as_ref().unwrap().received);
    let labor = k.groups[1]
        .rows
        .iter()
        .find(|r| r.key == Some(Key::Category(pb::Category::Labor as i32)))
        .unwrap();
    assert_eq!(labor.figures.as_ref().unwrap().received, 3);
    assert_eq!(k.children.len(), 1);
    assert!(k.children[0].last_heard.is_some() && !k.children[0].stale);
    // Another subtree is not for this node's operators; bad requests are refused.
    let mut v1 = fed.stats(V1).await;
    let err = v1
        .get_aggregates(pb::GetAggregatesRequest {
            scope_node: TOWNSHIP.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = v1
        .get_aggregates(pb::GetAggregatesRequest {
            group_by: vec![0],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // January 2000 (China time): no events, so period figures 0, current figures as ever.
    let old = v1
        .get_aggregates(pb::GetAggregatesRequest {
            from: Some(prost_types::Timestamp {
                seconds: 946_656_000,
                nanos: 0,
            }),
            to: Some(prost_types::Timestamp {
                seconds: 949_334_400,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let f = old.totals.unwrap();
    assert_eq!((f.received, f.open), (0, 2));
    assert_eq!(
        (old.first_month.as_str(), old.last_month.as_str()),
        ("2000-01", "2000-01")
    );
}

async fn fqctl_stats(fed: &Fed) {
    let (cert, key) = fed.pki.operator(COUNTY, "auditor", "qian");
    let endpoint = fed.nodes[COUNTY].url();
    let ca = fed.pki.ca();
    let base = [
        "--endpoint",
        endpoint.as_str(),
        "--ca",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let (code, out, err) = fqctl(&args);
        assert_eq!(code, 0, "fqctl {extra:?}: {out}{err}");
        out
    };
    let table = run(&["stats", "--group-by", "category,child"]);
    for label in ["收案", "化解率", "劳动争议", TOWNSHIP, "按下级中心", "正常"] {
        assert!(table.contains(label), "{label} missing:\n{table}");
    }
    let en = run(&["--lang", "en", "stats"]);
    assert!(
        en.contains("received") && en.contains("success rate"),
        "{en}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&["--json", "stats"])).unwrap();
    let none = BTreeMap::new();
    let want = expected(fed, COUNTY, &none).await;
    assert_eq!(json["totals"]["received"], want["received"]);
    let csv = run(&["stats", "--csv", "--group-by", "month"]);
    assert!(csv.starts_with("分组,项目,收案,"), "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("合计,610116,"),
        "{csv}"
    );
    // A scope outside the subtree: refused, exit code 1.
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["stats", "--scope", "610117"])
        .collect();
    let (code, _, err) = fqctl(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
}

async fn refused_pushes(fed: &Fed) {
    let township = fed.nodes[TOWNSHIP].federation_listen;
    let push = |node: &str| pb::PushContributionsRequest {
        full: false,
        contributions: vec![pb::Contribution {
            node: node.into(),
            kind: pb::ContributionKind::Own as i32,
            month: 0,
            version: u64::MAX,
            total: Some(pb::Figures {
                received: 1_000_000,
                ..Default::default()
            }),
            cells: Vec::new(),
        }],
        liveness: Vec::new(),
        sent_at: Some(prost_types::Timestamp::default()),
    };
    let client = |code: &str, node_cert: bool| {
        let (cert, key) = if node_cert {
            fed.pki.node(code)
        } else {
            fed.pki.operator(code, "director", "zhao")
        };
        let ca = fed.pki.ca();
        async move {
            StatsExchangeClient::new(channel(township, &ca, Some((&cert, &key))).await.unwrap())
        }
    };
    // Not a child of the township: the county (its parent) and an operator.
    let err = client(COUNTY, true)
        .await
        .push_contributions(push(COUNTY))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = client(TOWNSHIP, false)
        .await
        .push_contributions(push(V1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // A child, but about a node outside its subtree.
    let err = client(V1, true)
        .await
        .push_contributions(push(V2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}
