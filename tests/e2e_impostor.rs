//! End to end, negative: nodes and people who must not be let in. A village certificate
//! linking straight to a county, a village speaking for another village or for a case it does
//! not own, a node certificate on the operator API and an operator certificate on the
//! federation API are all refused, and nothing changes.

mod support;

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use pb::federation_service_client::FederationServiceClient;
use support::*;
use tonic::Code;
use tonic::transport::Channel;

const COUNTY: &str = "610116";
const TOWN: &str = "610116001";
const V1: &str = "610116001001";
const V2: &str = "610116001002";

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// A well-formed transfer of a case owned (per the message) by `owner`, sent by `origin`.
fn transfer(origin: &str, owner: &str, to: &str) -> pb::Envelope {
    let case = pb::Case {
        id: format!("{owner}-20250101-000001"),
        lookup_code: "ABCD-EFGH-JKMN".into(),
        status: pb::CaseStatus::Registered as i32,
        owner_node: owner.into(),
        origin_node: owner.into(),
        epoch: 1,
        category: pb::Category::Labor as i32,
        channel: pb::Channel::WalkIn as i32,
        risk: pb::RiskLevel::Blue as i32,
        summary: "伪造".into(),
        created_at: ts(1_735_660_800),
        updated_at: ts(1_735_660_800),
        review_due_at: ts(1_735_920_000),
        ..Default::default()
    };
    let event = pb::CaseEvent {
        seq: 1,
        at: ts(1_735_660_800),
        node: owner.into(),
        actor: "x".into(),
        kind: "registered".into(),
        from_status: 0,
        to_status: pb::CaseStatus::Registered as i32,
        detail: String::new(),
    };
    pb::Envelope {
        link_seq: 1,
        origin: origin.into(),
        origin_seq: 1,
        destination: to.into(),
        sent_at: ts(1_735_660_800),
        withheld: String::new(),
        prev_seq: None,
        body: Some(pb::envelope::Body::Transfer(pb::CaseTransfer {
            case: Some(case),
            history: vec![event],
            epoch: 2,
            kind: pb::TransferKind::TakeOver as i32,
            reason: "伪造".into(),
            rule_supervision: Vec::new(),
        })),
    }
}

async fn federation_client(
    pki: &Pki,
    target: &NodeProc,
    cert: (std::path::PathBuf, std::path::PathBuf),
) -> FederationServiceClient<Channel> {
    let ch = channel(
        target.federation_listen,
        &pki.ca(),
        Some((&cert.0, &cert.1)),
    )
    .await
    .expect("connect");
    FederationServiceClient::new(ch)
}

