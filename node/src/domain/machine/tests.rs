//! Tests of the state machine; the fixtures are shared with other domain tests.

use super::*;
use crate::domain::{
    Category, Channel, Confirmation, Deadlines, MediationMethod, MediationResult, MediationType,
    Party, PartyRole, RiskLevel, Timestamp,
};
use std::time::Duration;

const DAY: u64 = 86_400;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 2024-05-01 08:00 in China (00:00 UTC).
const T0: Timestamp = Timestamp(1_714_521_600_000);
const NODE: &str = "610116";
const ACTOR: &str = "spiffe://fengqiao/op/610116/mediator/wang";
static DEADLINES: Deadlines = Deadlines {
    review: Duration::from_secs(3 * DAY),
    resolve: Duration::from_secs(30 * DAY),
    follow_up: Duration::from_secs(7 * DAY),
    escalate_overdue_after: Some(Duration::from_secs(DAY)),
};

fn ctx(now: Timestamp) -> Ctx<'static> {
    Ctx {
        now,
        node: NODE,
        actor: ACTOR,
        deadlines: &DEADLINES,
    }
}

fn hours(h: i64) -> Timestamp {
    Timestamp(T0.0 + h * HOUR_MS)
}

/// Personal data that must never show up in a history detail.
const PERSONAL: [&str; 5] = [
    "张三",
    "13812345678",
    "610102199001011234",
    "李四",
    "029-88886666",
];

pub(crate) fn parties() -> Vec<Party> {
    vec![
        Party {
            role: PartyRole::Applicant,
            name: "张三".into(),
            phone: "13812345678".into(),
            id_number: "610102199001011234".into(),
        },
        Party {
            role: PartyRole::Respondent,
            name: "李四".into(),
            phone: "029-88886666".into(),
            id_number: String::new(),
        },
    ]
}

fn new_case(parties: Vec<Party>) -> NewCase {
    NewCase {
        idempotency_key: "req-1".into(),
        category: Category::Labor,
        channel: Channel::WalkIn,
        summary: "拖欠工资".into(),
        description: "张三在李四承包的工地务工三个月，工资4400元未结清。".into(),
        parties,
        amount_fen: 440_000,
        risk: RiskLevel::Blue,
        grid_id: "610116001-03".into(),
    }
}

/// A case registered at [`T0`] by the machine itself.
pub(crate) fn sample_case(parties: Vec<Party>) -> Case {
    let id = case_id(NODE, &china_day(T0), 7);
    register(&ctx(T0), &new_case(parties), id, "K7Q2M9".into())
        .unwrap()
        .0
}

fn accept() -> Command {
    Command::Review {
        accept: true,
        reason: String::new(),
        guidance: String::new(),
    }
}

fn reject() -> Command {
    Command::Review {
        accept: false,
        reason: "张三户籍及工地均不在本辖区".into(),
        guidance: "请张三（电话13812345678）到工地所在地街道综治中心申请".into(),
    }
}

fn assign(due_at: Option<Timestamp>) -> Command {
    Command::Assign {
        handler: "区人社局".into(),
        due_at,
    }
}

fn mediate() -> Command {
    Command::RecordMediation {
        method: MediationMethod::Phone,
        mediation_type: MediationType::Peoples,
        mediator: "王调解员".into(),
        notes: "已电话联系李四（029-88886666），李四同意分期支付".into(),
        result: MediationResult::Continuing,
    }
}

fn resolve_ok() -> Command {
    Command::Resolve {
        resolved: true,
        agreement: "李四于5月10日前向张三支付工资4400元".into(),
        settled_amount_fen: 440_000,
        confirmation: Confirmation::Judicial,
    }
}

fn resolve_fail() -> Command {
    Command::Resolve {
        resolved: false,
        agreement: "张三可向区劳动人事争议仲裁委员会申请仲裁".into(),
        settled_amount_fen: 0,
        confirmation: Confirmation::None,
    }
}

fn follow_up(satisfaction: u8) -> Command {
    Command::FollowUp {
        satisfaction,
        notes: "张三表示已收到款项".into(),
    }
}

/// Applies `cmds` one hour apart starting an hour after the case was last updated, checking
/// each step succeeds; returns the case and every event, the registration's included.
fn run(case: Case, first: Event, cmds: &[Command]) -> (Case, Vec<Event>) {
    let mut case = case;
    let mut history = vec![first];
    for cmd in cmds {
        let now = Timestamp(case.updated_at.0 + HOUR_MS);
        let (next, events) = apply(&case, &ctx(now), cmd)
            .unwrap_or_else(|e| panic!("{} from {:?}: {e}", cmd.action(), case.status));
        history.extend(events);
        case = next;
    }
    (case, history)
}

