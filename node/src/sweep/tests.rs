//! The sweep and the early warnings on a real store, with time driven by a `ManualClock`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::domain::alert::AlertKind;
use crate::domain::{
    Case, CaseStatus, Category, Channel, Deadlines, EventKind, NewCase, Party, PartyRole, Policy,
    RiskLevel, machine,
};

const H: u64 = 3_600;
/// 2024-05-01 08:00 in China.
const T0: Timestamp = Timestamp(1_714_521_600_000);
const VILLAGE: &str = "610116001001";
const TOWNSHIP: &str = "610116001";
const INTAKE: &str = "spiffe://fengqiao/op/610116001001/intake/li";

struct Node {
    state: Arc<NodeState>,
    clock: Arc<ManualClock>,
}

fn node(dir: &Path, policy: Policy, cadence: Option<crate::report::Cadence>) -> Node {
    let clock = Arc::new(ManualClock::new(T0));
    let state = Arc::new(NodeState::for_tests(
        dir,
        VILLAGE,
        clock.clone(),
        policy,
        cadence,
    ));
    Node { state, clock }
}

impl Node {
    fn at(&self, hours: u64) -> Timestamp {
        self.clock.set(T0.plus(Duration::from_secs(hours * H)));
        self.clock.now()
    }

    /// Registers like the service does (machine, store, then the early warnings).
    async fn register(&self, key: &str, risk: RiskLevel, parties: Vec<Party>) -> Case {
        let now = self.clock.now();
        let new = NewCase {
            idempotency_key: key.into(),
            category: Category::Labor,
            channel: Channel::WalkIn,
            summary: "讨薪".into(),
            description: String::new(),
            parties,
            amount_fen: 100,
            risk,
            grid_id: String::new(),
        };
        let case = self.register_quietly(new, now).await;
        early::after_register(&self.state, &case, now)
            .await
            .unwrap();
        self.case(&case.id)
    }

    /// Registration whose early-warning step never ran (a crash right after the commit).
    async fn register_quietly(&self, new: NewCase, now: Timestamp) -> Case {
        let day = machine::china_day(now);
        let deadlines = self.state.deadlines.clone();
        let d = day.clone();
        self.state
            .store
            .register(new.idempotency_key.clone(), day, move |seq| {
                let ctx = Ctx {
                    now,
                    node: VILLAGE,
                    actor: INTAKE,
                    deadlines: &deadlines,
                };
                machine::register(
                    &ctx,
                    &new,
                    machine::case_id(VILLAGE, &d, seq),
                    format!("L{d}{seq}"),
                )
            })
            .await
            .unwrap()
            .case
    }

    fn case(&self, id: &str) -> Case {
        self.state.store.get_case(id).unwrap().unwrap()
    }

    fn alerts(&self, kind: AlertKind) -> Vec<crate::domain::alert::Alert> {
        let all = self.state.store.alerts_newest(1000).unwrap();
        all.into_iter().filter(|a| a.kind == kind).collect()
    }

    async fn sweep(&self) -> SweepReport {
        run_once(&self.state, self.clock.now()).await.unwrap()
    }
}

fn person(id: &str) -> Vec<Party> {
    vec![Party {
        role: PartyRole::Applicant,
        name: "张三".into(),
        phone: "13812345678".into(),
        id_number: id.into(),
    }]
}

fn against(employer: &str) -> Vec<Party> {
    vec![
        Party {
            role: PartyRole::Applicant,
            name: "工人".into(),
            phone: String::new(),
            id_number: String::new(),
        },
        Party {
            role: PartyRole::Respondent,
            name: employer.into(),
            phone: String::new(),
            id_number: String::new(),
        },
    ]
}

