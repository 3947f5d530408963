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
    assert_eq!(recv.seq, relay.seq + 1);
    assert_eq!(got.history_len, recv.seq);
    assert_eq!(recv.to_status, CaseStatus::Registered);
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
    let (got, _) = receive(
        &case,
        case.history_len,
        &ctx("610116001", "x", &d),
        2,
        "610116001001",
        MoveKind::TakeOver,
    );
    assert_eq!(got.supervising_nodes, vec!["610116".to_string()]);
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