fn registered() -> (Case, Event) {
    register(
        &ctx(T0),
        &new_case(parties()),
        "610116-20240501-000007".into(),
        "K7Q2M9".into(),
    )
    .unwrap()
}

/// A case brought to `status` through the machine (Transferred, which the machine does not
/// produce, is set by hand as the transfer code would).
fn case_in(status: CaseStatus) -> Case {
    use CaseStatus::*;
    let path = match status {
        Registered | Transferred => vec![],
        Accepted => vec![accept()],
        InMediation => vec![accept(), mediate()],
        Resolved => vec![accept(), mediate(), resolve_ok()],
        Unresolved => vec![accept(), mediate(), resolve_fail()],
        Rejected => vec![reject()],
        Closed => vec![accept(), resolve_ok(), follow_up(5)],
    };
    let (case, first) = registered();
    let (mut case, _) = run(case, first, &path);
    if status == Transferred {
        case.status = Transferred;
        case.moved_to = Some("6101".into());
        case.epoch = 2;
    }
    assert_eq!(case.status, status);
    case
}

#[test]
fn case_id_format() {
    assert_eq!(case_id("610116", "20240501", 7), "610116-20240501-000007");
    assert_eq!(case_id("610116", "20240501", 0), "610116-20240501-000000");
    assert_eq!(
        case_id("610116001", "20241231", 999_999),
        "610116001-20241231-999999"
    );
    assert_eq!(case_id("61", "20240501", 1_000_000), "61-20240501-1000000");
    assert_eq!(
        case_id("61", "20240501", u32::MAX),
        "61-20240501-4294967295"
    );
    // The day of the id is the day in China.
    assert_eq!(
        case_id(NODE, &china_day(hours(16)), 1),
        "610116-20240502-000001"
    );
}

#[test]
fn register_builds_a_registered_case_and_its_first_event() {
    let (case, event) = registered();
    assert_eq!(case.id, "610116-20240501-000007");
    assert_eq!(case.lookup_code, "K7Q2M9");
    assert_eq!(case.status, CaseStatus::Registered);
    assert_eq!(
        (case.owner_node.as_str(), case.origin_node.as_str()),
        (NODE, NODE)
    );
    assert_eq!((case.epoch, case.moved_to.clone()), (1, None));
    assert_eq!((case.created_at, case.updated_at), (T0, T0));
    assert_eq!(case.review_due_at, hours(3 * 24));
    assert_eq!(case.resolve_due_at, None);
    assert_eq!(case.open_deadline(), Some(hours(72)));
    assert_eq!(case.parties, parties());
    assert_eq!(case.amount_fen, 440_000);
    assert_eq!(case.history_len, 1);
    assert_eq!(
        (case.handler.clone(), case.satisfaction, case.mediation_type),
        (None, None, None)
    );

    assert_eq!(event.seq, 1);
    assert_eq!(event.kind, EventKind::Registered);
    assert_eq!(
        (event.from_status, event.to_status),
        (None, CaseStatus::Registered)
    );
    assert_eq!(
        (event.at, event.node.as_str(), event.actor.as_str()),
        (T0, NODE, ACTOR)
    );
    assert_eq!(
        event.detail,
        "登记受理：劳动争议，窗口来访，蓝色风险，当事人2人，涉及金额4400.00元；审核期限2024-05-04 08:00"
    );
}

#[test]
fn register_validates_first() {
    let mut n = new_case(parties());
    n.summary = " ".into();
    let err = register(&ctx(T0), &n, "x".into(), "y".into()).unwrap_err();
    assert!(
        matches!(
            err,
            DomainError::InvalidArgument {
                field: "summary",
                ..
            }
        ),
        "{err:?}"
    );
    n = new_case(parties());
    n.parties[1].phone = "call me".into();
    let err = register(&ctx(T0), &n, "x".into(), "y".into()).unwrap_err();
    assert!(matches!(
        err,
        DomainError::InvalidArgument {
            field: "parties[1].phone",
            ..
        }
    ));
}

/// The commands of the transition table, in its column order.
fn commands() -> [Command; 9] {
    [
        accept(),
        reject(),
        assign(None),
        assign(Some(hours(24 * 365))),
        mediate(),
        resolve_ok(),
        resolve_fail(),
        follow_up(3),
        follow_up(2),
    ]
}

