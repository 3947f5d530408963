//! The oversight commands through `machine::apply`, at nodes of different tiers.

use std::time::Duration;

use crate::domain::machine::tests::parties;
use crate::domain::machine::{apply, register};
use crate::domain::rules::Warning;
use crate::domain::*;

const H: i64 = 3_600_000;
const DAY: u64 = 86_400;
/// 2024-05-01 08:00 in China.
const T0: Timestamp = Timestamp(1_714_521_600_000);
const VILLAGE: &str = "610116001001";
const TOWNSHIP: &str = "610116001";
const COUNTY: &str = "610116";
const DIRECTOR: &str = "spiffe://fengqiao/op/610116001001/director/zhao";
static DEADLINES: Deadlines = Deadlines {
    review: Duration::from_secs(3 * DAY),
    resolve: Duration::from_secs(30 * DAY),
    follow_up: Duration::from_secs(7 * DAY),
    escalate_overdue_after: Some(Duration::from_secs(DAY)),
};

fn at(h: i64) -> Timestamp {
    Timestamp(T0.0 + h * H)
}

fn ctx(node: &'static str, now: Timestamp) -> Ctx<'static> {
    Ctx {
        now,
        node,
        actor: DIRECTOR,
        deadlines: &DEADLINES,
    }
}

fn registered_at(node: &'static str, risk: RiskLevel) -> (Case, Event) {
    let new = NewCase {
        idempotency_key: "k".into(),
        category: Category::Labor,
        channel: Channel::WalkIn,
        summary: "讨薪".into(),
        description: String::new(),
        parties: parties(),
        amount_fen: 0,
        risk,
        grid_id: String::new(),
    };
    register(
        &ctx(node, T0),
        &new,
        format!("{node}-20240501-000001"),
        "L".into(),
    )
    .unwrap()
}

fn run(case: &Case, node: &'static str, h: i64, cmd: Command) -> (Case, Vec<Event>) {
    apply(case, &ctx(node, at(h)), &cmd).unwrap_or_else(|e| panic!("{}: {e}", cmd.action()))
}

fn risk(r: RiskLevel) -> Command {
    Command::ChangeRisk {
        risk: r,
        reason: "张三（13812345678）扬言上访".into(),
    }
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

#[test]
fn registering_a_colour_above_the_tier_opens_supervision() {
    use RiskLevel::*;
    for (node, r, want) in [
        (VILLAGE, Red, vec![COUNTY]),
        (VILLAGE, Orange, vec![TOWNSHIP]),
        (VILLAGE, Yellow, vec![]),
        (TOWNSHIP, Red, vec![COUNTY]),
        (TOWNSHIP, Orange, vec![]),
        (COUNTY, Red, vec![]),
    ] {
        let (case, event) = registered_at(node, r);
        assert_eq!(case.supervising_nodes, want, "{node} {r:?}");
        assert_eq!(event.seq, 1);
        assert_eq!(
            event.detail.contains("督办"),
            !want.is_empty(),
            "{}",
            event.detail
        );
    }
    let (_, event) = registered_at(VILLAGE, Red);
    assert!(
        event
            .detail
            .ends_with("；红色风险由县委政法委书记跟踪，提请610116督办"),
        "{}",
        event.detail
    );
}

#[test]
fn raising_and_lowering_the_risk_opens_and_closes_supervision() {
    let (case, _) = registered_at(VILLAGE, RiskLevel::Blue);
    let (case, events) = run(&case, VILLAGE, 1, risk(RiskLevel::Red));
    assert_eq!(
        kinds(&events),
        [EventKind::RiskChanged, EventKind::SupervisionOpened]
    );
    assert_eq!(case.risk, RiskLevel::Red);
    assert_eq!(case.supervising_nodes, [COUNTY]);
    assert_eq!(
        events[0].detail,
        "风险等级由蓝色调整为红色。理由：张*（138****5678）扬言上访"
    );
    assert_eq!((events[0].seq, events[1].seq, case.history_len), (2, 3, 3));
    assert_eq!(events[1].from_status, Some(CaseStatus::Registered));

    // Red → orange: the county lets go, the township takes over.
    let (case, events) = run(&case, VILLAGE, 2, risk(RiskLevel::Orange));
    assert_eq!(
        kinds(&events),
        [
            EventKind::RiskChanged,
            EventKind::SupervisionClosed,
            EventKind::SupervisionOpened
        ]
    );
    assert_eq!(case.supervising_nodes, [TOWNSHIP]);

    // Lowered to blue: no supervision left.
    let (case, events) = run(&case, VILLAGE, 3, risk(RiskLevel::Blue));
    assert_eq!(
        kinds(&events),
        [EventKind::RiskChanged, EventKind::SupervisionClosed]
    );
    assert!(case.supervising_nodes.is_empty() && case.rule_supervision.is_empty());

    // The same colour again changes nothing; a reason is required; a closed case is final.
    let (same, events) = run(&case, VILLAGE, 4, risk(RiskLevel::Blue));
    assert_eq!((same, events.len()), (case.clone(), 0));
    let no_reason = Command::ChangeRisk {
        risk: RiskLevel::Red,
        reason: " ".into(),
    };
    assert!(matches!(
        apply(&case, &ctx(VILLAGE, at(5)), &no_reason),
        Err(DomainError::InvalidArgument {
            field: "reason",
            ..
        })
    ));
    let mut closed = case.clone();
    closed.status = CaseStatus::Closed;
    assert!(matches!(
        apply(&closed, &ctx(VILLAGE, at(5)), &risk(RiskLevel::Red)),
        Err(DomainError::IllegalTransition { .. })
    ));
}

#[test]
fn lowering_the_risk_keeps_supervision_opened_for_other_reasons() {
    // Orange at a village: the township supervises for the colour...
    let (case, _) = registered_at(VILLAGE, RiskLevel::Orange);
    assert_eq!(case.supervising_nodes, [TOWNSHIP]);
    // ...and also once the review is overdue by more than a day (review due at 72 h).
    let overdue = Command::SuperviseOverdue {
        after: Duration::from_secs(DAY),
    };
    let (case, events) = run(&case, VILLAGE, 97, overdue);
    assert_eq!(kinds(&events), [EventKind::SupervisionOpened]);
    assert!(
        events[0].detail.ends_with("（已在督办）"),
        "{}",
        events[0].detail
    );
    let (case, events) = run(&case, VILLAGE, 98, risk(RiskLevel::Blue));
    assert_eq!(
        kinds(&events),
        [EventKind::RiskChanged, EventKind::SupervisionClosed]
    );
    assert!(
        events[1].detail.contains("仍在督办"),
        "{}",
        events[1].detail
    );
    assert_eq!(case.supervising_nodes, [TOWNSHIP], "still overdue");

    // Supervision from an escalation is not the colour's to close.
    let (mut case, _) = registered_at(VILLAGE, RiskLevel::Blue);
    case.supervising_nodes = vec![TOWNSHIP.into()];
    let (case, events) = run(&case, VILLAGE, 1, risk(RiskLevel::Orange));
    assert_eq!(kinds(&events), [EventKind::RiskChanged]);
    let (case, _) = run(&case, VILLAGE, 2, risk(RiskLevel::Blue));
    assert_eq!(case.supervising_nodes, [TOWNSHIP]);
}

#[test]
fn overdue_supervision_waits_for_the_grace_time() {
    let after = Duration::from_secs(DAY);
    let cmd = Command::SuperviseOverdue { after };
    let (case, _) = registered_at(VILLAGE, RiskLevel::Blue);
    // Review due at 72 h; overdue by more than a day only after 96 h.
    for h in [10, 72, 96] {
        let err = apply(&case, &ctx(VILLAGE, at(h)), &cmd).unwrap_err();
        assert!(matches!(err, DomainError::Refused { .. }), "{h}: {err:?}");
    }
    let (next, events) = run(&case, VILLAGE, 97, cmd.clone());
    assert_eq!(next.supervising_nodes, [TOWNSHIP]);
    assert_eq!(
        events[0].detail,
        "审核期限（2024-05-04 08:00）已逾期超过1天，提请上级610116001督办"
    );
    // Applying the rule again changes nothing.
    let (again, events) = run(&next, VILLAGE, 200, cmd.clone());
    assert_eq!((again, events.len()), (next, 0));
    // At a county the parent is the city; at the top there is nobody.
    let (case, _) = registered_at(COUNTY, RiskLevel::Blue);
    assert_eq!(
        run(&case, COUNTY, 97, cmd.clone()).0.supervising_nodes,
        ["6101"]
    );
    let (case, _) = registered_at("61", RiskLevel::Blue);
    assert_eq!(run(&case, "61", 97, cmd).1.len(), 0);
}

fn accepted(h: i64) -> Case {
    let (case, _) = registered_at(VILLAGE, RiskLevel::Blue);
    let accept = Command::Review {
        accept: true,
        reason: String::new(),
        guidance: String::new(),
    };
    run(&case, VILLAGE, h, accept).0
}

#[test]
fn the_resolution_deadline_is_extended_once() {
    let case = accepted(0);
    assert_eq!(case.resolve_started_at, Some(at(0)));
    assert_eq!(case.resolve_due_at, Some(at(720)));
    // At 700 h of 720 the case is red; ten more days bring it back.
    assert_eq!(case.warning(at(700)), Warning::Red);
    let extend = |until: Timestamp| Command::ExtendDeadline {
        until,
        reason: "当事人住院，需延期调解".into(),
    };
    for bad in [at(720), at(719), at(720 + 721)] {
        let err = apply(&case, &ctx(VILLAGE, at(700)), &extend(bad)).unwrap_err();
        assert!(
            matches!(err, DomainError::InvalidArgument { field: "until", .. }),
            "{err:?}"
        );
    }
    let (case, events) = run(&case, VILLAGE, 700, extend(at(720 + 240)));
    assert_eq!(case.resolve_due_at, Some(at(960)));
    assert!(case.deadline_extended);
    assert_eq!(case.warning(at(700)), Warning::None);
    assert_eq!(case.warning(at(720)), Warning::Amber);
    assert_eq!(kinds(&events), [EventKind::DeadlineExtended]);
    assert_eq!(
        events[0].detail,
        "办理期限由2024-05-31 08:00延长至2024-06-10 08:00。理由：当事人住院，需延期调解"
    );
    let err = apply(&case, &ctx(VILLAGE, at(701)), &extend(at(970))).unwrap_err();
    assert!(matches!(err, DomainError::Refused { .. }), "{err:?}");
    // Only a running resolution deadline can be extended.
    let (fresh, _) = registered_at(VILLAGE, RiskLevel::Blue);
    let err = apply(&fresh, &ctx(VILLAGE, at(1)), &extend(at(100))).unwrap_err();
    assert!(matches!(err, DomainError::IllegalTransition { .. }));
    let err = apply(&fresh, &ctx(VILLAGE, at(1)), &extend(at(0))).unwrap_err();
    assert!(matches!(
        err,
        DomainError::InvalidArgument { field: "until", .. }
    ));
}

#[test]
fn a_reopen_restarts_the_resolution_deadline() {
    let case = accepted(0);
    let resolve = Command::Resolve {
        resolved: true,
        agreement: "付清".into(),
        settled_amount_fen: 0,
        confirmation: Confirmation::None,
    };
    let (case, _) = run(&case, VILLAGE, 100, resolve);
    assert_eq!(case.follow_up_due_at, Some(at(100 + 168)));
    let reopen = Command::FollowUp {
        satisfaction: 1,
        notes: String::new(),
    };
    let (case, _) = run(&case, VILLAGE, 200, reopen);
    assert_eq!(case.resolve_started_at, Some(at(200)));
    assert_eq!(case.resolve_due_at, Some(at(200 + 720)));
    assert_eq!(case.follow_up_due_at, None);
    assert_eq!(case.open_deadline(), Some(at(920)));
}

#[test]
fn raise_risk_goes_one_colour_up() {
    let reason = || Command::RaiseRisk {
        reason: "重复来访".into(),
    };
    let (case, _) = registered_at(VILLAGE, RiskLevel::Orange);
    let (case, events) = run(&case, VILLAGE, 1, reason());
    assert_eq!(case.risk, RiskLevel::Red);
    assert_eq!(
        kinds(&events),
        [
            EventKind::RiskChanged,
            EventKind::SupervisionClosed,
            EventKind::SupervisionOpened
        ]
    );
    assert_eq!(case.supervising_nodes, [COUNTY]);
    assert!(
        events[0]
            .detail
            .starts_with("预警自动升级：风险等级由橙色调整为红色")
    );
    let (same, events) = run(&case, VILLAGE, 2, reason());
    assert_eq!((same, events.len()), (case, 0), "red stays red");
}

#[test]
fn the_plan_and_its_progress_table() {
    let (case, _) = registered_at(VILLAGE, RiskLevel::Yellow);
    let update = PlanUpdate {
        lead_leader: Some("王书记".into()),
        mediation_org: Some("村人民调解委员会".into()),
        plan: Some("先与张三（13812345678）面谈".into()),
        ..Default::default()
    };
    let (case, events) = run(&case, VILLAGE, 1, Command::UpdatePlan(update.clone()));
    assert_eq!(case.plan.lead_leader, "王书记");
    assert_eq!(case.plan.plan, "先与张三（13812345678）面谈");
    assert_eq!(kinds(&events), [EventKind::PlanUpdated]);
    assert_eq!(
        events[0].detail,
        "六个一更新。包案领导：王书记；调解组织：村人民调解委员会；化解方案：先与张*（138****5678）面谈"
    );
    // The same values again: nothing to record. An empty string clears.
    assert_eq!(
        run(&case, VILLAGE, 2, Command::UpdatePlan(update)).1.len(),
        0
    );
    let clear = PlanUpdate {
        lead_leader: Some(String::new()),
        ..Default::default()
    };
    let (case, events) = run(&case, VILLAGE, 3, Command::UpdatePlan(clear));
    assert_eq!(case.plan.lead_leader, "");
    assert_eq!(events[0].detail, "六个一更新。包案领导：（清空）");
    // A long plan is kept whole in the case; its event records the change and its length.
    let long = PlanUpdate {
        plan: Some("调".repeat(2_000)),
        ..Default::default()
    };
    let (case, events) = run(&case, VILLAGE, 4, Command::UpdatePlan(long));
    assert_eq!(case.plan.plan.chars().count(), 2_000);
    assert_eq!(events[0].detail, "六个一更新。化解方案：已更新（2000字）");
    assert!(matches!(
        apply(
            &case,
            &ctx(VILLAGE, at(4)),
            &Command::UpdatePlan(PlanUpdate::default())
        ),
        Err(DomainError::InvalidArgument { .. })
    ));

    let progress = |text: &str| Command::AddProgress { text: text.into() };
    let (case, events) = run(&case, VILLAGE, 5, progress("已联系用工单位"));
    assert_eq!(case.plan.progress.len(), 1);
    assert_eq!(case.plan.progress[0].at, at(5));
    assert_eq!(case.plan.progress[0].actor, DIRECTOR);
    assert_eq!(events[0].detail, "进展第1条：已联系用工单位");
    let mut full = case.clone();
    full.plan.progress = vec![case.plan.progress[0].clone(); super::PROGRESS_MAX];
    assert!(matches!(
        apply(&full, &ctx(VILLAGE, at(6)), &progress("x")),
        Err(DomainError::Refused { .. })
    ));
}
