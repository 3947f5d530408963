//! End to end: five real nodes linked over mutual TLS — city 6101, county 610116, township
//! 610116001, villages 610116001001 and 610116001002 — moving and supervising cases.

mod support;

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::*;
use tonic::Code;
use tonic::transport::Channel;

const CITY: &str = "6101";
const COUNTY: &str = "610116";
const TOWN: &str = "610116001";
const V1: &str = "610116001001";
const V2: &str = "610116001002";
/// Convergence bound: messages travel within a second or two; this leaves room for a busy
/// 2-core machine.
const SETTLE: Duration = Duration::from_secs(60);

type Client = CaseServiceClient<Channel>;

struct Federation {
    pki: Pki,
    _root: tempfile::TempDir,
    nodes: Vec<NodeProc>,
}

impl Federation {
    /// Starts the five nodes, parents first.
    fn start() -> Federation {
        let pki = Pki::new();
        let root = tempfile::tempdir().unwrap();
        let mut nodes: Vec<NodeProc> = Vec::new();
        for code in [CITY, COUNTY, TOWN, V1, V2] {
            let parent = nodes
                .iter()
                .find(|n| Some(n.code.as_str()) == code.get(..parent_len(code)))
                .map(NodeProc::federation_url);
            let opts = NodeOpts {
                parent,
                ..NodeOpts::default()
            };
            nodes.push(NodeProc::start_with(&pki, root.path(), code, &opts));
        }
        Federation {
            pki,
            _root: root,
            nodes,
        }
    }

    fn node(&self, code: &str) -> &NodeProc {
        self.nodes.iter().find(|n| n.code == code).unwrap()
    }

    /// Waits until every parent has heard from its children (cases go down only to known
    /// children).
    async fn all_linked(&self) {
        for (parent, child) in [(CITY, COUNTY), (COUNTY, TOWN), (TOWN, V1), (TOWN, V2)] {
            linked(&self.pki, self.node(parent), parent, child).await;
        }
    }

    async fn director(&self, code: &str) -> Client {
        operator_client(&self.pki, self.node(code), code, "director", "boss").await
    }
}

fn parent_len(code: &str) -> usize {
    match code.len() {
        12 => 9,
        9 => 6,
        6 => 4,
        4 => 2,
        _ => 0,
    }
}

async fn get(c: &mut Client, id: &str) -> Option<pb::Case> {
    c.get_case(pb::GetCaseRequest {
        case_id: id.to_string(),
    })
    .await
    .ok()
    .map(|r| r.into_inner())
}

