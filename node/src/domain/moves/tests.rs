//! Tests of ownership moves and supervision.

use super::*;
use crate::domain::Deadlines;
use crate::domain::machine::tests::{parties, sample_case};

const T1: Timestamp = Timestamp(1_714_600_000_000);

fn ctx<'a>(node: &'a str, actor: &'a str, deadlines: &'a Deadlines) -> Ctx<'a> {
    Ctx {
        now: T1,
        node,
        actor,
        deadlines,
    }
}

#[test]
fn a_move_leaves_a_tombstone_and_the_receiver_continues_the_history() {
    let d = Deadlines::default();
    let case = sample_case(parties());
    assert_eq!(case.owner_node, "610116");
    let (tomb, out) = hand_over(
        &case,
        &ctx("610116", "spiffe://fengqiao/op/610116/director/z", &d),
        "610116001001",
        MoveKind::Transfer,
        "交办：请张三所在村调解",
    )
    .unwrap();
    assert_eq!(tomb.status, CaseStatus::Transferred);
    assert_eq!(tomb.moved_to.as_deref(), Some("610116001001"));
    assert_eq!(tomb.owner_node, "610116001001");
    assert_eq!(tomb.epoch, case.epoch);
    // The tombstone answers a citizen who comes back, without the parties' data.
    assert!(tomb.parties.is_empty(), "{:?}", tomb.parties);
    assert!(tomb.description.is_empty() && tomb.plan == Default::default());
    assert_eq!(
        (&tomb.id, &tomb.lookup_code, &tomb.summary),
        (&case.id, &case.lookup_code, &case.summary)
    );
    let stored = format!("{tomb:?}");
    for p in &case.parties {
        for personal in [&p.name, &p.phone, &p.id_number] {
            assert!(
                personal.is_empty() || !stored.contains(personal.as_str()),
                "{personal} in {stored}"
            );
        }
    }
    assert_eq!(out.seq, case.history_len + 1);
    assert_eq!(out.kind, EventKind::TransferredOut);
    assert_eq!(out.from_status, Some(CaseStatus::Registered));
    assert!(!out.detail.contains("张三"), "{}", out.detail);

    let relay = relay_event(
        out.seq,
        &ctx("610116001", &node_actor("610116001"), &d),
        "610116001001",
    );
    assert_eq!(relay.seq, out.seq + 1);
    assert_eq!(relay.kind, EventKind::Relayed);

    let (got, recv) = receive(
        &case,
        relay.seq,
        &ctx("610116001001", &node_actor("610116001001"), &d),
        case.epoch + 1,
        "610116",
        MoveKind::Transfer,
    );
    assert_eq!(got.owner_node, "610116001001");
    assert_eq!(got.epoch, case.epoch + 1);
    assert_eq!(got.status, CaseStatus::Registered);
    assert_eq!(got.moved_to, None);
    // A blue case: nothing for the rules to do, one event.
    assert_eq!(recv.len(), 1);
    assert_eq!(recv[0].seq, relay.seq + 1);
    assert_eq!(got.history_len, recv[0].seq);
    assert_eq!(recv[0].to_status, CaseStatus::Registered);
}

#[test]
fn final_cases_do_not_move_and_a_reason_is_required() {
    let d = Deadlines::default();
    let c = ctx("610116", "a", &d);
    let mut case = sample_case(parties());
    assert!(matches!(
        hand_over(&case, &c, "6101", MoveKind::TakeOver, "  "),
        Err(DomainError::InvalidArgument {
            field: "reason",
            ..
        })
    ));
    for status in [
        CaseStatus::Closed,
        CaseStatus::Rejected,
        CaseStatus::Transferred,
    ] {
        case.status = status;
        assert!(matches!(
            hand_over(&case, &c, "6101", MoveKind::TakeOver, "r"),
            Err(DomainError::IllegalTransition { .. })
        ));
    }
}

#[test]
fn a_new_owner_keeps_only_its_own_ancestors_as_supervisors() {
    let d = Deadlines::default();
    let mut case = sample_case(parties());
    case.owner_node = "610116001001".into();
    case.supervising_nodes = vec!["610116001".into(), "610116".into()];
    let (got, events) = receive(
        &case,
        case.history_len,
        &ctx("610116001", "x", &d),
        2,
        "610116001001",
        MoveKind::TakeOver,
    );
    assert_eq!(got.supervising_nodes, vec!["610116".to_string()]);
    // The township's supervision (an escalation) ends with the take-over, and says so.
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, EventKind::SupervisionClosed);
    assert_eq!(events[1].detail, "610116001已承办本案，不再督办");
    // Sideways, to a village of another township: the old township is not an ancestor.
    let (got, events) = receive(
        &case,
        case.history_len,
        &ctx("610116002001", "x", &d),
        2,
        "610116",
        MoveKind::Ordered,
    );
    assert_eq!(got.supervising_nodes, vec!["610116".to_string()]);
    assert_eq!(
        events[1].detail,
        "案件现由610116002001承办，610116001不是其上级，督办随之结束"
    );
}

