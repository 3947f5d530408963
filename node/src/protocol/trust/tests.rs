//! Tests of what a node believes of its children.

use super::*;
use crate::domain::Timestamp;
use crate::domain::alert::{Alert, AlertKind};
use crate::domain::machine::tests::{parties, sample_case};
use crate::protocol::message::{CaseCopy, Order, OrderKind, Sighting, Transfer};

fn c(s: &str) -> NodeCode {
    NodeCode::parse(s).unwrap()
}

const TOWN: &str = "610116001";
const V1: &str = "610116001001";
const V2: &str = "610116001002";

fn op(node: &str) -> String {
    format!("spiffe://fengqiao/op/{node}/director/zhang")
}

fn event(seq: u64, node: &str, actor: String) -> Event {
    Event {
        seq,
        at: Timestamp(0),
        node: node.into(),
        actor,
        kind: crate::domain::EventKind::Registered,
        from_status: None,
        to_status: CaseStatus::Registered,
        detail: String::new(),
    }
}

fn case_of(owner: &str) -> Case {
    let mut case = sample_case(parties());
    case.owner_node = owner.into();
    case.id = format!("{owner}-20250101-000001");
    case
}

fn msg(origin: &str, body: Body) -> Message {
    Message {
        origin: c(origin),
        origin_seq: 1,
        destination: c(TOWN),
        sent_at: Timestamp(0),
        body,
    }
}

fn transfer(origin: &str, owner: &str) -> Message {
    let case = case_of(owner);
    let history = vec![event(1, owner, op(owner))];
    msg(
        origin,
        Body::Transfer(Transfer {
            case,
            history,
            epoch: 2,
            kind: crate::domain::moves::MoveKind::TakeOver,
            reason: String::new(),
        }),
    )
}

/// Checks `m` from `child` at the township, knowing no more than case ids tell.
fn check(child: &str, m: &Message) -> Result<(), Refusal> {
    let holders: Vec<_> = m.case_ids().iter().map(|id| registered_at(id)).collect();
    check_from_child(
        &c(child),
        m,
        &Knowledge {
            holders: &holders,
            copy_owner: None,
        },
    )
}

fn forbidden(r: Result<(), Refusal>) -> bool {
    matches!(
        r,
        Err(Refusal {
            kind: RefusalKind::Forbidden,
            ..
        })
    )
}

#[test]
fn where_a_case_is_known_to_be() {
    let me = c(TOWN);
    let id = format!("{V1}-20250101-000001");
    // Never crossed this node: where it was registered.
    assert_eq!(holder(&me, &id, None, None), Some(c(V1)));
    // Sent to the sibling through this node.
    let sent = Located {
        holder: c(V2),
        epoch: 2,
    };
    assert_eq!(holder(&me, &id, Some(&sent), None), Some(c(V2)));
    // Held here: here, unless a later move is known.
    let mut held = case_of(TOWN);
    held.id = id.clone();
    held.epoch = 3;
    assert_eq!(holder(&me, &id, Some(&sent), Some(&held)), Some(me.clone()));
    held.epoch = 2;
    assert_eq!(holder(&me, &id, Some(&sent), Some(&held)), Some(c(V2)));
    // A tombstone: where it went.
    held.epoch = 5;
    held.status = CaseStatus::Transferred;
    held.moved_to = Some("610116".into());
    assert_eq!(
        holder(&me, &id, Some(&sent), Some(&held)),
        Some(c("610116"))
    );
    assert_eq!(holder(&me, "not-an-id", None, None), None);
}

#[test]
fn a_child_speaks_only_for_its_subtree_and_the_cases_it_owns() {
    assert!(check(V1, &transfer(V1, V1)).is_ok());
    // Another village's message, or its case.
    assert!(forbidden(check(V1, &transfer(V2, V2))));
    assert!(forbidden(check(V1, &transfer(V1, V2))));
    // A case of the village that this node sent elsewhere is no longer the village's.
    let m = transfer(V1, V1);
    let elsewhere = [Some(c(V2))];
    let r = check_from_child(
        &c(V1),
        &m,
        &Knowledge {
            holders: &elsewhere,
            copy_owner: None,
        },
    );
    assert!(forbidden(r));
}