#[tokio::test]
async fn overdue_cases_are_flagged_then_supervised_by_the_parent_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), Policy::default(), None);
    let case = n.register("a", RiskLevel::Blue, person("")).await;
    // Review due at 72 h; escalation after one more day.
    n.at(72);
    assert_eq!(n.sweep().await, SweepReport::default());
    n.at(73);
    let r = n.sweep().await;
    assert_eq!((r.overdue_alerts, r.supervised.len()), (1, 0));
    n.at(96);
    assert_eq!(
        n.sweep().await,
        SweepReport::default(),
        "not yet more than a day"
    );
    n.at(97);
    let r = n.sweep().await;
    assert_eq!(r.supervised, std::slice::from_ref(&case.id));
    let c = n.case(&case.id);
    assert_eq!(c.supervising_nodes, [TOWNSHIP]);
    let h = n.state.store.history(&case.id).unwrap();
    assert_eq!(h.last().map(|e| e.kind), Some(EventKind::SupervisionOpened));
    assert_eq!(
        h.last().map(|e| e.actor.as_str()),
        Some("spiffe://fengqiao/node/610116001001")
    );
    assert_eq!(n.alerts(AlertKind::Supervision).len(), 1);
    assert_eq!(n.alerts(AlertKind::Supervision)[0].forward_to, [TOWNSHIP]);
    // Again, and later: nothing more.
    assert_eq!(n.sweep().await, SweepReport::default());
    n.at(500);
    assert_eq!(n.sweep().await, SweepReport::default());
    assert_eq!(n.state.store.history(&case.id).unwrap().len(), h.len());
    assert_eq!(n.alerts(AlertKind::Overdue).len(), 1);
}

#[tokio::test]
async fn the_rule_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = node(dir.path(), Policy::default(), None);
    let state = Arc::get_mut(&mut n.state).unwrap();
    state.deadlines.escalate_overdue_after = None;
    let case = n.register("a", RiskLevel::Blue, person("")).await;
    n.at(1000);
    let r = n.sweep().await;
    assert_eq!((r.overdue_alerts, r.supervised.len()), (1, 0));
    assert!(n.case(&case.id).supervising_nodes.is_empty());
}

#[tokio::test]
async fn a_restart_between_the_deadline_being_set_and_reached() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let n = node(dir.path(), Policy::default(), None);
        let case = n.register("a", RiskLevel::Blue, person("")).await;
        n.at(1);
        assert_eq!(n.sweep().await, SweepReport::default());
        n.state.store.shutdown().await;
        case.id
    };
    let n = node(dir.path(), Policy::default(), None);
    let c = n.case(&id);
    assert_eq!(
        c.review_due_at,
        T0.plus(Duration::from_secs(72 * H)),
        "deadline kept"
    );
    n.at(100);
    let r = n.sweep().await;
    assert_eq!((r.overdue_alerts, r.supervised), (1, vec![id.clone()]));
    assert_eq!(n.case(&id).supervising_nodes, [TOWNSHIP]);
}

#[tokio::test]
async fn colour_supervision_at_registration_raises_its_alert() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), Policy::default(), None);
    let case = n.register("a", RiskLevel::Red, person("")).await;
    assert_eq!(case.supervising_nodes, ["610116"]);
    let alerts = n.alerts(AlertKind::Supervision);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].forward_to, ["610116"]);
    // The catch-up finds nothing more to say.
    assert_eq!(n.sweep().await.early_warnings, 0);
}

#[tokio::test]
async fn the_same_person_three_times_raises_the_risk_of_the_third_case() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), Policy::default(), None);
    let id = "610102199001011234";
    let first = n.register("a", RiskLevel::Blue, person(id)).await;
    n.at(24 * 30);
    let second = n.register("b", RiskLevel::Blue, person(id)).await;
    assert!(
        n.alerts(AlertKind::RepeatPerson).is_empty(),
        "two is not yet a pattern"
    );
    n.at(24 * 60);
    let third = n.register("c", RiskLevel::Orange, person(id)).await;
    let alerts = n.alerts(AlertKind::RepeatPerson);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].case_ids,
        [first.id.clone(), second.id.clone(), third.id.clone()]
    );
    assert_eq!(alerts[0].forward_to, [TOWNSHIP]);
    assert!(
        alerts[0].message.contains("6101**********1234"),
        "{}",
        alerts[0].message
    );
    assert!(!alerts[0].message.contains(id), "{}", alerts[0].message);
    // Orange raised to red at a village: the county now supervises.
    assert_eq!(third.risk, RiskLevel::Red);
    assert_eq!(third.supervising_nodes, ["610116"]);
    let kinds: Vec<_> = n
        .state
        .store
        .history(&third.id)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Registered,
            EventKind::RiskChanged,
            EventKind::SupervisionClosed,
            EventKind::SupervisionOpened
        ]
    );
    // Evaluated again (the catch-up): nothing more.
    early::after_register(&n.state, &third, n.clock.now())
        .await
        .unwrap();
    assert_eq!(n.case(&third.id).history_len, 4);
    assert_eq!(n.alerts(AlertKind::RepeatPerson).len(), 1);
    // A fourth case is news again; one more than 180 days after the others is not.
    n.at(24 * 61);
    let fourth = n.register("d", RiskLevel::Blue, person(id)).await;
    assert_eq!(fourth.risk, RiskLevel::Yellow);
    n.at(24 * 400);
    let late = n.register("e", RiskLevel::Blue, person(id)).await;
    assert_eq!(late.risk, RiskLevel::Blue);
    assert_eq!(n.alerts(AlertKind::RepeatPerson).len(), 2);
}

