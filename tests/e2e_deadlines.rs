//! End to end: deadlines, warning levels, rule-driven supervision, alerts and reports on real
//! `fqnode` processes. Time moves by restarting a node with a larger `clock_offset` (which also
//! puts a restart between a deadline being set and being reached); nothing sleeps. The node
//! runs its rules once before it answers, so every check right after a restart is
//! deterministic.

mod support;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::*;
use tonic::Code;
use tonic::transport::Channel;

const VILLAGE: &str = "610116001001";
const TOWNSHIP: &str = "610116001";
const COUNTY: &str = "610116";

async fn overdue_ids(c: &mut CaseServiceClient<Channel>) -> Vec<String> {
    let page = c
        .list_cases(pb::ListCasesRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<String> = page.cases.into_iter().map(|c| c.id).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_warnings_and_supervision_across_restarts() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let mut village = NodeProc::start(&pki, root.path(), VILLAGE);
    let township = NodeProc::start(&pki, root.path(), TOWNSHIP);
    let mut director = operator_client(&pki, &village, VILLAGE, "director", "zhao").await;

    // Colour rule across two tiers: red at a village and at a township is followed by the
    // county, orange at a village by its township; orange at a township needs nobody extra.
    let blue = director
        .register_case(request(
            "a",
            pb::RiskLevel::Blue,
            "610102199001010001",
            "甲公司",
        ))
        .await
        .unwrap()
        .into_inner();
    let red = director
        .register_case(request(
            "b",
            pb::RiskLevel::Red,
            "610102199001010002",
            "乙公司",
        ))
        .await
        .unwrap()
        .into_inner();
    let orange = director
        .register_case(request(
            "c",
            pb::RiskLevel::Orange,
            "610102199001010003",
            "丙公司",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(blue.supervising_nodes.is_empty());
    assert_eq!(red.supervising_nodes, [COUNTY]);
    assert_eq!(orange.supervising_nodes, [TOWNSHIP]);
    let mut at_township = operator_client(&pki, &township, TOWNSHIP, "director", "li").await;
    for (risk, want) in [
        (pb::RiskLevel::Red, vec![COUNTY]),
        (pb::RiskLevel::Orange, vec![]),
    ] {
        let c = at_township
            .register_case(request(&format!("t{}", risk as i32), risk, "", "丁公司"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(c.supervising_nodes, want, "{risk:?} at a township");
    }
    drop(township);

    // Just registered: review due in 3 days, no warning, nothing overdue.
    assert_eq!(blue.warning, pb::Warning::None as i32);
    assert!(overdue_ids(&mut director).await.is_empty());

    // 60 h of 72: amber (75%).
    restart_at(&mut village, root.path(), "60h");
    let mut director = operator_client(&pki, &village, VILLAGE, "director", "zhao").await;
    assert_eq!(
        get(&mut director, &blue.id).await.warning,
        pb::Warning::Amber as i32
    );
    assert!(overdue_ids(&mut director).await.is_empty());

    // 70 h: red (90%), still not overdue; listings carry the warning too.
    restart_at(&mut village, root.path(), "70h");
    let mut director = operator_client(&pki, &village, VILLAGE, "director", "zhao").await;
    let listed = director
        .list_cases(pb::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed
            .cases
            .iter()
            .all(|c| c.warning == pb::Warning::Red as i32)
    );
    assert!(overdue_ids(&mut director).await.is_empty());

    // 98 h: overdue by more than a day. The deadline was set before three restarts; the rule
    // put every case under the township's supervision when the node came up.
    restart_at(&mut village, root.path(), "98h");
    let mut director = operator_client(&pki, &village, VILLAGE, "director", "zhao").await;
    let mut want = vec![blue.id.clone(), red.id.clone(), orange.id.clone()];
    want.sort();
    assert_eq!(overdue_ids(&mut director).await, want);
    assert_eq!(
        get(&mut director, &blue.id).await.supervising_nodes,
        [TOWNSHIP]
    );
    assert_eq!(
        get(&mut director, &red.id).await.supervising_nodes,
        [TOWNSHIP, COUNTY]
    );
    let history = director
        .get_case_history(pb::GetCaseRequest {
            case_id: blue.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let last = history.events.last().unwrap();
    assert_eq!(last.kind, "supervision_opened");
    assert_eq!(last.actor, format!("spiffe://fengqiao/node/{VILLAGE}"));
    assert!(last.detail.contains("已逾期超过1天"), "{}", last.detail);

    // A restart at the same time repeats nothing.
    restart_at(&mut village, root.path(), "98h");
    let mut director = operator_client(&pki, &village, VILLAGE, "director", "zhao").await;
    let again = director
        .get_case_history(pb::GetCaseRequest {
            case_id: blue.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.events.len(), history.events.len());

    // Lowering the risk closes the county's supervision; the township's (overdue) stays.
    let lowered = director
        .change_risk(pb::ChangeRiskRequest {
            case_id: red.id.clone(),
            risk: pb::RiskLevel::Blue as i32,
            reason: "欠薪已部分支付，情绪平稳".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lowered.risk, pb::RiskLevel::Blue as i32);
    assert_eq!(lowered.supervising_nodes, [TOWNSHIP]);
    let mut mediator = operator_client(&pki, &village, VILLAGE, "mediator", "wang").await;
    let err = mediator
        .change_risk(pb::ChangeRiskRequest {
            case_id: red.id.clone(),
            risk: pb::RiskLevel::Red as i32,
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = director
        .change_risk(pb::ChangeRiskRequest {
            case_id: red.id.clone(),
            risk: 0,
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Accept, then extend the resolution deadline once.
    let accepted = director
        .review_case(pb::ReviewCaseRequest {
            case_id: blue.id.clone(),
            accept: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.warning, pb::Warning::None as i32);
    let due = accepted.resolve_due_at.unwrap();
    let until = prost_types::Timestamp {
        seconds: due.seconds + 10 * 86_400,
        nanos: 0,
    };
    let extend = |until: prost_types::Timestamp| pb::ExtendDeadlineRequest {
        case_id: blue.id.clone(),
        until: Some(until),
        reason: "当事人外出务工，需延期".into(),
    };
    let err = mediator.extend_deadline(extend(until)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let extended = director
        .extend_deadline(extend(until))
        .await
        .unwrap()
        .into_inner();
    assert!(extended.deadline_extended);
    assert_eq!(extended.resolve_due_at.unwrap().seconds, until.seconds);
    let err = director.extend_deadline(extend(until)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Alerts by RPC and by fqctl.
    let alerts = director
        .list_alerts(pb::ListAlertsRequest {})
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let count = |kind: &str| alerts.iter().filter(|a| a.kind == kind).count();
    assert_eq!(count("overdue"), 3);
    // Red at registration (county), orange at registration (township), overdue (township)
    // for the blue and the red case.
    assert_eq!(count("supervision"), 4);
    assert!(
        alerts
            .windows(2)
            .all(|w| w[0].raised_at.map(|t| t.seconds) >= w[1].raised_at.map(|t| t.seconds)),
        "newest first"
    );
    assert!(
        alerts
            .iter()
            .all(|a| !a.message.contains("610102199001010001"))
    );
    let (code, out, err) = fqctl_as(&pki, &village, "auditor", &["alerts"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("逾期") && out.contains("督办"), "{out}");
    let (code, out, _) = fqctl_as(
        &pki,
        &village,
        "auditor",
        &["--lang", "en", "--json", "alerts"],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["alerts"].as_array().unwrap().len(), alerts.len());

    // Reports: by RPC (the village's cadence is daily), and by fqctl in both languages. The
    // accepted case is no longer overdue; the other two still are.
    let report = director
        .export_report(pb::ExportReportRequest {
            period: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (report.node.as_str(), report.period.as_str()),
        (VILLAGE, "day")
    );
    assert!(report.text.contains("二、逾期案件（2）"), "{}", report.text);
    assert!(
        report.csv.starts_with("section,name,value"),
        "{}",
        report.csv
    );
    assert!(!report.text.contains("13812345678") && !report.csv.contains("13812345678"));
    let err = mediator
        .export_report(pb::ExportReportRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = director
        .export_report(pb::ExportReportRequest {
            period: "fortnight".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let (code, out, err) = fqctl_as(
        &pki,
        &village,
        "director",
        &["--lang", "en", "report", "--period", "week"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2. Overdue cases (2)"), "{out}");
    let file = root.path().join("report.csv");
    let (code, out, _) = fqctl_as(
        &pki,
        &village,
        "director",
        &["report", "--csv", "--out", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    let csv = std::fs::read_to_string(&file).unwrap();
    assert_eq!(csv.matches("\noverdue,").count(), 2, "{csv}");
    // Each start wrote the scheduled daily report of the day before (once per day).
    let reports = root.path().join(format!("data-{VILLAGE}")).join("reports");
    let days = std::fs::read_dir(&reports)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("txt".as_ref()))
        .count();
    assert!(
        (2..=5).contains(&days),
        "{days} daily reports in {}",
        reports.display()
    );
}