async fn history(c: &mut Client, id: &str) -> Vec<pb::CaseEvent> {
    c.get_case_history(pb::GetCaseRequest {
        case_id: id.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
    .events
}

/// Waits until `c`'s node owns case `id` (status not TRANSFERRED) and returns it.
async fn owned_at(c: &mut Client, id: &str, code: &str) -> pb::Case {
    eventually(&format!("{id} owned by {code}"), SETTLE, || {
        let mut c = c.clone();
        async move {
            get(&mut c, id)
                .await
                .filter(|k| k.owner_node == code && k.status != pb::CaseStatus::Transferred as i32)
        }
    })
    .await
}

async fn register(c: &mut Client, key: &str) -> pb::Case {
    c.register_case(register_request(key))
        .await
        .unwrap()
        .into_inner()
}

fn kinds(h: &[pb::CaseEvent]) -> Vec<&str> {
    h.iter().map(|e| e.kind.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_move_and_are_supervised_across_the_tiers() {
    init();
    let fed = Federation::start();
    fed.all_linked().await;
    let mut city = fed.director(CITY).await;
    let mut county = fed.director(COUNTY).await;
    let mut town = fed.director(TOWN).await;
    let mut v1 = fed.director(V1).await;
    let mut v2 = fed.director(V2).await;

    // 1. 提级办理 village → township → county → city, one TAKE_OVER per hop.
    let case = register(&mut v1, "chain").await;
    let id = case.id.clone();
    let mut holder = v1.clone();
    for (next_code, next) in [(TOWN, &mut town), (COUNTY, &mut county), (CITY, &mut city)] {
        let tomb = holder
            .escalate_case(pb::EscalateCaseRequest {
                case_id: id.clone(),
                mode: pb::EscalationMode::TakeOver as i32,
                reason: "涉及多个单位，需上级统筹".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(tomb.status, pb::CaseStatus::Transferred as i32);
        assert_eq!(tomb.moved_to, next_code);
        let got = owned_at(next, &id, next_code).await;
        assert_eq!(got.epoch, tomb.epoch + 1);
        assert_eq!(got.status, pb::CaseStatus::Registered as i32);
        // Personal data travelled in full with the ownership.
        assert_eq!(got.parties[0].id_number, "610102199001011234");
        holder = next.clone();
    }
    let h = history(&mut city, &id).await;
    assert_eq!(
        kinds(&h),
        vec![
            "registered",
            "escalated",
            "received",
            "escalated",
            "received",
            "escalated",
            "received"
        ]
    );
    assert_eq!(
        h.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    // The old owners keep tombstones that say where the case went, and refuse writes.
    let tomb = get(&mut v1, &id).await.unwrap();
    assert_eq!(tomb.status, pb::CaseStatus::Transferred as i32);
    assert_eq!(tomb.moved_to, TOWN);
    let err = v1
        .review_case(pb::ReviewCaseRequest {
            case_id: id.clone(),
            accept: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = v1
        .escalate_case(pb::EscalateCaseRequest {
            case_id: id.clone(),
            mode: pb::EscalationMode::TakeOver as i32,
            reason: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(TOWN), "{}", err.message());

    // 2. 交办 county → village, two hops down, with a relay event at the township.
    let down = register(&mut county, "down").await;
    county
        .transfer_case(pb::TransferCaseRequest {
            case_id: down.id.clone(),
            to_node: V2.into(),
            reason: "属地化解".into(),
        })
        .await
        .unwrap();
    let got = owned_at(&mut v2, &down.id, V2).await;
    assert_eq!(got.origin_node, COUNTY);
    let h = history(&mut v2, &down.id).await;
    assert_eq!(
        kinds(&h),
        vec!["registered", "transferred_out", "relayed", "received"]
    );
    assert_eq!(h[2].node, TOWN);

    // 3. Sideways: a village may not move a case to its sibling; the township director orders it.
    let side = register(&mut v1, "side").await;
    let err = v1
        .transfer_case(pb::TransferCaseRequest {
            case_id: side.id.clone(),
            to_node: V2.into(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains(TOWN), "{}", err.message());
    let answer = town
        .transfer_case(pb::TransferCaseRequest {
            case_id: side.id.clone(),
            to_node: V2.into(),
            reason: "按属地管辖".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.id, side.id);
    let got = owned_at(&mut v2, &side.id, V2).await;
    assert_eq!(got.epoch, 2);
    let h = history(&mut v2, &side.id).await;
    assert_eq!(
        kinds(&h),
        vec!["registered", "transferred_out", "relayed", "received"]
    );
    assert!(
        h[1].actor.contains(&format!("op/{TOWN}/director")),
        "{:?}",
        h[1]
    );
    let tomb = get(&mut v1, &side.id).await.unwrap();
    assert_eq!(tomb.moved_to, V2);

    // 4. 提级督办: the village asks its township to supervise; the township sees a masked copy.
    let sup = register(&mut v1, "supervise").await;
    let kept = v1
        .escalate_case(pb::EscalateCaseRequest {
            case_id: sup.id.clone(),
            mode: pb::EscalationMode::Supervise as i32,
            reason: "群体性纠纷风险".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.owner_node, V1);
    assert_eq!(kept.supervising_nodes, vec![TOWN.to_string()]);
    let copy = eventually("the township's copy", SETTLE, || {
        let mut t = town.clone();
        let id = sup.id.clone();
        async move { get(&mut t, &id).await }
    })
    .await;
    assert_eq!(copy.owner_node, V1);
    assert_eq!(copy.parties[0].id_number, "6101**********1234");
    // The township orders; the order lands in the village's history.
    town.supervise_case(pb::SuperviseCaseRequest {
        case_id: sup.id.clone(),
        instruction: "请于十日内化解并报告".into(),
        due_at: None,
    })
    .await
    .unwrap();
    eventually("the order at the village", SETTLE, || {
        let mut v = v1.clone();
        let id = sup.id.clone();
        async move {
            history(&mut v, &id)
                .await
                .iter()
                .any(|e| e.kind == "supervision_order" && e.node == TOWN)
                .then_some(())
        }
    })
    .await;
    // The village's later actions reach the supervisor.
    v1.review_case(pb::ReviewCaseRequest {
        case_id: sup.id.clone(),
        accept: true,
        ..Default::default()
    })
    .await
    .unwrap();
    eventually("the accepted copy at the township", SETTLE, || {
        let mut t = town.clone();
        let id = sup.id.clone();
        async move {
            get(&mut t, &id)
                .await
                .filter(|c| c.status == pb::CaseStatus::Accepted as i32)
        }
    })
    .await;
    let h = history(&mut town, &sup.id).await;
    assert_eq!(h.last().unwrap().kind, "accepted");
    // The township lists the cases it supervises, apart from its own.
    let listed = |supervised| {
        let mut t = town.clone();
        async move {
            t.list_cases(pb::ListCasesRequest {
                supervised,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .cases
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
        }
    };
    assert!(listed(true).await.contains(&sup.id));
    assert!(!listed(false).await.contains(&sup.id));
    // A supervisor cannot change the case itself.
    let err = town
        .review_case(pb::ReviewCaseRequest {
            case_id: sup.id.clone(),
            accept: false,
            reason: "r".into(),
            guidance: "g".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::NotFound | Code::FailedPrecondition),
        "{err:?}"
    );

    // 5. 督办 from the city on a village case it has never seen.
    let far = register(&mut v2, "city-order").await;
    let answer = city
        .supervise_case(pb::SuperviseCaseRequest {
            case_id: far.id.clone(),
            instruction: "市级督办：限期化解".into(),
            due_at: Some(prost_types::Timestamp {
                seconds: 4_102_444_800,
                nanos: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.origin_node, V2);
    eventually("the city's order at the village", SETTLE, || {
        let mut v = v2.clone();
        let id = far.id.clone();
        async move {
            history(&mut v, &id)
                .await
                .iter()
                .any(|e| e.kind == "supervision_order" && e.node == CITY)
                .then_some(())
        }
    })
    .await;
    // The city now follows the case.
    let copy = eventually("the city's copy", SETTLE, || {
        let mut c = city.clone();
        let id = far.id.clone();
        async move { get(&mut c, &id).await }
    })
    .await;
    assert_eq!(copy.owner_node, V2);
    // The city, and whoever the risk rules added (the same applicant in several cases raises
    // the risk, and an orange case is followed by the township).
    assert!(
        copy.supervising_nodes.contains(&CITY.to_string()),
        "{:?}",
        copy.supervising_nodes
    );

    // The same through fqctl, as a director at a center would: escalate, then look at links.
    let (cert, key) = fed.pki.operator(V2, "director", "boss");
    let flags = |node: &NodeProc| {
        vec![
            "--endpoint".to_string(),
            node.url(),
            "--ca".to_string(),
            fed.pki.ca().display().to_string(),
            "--cert".to_string(),
            cert.display().to_string(),
            "--key".to_string(),
            key.display().to_string(),
        ]
    };
    let cli_case = register(&mut v2, "cli").await;
    let mut args = flags(fed.node(V2));
    args.extend(
        [
            "case",
            "escalate",
            cli_case.id.as_str(),
            "--mode",
            "take-over",
            "--reason",
            "需乡镇统筹",
        ]
        .map(String::from),
    );
    let (code, out, err) = fqctl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("已移交") && out.contains(TOWN), "{out}");
    owned_at(&mut town, &cli_case.id, TOWN).await;
    // The city's director lists what the city supervises.
    let (city_cert, city_key) = fed.pki.operator(CITY, "director", "boss");
    let args = [
        "--endpoint".to_string(),
        fed.node(CITY).url(),
        "--ca".to_string(),
        fed.pki.ca().display().to_string(),
        "--cert".to_string(),
        city_cert.display().to_string(),
        "--key".to_string(),
        city_key.display().to_string(),
        "--json".to_string(),
        "case".to_string(),
        "list".to_string(),
        "--supervised".to_string(),
    ];
    let (code, out, err) = fqctl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&far.id), "{out}");
    let mut args = flags(fed.node(V2));
    args.push("links".into());
    let (code, out, err) = fqctl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("对端") && out.contains("上级") && out.contains(TOWN),
        "{out}"
    );

    // Links: every queue drains, every link is connected.
    for (code, c) in [(V1, &mut v1), (TOWN, &mut town), (COUNTY, &mut county)] {
        let links = eventually(&format!("drained queues at {code}"), SETTLE, || {
            let mut c = c.clone();
            async move {
                let l = c.get_links(pb::GetLinksRequest {}).await.ok()?.into_inner();
                l.links.iter().all(|k| k.queue_out == 0).then_some(l)
            }
        })
        .await;
        assert_eq!(links.node, code);
        let parent = links
            .links
            .iter()
            .find(|l| l.role == pb::LinkRole::Parent as i32)
            .unwrap();
        assert_eq!(parent.state, pb::LinkState::Connected as i32);
        assert!(!parent.silent);
        assert!(parent.last_heard.is_some());
    }
}

/// Every listed (owned or tombstone) record of case `id` at `c`'s node.
async fn listed(c: &mut Client, id: &str) -> Vec<pb::Case> {
    let all = list_all(c, pb::ListCasesRequest::default()).await;
    all.into_iter().filter(|k| k.id == id).collect()
}

/// Refused transfers, with two real nodes: township 610116001 at the top of its federation
/// (no parent), closed to incoming cases because it is being merged, and its village
/// 610116001001. A take-over by the township is refused by the township itself; a transfer to
/// the county finds no route past the township and is refused there. Each time the case comes
/// back to the village, live, at an epoch above the refused one, with the reason in its history,
/// and exists exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_transfers_come_back_to_the_sender_with_the_reason() {
    const WHY: &str = "本镇已撤并入610116002，请移交该镇综治中心";
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let town_node = NodeProc::start_with(
        &pki,
        root.path(),
        TOWN,
        &NodeOpts {
            extra: format!("{FAST_LINKS}refuse_transfers = \"{WHY}\"\n"),
            ..NodeOpts::default()
        },
    );
    let village_node = NodeProc::start_with(
        &pki,
        root.path(),
        V1,
        &NodeOpts {
            parent: Some(town_node.federation_url()),
            ..NodeOpts::default()
        },
    );
    let mut town = operator_client(&pki, &town_node, TOWN, "director", "boss").await;
    let mut v1 = operator_client(&pki, &village_node, V1, "director", "boss").await;

    // 1. 提级办理 to a township that takes in no cases: it refuses, with its reason.
    let case = register(&mut v1, "refused-take-over").await;
    let tomb = v1
        .escalate_case(pb::EscalateCaseRequest {
            case_id: case.id.clone(),
            mode: pb::EscalationMode::TakeOver as i32,
            reason: "需乡镇统筹".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tomb.status, pb::CaseStatus::Transferred as i32);
    assert_eq!((tomb.moved_to.as_str(), tomb.epoch), (TOWN, 1));
    let back = owned_at(&mut v1, &case.id, V1).await;
    assert_eq!(back.status, pb::CaseStatus::Registered as i32);
    assert_eq!(back.epoch, 3, "above the refused epoch 2");
    assert!(back.moved_to.is_empty());
    let h = history(&mut v1, &case.id).await;
    assert_eq!(kinds(&h), vec!["registered", "escalated", "returned"]);
    let returned = &h[2];
    assert_eq!(returned.node, V1);
    assert!(
        returned.detail.contains(WHY) && returned.detail.contains(TOWN),
        "{returned:?}"
    );
    // The township holds nothing of it: no live case, no tombstone, no copy.
    let err = town
        .get_case(pb::GetCaseRequest {
            case_id: case.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(listed(&mut town, &case.id).await.is_empty());
    // Exactly once in the federation, and the village works on it as its own.
    let at_village = listed(&mut v1, &case.id).await;
    assert_eq!(at_village.len(), 1);
    assert_eq!(at_village[0].owner_node, V1);
    assert_ne!(at_village[0].status, pb::CaseStatus::Transferred as i32);
    let accepted = v1
        .review_case(pb::ReviewCaseRequest {
            case_id: case.id.clone(),
            accept: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status, pb::CaseStatus::Accepted as i32);

    // 2. A transfer to the county, which runs no node above this township: the township
    // cannot route it and sends it back.
    let far = register(&mut v1, "refused-no-route").await;
    v1.transfer_case(pb::TransferCaseRequest {
        case_id: far.id.clone(),
        to_node: COUNTY.into(),
        reason: "涉及跨镇协调".into(),
    })
    .await
    .unwrap();
    let back = owned_at(&mut v1, &far.id, V1).await;
    assert_eq!(back.epoch, 3);
    let h = history(&mut v1, &far.id).await;
    assert_eq!(kinds(&h), vec!["registered", "transferred_out", "returned"]);
    assert!(
        h[2].detail.contains(COUNTY) && h[2].detail.contains("无法送达"),
        "{:?}",
        h[2]
    );
    assert_eq!(listed(&mut v1, &far.id).await.len(), 1);
    assert!(listed(&mut town, &far.id).await.is_empty());
}

/// The four-colour rule follows a case across a move, with three real nodes: county 610116
/// (top), township 610116001, village 610116001001. A red case registered at the county needs
/// nobody extra; transferred down to the village (交办), the village records that the county
/// now supervises it, raises the supervision alert, and the county keeps the supervised copy
/// beside its tombstone. Moved back up to the county, the county owns it and its risk
/// supervision ends, with the reason in the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_colour_rule_follows_a_case_down_and_back_up() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let county_node = NodeProc::start(&pki, root.path(), COUNTY);
    let town_node = NodeProc::start_with(
        &pki,
        root.path(),
        TOWN,
        &NodeOpts {
            parent: Some(county_node.federation_url()),
            ..NodeOpts::default()
        },
    );
    let village_node = NodeProc::start_with(
        &pki,
        root.path(),
        V1,
        &NodeOpts {
            parent: Some(town_node.federation_url()),
            ..NodeOpts::default()
        },
    );
    let mut county = operator_client(&pki, &county_node, COUNTY, "director", "boss").await;
    let mut v1 = operator_client(&pki, &village_node, V1, "director", "boss").await;
    linked(&pki, &town_node, TOWN, V1).await;

    let red = county
        .register_case(request(
            "red-down",
            pb::RiskLevel::Red,
            "610102199001010009",
            "某建筑公司",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        red.supervising_nodes.is_empty(),
        "the county follows red itself"
    );
    let id = red.id.clone();
    county
        .transfer_case(pb::TransferCaseRequest {
            case_id: id.clone(),
            to_node: V1.into(),
            reason: "属地化解，县级跟踪".into(),
        })
        .await
        .unwrap();

    // At the village: owned, supervised by the county because of the colour rule.
    let got = owned_at(&mut v1, &id, V1).await;
    assert_eq!(got.supervising_nodes, [COUNTY]);
    let h = history(&mut v1, &id).await;
    assert_eq!(
        kinds(&h),
        [
            "registered",
            "transferred_out",
            "relayed",
            "received",
            "supervision_opened"
        ]
    );
    let opened = &h[4];
    assert_eq!(opened.node, V1);
    assert_eq!(opened.actor, format!("spiffe://fengqiao/node/{V1}"));
    assert_eq!(
        opened.detail,
        "红色风险由县委政法委书记跟踪，提请610116督办"
    );
    let alerts = v1
        .list_alerts(pb::ListAlertsRequest {})
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == "supervision" && a.case_ids.contains(&id)),
        "{alerts:?}"
    );

    // At the county, once traffic settles: the supervised copy (owner: the village) with the
    // same history, listed among the supervised cases; its tombstone stays apart.
    let copy = eventually("the county's supervised copy", SETTLE, || {
        let mut c = county.clone();
        let id = id.clone();
        async move {
            get(&mut c, &id)
                .await
                .filter(|k| k.owner_node == V1 && k.status != pb::CaseStatus::Transferred as i32)
        }
    })
    .await;
    assert_eq!(copy.supervising_nodes, [COUNTY]);
    assert_eq!(copy.epoch, got.epoch);
    assert_eq!(copy.parties[0].id_number, "6101**********0009");
    let at_county = history(&mut county, &id).await;
    assert_eq!(at_county.last().unwrap().detail, opened.detail);
    let supervised = county
        .list_cases(pb::ListCasesRequest {
            supervised: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert!(supervised.iter().any(|k| k.id == id));
    let tomb = listed(&mut county, &id).await;
    assert_eq!(tomb.len(), 1);
    assert_eq!(tomb[0].status, pb::CaseStatus::Transferred as i32);
    // The village's supervision alert reaches the county, the node it is for.
    let alert = eventually("the supervision alert at the county", SETTLE, || {
        let mut c = county.clone();
        let id = id.clone();
        async move {
            let alerts = c
                .list_alerts(pb::ListAlertsRequest {})
                .await
                .ok()?
                .into_inner()
                .alerts;
            alerts
                .into_iter()
                .find(|a| a.kind == "supervision" && a.case_ids.contains(&id))
        }
    })
    .await;
    assert_eq!(alert.node, V1);

    // Back up to the county: it owns the case, so its risk supervision ends.
    v1.transfer_case(pb::TransferCaseRequest {
        case_id: id.clone(),
        to_node: COUNTY.into(),
        reason: "需县级统筹".into(),
    })
    .await
    .unwrap();
    let back = owned_at(&mut county, &id, COUNTY).await;
    assert!(back.supervising_nodes.is_empty(), "{back:?}");
    let h = history(&mut county, &id).await;
    let last = h.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.node.as_str()),
        ("supervision_closed", COUNTY)
    );
    assert_eq!(
        last.detail,
        "610116已承办本案，红色风险由其自行跟踪，解除风险督办"
    );
    assert_eq!(h[h.len() - 2].kind, "received");
}
