//! End to end: `kill -9` (an abort at a named failpoint, see `federation::failpoint`) of the
//! sender, the receiver and a relaying node at several points of a transfer. After a restart
//! the case exists exactly once, with the right owner and one "received" per hop.

mod support;

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::*;
use tonic::transport::Channel;

const COUNTY: &str = "610116";
const TOWN: &str = "610116001";
const VILLAGE: &str = "610116001001";
const SETTLE: Duration = Duration::from_secs(60);

type Client = CaseServiceClient<Channel>;

fn failpoint(name: &str) -> Vec<(String, String)> {
    vec![("FENGQIAO_FAILPOINTS".to_string(), name.to_string())]
}

async fn director(pki: &Pki, node: &NodeProc) -> Client {
    operator_client(pki, node, &node.code, "director", "boss").await
}

async fn get(c: &mut Client, id: &str) -> Option<pb::Case> {
    c.get_case(pb::GetCaseRequest {
        case_id: id.to_string(),
    })
    .await
    .ok()
    .map(|r| r.into_inner())
}

/// Waits until `owner` holds the live case, then checks that every other node holds a
/// tombstone or nothing, and that the history has `hops` "received" events.
async fn exactly_once(
    id: &str,
    owner: &mut Client,
    owner_code: &str,
    others: &mut [Client],
    hops: usize,
) {
    let case = eventually(&format!("{id} at {owner_code}"), SETTLE, || {
        let mut c = owner.clone();
        async move {
            get(&mut c, id).await.filter(|k| {
                k.owner_node == owner_code && k.status != pb::CaseStatus::Transferred as i32
            })
        }
    })
    .await;
    for other in others.iter_mut() {
        if let Some(c) = get(other, id).await {
            assert_eq!(c.status, pb::CaseStatus::Transferred as i32, "{c:?}");
        }
    }
    let h = owner
        .get_case_history(pb::GetCaseRequest {
            case_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let received = h.iter().filter(|e| e.kind == "received").count();
    assert_eq!(
        received,
        hops,
        "{:?}",
        h.iter().map(|e| &e.kind).collect::<Vec<_>>()
    );
    let seqs: Vec<u64> = h.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=h.len() as u64).collect::<Vec<_>>());
    assert_eq!(case.epoch, 1 + hops as u64);
}

/// Waits until `c`'s node has nothing queued for any neighbour.
async fn drained(c: &Client) {
    eventually("the queues to drain", SETTLE, || {
        let mut c = c.clone();
        async move {
            let l = c.get_links(pb::GetLinksRequest {}).await.ok()?.into_inner();
            l.links.iter().all(|k| k.queue_out == 0).then_some(())
        }
    })
    .await;
}