/// The event each command of [`commands`] writes when it is legal.
const KINDS: [EventKind; 9] = [
    EventKind::Accepted,
    EventKind::Rejected,
    EventKind::Assigned,
    EventKind::Assigned,
    EventKind::Mediation,
    EventKind::Resolved,
    EventKind::Unresolved,
    EventKind::FollowUpClosed,
    EventKind::Reopened,
];

/// Status × command → the next status, or `None` where the command is illegal.
fn transition_table() -> [(CaseStatus, [Option<CaseStatus>; 9]); 8] {
    use CaseStatus::*;
    const X: Option<CaseStatus> = None;
    let (a, m, r, u, c) = (
        Some(Accepted),
        Some(InMediation),
        Some(Resolved),
        Some(Unresolved),
        Some(Closed),
    );
    [
        //            accept reject assign assign+ mediate resolve fail  fu 3  fu 2
        (Registered, [a, Some(Rejected), X, X, X, X, X, X, X]),
        (Accepted, [X, X, a, a, m, r, u, X, X]),
        (InMediation, [X, X, m, m, m, r, u, X, X]),
        (Resolved, [X, X, X, X, X, X, X, c, m]),
        (Unresolved, [X, X, X, X, X, X, X, c, m]),
        (Rejected, [X; 9]),
        (Closed, [X; 9]),
        (Transferred, [X; 9]),
    ]
}

#[test]
fn every_status_and_command() {
    let table = transition_table();
    let statuses: Vec<_> = table.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, CaseStatus::ALL, "the table covers every status");
    let now = Timestamp(T0.0 + 30 * DAY_MS);
    for (status, row) in table {
        let case = case_in(status);
        for ((cmd, want), kind) in commands().iter().zip(row).zip(KINDS) {
            let what = format!("{} from {status:?}", cmd.action());
            assert_eq!(permits(status, cmd), want.is_some(), "{what}");
            let got = apply(&case, &ctx(now), cmd);
            let Some(want) = want else {
                let err = got.expect_err(&what);
                assert_eq!(
                    err,
                    DomainError::IllegalTransition {
                        action: cmd.action(),
                        status
                    }
                );
                continue;
            };
            let (next, events) = got.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(next.status, want, "{what}");
            assert_eq!(events.len(), 1, "{what}");
            let e = &events[0];
            assert_eq!(e.seq, case.history_len + 1, "{what}");
            assert_eq!(next.history_len, e.seq, "{what}");
            assert_eq!(e.kind, kind, "{what}");
            assert_eq!((e.from_status, e.to_status), (Some(status), want), "{what}");
            assert_eq!(
                (e.at, e.node.as_str(), e.actor.as_str()),
                (now, NODE, ACTOR),
                "{what}"
            );
            assert_eq!(next.updated_at, now, "{what}");
            // What a transition never touches.
            assert_eq!(
                (&next.id, next.created_at, next.epoch),
                (&case.id, case.created_at, 1)
            );
            assert_eq!(
                (&next.owner_node, &next.parties),
                (&case.owner_node, &case.parties)
            );
            for p in PERSONAL {
                assert!(!e.detail.contains(p), "{what}: {p} in {:?}", e.detail);
            }
        }
    }
}

#[test]
fn illegal_transition_message() {
    let err = apply(&case_in(CaseStatus::Closed), &ctx(hours(1000)), &accept()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot accept a case whose status is closed (已办结)"
    );
}

#[test]
fn arguments_are_checked_before_the_status() {
    // A closed case and a bad satisfaction: the argument is what the caller must fix.
    let closed = case_in(CaseStatus::Closed);
    let err = apply(&closed, &ctx(hours(1000)), &follow_up(0)).unwrap_err();
    assert!(matches!(
        err,
        DomainError::InvalidArgument {
            field: "satisfaction",
            ..
        }
    ));
    let err = apply(&closed, &ctx(hours(1000)), &follow_up(6)).unwrap_err();
    assert!(matches!(
        err,
        DomainError::InvalidArgument {
            field: "satisfaction",
            ..
        }
    ));
    let registered = case_in(CaseStatus::Registered);
    let err = apply(
        &registered,
        &ctx(hours(1)),
        &Command::Assign {
            handler: "".into(),
            due_at: None,
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        DomainError::InvalidArgument {
            field: "handler",
            ..
        }
    ));
}

