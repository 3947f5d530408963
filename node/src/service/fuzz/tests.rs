//! The property tests of the operator API: for every RPC, a harness of its own, then
//! [`STRUCTURED`] requests built field by field and [`ENCODED`] byte strings (anything, or a
//! mangled encoding of a request) through [`Harness::check`]; then [`MIXED`] requests of any
//! RPC in sequence on one harness. `PROPTEST_CASES` replaces every budget (a longer run: see
//! docs/fuzzing.md).

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use prost::Message as _;

use super::rpcs::*;
use super::{Caller, Harness, Outcome, RPCS, Rpc, generate};
use crate::identity::Role;
use fengqiao_proto::v1::case_service_server::CaseService as _;

/// Requests built field by field, per RPC.
const STRUCTURED: u32 = 64;
/// Byte strings, per RPC.
const ENCODED: u32 = 64;
/// Requests of any RPC, one after the other on one harness.
const MIXED: u32 = 256;

/// `cases`, unless `PROPTEST_CASES` says otherwise.
fn budget(cases: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: budget(cases),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    })
}

/// Runs `R`'s properties on a harness of its own; returns how its requests ended.
fn run<R: Rpc>(structured: BoxedStrategy<R::Req>) -> Harness {
    let h = Harness::new();
    let fail = TestCaseError::fail;
    let inputs = (generate::caller(), generate::aim(), structured.clone());
    if let Err(e) = runner(STRUCTURED).run(&inputs, |(who, aim, req)| {
        h.check::<R>(who, req, aim).map(drop).map_err(fail)
    }) {
        panic!("{}, requests built field by field: {e}", R::NAME);
    }
    let inputs = (
        generate::caller(),
        generate::aim(),
        generate::bytes(structured),
    );
    if let Err(e) = runner(ENCODED).run(&inputs, |(who, aim, bytes)| {
        h.check_bytes::<R>(who, aim, &bytes).map(drop).map_err(fail)
    }) {
        panic!("{}, encoded requests: {e}", R::NAME);
    }
    eprintln!("{}: {:?}", R::NAME, h.tally());
    h
}

/// How many of `R`'s requests were accepted.
fn accepted<R: Rpc>(h: &Harness) -> usize {
    h.tally()
        .get(&(R::NAME, Outcome::Accepted))
        .copied()
        .unwrap_or(0)
}

/// One test per RPC. `reaches`: the generators get requests past validation (a run where
/// none was accepted would test refusals only).
macro_rules! properties {
    ($($test:ident: $rpc:ident = $gen:ident $(, $reach:ident)?;)+) => {
        $(
            #[test]
            fn $test() {
                let h = run::<$rpc>(generate::$gen());
                properties!(@reaches h, $rpc $(, $reach)?);
            }
        )+

        /// The RPCs the properties cover, by name.
        const COVERED: &[&str] = &[$(<$rpc as Rpc>::NAME,)+];

        /// A request of any RPC, built field by field and encoded, with its RPC's name.
        fn any_request() -> BoxedStrategy<(&'static str, Vec<u8>)> {
            proptest::strategy::Union::new(vec![$(
                generate::$gen()
                    .prop_map(|m| (<$rpc as Rpc>::NAME, m.encode_to_vec()))
                    .boxed(),
            )+])
            .boxed()
        }
    };
    (@reaches $h:ident, $rpc:ident, reaches) => {
        assert!(accepted::<$rpc>(&$h) > 0, "no {} was accepted", <$rpc as Rpc>::NAME);
    };
    (@reaches $h:ident, $rpc:ident) => {
        drop($h);
    };
}

