//! End to end, negative: who may not connect, who may not act, and which inputs are refused —
//! each with its code, and nothing written.

mod support;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::*;
use tonic::Code;

const NODE: &str = "610116001";
const OTHER: &str = "610116002";

async fn count_cases(c: &mut CaseServiceClient<tonic::transport::Channel>) -> usize {
    list_all(c, pb::ListCasesRequest::default()).await.len()
}

/// A handshake that must fail: either connect fails or the first RPC does.
async fn refused_at_handshake(
    node: &NodeProc,
    ca: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) {
    match channel(node.listen, ca, identity).await {
        Err(_) => {}
        Ok(ch) => {
            let mut c = CaseServiceClient::new(ch);
            let err = c
                .list_cases(pb::ListCasesRequest::default())
                .await
                .expect_err("must be refused");
            // Under TLS 1.3 the client finishes its side of the handshake before the server
            // checks the client certificate, so the refusal (a TLS alert, then a closed
            // connection) surfaces on the first call as a transport failure — never as an
            // answer from the service.
            assert!(
                matches!(
                    err.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled
                ),
                "{err:?}"
            );
            assert!(
                std::error::Error::source(&err).is_some(),
                "the failure comes from the transport: {err:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_valid_certificate_are_refused_at_the_handshake() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), NODE);

    // No client certificate.
    refused_at_handshake(&node, &pki.ca(), None).await;

    // A certificate from another CA, for the right node and role.
    let foreign = Pki::new();
    let (fc, fk) = foreign.operator(NODE, "director", "mallory");
    refused_at_handshake(&node, &pki.ca(), Some((&fc, &fk))).await;

    // An expired certificate from the right CA.
    let now = time::OffsetDateTime::now_utc();
    let validity = fengqiao_node::pki::Validity {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
    };
    let code = fengqiao_node::code::NodeCode::parse(NODE).unwrap();
    let expired_dir = root.path().join("expired");
    std::fs::create_dir_all(&expired_dir).unwrap();
    for f in ["ca.pem", "ca.key"] {
        std::fs::copy(pki.dir.join(f), expired_dir.join(f)).unwrap();
    }
    let p = fengqiao_node::pki::issue_operator_with(
        &expired_dir,
        &code,
        fengqiao_node::identity::Role::Director,
        "old",
        validity,
    )
    .unwrap();
    refused_at_handshake(&node, &pki.ca(), Some((&p.cert, &p.key))).await;

    // And nothing was written by any of them.
    let mut ok = operator_client(&pki, &node, NODE, "auditor", "sun").await;
    assert_eq!(count_cases(&mut ok).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_certificates_for_the_wrong_node_or_role_are_permission_denied() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), NODE);
    let mut intake = operator_client(&pki, &node, NODE, "intake", "li").await;
    let case = intake
        .register_case(register_request("first"))
        .await
        .unwrap()
        .into_inner();

    // An operator of another node.
    let mut other = operator_client(&pki, &node, OTHER, "director", "zhou").await;
    let err = other
        .register_case(register_request("x1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = other
        .get_case(pb::GetCaseRequest {
            case_id: case.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A node certificate on the operator API.
    let (nc, nk) = pki.node(NODE);
    let mut as_node = CaseServiceClient::new(
        channel(node.listen, &pki.ca(), Some((&nc, &nk)))
            .await
            .unwrap(),
    );
    let err = as_node
        .list_cases(pb::ListCasesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Roles: an auditor writes nothing; a mediator may not reject; intake may not resolve.
    let mut auditor = operator_client(&pki, &node, NODE, "auditor", "sun").await;
    let err = auditor
        .register_case(register_request("x2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut mediator = operator_client(&pki, &node, NODE, "mediator", "wang").await;
    let err = mediator
        .review_case(pb::ReviewCaseRequest {
            case_id: case.id.clone(),
            accept: false,
            reason: "r".into(),
            guidance: "g".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = intake
        .resolve_case(pb::ResolveCaseRequest {
            case_id: case.id.clone(),
            resolved: false,
            agreement: "去法院".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Nothing changed.
    assert_eq!(count_cases(&mut auditor).await, 1);
    let h = auditor
        .get_case_history(pb::GetCaseRequest {
            case_id: case.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.events.len(), 1);
    let now = auditor
        .get_case(pb::GetCaseRequest { case_id: case.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.status, pb::CaseStatus::Registered as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_invalid_argument_naming_the_field_and_writes_nothing() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), NODE);
    let mut intake = operator_client(&pki, &node, NODE, "intake", "li").await;

    type Mutate = fn(&mut pb::RegisterCaseRequest);
    let cases: Vec<(&str, Mutate)> = vec![
        ("summary", |r| r.summary = String::new()),
        ("summary", |r| r.summary = "   ".into()),
        ("summary", |r| r.summary = "纠".repeat(201)),
        ("description", |r| r.description = "述".repeat(5001)),
        ("amount_fen", |r| r.amount_fen = -1),
        ("parties", |r| r.parties = vec![r.parties[0].clone(); 21]),
        ("category", |r| r.category = 0),
        ("category", |r| r.category = 99),
        ("channel", |r| r.channel = 42),
        ("risk", |r| r.risk = 0),
        ("role", |r| r.parties[0].role = 17),
        ("id_number", |r| r.parties[0].id_number = "12345".into()),
        ("phone", |r| r.parties[0].phone = "call me".into()),
        ("idempotency_key", |r| r.idempotency_key = String::new()),
    ];
    for (field, mutate) in cases {
        let mut req = register_request("bad");
        mutate(&mut req);
        let err = intake.register_case(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().contains(field),
            "message for {field} should name it: {}",
            err.message()
        );
    }
    // A malformed division code in an operator's own certificate cannot be issued at all.
    let (code, _, err) = fqctl(&[
        "pki",
        "operator",
        "61011",
        "intake",
        "x",
        "--dir",
        pki.dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("division code") || err.contains("code"),
        "{err}"
    );

    // Unknown enum in a filter.
    let err = intake
        .list_cases(pb::ListCasesRequest {
            status: 77,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = intake
        .list_cases(pb::ListCasesRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Over the message size limit (1 MiB by default): refused.
    let mut huge = register_request("huge");
    huge.description = "x".repeat(2 << 20);
    let err = intake.register_case(huge).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    assert!(
        matches!(
            err.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "{err:?}"
    );

    // Nothing of it was written; the node still works.
    assert_eq!(count_cases(&mut intake).await, 0);
    intake
        .register_case(register_request("good"))
        .await
        .unwrap();
    assert_eq!(count_cases(&mut intake).await, 1);
}