#[test]
fn accept_starts_the_resolution_deadline() {
    let case = case_in(CaseStatus::Registered);
    let (next, events) = apply(&case, &ctx(hours(5)), &accept()).unwrap();
    assert_eq!(next.resolve_due_at, Some(hours(5 + 30 * 24)));
    assert_eq!(next.open_deadline(), next.resolve_due_at);
    assert_eq!(
        events[0].detail,
        "审核通过，予以受理；办理期限2024-05-31 13:00"
    );
}

#[test]
fn reject_keeps_reason_and_guidance_and_masks_the_detail() {
    let case = case_in(CaseStatus::Registered);
    let (next, events) = apply(&case, &ctx(hours(5)), &reject()).unwrap();
    assert_eq!(next.reason, "张三户籍及工地均不在本辖区");
    assert_eq!(
        next.guidance,
        "请张三（电话13812345678）到工地所在地街道综治中心申请"
    );
    assert_eq!(next.open_deadline(), None);
    assert_eq!(
        events[0].detail,
        "不予受理。理由：张*户籍及工地均不在本辖区；引导：请张*（电话138****5678）到工地所在地街道综治中心申请"
    );
    let missing = Command::Review {
        accept: false,
        reason: "不属于本辖区".into(),
        guidance: "".into(),
    };
    let err = apply(&case, &ctx(hours(5)), &missing).unwrap_err();
    assert!(matches!(
        err,
        DomainError::InvalidArgument {
            field: "guidance",
            ..
        }
    ));
}

#[test]
fn assign_sets_the_handler_and_maybe_the_deadline() {
    let case = case_in(CaseStatus::Accepted);
    let default_due = case.resolve_due_at;
    assert!(default_due.is_some());
    let now = Timestamp(case.updated_at.0 + HOUR_MS);

    let (next, events) = apply(&case, &ctx(now), &assign(None)).unwrap();
    assert_eq!(next.handler.as_deref(), Some("区人社局"));
    assert_eq!(next.resolve_due_at, default_due);
    assert_eq!(events[0].detail, "派单给区人社局，办理期限2024-05-31 09:00");

    let due = Timestamp(T0.0 + 10 * DAY_MS);
    let (next, events) = apply(&case, &ctx(now), &assign(Some(due))).unwrap();
    assert_eq!(next.resolve_due_at, Some(due));
    assert_eq!(events[0].detail, "派单给区人社局，限2024-05-11 08:00前办结");

    for past in [now, Timestamp(now.0 - 1)] {
        let err = apply(&case, &ctx(now), &assign(Some(past))).unwrap_err();
        assert!(matches!(
            err,
            DomainError::InvalidArgument {
                field: "due_at",
                ..
            }
        ));
    }
}

#[test]
fn mediation_sessions_are_counted() {
    let case = case_in(CaseStatus::Accepted);
    let (_, first) = registered();
    let (case, history) = run(case, first, &[mediate(), mediate(), mediate()]);
    assert_eq!(case.status, CaseStatus::InMediation);
    assert_eq!(case.mediation_sessions, 3);
    assert_eq!(case.mediation_type, Some(MediationType::Peoples));
    assert_eq!(
        history.last().unwrap().detail,
        "第3次调解（电话，人民调解），调解员王调解员，结果：继续调解。记录：已电话联系李*（029*****6666），李*同意分期支付"
    );
    let video = Command::RecordMediation {
        method: MediationMethod::Video,
        mediation_type: MediationType::Judicial,
        mediator: "赵法官".into(),
        notes: String::new(),
        result: MediationResult::Agreed,
    };
    let (next, events) = apply(&case, &ctx(hours(1000)), &video).unwrap();
    assert_eq!(next.mediation_type, Some(MediationType::Judicial));
    assert_eq!(
        events[0].detail,
        "第4次调解（远程视频，司法调解），调解员赵法官，结果：达成协议"
    );
}