async fn escalate(c: &mut Client, id: &str) -> Result<pb::Case, tonic::Status> {
    c.escalate_case(pb::EscalateCaseRequest {
        case_id: id.to_string(),
        mode: pb::EscalationMode::TakeOver as i32,
        reason: "提级办理".into(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn register(c: &mut Client, key: &str) -> String {
    c.register_case(register_request(key))
        .await
        .unwrap()
        .into_inner()
        .id
}

/// A township on a fixed port (so it can restart where its children look) and one village.
struct Pair {
    pki: Pki,
    root: tempfile::TempDir,
    town: NodeProc,
    village: NodeProc,
}

impl Pair {
    fn start() -> Pair {
        let pki = Pki::new();
        let root = tempfile::tempdir().unwrap();
        let town_opts = NodeOpts {
            federation_port: free_port(),
            ..NodeOpts::default()
        };
        let town = NodeProc::start_with(&pki, root.path(), TOWN, &town_opts);
        let village = NodeProc::start_with(
            &pki,
            root.path(),
            VILLAGE,
            &NodeOpts {
                parent: Some(town.federation_url()),
                ..NodeOpts::default()
            },
        );
        Pair {
            pki,
            root,
            town,
            village,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_crashes_after_committing_and_after_the_ack() {
    init();
    let mut p = Pair::start();
    for point in ["move-committed", "push-acked"] {
        // A clean stop first: the deletion of what the township acknowledged before is then
        // durable. (After a kill -9 a deletion read a moment before its sync may come back,
        // and the resent message, acknowledged again, would fire `push-acked` before the
        // escalation this round is about.)
        assert!(
            p.village.terminate(),
            "{point}: the village should stop cleanly"
        );
        p.village.restart_with_env(p.root.path(), &failpoint(point));
        let mut v = director(&p.pki, &p.village).await;
        let id = register(&mut v, point).await;
        // The move is acknowledged (push-acked) or the node dies answering (move-committed).
        let _ = escalate(&mut v, &id).await;
        assert!(
            p.village.wait_exit(SETTLE),
            "{point}: the village should abort"
        );
        p.village.restart_with_env(p.root.path(), &[]);
        let v = director(&p.pki, &p.village).await;
        let mut t = director(&p.pki, &p.town).await;
        exactly_once(&id, &mut t, TOWN, &mut [v.clone()], 1).await;
        // Before the next crash point: the village has deleted what the township acknowledged.
        drained(&v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_crashes_after_applying_before_answering() {
    init();
    let mut p = Pair::start();
    // Upward: the township dies after applying a push, before answering it.
    p.town
        .restart_with_env(p.root.path(), &failpoint("push-applied"));
    let mut v = director(&p.pki, &p.village).await;
    let id = register(&mut v, "up").await;
    escalate(&mut v, &id).await.unwrap();
    assert!(p.town.wait_exit(SETTLE), "the township should abort");
    p.town.restart_with_env(p.root.path(), &[]);
    let mut t = director(&p.pki, &p.town).await;
    exactly_once(&id, &mut t, TOWN, &mut [v.clone()], 1).await;
    drained(&v).await;

    // Downward: the village dies after applying a pulled batch, before acknowledging it.
    p.village
        .restart_with_env(p.root.path(), &failpoint("pull-applied"));
    let id = register(&mut t, "down").await;
    t.transfer_case(pb::TransferCaseRequest {
        case_id: id.clone(),
        to_node: VILLAGE.into(),
        reason: "交办".into(),
    })
    .await
    .unwrap();
    assert!(p.village.wait_exit(SETTLE), "the village should abort");
    p.village.restart_with_env(p.root.path(), &[]);
    let mut v = director(&p.pki, &p.village).await;
    exactly_once(&id, &mut v, VILLAGE, &mut [t.clone()], 1).await;
    // The township's queue for the village drains: the restarted village acknowledged.
    drained(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relaying_node_crashes_mid_forward() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let county = NodeProc::start(&pki, root.path(), COUNTY);
    let town_opts = NodeOpts {
        parent: Some(county.federation_url()),
        federation_port: free_port(),
        env: failpoint("forward-queued"),
        ..NodeOpts::default()
    };
    let mut town = NodeProc::start_with(&pki, root.path(), TOWN, &town_opts);
    let village = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            parent: Some(town.federation_url()),
            ..NodeOpts::default()
        },
    );
    linked(&pki, &town, TOWN, VILLAGE).await;
    let mut c = director(&pki, &county).await;
    let id = register(&mut c, "relay").await;
    c.transfer_case(pb::TransferCaseRequest {
        case_id: id.clone(),
        to_node: VILLAGE.into(),
        reason: "交办到村".into(),
    })
    .await
    .unwrap();
    assert!(
        town.wait_exit(SETTLE),
        "the township should abort mid-forward"
    );
    town.restart_with_env(root.path(), &[]);
    let mut v = director(&pki, &village).await;
    let t = director(&pki, &town).await;
    exactly_once(&id, &mut v, VILLAGE, &mut [c.clone(), t], 1).await;
    let h = v
        .get_case_history(pb::GetCaseRequest {
            case_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        h.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["registered", "transferred_out", "relayed", "received"]
    );
}