async fn push(
    c: &mut FederationServiceClient<Channel>,
    envelopes: Vec<pb::Envelope>,
) -> Result<pb::PushResponse, tonic::Status> {
    c.push(pb::PushRequest {
        messages: envelopes,
        queue_depth: 0,
        from_seq: None,
        resync: String::new(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn nothing_changed(pki: &Pki, node: &NodeProc) {
    let mut c = operator_client(pki, node, &node.code, "auditor", "sun").await;
    let cases = c
        .list_cases(pb::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert!(cases.is_empty(), "{cases:?}");
    let links = c
        .get_links(pb::GetLinksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        links
            .links
            .iter()
            .all(|l| l.role != pb::LinkRole::Child as i32),
        "no child link was recorded: {links:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_village_cannot_link_straight_to_a_county() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let county = NodeProc::start(&pki, root.path(), COUNTY);

    // Server side: the county refuses the village's certificate on both calls.
    let mut c = federation_client(&pki, &county, pki.node(V1)).await;
    let err = push(&mut c, vec![transfer(V1, V1, COUNTY)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = c
        .pull(pb::PullRequest {
            applied_through: 0,
            max_messages: 10,
            wait_ms: 0,
            queue_depth: 0,
            refused: Vec::new(),
            crl_number: 0,
            poll_seq: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Client side: a village configured with the county as parent refuses it (wrong identity)
    // and says so in its link state.
    let village = NodeProc::start_with(
        &pki,
        root.path(),
        V1,
        &NodeOpts {
            parent: Some(county.federation_url()),
            ..NodeOpts::default()
        },
    );
    let mut v = operator_client(&pki, &village, V1, "director", "boss").await;
    let case = v
        .register_case(register_request("k"))
        .await
        .unwrap()
        .into_inner();
    v.escalate_case(pb::EscalateCaseRequest {
        case_id: case.id.clone(),
        mode: pb::EscalationMode::TakeOver as i32,
        reason: "x".into(),
    })
    .await
    .unwrap();
    let link = eventually(
        "the village to report the refused parent",
        Duration::from_secs(60),
        || {
            let mut v = v.clone();
            async move {
                let l = v.get_links(pb::GetLinksRequest {}).await.ok()?.into_inner();
                l.links
                    .into_iter()
                    .find(|k| k.role == pb::LinkRole::Parent as i32 && !k.last_error.is_empty())
            }
        },
    )
    .await;
    assert_eq!(link.peer, TOWN);
    assert_eq!(link.state, pb::LinkState::BackingOff as i32);
    assert_eq!(link.queue_out, 1, "the escalation waits, undelivered");
    assert!(link.oldest_undelivered_at.is_some());
    nothing_changed(&pki, &county).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_village_cannot_pose_as_another_or_move_cases_it_does_not_own() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let town = NodeProc::start(&pki, root.path(), TOWN);
    let mut c = federation_client(&pki, &town, pki.node(V1)).await;

    // Messages claiming to come from the sibling village, and the village's own name on a case
    // the message itself says the sibling owns: each is refused on its own (the link moves on),
    // and a good message in the same batch is applied.
    let mut forged_origin = transfer(V2, V2, TOWN);
    forged_origin.link_seq = 1;
    let mut forged_owner = transfer(V1, V2, TOWN);
    forged_owner.link_seq = 2;
    let r = push(&mut c, vec![forged_origin, forged_owner])
        .await
        .unwrap();
    assert_eq!(r.applied_through, 2, "the link moves past refused messages");
    let kinds: Vec<_> = r.refused.iter().map(|x| (x.link_seq, x.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, pb::RefusalKind::Forbidden as i32),
            (2, pb::RefusalKind::Forbidden as i32)
        ]
    );
    // Link seqs that do not ascend refuse the whole batch.
    let mut a = transfer(V1, V1, TOWN);
    a.link_seq = 4;
    let mut b = transfer(V1, V1, TOWN);
    b.link_seq = 3;
    let err = push(&mut c, vec![a, b]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // A message of a kind this version does not know, and one its sender withheld as too
    // large: each moves the link on, and the receiver shows it as an alert.
    let mut unknown = transfer(V1, V1, TOWN);
    unknown.link_seq = 3;
    unknown.body = None;
    let mut withheld = transfer(V1, V1, TOWN);
    withheld.link_seq = 4;
    withheld.body = None;
    withheld.withheld = "超出大小限制".into();
    let r = push(&mut c, vec![unknown, withheld]).await.unwrap();
    assert_eq!(r.applied_through, 4, "the link moves past both");
    let kinds: Vec<_> = r.refused.iter().map(|x| (x.link_seq, x.kind)).collect();
    assert_eq!(kinds, [(3, pb::RefusalKind::Unknown as i32)]);
    let mut op = operator_client(&pki, &town, TOWN, "auditor", "sun").await;
    let cases = op
        .list_cases(pb::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert!(cases.is_empty(), "{cases:?}");
    let alerts = op
        .list_alerts(pb::ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let security = alerts.iter().filter(|a| a.kind == "security").count();
    assert_eq!(
        security, 3,
        "two messages and one batch refused: {alerts:?}"
    );
    let not_received: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == "undelivered")
        .map(|a| a.message.as_str())
        .collect();
    assert_eq!(not_received.len(), 2, "{alerts:?}");
    assert!(
        not_received
            .iter()
            .all(|m| m.contains(V1) && m.contains("未能接收")),
        "{not_received:?}"
    );

    // A node configured with another village's code but presenting its own certificate does
    // not start.
    let (cert, key) = pki.node(V1);
    let config = root.path().join("impostor.toml");
    std::fs::write(
        &config,
        format!(
            "code = \"{V2}\"\nlisten = \"127.0.0.1:0\"\nfederation_listen = \"127.0.0.1:0\"\n\
             parent = \"{}\"\ndata_dir = \"{}\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            town.federation_url(),
            root.path().join("impostor-data").display(),
            pki.ca().display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(FQNODE)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("node/{V1}")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_api_refuses_the_other_kind_of_certificate() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let town = NodeProc::start(&pki, root.path(), TOWN);

    // A node certificate (even the node's own child) on the operator API.
    let (cert, key) = pki.node(V1);
    let ch = channel(town.listen, &pki.ca(), Some((&cert, &key)))
        .await
        .unwrap();
    let mut ops = CaseServiceClient::new(ch);
    let err = ops.register_case(register_request("n")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = ops.get_links(pb::GetLinksRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // An operator certificate — the township's own director — on the federation API.
    let mut fed = federation_client(&pki, &town, pki.operator(TOWN, "director", "boss")).await;
    let err = push(&mut fed, vec![transfer(V1, V1, TOWN)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("op/"), "{}", err.message());
    nothing_changed(&pki, &town).await;
}

/// Test-only settings never reach a production node by accident: a shifted clock or a crash
/// point stops the start unless FENGQIAO_TEST_MODE=1 says this is a test or a drill.
#[test]
fn test_only_settings_are_refused_outside_a_test() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let config = write_config(
        &pki,
        root.path(),
        TOWN,
        &NodeOpts {
            extra: "clock_offset = \"1h\"\n".into(),
            ..NodeOpts::default()
        },
    );
    // `extra` lands after [tls]: move the key to the top, where it belongs.
    let body = std::fs::read_to_string(&config).unwrap();
    let body = format!(
        "clock_offset = \"1h\"\n{}",
        body.replace("clock_offset = \"1h\"\n", "")
    );
    std::fs::write(&config, body).unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(FQNODE);
        c.arg("--config")
            .arg(&config)
            .env_remove("FENGQIAO_TEST_MODE");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("clock_offset") && stderr.contains("FENGQIAO_TEST_MODE"),
        "{stderr}"
    );

    let plain = write_config(&pki, root.path(), TOWN, &NodeOpts::default());
    let out = std::process::Command::new(FQNODE)
        .arg("--config")
        .arg(&plain)
        .env_remove("FENGQIAO_TEST_MODE")
        .env("FENGQIAO_FAILPOINTS", "push-applied")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FENGQIAO_FAILPOINTS"), "{stderr}");
}
