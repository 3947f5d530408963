//! End to end, negative: a compromised village. Using only its own node certificate, village
//! 1 pushes its township every kind of message about a case of its sibling, village 2 — a
//! redirect of an order the township never issued, a close of the township's supervised copy,
//! a transfer, a refusal, a supervision copy, an order, an alert and a person sighting. Each
//! is refused on its own (FORBIDDEN), the link moves on, the township raises a security alert
//! for each, and nothing changes: the sibling's case stays where it is, the copy stays.

mod support;

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::envelope::Body as B;
use pb::federation_service_client::FederationServiceClient;
use support::*;

const TOWN: &str = "610116001";
const V1: &str = "610116001001";
const V2: &str = "610116001002";
const SETTLE: Duration = Duration::from_secs(60);

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn envelope(seq: u64, destination: &str, body: B) -> pb::Envelope {
    pb::Envelope {
        link_seq: seq,
        origin: V1.into(),
        origin_seq: 1000 + seq,
        destination: destination.into(),
        sent_at: ts(1_796_083_200),
        withheld: String::new(),
        prev_seq: None,
        body: Some(body),
    }
}

/// The sibling's case as the forger presents it: owned by the forger.
fn stolen(case: &pb::Case) -> pb::Case {
    pb::Case {
        owner_node: V1.into(),
        ..case.clone()
    }
}

fn event(seq: u64) -> pb::CaseEvent {
    pb::CaseEvent {
        seq,
        at: ts(1_796_083_200),
        node: V1.into(),
        actor: format!("spiffe://fengqiao/op/{V1}/director/mallory"),
        kind: "registered".into(),
        from_status: 0,
        to_status: pb::CaseStatus::Registered as i32,
        detail: String::new(),
    }
}

fn order(case_id: &str) -> pb::CaseOrder {
    pb::CaseOrder {
        case_id: case_id.into(),
        order_id: 0x5eed,
        actor: format!("spiffe://fengqiao/op/{TOWN}/director/zhang"),
        redirects: 0,
        kind: Some(pb::case_order::Kind::Transfer(pb::TransferOrder {
            to_node: V1.into(),
            reason: "伪造".into(),
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_village_key_cannot_touch_its_siblings_case() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let town = NodeProc::start(&pki, root.path(), TOWN);
    let v2 = NodeProc::start_with(
        &pki,
        root.path(),
        V2,
        &NodeOpts {
            parent: Some(town.federation_url()),
            ..NodeOpts::default()
        },
    );
    let mut sibling = operator_client(&pki, &v2, V2, "director", "li").await;
    let mut township = operator_client(&pki, &town, TOWN, "director", "zhang").await;

    // The sibling's case, supervised by the township (提级督办): the township holds its copy.
    let case = sibling
        .register_case(register_request("sibling"))
        .await
        .unwrap()
        .into_inner();
    sibling
        .escalate_case(pb::EscalateCaseRequest {
            case_id: case.id.clone(),
            mode: pb::EscalationMode::Supervise as i32,
            reason: "需乡镇督办".into(),
        })
        .await
        .unwrap();
    let copy = eventually("the township's copy", SETTLE, || {
        let mut t = township.clone();
        let id = case.id.clone();
        async move {
            let c = t.get_case(pb::GetCaseRequest { case_id: id }).await.ok()?;
            Some(c.into_inner()).filter(|c| c.owner_node == V2)
        }
    })
    .await;
    let before = get(&mut sibling, &case.id).await;

    // Village 1's key, pushing forged messages about the sibling's case.
    let (cert, key) = pki.node(V1);
    let ch = channel(town.federation_listen, &pki.ca(), Some((&cert, &key)))
        .await
        .unwrap();
    let mut forger = FederationServiceClient::new(ch);
    let id = case.id.clone();
    let forged = vec![
        (
            "order_redirect",
            B::Redirect(pb::OrderRedirect {
                order: Some(order(&id)),
                moved_to: V2.into(),
            }),
            TOWN,
        ),
        (
            "supervision_close",
            B::Close(pb::SupervisionClose {
                case_id: id.clone(),
                epoch: u64::MAX,
            }),
            TOWN,
        ),
        (
            "transfer",
            B::Transfer(pb::CaseTransfer {
                case: Some(stolen(&before)),
                history: vec![event(1)],
                epoch: 9,
                kind: pb::TransferKind::TakeOver as i32,
                reason: "伪造".into(),
                rule_supervision: Vec::new(),
            }),
            TOWN,
        ),
        (
            "transfer_refused",
            B::Refused(pb::TransferRefused {
                case: Some(stolen(&before)),
                history: vec![event(1)],
                epoch: 9,
                reason: "伪造".into(),
                intended_owner: V1.into(),
                rule_supervision: Vec::new(),
            }),
            TOWN,
        ),
        (
            "supervision_sync",
            B::Sync(pb::SupervisionSync {
                case: Some(stolen(&before)),
                history: vec![event(1)],
                rule_supervision: Vec::new(),
                history_from: 0,
            }),
            TOWN,
        ),
        ("order", B::Order(order(&id)), V2),
        (
            "alert",
            B::Alert(pb::ForwardedAlert {
                key: format!("reopened/{id}/1"),
                alert: Some(pb::Alert {
                    kind: "reopened".into(),
                    case_ids: vec![id.clone()],
                    node: V1.into(),
                    raised_at: ts(1_796_083_200),
                    message: "伪造".into(),
                }),
            }),
            TOWN,
        ),
        (
            "person_sighting",
            B::Sighting(pb::PersonSighting {
                person: vec![7; 16],
                case_id: id.clone(),
                registered_at: ts(1_796_083_200),
                node: V1.into(),
            }),
            TOWN,
        ),
    ];
    let kinds: Vec<&str> = forged.iter().map(|(k, _, _)| *k).collect();
    let messages: Vec<_> = forged
        .into_iter()
        .zip(1u64..)
        .map(|((_, body, to), seq)| envelope(seq, to, body))
        .collect();
    let answer = forger
        .push(pb::PushRequest {
            messages,
            queue_depth: 0,
            from_seq: None,
            resync: String::new(),
        })
        .await
        .expect("the batch is taken, each message on its own")
        .into_inner();
    assert_eq!(answer.applied_through, 8, "the link moves on");
    let refused: Vec<(u64, i32)> = answer
        .refused
        .iter()
        .map(|r| (r.link_seq, r.kind))
        .collect();
    let expected: Vec<(u64, i32)> = (1..=8)
        .map(|s| (s, pb::RefusalKind::Forbidden as i32))
        .collect();
    assert_eq!(refused, expected, "{:?}", answer.refused);

    // A security alert for each, naming the message kind.
    let alerts = township
        .list_alerts(pb::ListAlertsRequest {})
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let security: Vec<_> = alerts.iter().filter(|a| a.kind == "security").collect();
    assert_eq!(security.len(), 8, "{alerts:?}");
    for kind in kinds {
        assert!(
            security.iter().any(|a| a.message.contains(kind)),
            "no alert for {kind}: {security:?}"
        );
    }

    // Nothing changed: the copy is still the township's, the case still the sibling's, no
    // order reached it, no case appeared at the township.
    let still = get(&mut township, &id).await;
    assert_eq!(still.owner_node, V2);
    assert_eq!(still, copy, "the copy is untouched");
    let after = get(&mut sibling, &id).await;
    assert_eq!(after.owner_node, V2);
    assert_eq!(after.status, before.status);
    assert_eq!(after.updated_at, before.updated_at);
    let listed = list_all(&mut township, pb::ListCasesRequest::default()).await;
    assert!(listed.is_empty(), "{listed:?}");
}
