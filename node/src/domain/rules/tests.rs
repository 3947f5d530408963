//! Warning levels, the colour rule's tiers and the supervision bookkeeping.

use super::*;
use crate::domain::machine::tests::{parties, sample_case};
use crate::domain::{CaseStatus, DeadlineKind};

const H: i64 = 3_600_000;

fn t(hours_x10: i64) -> Timestamp {
    // Tenths of an hour from 0, to hit 75% and 90% of 3 days exactly.
    Timestamp(hours_x10 * H / 10)
}

#[test]
fn warning_thresholds_are_75_and_90_percent() {
    // A 3-day review deadline: 72 h. 75% = 54 h, 90% = 64.8 h.
    let (start, due) = (t(0), t(720));
    assert_eq!(warning_level(start, due, t(0)), Warning::None);
    assert_eq!(warning_level(start, due, t(539)), Warning::None);
    assert_eq!(warning_level(start, due, t(540)), Warning::Amber);
    assert_eq!(warning_level(start, due, t(647)), Warning::Amber);
    assert_eq!(warning_level(start, due, t(648)), Warning::Red);
    assert_eq!(warning_level(start, due, t(720)), Warning::Red);
    assert_eq!(
        warning_level(start, due, t(9999)),
        Warning::Red,
        "overdue is red"
    );
    // Before the start (a clock set back): nothing.
    assert_eq!(warning_level(start, due, Timestamp(-H)), Warning::None);
    // A deadline without length is red once due, never before.
    assert_eq!(warning_level(t(10), t(10), t(9)), Warning::None);
    assert_eq!(warning_level(t(10), t(10), t(10)), Warning::Red);
    assert_eq!(warning_level(t(10), t(5), t(7)), Warning::Red);
    // Extreme values do not overflow.
    let far = Timestamp(i64::MAX);
    assert_eq!(warning_level(Timestamp(i64::MIN), far, far), Warning::Red);
}

#[test]
fn each_deadline_warns_from_its_own_start() {
    let mut case = sample_case(parties());
    let t0 = case.created_at;
    let at = |h: i64| Timestamp(t0.0 + h * H);
    // Review: 3 days from registration.
    assert_eq!(case.deadline().map(|d| d.kind), Some(DeadlineKind::Review));
    assert_eq!(case.warning(at(53)), Warning::None);
    assert_eq!(case.warning(at(54)), Warning::Amber);
    assert_eq!(case.warning(at(65)), Warning::Red);
    // Resolution: 30 days from acceptance at 48 h: 75% at 48 + 540 h.
    case.status = CaseStatus::Accepted;
    case.resolve_started_at = Some(at(48));
    case.resolve_due_at = Some(at(48 + 720));
    assert_eq!(case.deadline().map(|d| d.kind), Some(DeadlineKind::Resolve));
    assert_eq!(case.warning(at(48 + 539)), Warning::None);
    assert_eq!(case.warning(at(48 + 540)), Warning::Amber);
    assert_eq!(case.warning(at(48 + 648)), Warning::Red);
    // Follow-up: 7 days from the end of mediation.
    case.status = CaseStatus::Resolved;
    case.resolved_at = Some(at(100));
    case.follow_up_due_at = Some(at(100 + 168));
    assert_eq!(
        case.deadline().map(|d| d.kind),
        Some(DeadlineKind::FollowUp)
    );
    assert_eq!(case.warning(at(100 + 125)), Warning::None);
    assert_eq!(case.warning(at(100 + 126)), Warning::Amber);
    assert_eq!(case.warning(at(100 + 152)), Warning::Red);
    assert!(case.is_overdue(at(100 + 169)));
    // Nothing runs on a closed case.
    case.status = CaseStatus::Closed;
    assert_eq!(case.deadline(), None);
    assert_eq!(case.warning(at(10_000)), Warning::None);
}

#[test]
fn colours_are_followed_at_their_tier() {
    use RiskLevel::*;
    let village = "610116001001";
    let township = "610116001";
    let county = "610116";
    let city = "6101";
    let cases = [
        (village, Red, Some("610116")),
        (village, Orange, Some("610116001")),
        (village, Yellow, None),
        (village, Blue, None),
        (township, Red, Some("610116")),
        (township, Orange, None),
        (county, Red, None),
        (county, Orange, None),
        (city, Red, None),
    ];
    for (owner, risk, want) in cases {
        assert_eq!(
            risk_supervisor(owner, risk).as_deref(),
            want,
            "{owner} {risk:?}"
        );
    }
    assert_eq!(risk_supervisor("not a code", Red), None);
    assert_eq!(parent_of(village).as_deref(), Some(township));
    assert_eq!(parent_of("61"), None);
}

fn case_at(owner: &str) -> Case {
    let mut c = sample_case(parties());
    c.owner_node = owner.into();
    c
}

#[test]
fn open_and_close_keep_the_books() {
    let mut c = case_at("610116001001");
    assert_eq!(
        open(&mut c, "610116", SupervisionCause::Risk),
        Opened::Added
    );
    assert_eq!(
        open(&mut c, "610116", SupervisionCause::Risk),
        Opened::Unchanged
    );
    // Nearest first, whatever the order of opening.
    assert_eq!(
        open(&mut c, "610116001", SupervisionCause::Overdue),
        Opened::Added
    );
    assert_eq!(c.supervising_nodes, ["610116001", "610116"]);
    // A second cause for the same node is recorded without changing the set.
    assert_eq!(
        open(&mut c, "610116001", SupervisionCause::Reopened),
        Opened::Recorded
    );
    assert_eq!(c.supervising_nodes.len(), 2);
    // Closing one cause keeps a node another cause still needs.
    let ended = close(&mut c, SupervisionCause::Overdue, None);
    assert_eq!(ended, [("610116001".to_string(), true)]);
    assert_eq!(c.supervising_nodes, ["610116001", "610116"]);
    let ended = close(&mut c, SupervisionCause::Reopened, None);
    assert_eq!(ended, [("610116001".to_string(), false)]);
    assert_eq!(c.supervising_nodes, ["610116"]);
    // `keep` spares the node the rule still wants.
    assert!(close(&mut c, SupervisionCause::Risk, Some("610116")).is_empty());
    assert_eq!(close(&mut c, SupervisionCause::Risk, None).len(), 1);
    assert!(c.supervising_nodes.is_empty() && c.rule_supervision.is_empty());
}

