//! End to end: a long-running case under supervision never jams its village's link. Three real
//! nodes — county 610116, township 610116001, village 610116001001. A red village case is
//! supervised by the county; it gets 400 "六个一" plan updates of 2,000 characters each. Every
//! change reaches the county's supervised copy (as a delta), and afterwards an escalation of
//! another case, and of the long case itself, arrives at the township; the village's link is
//! connected with nothing queued and nothing refused; the village's tombstone keeps no
//! personal data.

mod support;

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::*;
use tonic::transport::Channel;

const COUNTY: &str = "610116";
const TOWN: &str = "610116001";
const VILLAGE: &str = "610116001001";
const UPDATES: usize = 400;
const PLAN_CHARS: usize = 2_000;
/// Convergence bound on a busy 2-core machine.
const SETTLE: Duration = Duration::from_secs(120);

type Client = CaseServiceClient<Channel>;

async fn get(c: &mut Client, id: &str) -> Option<pb::Case> {
    c.get_case(pb::GetCaseRequest {
        case_id: id.to_string(),
    })
    .await
    .ok()
    .map(|r| r.into_inner())
}

/// Waits until `c`'s node holds a version of case `id` that `ok` accepts.
async fn held(c: &Client, id: &str, what: &str, ok: impl Fn(&pb::Case) -> bool) -> pb::Case {
    eventually(what, SETTLE, || {
        let mut c = c.clone();
        let ok = &ok;
        async move { get(&mut c, id).await.filter(|k| ok(k)) }
    })
    .await
}

async fn history(c: &Client, id: &str) -> Option<Vec<pb::CaseEvent>> {
    let mut c = c.clone();
    c.get_case_history(pb::GetCaseRequest {
        case_id: id.to_string(),
    })
    .await
    .ok()
    .map(|r| r.into_inner().events)
}

async fn escalate(c: &mut Client, id: &str) {
    c.escalate_case(pb::EscalateCaseRequest {
        case_id: id.to_string(),
        mode: pb::EscalationMode::TakeOver as i32,
        reason: "需乡镇统筹".into(),
    })
    .await
    .unwrap_or_else(|s| panic!("escalate {id}: {s:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_running_supervised_case_never_jams_the_link() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    // Every node at the smallest message limit (1 MiB), less than half the case's plan text
    // over its life.
    let extra = format!("{FAST_LINKS}[limits]\nmax_message_bytes = 1048576\n");
    let county_node = NodeProc::start_with(
        &pki,
        root.path(),
        COUNTY,
        &NodeOpts {
            extra: extra.clone(),
            ..NodeOpts::default()
        },
    );
    let town_node = NodeProc::start_with(
        &pki,
        root.path(),
        TOWN,
        &NodeOpts {
            parent: Some(county_node.federation_url()),
            extra: extra.clone(),
            ..NodeOpts::default()
        },
    );
    let village_node = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            parent: Some(town_node.federation_url()),
            extra,
            ..NodeOpts::default()
        },
    );
    let county = operator_client(&pki, &county_node, COUNTY, "director", "boss").await;
    let town = operator_client(&pki, &town_node, TOWN, "director", "boss").await;
    let mut village = operator_client(&pki, &village_node, VILLAGE, "director", "boss").await;

    let red = village
        .register_case(request(
            "long",
            pb::RiskLevel::Red,
            "610102199001010009",
            "某建筑公司",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        red.supervising_nodes,
        [COUNTY],
        "red: the county follows it"
    );
    let id = red.id.clone();
    held(&county, &id, "the county's supervised copy", |c| {
        c.owner_node == VILLAGE
    })
    .await;

    // 400 plan updates of 2,000 characters: about 2.4 MB of plan text over the case's life.
    for i in 0..UPDATES {
        let plan = format!("{i:04}{}", "调".repeat(PLAN_CHARS - 4));
        village
            .update_case_plan(pb::UpdateCasePlanRequest {
                case_id: id.clone(),
                plan: Some(plan),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("plan update {i}: {s:?}"));
    }
    let len = history(&village, &id).await.unwrap().len();
    assert!(len > UPDATES, "{len}");

    // The county's copy follows every change, up to the last plan.
    let copied = eventually("the county's copy to catch up", SETTLE, || async {
        history(&county, &id).await.filter(|h| h.len() >= len)
    })
    .await;
    assert_eq!(copied.len(), len, "the whole history, once");
    let copy = get(&mut county.clone(), &id).await.unwrap();
    assert_eq!(copy.owner_node, VILLAGE);
    assert!(copy.plan.as_ref().unwrap().plan.starts_with("0399"));
    assert!(
        copied.iter().zip(1u64..).all(|(e, seq)| e.seq == seq),
        "in order, without gaps"
    );

    // A later escalation of another case arrives, and so does one of the long case.
    let other = village
        .register_case(register_request("other"))
        .await
        .unwrap()
        .into_inner();
    escalate(&mut village, &other.id).await;
    escalate(&mut village, &id).await;
    held(&town, &other.id, "the other case at the township", |c| {
        c.owner_node == TOWN && c.status != pb::CaseStatus::Transferred as i32
    })
    .await;
    let moved = held(&town, &id, "the long case at the township", |c| {
        c.owner_node == TOWN && c.status != pb::CaseStatus::Transferred as i32
    })
    .await;
    assert!(history(&town, &id).await.unwrap().len() > len);
    // The new owner has the parties; the village's tombstone answers a citizen who comes back
    // (id, status, where the case went, summary) without them.
    assert_eq!(moved.parties[0].phone, "13812345678");
    let tomb = get(&mut village, &id).await.unwrap();
    assert_eq!(tomb.status, pb::CaseStatus::Transferred as i32);
    assert_eq!(
        (tomb.moved_to.as_str(), tomb.summary.as_str()),
        (TOWN, moved.summary.as_str())
    );
    assert!(tomb.parties.is_empty(), "{:?}", tomb.parties);
    assert!(tomb.description.is_empty());
    assert!(moved.plan.unwrap().plan.starts_with("0399"));

    // The village's link: connected, nothing queued, nothing refused either way.
    let link = eventually("the village's queue to empty", SETTLE, || {
        let mut v = village.clone();
        async move {
            let links = v
                .get_links(pb::GetLinksRequest {})
                .await
                .ok()?
                .into_inner()
                .links;
            links
                .into_iter()
                .find(|l| l.peer == TOWN && l.queue_out == 0)
        }
    })
    .await;
    assert_eq!(link.state, pb::LinkState::Connected as i32, "{link:?}");
    assert_eq!((link.refused_in, link.refused_out), (0, 0), "{link:?}");
    assert!(link.last_error.is_empty(), "{link:?}");
}