properties! {
    register_case: RegisterCase = register_case, reaches;
    get_case: GetCase = get_case, reaches;
    list_cases: ListCases = list_cases, reaches;
    review_case: ReviewCase = review_case;
    assign_case: AssignCase = assign_case;
    record_mediation: RecordMediation = record_mediation;
    resolve_case: ResolveCase = resolve_case;
    record_follow_up: RecordFollowUp = record_follow_up;
    get_case_history: GetCaseHistory = get_case, reaches;
    escalate_case: EscalateCase = escalate_case;
    transfer_case: TransferCase = transfer_case;
    supervise_case: SuperviseCase = supervise_case;
    get_links: GetLinks = get_links, reaches;
    change_risk: ChangeRisk = change_risk;
    extend_deadline: ExtendDeadline = extend_deadline;
    list_alerts: ListAlerts = list_alerts, reaches;
    export_report: ExportReport = export_report, reaches;
    update_case_plan: UpdateCasePlan = update_case_plan;
    add_case_progress: AddCaseProgress = add_case_progress;
    list_audit_events: ListAuditEvents = list_audit_events;
    export_cases: ExportCases = export_cases, reaches;
    import_cases: ImportCases = import_cases;
    add_user: AddUser = add_user;
    list_users: ListUsers = list_users;
    set_user_enabled: SetUserEnabled = set_user_enabled;
    reset_password: ResetPassword = reset_password;
    add_api_key: AddApiKey = add_api_key;
    list_api_keys: ListApiKeys = list_api_keys;
    revoke_api_key: RevokeApiKey = revoke_api_key;
    backup: Backup = backup;
    get_aggregates: GetAggregates = get_aggregates, reaches;
}