#[tokio::test]
async fn the_repeat_threshold_and_window_are_config() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        repeat_person_cases: 2,
        repeat_person_window: Duration::from_secs(10 * 24 * H),
        ..Policy::default()
    };
    let n = node(dir.path(), policy, None);
    n.register("a", RiskLevel::Blue, person("610102199001011234"))
        .await;
    n.at(24 * 11);
    let b = n
        .register("b", RiskLevel::Blue, person("610102199001011234"))
        .await;
    assert_eq!(b.risk, RiskLevel::Blue, "outside the 10-day window");
    n.at(24 * 12);
    let c = n
        .register("c", RiskLevel::Blue, person("610102199001011234"))
        .await;
    assert_eq!(c.risk, RiskLevel::Yellow, "two within the window");
    let off = Policy {
        repeat_person_cases: 0,
        respondent_open_cases: 0,
        ..Policy::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), off, None);
    for k in ["a", "b", "c", "d"] {
        n.register(k, RiskLevel::Blue, person("610102199001011234"))
            .await;
        n.register(&format!("{k}2"), RiskLevel::Blue, against("某建筑有限公司"))
            .await;
    }
    assert!(n.state.store.alerts_newest(10).unwrap().is_empty());
}

#[tokio::test]
async fn open_cases_against_one_employer_signal_a_group_dispute() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), Policy::default(), None);
    let a = n
        .register("a", RiskLevel::Blue, against("某建筑有限公司"))
        .await;
    let b = n
        .register("b", RiskLevel::Blue, against("某建筑 有限公司"))
        .await;
    n.register("x", RiskLevel::Blue, against("另一家公司"))
        .await;
    assert!(n.alerts(AlertKind::GroupDispute).is_empty());
    let c = n
        .register("c", RiskLevel::Blue, against("某建筑有限公司"))
        .await;
    let alerts = n.alerts(AlertKind::GroupDispute);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].case_ids,
        [a.id.clone(), b.id.clone(), c.id.clone()]
    );
    assert!(
        alerts[0].message.contains("某建筑有限公司"),
        "{}",
        alerts[0].message
    );
    // A case no longer open does not count: after rejecting one, a new case makes three again.
    n.state
        .store
        .update(a.id.clone(), |case| {
            let mut next = case.clone();
            next.status = CaseStatus::Rejected;
            Ok((next, Vec::new()))
        })
        .await
        .unwrap();
    let d = n
        .register("d", RiskLevel::Blue, against("某建筑有限公司"))
        .await;
    let alerts = n.alerts(AlertKind::GroupDispute);
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        alerts[0].case_ids,
        [b.id.clone(), c.id.clone(), d.id.clone()]
    );
}

#[tokio::test]
async fn the_sweep_catches_up_on_warnings_a_crash_lost() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), Policy::default(), None);
    n.register("a", RiskLevel::Blue, person("610102199001011234"))
        .await;
    n.register("b", RiskLevel::Blue, person("610102199001011234"))
        .await;
    assert_eq!(
        n.sweep().await.early_warnings,
        0,
        "cursor starts at the newest case"
    );
    let new = NewCase {
        idempotency_key: "c".into(),
        category: Category::Labor,
        channel: Channel::WalkIn,
        summary: "讨薪".into(),
        description: String::new(),
        parties: person("610102199001011234"),
        amount_fen: 0,
        risk: RiskLevel::Red,
        grid_id: String::new(),
    };
    let c = n.register_quietly(new, n.clock.now()).await;
    // Red at a village: a supervision alert and a repeat-person alert are owed.
    let r = n.sweep().await;
    assert_eq!(r.early_warnings, 2);
    assert_eq!(n.alerts(AlertKind::RepeatPerson)[0].case_ids.len(), 3);
    assert_eq!(n.case(&c.id).risk, RiskLevel::Red);
    assert_eq!(n.sweep().await.early_warnings, 0);
}

