//! End to end: early warnings (repeat person, group dispute), a reopen after a dissatisfied
//! follow-up, the "六个一" commands, and risk and deadline changes through fqctl, on a real
//! village `fqnode` linked to its township, which receives the village's alerts.

mod support;

use fengqiao_proto::v1 as pb;
use support::*;

const VILLAGE: &str = "610116001001";
const TOWNSHIP: &str = "610116001";
const COUNTY: &str = "610116";
/// Bound on waits for traffic between the two nodes to settle.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_warnings_reopen_and_the_six_ones() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let township = NodeProc::start_with(
        &pki,
        root.path(),
        TOWNSHIP,
        &NodeOpts {
            extra: FAST_LINKS.into(),
            ..NodeOpts::default()
        },
    );
    let village = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            parent: Some(township.federation_url()),
            extra: FAST_LINKS.into(),
            ..NodeOpts::default()
        },
    );
    let town_director = operator_client(&pki, &township, TOWNSHIP, "director", "wang").await;
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

    // Raised to the parent: the township lists the village's early warnings, the reopen and
    // the supervision it was asked to take on, each once, as raised at the village.
    let town_alerts = eventually("the village's alerts at the township", SETTLE, || {
        let mut t = town_director.clone();
        async move {
            let alerts = t
                .list_alerts(pb::ListAlertsRequest {})
                .await
                .ok()?
                .into_inner()
                .alerts;
            alerts
                .iter()
                .any(|a| a.kind == "reopened")
                .then_some(alerts)
        }
    })
    .await;
    for k in ["repeat_person", "group_dispute", "reopened", "supervision"] {
        let of_kind: Vec<_> = town_alerts.iter().filter(|a| a.kind == k).collect();
        assert!(!of_kind.is_empty(), "{k} at the township: {town_alerts:?}");
        assert!(of_kind.iter().all(|a| a.node == VILLAGE), "{of_kind:?}");
    }
    let repeat = town_alerts
        .iter()
        .find(|a| a.kind == "repeat_person")
        .unwrap();
    assert_eq!(repeat.case_ids.len(), 3);
    assert!(!repeat.message.contains(person), "masked at the parent too");
    let reopens = town_alerts.iter().filter(|a| a.kind == "reopened").count();
    assert_eq!(reopens, 1, "delivered exactly once");

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