#[test]
fn supervision_from_elsewhere_is_never_touched() {
    // The parent supervises after an escalation (提级督办): no rule entry.
    let mut c = case_at("610116001001");
    c.supervising_nodes = vec!["610116001".into()];
    assert_eq!(
        open(&mut c, "610116001", SupervisionCause::Overdue),
        Opened::Unchanged
    );
    assert!(c.rule_supervision.is_empty());
    assert!(close(&mut c, SupervisionCause::Overdue, None).is_empty());
    assert_eq!(c.supervising_nodes, ["610116001"]);
}

#[test]
fn stale_entries_are_dropped() {
    // The federation removed the county; the rule's record of it is stale.
    let mut c = case_at("610116001001");
    open(&mut c, "610116", SupervisionCause::Risk);
    c.supervising_nodes.clear();
    assert!(close(&mut c, SupervisionCause::Risk, None).is_empty());
    assert!(c.rule_supervision.is_empty());
    // Opening again adds it back.
    assert_eq!(
        open(&mut c, "610116", SupervisionCause::Risk),
        Opened::Added
    );
}

#[test]
fn reconcile_follows_the_colour() {
    let mut c = case_at("610116001001");
    c.risk = RiskLevel::Red;
    let d = reconcile_risk(&mut c);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, EventKind::SupervisionOpened);
    assert_eq!(d[0].1, "红色风险由县委政法委书记跟踪，提请610116督办");
    assert_eq!(c.supervising_nodes, ["610116"]);
    assert!(reconcile_risk(&mut c).is_empty(), "idempotent");
    c.risk = RiskLevel::Orange;
    let d = reconcile_risk(&mut c);
    let kinds: Vec<_> = d.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [EventKind::SupervisionClosed, EventKind::SupervisionOpened]
    );
    assert_eq!(c.supervising_nodes, ["610116001"]);
    c.risk = RiskLevel::Blue;
    let d = reconcile_risk(&mut c);
    assert_eq!(
        d,
        [(
            EventKind::SupervisionClosed,
            "风险等级为蓝色，无需610116001跟踪，解除风险督办".to_string()
        )]
    );
    assert!(c.supervising_nodes.is_empty());
}

#[test]
fn reconcile_owner_follows_the_owner() {
    // A red village case, also overdue (the township) and under the county for both.
    let mut c = case_at("610116001001");
    c.risk = RiskLevel::Red;
    reconcile_risk(&mut c);
    open(&mut c, "610116001", SupervisionCause::Overdue);
    open(&mut c, "610116", SupervisionCause::Overdue);
    assert!(reconcile_owner(&mut c).is_empty(), "nothing to do in place");
    // Moved to a village of another county: every supervisor ends, one event per rule that
    // let go of a node, and the new county follows the colour.
    c.owner_node = "610115001001".into();
    let d = reconcile_owner(&mut c);
    let details: Vec<&str> = d.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        details,
        [
            "案件现由610115001001承办，610116不是其上级，解除风险督办",
            "红色风险由县委政法委书记跟踪，提请610115督办",
            "案件现由610115001001承办，610116001不是其上级，督办随之结束（原督办原因：逾期）",
            "案件现由610115001001承办，610116不是其上级，督办随之结束（原督办原因：逾期）",
        ]
    );
    assert_eq!(c.supervising_nodes, ["610115"]);
    assert_eq!(
        c.rule_supervision,
        [RuleSupervision {
            node: "610115".into(),
            cause: SupervisionCause::Risk
        }]
    );
    assert!(reconcile_owner(&mut c).is_empty(), "idempotent");
    // The county takes it over: its own colour needs nobody.
    c.owner_node = "610115".into();
    assert_eq!(
        reconcile_owner(&mut c),
        [(
            EventKind::SupervisionClosed,
            "610115已承办本案，红色风险由其自行跟踪，解除风险督办".to_string()
        )]
    );
    assert!(c.supervising_nodes.is_empty() && c.rule_supervision.is_empty());
    assert!(may_supervise("6101", "610116") && !may_supervise("610116", "610116"));
    assert!(!may_supervise("610115", "610116001") && !may_supervise("x", "610116"));
}

#[test]
fn words_and_normal_forms() {
    assert_eq!(duration_zh(Duration::from_secs(3 * 86_400)), "3天");
    assert_eq!(duration_zh(Duration::from_secs(12 * 3_600)), "12小时");
    assert_eq!(duration_zh(Duration::from_secs(90)), "90秒");
    assert_eq!(duration_zh(Duration::from_secs(120)), "2分钟");
    assert_eq!(duration_zh(Duration::from_millis(5)), "5毫秒");
    assert_eq!(
        normalize_id_number(" 61010219900101123x "),
        "61010219900101123X"
    );
    assert_eq!(
        normalize_respondent("某建筑 有限公司（西安）ＡＢＣ"),
        "某建筑有限公司(西安)abc"
    );
    assert_eq!(RiskLevel::Blue.raised(), RiskLevel::Yellow);
    assert_eq!(RiskLevel::Orange.raised(), RiskLevel::Red);
    assert_eq!(RiskLevel::Red.raised(), RiskLevel::Red);
}