#[test]
fn resolve_records_the_outcome() {
    let case = case_in(CaseStatus::InMediation);
    let now = hours(200);
    let (ok, events) = apply(&case, &ctx(now), &resolve_ok()).unwrap();
    assert_eq!(ok.agreement, "李四于5月10日前向张三支付工资4400元");
    assert_eq!(ok.settled_amount_fen, 440_000);
    assert_eq!(ok.confirmation, Some(Confirmation::Judicial));
    assert_eq!((ok.resolved_at, ok.closed_at), (Some(now), None));
    // The follow-up (回访) deadline now runs: 7 days from the end of mediation.
    assert_eq!(ok.follow_up_due_at, Some(hours(200 + 7 * 24)));
    assert_eq!(ok.open_deadline(), Some(hours(200 + 7 * 24)));
    assert_eq!(
        events[0].detail,
        "化解成功：达成调解协议，履行金额4400.00元，确认方式：司法确认。协议：李*于5月10日前向张*支付工资4400元；回访期限2024-05-16 16:00"
    );

    let (fail, events) = apply(&case, &ctx(now), &resolve_fail()).unwrap();
    assert_eq!(fail.guidance, "张三可向区劳动人事争议仲裁委员会申请仲裁");
    assert_eq!(
        (
            fail.agreement.as_str(),
            fail.settled_amount_fen,
            fail.confirmation
        ),
        ("", 0, None)
    );
    // resolved_at is when the mediation ended, successfully or not.
    assert_eq!(fail.resolved_at, Some(now));
    assert_eq!(fail.open_deadline(), Some(hours(200 + 7 * 24)));
    assert_eq!(
        events[0].detail,
        "调解不成，已引导：张*可向区劳动人事争议仲裁委员会申请仲裁；回访期限2024-05-16 16:00"
    );
}

#[test]
fn follow_up_closes_or_reopens() {
    for (from, satisfaction) in [(CaseStatus::Resolved, 3), (CaseStatus::Unresolved, 5)] {
        let case = case_in(from);
        let (next, events) = apply(&case, &ctx(hours(500)), &follow_up(satisfaction)).unwrap();
        assert_eq!(next.status, CaseStatus::Closed);
        assert_eq!(
            (next.closed_at, next.satisfaction),
            (Some(hours(500)), Some(satisfaction))
        );
        assert_eq!(next.reopen_count, 0);
        assert_eq!(
            events[0].detail,
            format!("回访满意度{satisfaction}/5，案结事了。回访记录：张*表示已收到款项")
        );
    }
    for (from, satisfaction) in [(CaseStatus::Resolved, 2), (CaseStatus::Unresolved, 1)] {
        let case = case_in(from);
        let (next, events) = apply(&case, &ctx(hours(500)), &follow_up(satisfaction)).unwrap();
        assert_eq!(next.status, CaseStatus::InMediation);
        assert_eq!(
            (next.reopen_count, next.satisfaction),
            (1, Some(satisfaction))
        );
        assert_eq!(next.resolve_due_at, Some(hours(500 + 30 * 24)));
        assert_eq!(next.open_deadline(), next.resolve_due_at);
        assert_eq!((next.resolved_at, next.closed_at), (None, None));
        assert!(events[0].detail.starts_with(&format!(
            "回访满意度{satisfaction}/5，不满意，第1次重新办理；"
        )));
    }
}

/// The whole life of a hard case: two dissatisfied follow-ups before it finally closes.
#[test]
fn a_long_life_keeps_an_unbroken_history() {
    let (case, first) = registered();
    let cmds = [
        accept(),
        assign(Some(hours(24 * 20))),
        mediate(),
        mediate(),
        resolve_ok(),
        follow_up(1),
        mediate(),
        resolve_fail(),
        follow_up(2),
        assign(None),
        mediate(),
        resolve_ok(),
        follow_up(4),
    ];
    let (case, history) = run(case, first, &cmds);
    assert_eq!(case.status, CaseStatus::Closed);
    assert_eq!(case.reopen_count, 2);
    assert_eq!(case.mediation_sessions, 4);
    assert_eq!(case.satisfaction, Some(4));
    assert_eq!(
        case.guidance, "",
        "a later success supersedes the earlier guidance"
    );
    assert_eq!(case.history_len, history.len() as u64);
    assert_eq!(history.len(), cmds.len() + 1);
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        if i > 0 {
            assert_eq!(
                e.from_status,
                Some(history[i - 1].to_status),
                "event {}",
                e.seq
            );
            assert!(e.at > history[i - 1].at);
        }
        for p in PERSONAL {
            assert!(!e.detail.contains(p), "{p} in {:?}", e.detail);
        }
    }
    let reopens: Vec<_> = history
        .iter()
        .filter(|e| e.kind == EventKind::Reopened)
        .collect();
    assert_eq!(reopens.len(), 2);
    assert!(reopens[1].detail.contains("第2次重新办理"));
}

#[test]
fn apply_is_deterministic_and_leaves_its_input_alone() {
    let case = case_in(CaseStatus::InMediation);
    let before = case.clone();
    let a = apply(&case, &ctx(hours(100)), &resolve_ok()).unwrap();
    let b = apply(&case, &ctx(hours(100)), &resolve_ok()).unwrap();
    assert_eq!(a, b);
    assert_eq!(case, before);
}