#[tokio::test]
async fn a_dissatisfied_follow_up_is_an_alert_for_the_parent() {
    use crate::domain::{Command, Confirmation, alert};
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), Policy::default(), None);
    let case = n.register("a", RiskLevel::Blue, person("")).await;
    let policy = Policy::default();
    for (h, cmd) in [
        (
            1,
            Command::Review {
                accept: true,
                reason: String::new(),
                guidance: String::new(),
            },
        ),
        (
            2,
            Command::Resolve {
                resolved: true,
                agreement: "付清".into(),
                settled_amount_fen: 0,
                confirmation: Confirmation::None,
            },
        ),
        (
            3,
            Command::FollowUp {
                satisfaction: 1,
                notes: String::new(),
            },
        ),
    ] {
        let now = n.at(h);
        let policy = policy.clone();
        n.state
            .store
            .update_raising(case.id.clone(), move |c| {
                let d = Deadlines::default();
                let ctx = Ctx {
                    now,
                    node: VILLAGE,
                    actor: INTAKE,
                    deadlines: &d,
                };
                let (next, events) = machine::apply(c, &ctx, &cmd)?;
                Ok(alert::after_command(c, next, events, &ctx, &policy))
            })
            .await
            .unwrap();
    }
    let c = n.case(&case.id);
    assert_eq!((c.status, c.reopen_count), (CaseStatus::InMediation, 1));
    assert_eq!(c.supervising_nodes, [TOWNSHIP]);
    let reopened = n.alerts(AlertKind::Reopened);
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened[0].forward_to, [TOWNSHIP]);
}

#[tokio::test]
async fn scheduled_reports_are_written_once_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(
        dir.path(),
        Policy::default(),
        Some(crate::report::Cadence::Day),
    );
    n.register("a", RiskLevel::Red, person("")).await;
    // 2024-05-02 09:00: the report of 1 May is due.
    n.at(25);
    let written = n.sweep().await.report.expect("a report");
    assert_eq!(
        written,
        dir.path()
            .join("reports")
            .join("610116001001-day-2024-05-01.txt")
    );
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(text.contains("登记受理: 1"), "{text}");
    assert!(text.contains("三、红色、橙色风险案件（1）"), "{text}");
    assert!(!text.contains("13812345678"), "{text}");
    let csv = std::fs::read_to_string(written.with_extension("csv")).unwrap();
    assert!(csv.starts_with("section,name,value"), "{csv}");
    assert_eq!(n.sweep().await.report, None, "once");
    n.at(49);
    assert!(n.sweep().await.report.is_some(), "the next day");
}

/// One damaged record does not stop the sweep: it is skipped, alerted once, counted, and the
/// other overdue cases are handled as ever.
#[tokio::test]
async fn a_damaged_record_is_skipped_and_alerted_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), Policy::default(), None);
    let good = n.register("good", RiskLevel::Blue, Vec::new()).await;
    let bad = n.register("bad", RiskLevel::Blue, Vec::new()).await;
    n.state.store.damage_case_for_tests(&bad.id);
    // Past the review deadline of both.
    let now = n.at(24 * 4);
    run_once(&n.state, now)
        .await
        .expect("the sweep runs past the damage");
    let alerts = n.state.store.alerts_newest(50).unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == AlertKind::Overdue && a.case_ids == [good.id.clone()]),
        "{alerts:?}"
    );
    let damaged: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Damaged)
        .collect();
    assert_eq!(damaged.len(), 1, "{alerts:?}");
    assert!(
        damaged[0].message.contains(&bad.id),
        "{}",
        damaged[0].message
    );
    assert_eq!(n.state.store.damaged_records().len(), 1);
    // Once.
    run_once(&n.state, n.at(24 * 5)).await.unwrap();
    let again = n.state.store.alerts_newest(50).unwrap();
    assert_eq!(
        again
            .iter()
            .filter(|a| a.kind == AlertKind::Damaged)
            .count(),
        1
    );
}