#[test]
fn restore_takes_an_epoch_above_the_refused_one() {
    let d = Deadlines::default();
    let case = sample_case(parties());
    let (got, e) = restore(
        &case,
        4,
        &ctx("610116", "x", &d),
        5,
        "610116009",
        "610116009不接收移交案件：本镇已撤并入610116002",
    );
    let [e] = &e[..] else { panic!("{e:?}") };
    assert_eq!(got.epoch, 6);
    assert_eq!(got.owner_node, "610116");
    assert_eq!(e.seq, 5);
    assert_eq!(e.kind, EventKind::Returned);
    assert_eq!(got.history_len, 5);
    // The refusing node's words keep their division codes.
    assert!(
        e.detail
            .ends_with("原因：610116009不接收移交案件：本镇已撤并入610116002"),
        "{}",
        e.detail
    );
}

#[test]
fn supervision_is_requested_once_and_orders_add_the_issuer_nearest_first() {
    let d = Deadlines::default();
    let mut case = sample_case(parties());
    case.owner_node = "610116001001".into();
    let c = ctx("610116001001", "a", &d);
    let (next, events) = request_supervision(&case, &c, "610116001", "群体性风险").unwrap();
    assert_eq!(next.supervising_nodes, vec!["610116001".to_string()]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::SupervisionRequested);
    let (again, none) = request_supervision(&next, &c, "610116001", "再次").unwrap();
    assert_eq!(again, next);
    assert!(none.is_empty());

    let (ordered, e) = supervision_order(
        &next,
        &ctx("6101", "spiffe://fengqiao/op/6101/director/m", &d),
        "请于十日内化解，张三13812345678",
        Some(T1),
    );
    assert_eq!(
        ordered.supervising_nodes,
        vec!["610116001".to_string(), "6101".to_string()]
    );
    assert_eq!(e.node, "6101");
    assert_eq!(e.seq, next.history_len + 1);
    assert!(!e.detail.contains("13812345678"), "{}", e.detail);
    // An order never lists the owner itself.
    let (same, _) = supervision_order(&next, &ctx("610116001001", "a", &d), "x", None);
    assert_eq!(same.supervising_nodes, next.supervising_nodes);
}

// The colour rule re-applied by the node that installs a moved case.

use crate::domain::{RiskLevel, RuleSupervision, SupervisionCause};

const CITY: &str = "6101";
const COUNTY: &str = "610116";
const TOWN: &str = "610116001";
const V1: &str = "610116001001";

/// A case of colour `risk` owned by `owner`, with the colour rule applied as at registration.
fn coloured(owner: &str, risk: RiskLevel) -> Case {
    let mut case = sample_case(parties());
    case.owner_node = owner.into();
    case.origin_node = owner.into();
    case.risk = risk;
    rules::reconcile_risk(&mut case);
    case
}

