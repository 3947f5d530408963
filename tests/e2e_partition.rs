//! End to end: a village escalates 1,000 cases to its township while a fault-injecting proxy
//! between them drops, stalls and cuts the link. After repair exactly 1,000 cases are owned by
//! the township, each received once, every village record is a tombstone pointing there, and
//! the queues are empty.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::proxy::Proxy;
use support::*;
use tonic::transport::Channel;

const TOWN: &str = "610116001";
const VILLAGE: &str = "610116001001";
const CASES: usize = 1000;
const WORKERS: usize = 16;

type Client = CaseServiceClient<Channel>;

async fn all_cases(c: &mut Client) -> Vec<pb::Case> {
    list_all(c, pb::ListCasesRequest::default()).await
}

/// Runs `op` for every index on `WORKERS` tasks.
async fn in_parallel<F, Fut>(client: &Client, n: usize, op: F) -> Vec<String>
where
    F: Fn(Client, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = String> + Send,
{
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (c, op) = (client.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (w..n).step_by(WORKERS) {
                out.push(op(c.clone(), i).await);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_escalations_cross_a_faulty_link_exactly_once() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let town = NodeProc::start(&pki, root.path(), TOWN);
    let proxy = Proxy::start(town.federation_listen).await;
    let village = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            parent: Some(proxy.url()),
            ..NodeOpts::default()
        },
    );
    let v = operator_client(&pki, &village, VILLAGE, "director", "boss").await;
    let mut t = operator_client(&pki, &town, TOWN, "director", "boss").await;

    let ids = in_parallel(&v, CASES, |mut c, i| async move {
        c.register_case(register_request(&format!("p-{i}")))
            .await
            .unwrap()
            .into_inner()
            .id
    })
    .await;
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), CASES);

    // Chaos while escalating: a bounded cycle of drop, stall and cut.
    let done = Arc::new(AtomicBool::new(false));
    let chaos_over = Arc::new(AtomicBool::new(false));
    let proxy = Arc::new(proxy);
    let chaos = {
        let (proxy, done, over) = (proxy.clone(), done.clone(), chaos_over.clone());
        tokio::spawn(async move {
            let pause = || tokio::time::sleep(Duration::from_millis(150));
            for round in 0..200 {
                if done.load(Ordering::SeqCst) && round >= 6 {
                    break;
                }
                match round % 3 {
                    0 => proxy.drop_connections(),
                    1 => proxy.stall(),
                    _ => proxy.cut(),
                }
                pause().await;
                proxy.heal();
                pause().await;
            }
            over.store(true, Ordering::SeqCst);
        })
    };
    // Watch the village's link while the chaos runs (at least two rounds of each fault, however
    // fast the escalations are made): the faults must be seen.
    let saw_fault = {
        let (over, mut vc) = (chaos_over.clone(), v.clone());
        tokio::spawn(async move {
            let mut seen = false;
            while !over.load(Ordering::SeqCst) {
                if let Ok(l) = vc.get_links(pb::GetLinksRequest {}).await {
                    seen |= l.into_inner().links.iter().any(|k| {
                        k.state == pb::LinkState::BackingOff as i32 || !k.last_error.is_empty()
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    let ids = Arc::new(ids);
    let list = ids.clone();
    let tombs = in_parallel(&v, CASES, move |mut c, i| {
        let id = list[i].clone();
        async move {
            let tomb = c
                .escalate_case(pb::EscalateCaseRequest {
                    case_id: id,
                    mode: pb::EscalationMode::TakeOver as i32,
                    reason: "提级办理".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(tomb.status, pb::CaseStatus::Transferred as i32);
            tomb.moved_to
        }
    })
    .await;
    assert!(tombs.iter().all(|m| m == TOWN));
    done.store(true, Ordering::SeqCst);
    chaos.await.unwrap();
    assert!(
        saw_fault.await.unwrap(),
        "the proxy's faults should show on the link"
    );
    proxy.heal();

    // After repair everything lands, once.
    let owned = eventually(
        "1,000 cases at the township",
        Duration::from_secs(180),
        || {
            let mut t = t.clone();
            async move {
                let cases = all_cases(&mut t).await;
                (cases.len() >= CASES).then_some(cases)
            }
        },
    )
    .await;
    assert_eq!(owned.len(), CASES, "no duplicates");
    let expected: HashSet<&String> = ids.iter().collect();
    for c in &owned {
        assert!(expected.contains(&c.id), "{}", c.id);
        assert_eq!(c.owner_node, TOWN);
        assert_eq!(c.status, pb::CaseStatus::Registered as i32);
        assert_eq!(c.epoch, 2);
    }
    let mut vc = v.clone();
    let at_village = all_cases(&mut vc).await;
    assert_eq!(at_village.len(), CASES);
    assert!(
        at_village
            .iter()
            .all(|c| c.status == pb::CaseStatus::Transferred as i32 && c.moved_to == TOWN)
    );
    for id in ids.iter().step_by(97) {
        let h = t
            .get_case_history(pb::GetCaseRequest {
                case_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        // Risk rules may add events of their own (the same applicant in many cases raises the
        // risk); the move is in the history exactly once, and last but for what the colour
        // rule records at the township (an orange case taken over by it needs no supervision).
        let kinds: Vec<&str> = h.iter().map(|e| e.kind.as_str()).collect();
        let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
        assert_eq!(
            (count("escalated"), count("received")),
            (1, 1),
            "{id}: {kinds:?}"
        );
        let received = kinds.iter().position(|k| *k == "received").unwrap();
        assert!(
            h[received + 1..]
                .iter()
                .all(|e| e.kind == "supervision_closed" && e.node == TOWN),
            "{id}: {kinds:?}"
        );
    }
    // The village's queue drains and the link reports healthy.
    eventually(
        "the village's queue drains",
        Duration::from_secs(60),
        || {
            let mut vc = v.clone();
            async move {
                let l = vc
                    .get_links(pb::GetLinksRequest {})
                    .await
                    .ok()?
                    .into_inner();
                let p = l
                    .links
                    .into_iter()
                    .find(|k| k.role == pb::LinkRole::Parent as i32)?;
                (p.queue_out == 0 && p.state == pb::LinkState::Connected as i32).then_some(())
            }
        },
    )
    .await;
}
