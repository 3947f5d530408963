//! End to end: the whole life of a case on a real `fqnode` over mutual TLS, with operator
//! certificates made by `fqctl pki`.

mod support;

use fengqiao_proto::v1 as pb;
use support::*;
use tonic::Code;

const NODE: &str = "610116001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_lives_from_registration_to_closure() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), NODE);
    let mut intake = operator_client(&pki, &node, NODE, "intake", "li").await;
    let mut mediator = operator_client(&pki, &node, NODE, "mediator", "wang").await;
    let mut director = operator_client(&pki, &node, NODE, "director", "zhao").await;

    // 登记受理
    let c = intake
        .register_case(register_request("walk-in-0001"))
        .await
        .unwrap()
        .into_inner();
    assert!(c.id.starts_with(&format!("{NODE}-")), "{}", c.id);
    assert_eq!(c.id.len(), NODE.len() + 1 + 8 + 1 + 6, "{}", c.id);
    assert_eq!(c.status, pb::CaseStatus::Registered as i32);
    assert_eq!(c.owner_node, NODE);
    assert_eq!(c.origin_node, NODE);
    assert_eq!(c.epoch, 1);
    assert_eq!(c.amount_fen, 440_000);
    assert!(!c.lookup_code.is_empty());
    assert!(c.review_due_at.is_some());
    // Intake may see personal data in full.
    assert_eq!(c.parties[0].id_number, "610102199001011234");

    // Same idempotency key: the original case, nothing new.
    let again = intake
        .register_case(register_request("walk-in-0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, c.id);
    let listed = intake
        .list_cases(pb::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1);
    // Listings always mask personal data.
    assert_eq!(listed.cases[0].parties[0].id_number, "6101**********1234");
    assert_eq!(listed.cases[0].parties[0].phone, "138****5678");

    // A mediator cannot resolve an unreviewed case: FAILED_PRECONDITION naming the status.
    let err = mediator
        .resolve_case(pb::ResolveCaseRequest {
            case_id: c.id.clone(),
            resolved: true,
            agreement: "x".into(),
            settled_amount_fen: 0,
            confirmation: pb::Confirmation::None as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("registered") || err.message().contains("未审核"),
        "{}",
        err.message()
    );

    // 审核通过 → 待办理
    let c = intake
        .review_case(pb::ReviewCaseRequest {
            case_id: c.id.clone(),
            accept: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::CaseStatus::Accepted as i32);
    assert!(c.resolve_due_at.is_some());

    // 派单
    let c = intake
        .assign_case(pb::AssignCaseRequest {
            case_id: c.id.clone(),
            handler: "人社所 王调解员".into(),
            due_at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.handler, "人社所 王调解员");

    // 调解: two rounds
    for result in [pb::MediationResult::Continuing, pb::MediationResult::Agreed] {
        let c2 = mediator
            .record_mediation(pb::RecordMediationRequest {
                case_id: c.id.clone(),
                method: pb::MediationMethod::Phone as i32,
                mediation_type: pb::MediationType::Peoples as i32,
                mediator: "王调解员".into(),
                notes: "电话沟通双方".into(),
                result: result as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(c2.status, pb::CaseStatus::InMediation as i32);
    }

    // 化解
    let c = mediator
        .resolve_case(pb::ResolveCaseRequest {
            case_id: c.id.clone(),
            resolved: true,
            agreement: "被申请人当场微信转账支付欠薪 4400 元".into(),
            settled_amount_fen: 440_000,
            confirmation: pb::Confirmation::Judicial as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::CaseStatus::Resolved as i32);
    assert_eq!(c.settled_amount_fen, 440_000);

    // 回访 dissatisfied: back to work, a reopen.
    let c = intake
        .record_follow_up(pb::RecordFollowUpRequest {
            case_id: c.id.clone(),
            satisfaction: 2,
            notes: "款项未全部到账".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::CaseStatus::InMediation as i32);
    assert_eq!(c.reopen_count, 1);

    let c = director
        .resolve_case(pb::ResolveCaseRequest {
            case_id: c.id.clone(),
            resolved: true,
            agreement: "补足余款".into(),
            settled_amount_fen: 440_000,
            confirmation: pb::Confirmation::None as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let c = intake
        .record_follow_up(pb::RecordFollowUpRequest {
            case_id: c.id.clone(),
            satisfaction: 5,
            notes: "满意".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::CaseStatus::Closed as i32);

    // A closed case takes no more commands.
    let err = intake
        .record_follow_up(pb::RecordFollowUpRequest {
            case_id: c.id.clone(),
            satisfaction: 5,
            notes: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // The history: every change, in order, never rewritten.
    let h = intake
        .get_case_history(pb::GetCaseRequest {
            case_id: c.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "registered",
            "accepted",
            "assigned",
            "mediation",
            "mediation",
            "resolved",
            "reopened",
            // By rule, a reopened case is put under the parent's supervision.
            "supervision_opened",
            "resolved",
            "follow_up_closed"
        ]
    );
    for (i, e) in h.events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.node, NODE);
        assert!(e.actor.starts_with("spiffe://fengqiao/op/"), "{}", e.actor);
        assert!(!e.detail.contains("610102199001011234") && !e.detail.contains("13812345678"));
    }
    assert_eq!(h.events[1].from_status, pb::CaseStatus::Registered as i32);
    assert_eq!(h.events[1].to_status, pb::CaseStatus::Accepted as i32);

    // An auditor reads, but personal data stays masked even in GetCase.
    let mut auditor = operator_client(&pki, &node, NODE, "auditor", "sun").await;
    let seen = auditor
        .get_case(pb::GetCaseRequest {
            case_id: c.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.parties[0].id_number, "6101**********1234");
    assert_eq!(seen.status, pb::CaseStatus::Closed as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_case_carries_reason_and_guidance() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), NODE);
    let mut intake = operator_client(&pki, &node, NODE, "intake", "li").await;
    let mut director = operator_client(&pki, &node, NODE, "director", "zhao").await;
    let c = intake
        .register_case(register_request("online-7"))
        .await
        .unwrap()
        .into_inner();

    // Rejecting without guidance is refused and changes nothing.
    let err = director
        .review_case(pb::ReviewCaseRequest {
            case_id: c.id.clone(),
            accept: false,
            reason: "不属本辖区".into(),
            guidance: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("guidance"), "{}", err.message());

    let c = director
        .review_case(pb::ReviewCaseRequest {
            case_id: c.id.clone(),
            accept: false,
            reason: "不属本辖区".into(),
            guidance: "请到户籍所在地乡镇综治中心申请调解".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::CaseStatus::Rejected as i32);
    assert_eq!(c.guidance, "请到户籍所在地乡镇综治中心申请调解");

    // Filters and pages.
    for i in 0..7 {
        intake
            .register_case(register_request(&format!("k{i}")))
            .await
            .unwrap();
    }
    let rejected = intake
        .list_cases(pb::ListCasesRequest {
            status: pb::CaseStatus::Rejected as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejected.cases.len(), 1);
    let mut seen = std::collections::BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = intake
            .list_cases(pb::ListCasesRequest {
                status: pb::CaseStatus::Registered as i32,
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.cases.len() <= 3);
        for c in page.cases {
            assert!(seen.insert(c.id), "a case appeared on two pages");
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_grpc_tooling_works_health_and_reflection() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), NODE);
    let (cert, key) = pki.operator(NODE, "auditor", "sun");
    let ch = channel(node.listen, &pki.ca(), Some((&cert, &key)))
        .await
        .unwrap();

    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "fengqiao.v1.CaseService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream
        .message()
        .await
        .unwrap()
        .expect("a reflection answer");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer: {msg:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "fengqiao.v1.CaseService"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
}