/// `carried` received at `at` from `from`, as the federation installs it.
fn moved(carried: &Case, at: &str, from: &str, kind: MoveKind) -> (Case, Vec<Event>) {
    let d = Deadlines::default();
    let actor = node_actor(at);
    receive(
        carried,
        carried.history_len + 1,
        &ctx(at, &actor, &d),
        carried.epoch + 1,
        from,
        kind,
    )
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

fn risk_entry(node: &str) -> RuleSupervision {
    RuleSupervision {
        node: node.into(),
        cause: SupervisionCause::Risk,
    }
}

/// Events continue the history one by one and the case's `history_len` is the last.
fn numbered(case: &Case, events: &[Event]) {
    let first = events[0].seq;
    for (e, seq) in events.iter().zip(first..) {
        assert_eq!(e.seq, seq);
        assert_eq!(e.node, case.owner_node);
        assert_eq!(e.to_status, case.status);
    }
    assert_eq!(case.history_len, events.last().unwrap().seq);
}

#[test]
fn a_red_case_moved_down_from_the_county_is_supervised_by_the_county() {
    let red = coloured(COUNTY, RiskLevel::Red);
    assert!(
        red.supervising_nodes.is_empty(),
        "the county follows red itself"
    );
    let (got, events) = moved(&red, V1, COUNTY, MoveKind::Transfer);
    assert_eq!(got.supervising_nodes, [COUNTY]);
    assert_eq!(got.rule_supervision, [risk_entry(COUNTY)]);
    assert_eq!(
        kinds(&events),
        [EventKind::Received, EventKind::SupervisionOpened]
    );
    assert_eq!(
        events[1].detail,
        "红色风险由县委政法委书记跟踪，提请610116督办"
    );
    assert_eq!(events[1].actor, node_actor(V1));
    assert_eq!(events[1].from_status, Some(CaseStatus::Registered));
    numbered(&got, &events);
    // Down to a township: the county too.
    let (got, _) = moved(&red, TOWN, COUNTY, MoveKind::Transfer);
    assert_eq!(got.supervising_nodes, [COUNTY]);
}

#[test]
fn a_red_case_taken_over_by_the_county_ends_the_county_s_risk_supervision() {
    let red = coloured(TOWN, RiskLevel::Red);
    assert_eq!(red.supervising_nodes, [COUNTY]);
    let (got, events) = moved(&red, COUNTY, TOWN, MoveKind::TakeOver);
    assert!(
        got.supervising_nodes.is_empty(),
        "{:?}",
        got.supervising_nodes
    );
    assert!(got.rule_supervision.is_empty());
    assert_eq!(
        kinds(&events),
        [EventKind::Received, EventKind::SupervisionClosed]
    );
    assert_eq!(
        events[1].detail,
        "610116已承办本案，红色风险由其自行跟踪，解除风险督办"
    );
    numbered(&got, &events);
    // A red village case moved straight up to the county (a transfer to an ancestor): the same.
    let red = coloured(V1, RiskLevel::Red);
    let (got, events) = moved(&red, COUNTY, V1, MoveKind::Transfer);
    assert!(got.supervising_nodes.is_empty());
    assert_eq!(
        kinds(&events),
        [EventKind::Received, EventKind::SupervisionClosed]
    );
    // Taken over by the township, a red case stays under the county.
    let (got, events) = moved(&red, TOWN, V1, MoveKind::TakeOver);
    assert_eq!(got.supervising_nodes, [COUNTY]);
    assert_eq!(got.rule_supervision, [risk_entry(COUNTY)]);
    assert_eq!(kinds(&events), [EventKind::Received]);
}

#[test]
fn an_orange_case_moved_sideways_is_followed_by_the_new_owner_s_township() {
    let orange = coloured(V1, RiskLevel::Orange);
    assert_eq!(orange.supervising_nodes, [TOWN]);
    // To a village of the same township: the township keeps following, nothing to record.
    let (got, events) = moved(&orange, "610116001002", TOWN, MoveKind::Ordered);
    assert_eq!(got.supervising_nodes, [TOWN]);
    assert_eq!(got.rule_supervision, [risk_entry(TOWN)]);
    assert_eq!(kinds(&events), [EventKind::Received]);
    // To a village of another township: the old township stops, the new one starts.
    let (got, events) = moved(&orange, "610116002001", COUNTY, MoveKind::Ordered);
    assert_eq!(got.supervising_nodes, ["610116002"]);
    assert_eq!(got.rule_supervision, [risk_entry("610116002")]);
    assert_eq!(
        kinds(&events),
        [
            EventKind::Received,
            EventKind::SupervisionClosed,
            EventKind::SupervisionOpened
        ]
    );
    assert_eq!(
        events[1].detail,
        "案件现由610116002001承办，610116001不是其上级，解除风险督办"
    );
    assert_eq!(
        events[2].detail,
        "橙色风险由乡镇党委书记跟踪，提请610116002督办"
    );
    numbered(&got, &events);
}

#[test]
fn supervision_opened_for_other_causes_is_kept() {
    let d = Deadlines::default();
    // A red county case the city follows after an escalation (提级督办, no rule entry),
    // moved down to a village: the city keeps following, the county joins for the colour.
    let red = coloured(COUNTY, RiskLevel::Red);
    let (red, _) = request_supervision(&red, &ctx(COUNTY, "a", &d), CITY, "重大风险").unwrap();
    let (got, events) = moved(&red, V1, COUNTY, MoveKind::Transfer);
    assert_eq!(got.supervising_nodes, [COUNTY, CITY]);
    assert_eq!(got.rule_supervision, [risk_entry(COUNTY)]);
    assert_eq!(
        kinds(&events),
        [EventKind::Received, EventKind::SupervisionOpened]
    );
    // Lowering the risk there ends the county's supervision only.
    let mut lowered = got.clone();
    lowered.risk = RiskLevel::Blue;
    assert_eq!(rules::reconcile_risk(&mut lowered).len(), 1);
    assert_eq!(lowered.supervising_nodes, [CITY]);

    // A red village case also overdue (the township, by the overdue rule) and under a city
    // order, moved to the next village: every supervisor is still an ancestor; nothing ends.
    let mut red = coloured(V1, RiskLevel::Red);
    rules::open(&mut red, TOWN, SupervisionCause::Overdue);
    let (red, _) = supervision_order(&red, &ctx(CITY, "a", &d), "限期化解", None);
    assert_eq!(red.supervising_nodes, [TOWN, COUNTY, CITY]);
    let (got, events) = moved(&red, "610116001002", TOWN, MoveKind::Ordered);
    assert_eq!(got.supervising_nodes, [TOWN, COUNTY, CITY]);
    assert_eq!(got.rule_supervision, red.rule_supervision);
    assert_eq!(kinds(&events), [EventKind::Received]);

    // Taken over by the township: the township owns it now, so its overdue supervision ends
    // too (a supervisor must be a strict ancestor); the county (colour) and the city stay.
    let (got, events) = moved(&red, TOWN, V1, MoveKind::TakeOver);
    assert_eq!(got.supervising_nodes, [COUNTY, CITY]);
    assert_eq!(got.rule_supervision, [risk_entry(COUNTY)]);
    assert_eq!(
        kinds(&events),
        [EventKind::Received, EventKind::SupervisionClosed]
    );
    assert_eq!(
        events[1].detail,
        "610116001已承办本案，不再督办（原督办原因：逾期）"
    );
    numbered(&got, &events);
}

#[test]
fn a_refused_case_taken_back_keeps_the_colour_rule() {
    let d = Deadlines::default();
    let back = |carried: &Case, at: &str| {
        let actor = node_actor(at);
        restore(
            carried,
            carried.history_len + 2,
            &ctx(at, &actor, &d),
            carried.epoch + 1,
            "610116001002",
            "不接收移交案件",
        )
    };
    // A red village case back from a refusing village: the county still follows it, and
    // nothing is reopened or recorded twice.
    let red = coloured(V1, RiskLevel::Red);
    let (got, events) = back(&red, V1);
    assert_eq!(got.supervising_nodes, [COUNTY]);
    assert_eq!(got.rule_supervision, [risk_entry(COUNTY)]);
    assert_eq!(kinds(&events), [EventKind::Returned]);
    // A red county case refused below comes back to the county: nobody extra.
    let red = coloured(COUNTY, RiskLevel::Red);
    let (got, events) = back(&red, COUNTY);
    assert!(got.supervising_nodes.is_empty());
    assert_eq!(kinds(&events), [EventKind::Returned]);
    // A carried case that lacks the colour's supervision gets it where it lands.
    let mut bare = coloured(V1, RiskLevel::Red);
    bare.supervising_nodes.clear();
    let (got, events) = back(&bare, V1);
    assert_eq!(got.supervising_nodes, [COUNTY]);
    assert_eq!(
        kinds(&events),
        [EventKind::Returned, EventKind::SupervisionOpened]
    );
    numbered(&got, &events);
}

#[test]
fn who_may_order_which_move() {
    let c = |s: &str| NodeCode::parse(s).unwrap();
    let (town, v1, v2, county) = (
        c("610116001"),
        c("610116001001"),
        c("610116002001"),
        c("610116"),
    );
    let id = "610116001001-20250501-000007";
    // Owned here: up or down, by the permission table's roles; not to itself, not sideways.
    assert!(check_transfer(&v1, &town, id, true, false).is_ok());
    assert!(check_transfer(&town, &v1, id, true, false).is_ok());
    assert!(matches!(
        check_transfer(&v1, &v1, id, true, true),
        Err(DomainError::InvalidArgument {
            field: "to_node",
            ..
        })
    ));
    match check_transfer(&v1, &v2, id, true, true) {
        Err(DomainError::Forbidden(why)) => assert!(why.contains("610116 or above"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Held elsewhere: an order, by a director only, into this node's area only.
    assert!(check_transfer(&county, &v2, id, false, true).is_ok());
    assert!(matches!(
        check_transfer(&county, &v2, id, false, false),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        check_transfer(&town, &v2, id, false, true),
        Err(DomainError::Forbidden(_))
    ));
}
