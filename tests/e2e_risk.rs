//! End to end: deadlines, warning levels, rule-driven supervision, early warnings, alerts and
//! reports on real `fqnode` processes. Time moves by restarting a node with a larger
//! `clock_offset` (which also puts a restart between a deadline being set and being reached);
//! nothing sleeps. The node runs its rules once before it answers, so every check right after
//! a restart is deterministic.

mod support;

use std::path::Path;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::*;
use tonic::Code;
use tonic::transport::Channel;

const VILLAGE: &str = "610116001001";
const TOWNSHIP: &str = "610116001";
const COUNTY: &str = "610116";

/// A registration with its own applicant ID number and respondent.
fn request(
    key: &str,
    risk: pb::RiskLevel,
    id_number: &str,
    respondent: &str,
) -> pb::RegisterCaseRequest {
    let mut r = register_request(key);
    r.risk = risk as i32;
    r.parties[0].id_number = id_number.to_string();
    r.parties[1].name = respondent.to_string();
    r
}

/// Restarts `node` with its clock `offset` ahead (e.g. "60h").
fn restart_at(node: &mut NodeProc, root: &Path, offset: &str) {
    let body = std::fs::read_to_string(&node.config).unwrap();
    let rest: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with("clock_offset"))
        .collect();
    let body = format!("clock_offset = \"{offset}\"\n{}\n", rest.join("\n"));
    std::fs::write(&node.config, body).unwrap();
    node.restart(root);
}

async fn get(c: &mut CaseServiceClient<Channel>, id: &str) -> pb::Case {
    c.get_case(pb::GetCaseRequest {
        case_id: id.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
}

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

/// fqctl as the village director, against the node's current address.
fn fqctl_as(pki: &Pki, node: &NodeProc, role: &str, args: &[&str]) -> (i32, String, String) {
    let (cert, key) = pki.operator(&node.code, role, "zhao");
    let endpoint = node.url();
    let ca = pki.ca();
    let mut all = vec![
        "--endpoint",
        endpoint.as_str(),
        "--ca",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    fqctl(&all)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_warnings_reopen_and_the_six_ones() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let village = NodeProc::start(&pki, root.path(), VILLAGE);
    let mut intake = operator_client(&pki, &village, VILLAGE, "intake", "li").await;
    let mut director = operator_client(&pki, &village, VILLAGE, "director", "zhao").await;

    // Zhuanghe: the same person comes back a third time, against the same employer.
    let person = "610102199001011234";
    let mut ids = Vec::new();
    for (i, employer) in ["某建筑有限公司", "某建筑 有限公司", "某建筑有限公司"]
        .iter()
        .enumerate()
    {
        let c = intake
            .register_case(request(
                &format!("r{i}"),
                pb::RiskLevel::Yellow,
                person,
                employer,
            ))
            .await
            .unwrap()
            .into_inner();
        ids.push(c);
    }
    assert_eq!(ids[1].risk, pb::RiskLevel::Yellow as i32);
    assert_eq!(
        ids[2].risk,
        pb::RiskLevel::Orange as i32,
        "raised one colour"
    );
    assert_eq!(ids[2].supervising_nodes, [TOWNSHIP], "orange at a village");
    let alerts = director
        .list_alerts(pb::ListAlertsRequest {})
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let kinds: Vec<&str> = alerts.iter().map(|a| a.kind.as_str()).collect();
    for k in ["repeat_person", "group_dispute", "supervision"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let repeat = alerts.iter().find(|a| a.kind == "repeat_person").unwrap();
    assert_eq!(repeat.case_ids.len(), 3);
    assert_eq!(repeat.node, VILLAGE);
    assert!(
        repeat.message.contains("6101**********1234"),
        "{}",
        repeat.message
    );
    assert!(!repeat.message.contains(person));
    let group = alerts.iter().find(|a| a.kind == "group_dispute").unwrap();
    assert!(
        group.message.contains("某建筑有限公司"),
        "{}",
        group.message
    );

    // A dissatisfied follow-up reopens the case, alerts the parent and puts it under the
    // parent's supervision.
    let id = ids[0].id.clone();
    director
        .review_case(pb::ReviewCaseRequest {
            case_id: id.clone(),
            accept: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let resolved = director
        .resolve_case(pb::ResolveCaseRequest {
            case_id: id.clone(),
            resolved: true,
            agreement: "分两期支付".into(),
            settled_amount_fen: 440_000,
            confirmation: pb::Confirmation::None as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resolved.follow_up_due_at.is_some(), "回访 deadline set");
    let reopened = intake
        .record_follow_up(pb::RecordFollowUpRequest {
            case_id: id.clone(),
            satisfaction: 1,
            notes: "第二期未付".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reopened.reopen_count, 1);
    assert_eq!(reopened.supervising_nodes, [TOWNSHIP]);
    assert!(reopened.follow_up_due_at.is_none());
    let alerts = director
        .list_alerts(pb::ListAlertsRequest {})
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(
        alerts[1].kind, "reopened",
        "newest first: supervision, then the reopen"
    );
    assert_eq!(alerts[0].kind, "supervision");

    // "六个一" through fqctl, shown by `case get`.
    let (code, out, err) = fqctl_as(
        &pki,
        &village,
        "director",
        &[
            "case",
            "plan",
            &id,
            "--leader",
            "王书记",
            "--org",
            "村人民调解委员会",
            "--liaison",
            "镇人社所",
            "--plan",
            "分期支付",
            "--briefing",
            "劳动合同法第三十条",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = fqctl_as(
        &pki,
        &village,
        "mediator",
        &["case", "progress", &id, "--text", "已约谈用工单位负责人"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = fqctl_as(
        &pki,
        &village,
        "intake",
        &["case", "progress", &id, "--text", "x"],
    );
    assert_eq!(code, 1, "intake may not keep the plan: {err}");
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
    let (code, out, _) = fqctl_as(&pki, &village, "director", &["case", "get", &id]);
    assert_eq!(code, 0);
    for want in [
        "包案领导",
        "王书记",
        "调解组织",
        "联系单位",
        "镇人社所",
        "化解方案",
        "法律政策宣讲",
        "办理进展",
        "已约谈用工单位负责人",
        "督办单位",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
    let c = get(&mut director, &id).await;
    let plan = c.plan.unwrap();
    assert_eq!(plan.lead_leader, "王书记");
    assert_eq!(plan.progress.len(), 1);
    assert!(plan.progress[0].actor.contains("/mediator/"));

    // Risk and extension by fqctl, with their events in the history.
    let (code, out, err) = fqctl_as(
        &pki,
        &village,
        "director",
        &[
            "case",
            "risk",
            &id,
            "--risk",
            "red",
            "--reason",
            "扬言集体上访",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(COUNTY), "{out}");
    let (code, out, err) = fqctl_as(
        &pki,
        &village,
        "director",
        &[
            "case",
            "extend",
            &id,
            "--until",
            "40d",
            "--reason",
            "等待仲裁结果",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("已延期"), "{out}");
    let (_, out, _) = fqctl_as(
        &pki,
        &village,
        "director",
        &["--json", "case", "history", &id],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "reopened",
        "supervision_opened",
        "plan_updated",
        "progress",
        "risk_changed",
        "deadline_extended",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
}