/// Requests of every RPC in one run on one harness, in any order: what one request leaves
/// (a deadline in the year 200000, a case at its size limit, a key revoked) is what the next
/// one meets, the reports and exports included.
#[test]
fn any_sequence_of_requests() {
    let h = Harness::new();
    let inputs = (any_request(), generate::caller(), generate::aim());
    let result = runner(MIXED).run(&inputs, |((name, bytes), who, aim)| {
        let (_, check) = RPCS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("every RPC is in the table");
        check(&h, who, aim, &bytes)
            .map(drop)
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("a sequence of requests: {e}");
    }
    eprintln!("any sequence: {:?}", h.tally());
}

/// Every RPC of the operator services in the protos has an entry in [`RPCS`] and a property
/// here, with the request type the proto gives it.
#[test]
fn every_operator_rpc_is_fuzzed() {
    let set = prost_types::FileDescriptorSet::decode(fengqiao_proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set");
    let operator = [
        "CaseService",
        "UserService",
        "ApiKeyService",
        "BackupService",
        "StatsService",
    ];
    let mut in_protos = BTreeSet::new();
    for file in &set.file {
        for service in &file.service {
            if !operator.contains(&service.name()) {
                continue;
            }
            for method in &service.method {
                in_protos.insert((
                    format!("{}.{}", service.name(), method.name()),
                    method.input_type().trim_start_matches('.').to_owned(),
                ));
            }
        }
    }
    let requests: BTreeSet<(String, String)> = request_types().into_iter().collect();
    assert_eq!(
        in_protos, requests,
        "the protos' operator RPCs and the harness's"
    );
    let table: BTreeSet<&str> = RPCS.iter().map(|(name, _)| *name).collect();
    let covered: BTreeSet<&str> = COVERED.iter().copied().collect();
    assert_eq!(table, covered);
    assert_eq!(table.len(), in_protos.len());
}

/// (RPC, request type) of every [`Rpc`].
fn request_types() -> Vec<(String, String)> {
    macro_rules! of {
        ($($rpc:ident),+) => {
            vec![$((<$rpc as Rpc>::NAME.to_owned(), <$rpc as Rpc>::REQUEST.to_owned()),)+]
        };
    }
    of![
        RegisterCase,
        GetCase,
        ListCases,
        ReviewCase,
        AssignCase,
        RecordMediation,
        ResolveCase,
        RecordFollowUp,
        GetCaseHistory,
        EscalateCase,
        TransferCase,
        SuperviseCase,
        GetLinks,
        ChangeRisk,
        ExtendDeadline,
        ListAlerts,
        ExportReport,
        UpdateCasePlan,
        AddCaseProgress,
        ListAuditEvents,
        ExportCases,
        ImportCases,
        AddUser,
        ListUsers,
        SetUserEnabled,
        ResetPassword,
        AddApiKey,
        ListApiKeys,
        RevokeApiKey,
        Backup,
        GetAggregates
    ]
}

/// Every RPC, with a request valid in every other way, from each caller: one without a
/// certificate is UNAUTHENTICATED, one the permission table does not allow (an operator of
/// the parent or of a child, a node certificate, a role without the action) is
/// PERMISSION_DENIED, and neither writes anything (checked by [`Harness::check`]); some
/// caller allowed gets it accepted.
#[test]
fn every_rpc_refuses_every_caller_without_the_permission_and_writes_nothing() {
    use fengqiao_proto::v1 as pb;

    use super::{CHILD, T0};
    use crate::domain::CaseStatus::*;
    use tonic::Code;

    let h = Harness::new();
    // A case of each status, made again once a request was accepted on it.
    let made = std::cell::RefCell::new(std::collections::HashMap::new());
    let case = |status| {
        made.borrow_mut()
            .entry(status)
            .or_insert_with(|| h.block_on(h.make_case(status)))
            .clone()
    };
    let at = |days: i64| {
        Some(prost_types::Timestamp {
            seconds: T0.millis() / 1000 + days * 86_400,
            nanos: 0,
        })
    };
    let row = |i: usize| {
        let mut csv = crate::report::ledger::csv_line(
            &crate::domain::import::TEMPLATE_HEADERS.map(String::from),
        );
        csv.push_str(&crate::report::ledger::csv_line(
            &[
                "2024-03-05",
                "劳动争议",
                "窗口来访",
                &format!("讨薪{i}"),
                "张三",
                "13812345678",
                "11010519491231002X",
                "4400",
                "已办结",
            ]
            .map(String::from),
        ));
        csv.into_bytes()
    };
    macro_rules! each_caller {
        ($rpc:ident, |$i:ident| $req:expr) => {{
            let mut accepted = 0;
            for ($i, caller) in Caller::ALL.into_iter().enumerate() {
                let req = $req;
                let action = <$rpc as Rpc>::action(&req);
                let outcome = h
                    .check::<$rpc>(caller, req, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                let name = <$rpc as Rpc>::NAME;
                if caller == Caller::Anonymous {
                    assert_eq!(outcome, Outcome::Refused(Code::Unauthenticated), "{name}");
                } else if !caller.may(action) {
                    let denied = Outcome::Refused(Code::PermissionDenied);
                    assert_eq!(outcome, denied, "{name} as {caller:?}");
                } else if outcome == Outcome::Accepted {
                    accepted += 1;
                    made.borrow_mut().clear();
                }
            }
            assert!(
                accepted > 0,
                "{} accepted from no caller",
                <$rpc as Rpc>::NAME
            );
        }};
    }
    each_caller!(RegisterCase, |i| pb::RegisterCaseRequest {
        idempotency_key: format!("golden-{i}"),
        category: pb::Category::Labor as i32,
        channel: pb::Channel::WalkIn as i32,
        summary: "讨薪".into(),
        risk: pb::RiskLevel::Blue as i32,
        ..Default::default()
    });
    each_caller!(GetCase, |_i| pb::GetCaseRequest {
        case_id: case(Accepted)
    });
    each_caller!(ListCases, |_i| pb::ListCasesRequest::default());
    each_caller!(ReviewCase, |_i| pb::ReviewCaseRequest {
        case_id: case(Registered),
        accept: true,
        ..Default::default()
    });
    each_caller!(ReviewCase, |_i| pb::ReviewCaseRequest {
        case_id: case(Registered),
        accept: false,
        reason: "不属于受理范围".into(),
        guidance: "请向法院起诉".into(),
    });
    each_caller!(AssignCase, |_i| pb::AssignCaseRequest {
        case_id: case(Accepted),
        handler: "李调解".into(),
        due_at: at(10),
    });
    each_caller!(RecordMediation, |_i| pb::RecordMediationRequest {
        case_id: case(Accepted),
        method: pb::MediationMethod::Phone as i32,
        mediation_type: pb::MediationType::Peoples as i32,
        mediator: "李调解".into(),
        notes: String::new(),
        result: pb::MediationResult::Continuing as i32,
    });
    each_caller!(ResolveCase, |_i| pb::ResolveCaseRequest {
        case_id: case(InMediation),
        resolved: true,
        agreement: "十日内付清".into(),
        settled_amount_fen: 100,
        confirmation: pb::Confirmation::None as i32,
    });
    each_caller!(RecordFollowUp, |_i| pb::RecordFollowUpRequest {
        case_id: case(Resolved),
        satisfaction: 5,
        notes: String::new(),
    });
    each_caller!(GetCaseHistory, |_i| pb::GetCaseRequest {
        case_id: case(Accepted)
    });
    each_caller!(EscalateCase, |_i| pb::EscalateCaseRequest {
        case_id: case(Accepted),
        mode: pb::EscalationMode::TakeOver as i32,
        reason: "上级办理".into(),
    });
    each_caller!(TransferCase, |_i| pb::TransferCaseRequest {
        case_id: case(Accepted),
        to_node: CHILD.into(),
        reason: "交村办理".into(),
    });
    each_caller!(SuperviseCase, |i| pb::SuperviseCaseRequest {
        case_id: format!("{CHILD}-20240501-{i:06}"),
        instruction: "请尽快办理".into(),
        due_at: None,
    });
    each_caller!(GetLinks, |_i| pb::GetLinksRequest {});
    each_caller!(ChangeRisk, |_i| pb::ChangeRiskRequest {
        case_id: case(Accepted),
        risk: pb::RiskLevel::Orange as i32,
        reason: "矛盾激化".into(),
    });
    each_caller!(ExtendDeadline, |_i| pb::ExtendDeadlineRequest {
        case_id: case(Accepted),
        until: at(35),
        reason: "当事人外出".into(),
    });
    each_caller!(ListAlerts, |_i| pb::ListAlertsRequest {});
    each_caller!(ExportReport, |_i| pb::ExportReportRequest::default());
    each_caller!(UpdateCasePlan, |_i| pb::UpdateCasePlanRequest {
        case_id: case(Accepted),
        lead_leader: Some("王书记".into()),
        ..Default::default()
    });
    each_caller!(AddCaseProgress, |_i| pb::AddCaseProgressRequest {
        case_id: case(Accepted),
        text: "已电话联系双方".into(),
    });
    each_caller!(ListAuditEvents, |_i| pb::ListAuditEventsRequest::default());
    each_caller!(ExportCases, |_i| pb::ExportCasesRequest {
        format: pb::ExportFormat::Csv as i32,
        ..Default::default()
    });
    each_caller!(ExportCases, |_i| pb::ExportCasesRequest {
        format: pb::ExportFormat::Xlsx as i32,
        unmasked: true,
        ..Default::default()
    });
    each_caller!(ImportCases, |i| pb::ImportCasesRequest {
        file_name: "legacy.csv".into(),
        content: row(i),
    });
    each_caller!(AddUser, |i| pb::AddUserRequest {
        username: format!("golden{i}"),
        role: "intake".into(),
        name: "赵六".into(),
        password: String::new(),
    });
    each_caller!(ListUsers, |_i| pb::ListUsersRequest {});
    each_caller!(SetUserEnabled, |_i| pb::SetUserEnabledRequest {
        username: "old.wang".into(),
        enabled: true,
    });
    each_caller!(ResetPassword, |_i| pb::ResetPasswordRequest {
        username: "clerk.li".into(),
        password: String::new(),
    });
    each_caller!(AddApiKey, |i| pb::AddApiKeyRequest {
        name: format!("golden{i}"),
        channel: 0,
    });
    each_caller!(ListApiKeys, |_i| pb::ListApiKeysRequest {});
    each_caller!(RevokeApiKey, |_i| pb::RevokeApiKeyRequest {
        name: "hotline".into()
    });
    each_caller!(Backup, |_i| pb::BackupRequest {});
    each_caller!(GetAggregates, |_i| pb::GetAggregatesRequest::default());
    // The auditor alone reads the access log, and it holds the views of personal data.
    let log = h.block_on(h.case.list_audit_events(h.request(
        Caller::Here(Role::Auditor),
        pb::ListAuditEventsRequest::default(),
    )));
    assert!(!log.expect("the access log").into_inner().events.is_empty());
}

/// Found by these properties: an order (SuperviseCase, TransferCase from above) about a case
/// id the owner refuses on arrival (over 128 bytes, or with a NUL) was accepted and queued;
/// the child refused it, and the operator had been told it was on its way.
#[test]
fn an_order_about_a_case_id_no_node_accepts_is_refused_here() {
    use fengqiao_proto::v1 as pb;
    use tonic::Code;

    let h = Harness::new();
    let director = Caller::Here(Role::Director);
    let ids = [
        format!("{}-{}", super::CHILD, "x".repeat(200)),
        format!("{}-a\0b", super::CHILD),
    ];
    for case_id in ids {
        let supervise = pb::SuperviseCaseRequest {
            case_id: case_id.clone(),
            instruction: "请尽快办理".into(),
            due_at: None,
        };
        let transfer = pb::TransferCaseRequest {
            case_id,
            to_node: super::CHILD.into(),
            reason: "交村办理".into(),
        };
        let invalid = Ok(Outcome::Refused(Code::InvalidArgument));
        assert_eq!(h.check::<SuperviseCase>(director, supervise, None), invalid);
        assert_eq!(h.check::<TransferCase>(director, transfer, None), invalid);
    }
}