#[test]
fn every_event_recorded_in_the_subtree_names_an_actor_of_it() {
    let mut m = transfer(V1, V1);
    let Body::Transfer(t) = &mut m.body else {
        unreachable!()
    };
    // An ancestor's order carried out here is recorded at the ancestor: taken as it comes.
    t.history.push(event(2, "610116", op("610116")));
    assert!(check(V1, &m).is_ok());
    let Body::Transfer(t) = &mut m.body else {
        unreachable!()
    };
    t.history.push(event(3, V1, op(V2)));
    assert!(forbidden(check(V1, &m)));
    let set_actor = |m: &mut Message, actor: String| {
        if let Body::Transfer(t) = &mut m.body {
            t.history[2].actor = actor;
        }
    };
    set_actor(&mut m, "someone".into());
    assert!(forbidden(check(V1, &m)));
    set_actor(&mut m, crate::domain::moves::node_actor(V1));
    assert!(check(V1, &m).is_ok());
}

#[test]
fn a_close_removes_only_a_copy_of_a_case_owned_in_the_subtree() {
    let m = msg(
        V1,
        Body::Close {
            case_id: format!("{V2}-20250101-000001"),
            epoch: u64::MAX,
        },
    );
    let holders = [Some(c(V2))];
    let at = |owner| {
        check_from_child(
            &c(V1),
            &m,
            &Knowledge {
                holders: &holders,
                copy_owner: owner,
            },
        )
    };
    assert!(forbidden(at(Some(V2))));
    assert!(at(Some(V1)).is_ok());
    // No copy held: nothing to remove, nothing refused.
    assert!(at(None).is_ok());
}

#[test]
fn orders_never_come_from_below_and_copies_only_from_their_owner() {
    let order = Order {
        id: 7,
        case_id: format!("{V2}-20250101-000001"),
        actor: op(V1),
        redirects: 0,
        kind: OrderKind::Supervise {
            instruction: "x".into(),
            due_at: None,
        },
    };
    assert!(forbidden(check(V1, &msg(V1, Body::Order(order.clone())))));
    // A redirect is for its issuer to verify.
    let redirect = Body::Redirect {
        order,
        moved_to: c(V1),
    };
    assert!(check(V1, &msg(V1, redirect)).is_ok());
    let copy = |owner: &str| {
        Body::Sync(CaseCopy {
            case: case_of(owner),
            history: vec![event(1, owner, op(owner))],
        })
    };
    assert!(check(V1, &msg(V1, copy(V1))).is_ok());
    assert!(forbidden(check(V1, &msg(V1, copy(V2)))));
}

#[test]
fn alerts_and_sightings_are_about_the_senders_subtree() {
    let alert = |raised_by: &str, case_of: &str| {
        Body::Alert(Alert {
            key: "reopened/x/1".into(),
            kind: AlertKind::Reopened,
            case_ids: vec![format!("{case_of}-20250101-000001")],
            node: raised_by.into(),
            raised_at: Timestamp(0),
            message: "m".into(),
            forward_to: Vec::new(),
        })
    };
    assert!(check(V1, &msg(V1, alert(V1, V1))).is_ok());
    assert!(forbidden(check(V1, &msg(V1, alert(V2, V2)))));
    assert!(forbidden(check(V1, &msg(V1, alert(V1, V2)))));
    let sighting = |origin: &str, held_at: &str, case_of: &str| {
        msg(
            origin,
            Body::Sighting(Sighting {
                person: [1; 16],
                case_id: format!("{case_of}-20250101-000001"),
                registered_at: Timestamp(0),
                node: c(held_at),
            }),
        )
    };
    assert!(check(V1, &sighting(V1, V1, V1)).is_ok());
    assert!(forbidden(check(V1, &sighting(V1, V2, V1))));
    assert!(forbidden(check(V1, &sighting(V1, V1, V2))));
    // A township relays its villages' sightings, never another township's.
    assert!(
        check_from_child(
            &c(TOWN),
            &sighting(TOWN, V2, V2),
            &Knowledge {
                holders: &[Some(c(V2))],
                copy_owner: None
            }
        )
        .is_ok()
    );
    assert!(forbidden(check(
        TOWN,
        &sighting(TOWN, "610116002001", "610116002001")
    )));
}
