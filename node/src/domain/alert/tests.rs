//! Alerts derived from changes, and the reopen rule of the post-step.

use std::time::Duration;

use super::*;
use crate::domain::machine::tests::parties;
use crate::domain::machine::{apply, register};
use crate::domain::{Category, Channel, Command, Confirmation, Deadlines, NewCase};

const H: i64 = 3_600_000;
const T0: Timestamp = Timestamp(1_714_521_600_000);
const VILLAGE: &str = "610116001001";
static DEADLINES: Deadlines = Deadlines {
    review: Duration::from_secs(3 * 86_400),
    resolve: Duration::from_secs(30 * 86_400),
    follow_up: Duration::from_secs(7 * 86_400),
    escalate_overdue_after: None,
};

fn ctx(now: Timestamp) -> Ctx<'static> {
    Ctx {
        now,
        node: VILLAGE,
        actor: "spiffe://fengqiao/op/610116001001/intake/li",
        deadlines: &DEADLINES,
    }
}

fn at(h: i64) -> Timestamp {
    Timestamp(T0.0 + h * H)
}

fn registered(risk: RiskLevel) -> Case {
    let new = NewCase {
        idempotency_key: "k".into(),
        category: Category::Labor,
        channel: Channel::WalkIn,
        summary: "张三（13812345678）讨要工资".into(),
        description: String::new(),
        parties: parties(),
        amount_fen: 0,
        risk,
        grid_id: String::new(),
    };
    let id = format!("{VILLAGE}-20240501-000001");
    register(&ctx(T0), &new, id, "L".into()).unwrap().0
}

fn step(case: &Case, h: i64, cmd: Command, policy: &Policy) -> (Case, Vec<Event>, Vec<Alert>) {
    let (next, events) = apply(case, &ctx(at(h)), &cmd).unwrap();
    after_command(case, next, events, &ctx(at(h)), policy)
}

fn resolved() -> Case {
    let policy = Policy::default();
    let case = registered(RiskLevel::Blue);
    let accept = Command::Review {
        accept: true,
        reason: String::new(),
        guidance: String::new(),
    };
    let resolve = Command::Resolve {
        resolved: true,
        agreement: "付清".into(),
        settled_amount_fen: 0,
        confirmation: Confirmation::None,
    };
    let (case, _, alerts) = step(&case, 1, accept, &policy);
    assert!(alerts.is_empty());
    step(&case, 2, resolve, &policy).0
}

fn dissatisfied() -> Command {
    Command::FollowUp {
        satisfaction: 2,
        notes: String::new(),
    }
}

#[test]
fn a_reopen_raises_an_alert_and_by_rule_opens_supervision() {
    let (case, events, alerts) = step(&resolved(), 3, dissatisfied(), &Policy::default());
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Reopened, EventKind::SupervisionOpened]);
    assert_eq!(
        events[1].detail,
        "回访不满意重新办理，提请上级610116001督办"
    );
    assert_eq!(events[1].seq, case.history_len);
    assert_eq!(case.supervising_nodes, ["610116001"]);
    assert_eq!(case.reopen_count, 1);
    let kinds: Vec<_> = alerts.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AlertKind::Reopened, AlertKind::Supervision]);
    let reopened = &alerts[0];
    assert_eq!(reopened.key, format!("reopened/{}/4", case.id));
    assert_eq!(reopened.forward_to, ["610116001"]);
    assert_eq!(reopened.raised_at, at(3));
    assert!(
        reopened.message.contains("第1次重新办理"),
        "{}",
        reopened.message
    );
    assert!(
        !reopened.message.contains("13812345678"),
        "{}",
        reopened.message
    );
    assert!(
        alerts[1].message.contains("原因：回访不满意"),
        "{}",
        alerts[1].message
    );
    assert_eq!(alerts[1].forward_to, ["610116001"]);

    // With the rule off: the reopen and its alert, no supervision.
    let off = Policy {
        reopen_supervise: false,
        ..Policy::default()
    };
    let (case, events, alerts) = step(&resolved(), 3, dissatisfied(), &off);
    assert_eq!(events.len(), 1);
    assert!(case.supervising_nodes.is_empty());
    assert_eq!(alerts.len(), 1);
}

#[test]
fn registration_supervision_and_overdue_alerts() {
    let case = registered(RiskLevel::Red);
    let alerts = of_change(None, &case, &[], case.created_at);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::Supervision);
    assert_eq!(alerts[0].key, format!("supervision/{}/610116/1", case.id));
    assert_eq!(alerts[0].forward_to, ["610116"]);
    assert!(
        alerts[0].message.contains("原因：风险等级"),
        "{}",
        alerts[0].message
    );
    assert!(
        of_change(Some(&case), &case, &[], T0).is_empty(),
        "no change, no alert"
    );

    // Review due at 72 h.
    assert_eq!(overdue(&case, VILLAGE, at(72)), None);
    let a = overdue(&case, VILLAGE, at(73)).unwrap();
    assert_eq!(a.key, format!("overdue/{}/{}", case.id, at(72).0));
    assert_eq!(a.node, VILLAGE);
    assert!(
        a.message.contains("审核期限2024-05-04 08:00已到期"),
        "{}",
        a.message
    );
    assert!(a.message.contains("张*（138****5678）"), "{}", a.message);
}

#[test]
fn early_warning_messages_mask_people_but_name_employers() {
    let case = registered(RiskLevel::Blue);
    let ids = vec!["a".to_string(), "b".into(), case.id.clone()];
    let policy = Policy::default();
    let a = repeat_person(
        &case,
        "6101**********1234",
        &ids,
        &policy,
        RiskLevel::Yellow,
        at(1),
    );
    assert_eq!(a.key, format!("repeat_person/{}", case.id));
    assert_eq!(a.case_ids, ids);
    assert_eq!(a.forward_to, ["610116001"]);
    assert!(a.message.contains("180天内已有3件案件"), "{}", a.message);
    assert!(a.message.contains("风险由蓝色升为黄色"), "{}", a.message);
    let g = group_dispute(
        &case,
        &mask::display_respondent("某建筑有限公司"),
        &ids,
        at(1),
    );
    assert!(
        g.message.contains("“某建筑有限公司”涉及3件在办案件"),
        "{}",
        g.message
    );
    assert_eq!(mask::display_respondent("李四"), "李*");
    assert_eq!(mask::display_respondent("西安某某工厂"), "西安某某工厂");
}
