//! Round trips of every message body, and refusals of malformed input from peers.

use super::*;
use crate::domain::machine::tests::{parties, sample_case};
use crate::domain::{CaseStatus, Timestamp};

fn c(s: &str) -> NodeCode {
    NodeCode::parse(s).unwrap()
}

#[test]
fn every_body_round_trips() {
    let mut case = sample_case(parties());
    case.supervising_nodes = vec!["6101".into()];
    case.handler = Some("人社所".into());
    let history = vec![Event {
        seq: 1,
        at: Timestamp(5),
        node: "610116".into(),
        actor: "a".into(),
        kind: EventKind::Registered,
        from_status: None,
        to_status: CaseStatus::Registered,
        detail: "d".into(),
    }];
    case.history_len = 1;
    let order = Order {
        case_id: case.id.clone(),
        actor: "op".into(),
        redirects: 2,
        kind: OrderKind::Transfer {
            to_node: c("610116001002"),
            reason: "r".into(),
        },
    };
    let bodies = vec![
        Body::Transfer(Transfer {
            case: case.clone(),
            history: history.clone(),
            epoch: 2,
            kind: MoveKind::TakeOver,
            reason: "r".into(),
        }),
        Body::Refused(Refused {
            case: case.clone(),
            history: history.clone(),
            epoch: 2,
            reason: "r".into(),
            intended_owner: c("6101"),
        }),
        Body::Sync(CaseCopy {
            case: case.clone(),
            history: history.clone(),
        }),
        Body::Close {
            case_id: case.id.clone(),
            epoch: 3,
        },
        Body::Order(order.clone()),
        Body::Order(Order {
            kind: OrderKind::Supervise {
                instruction: "i".into(),
                due_at: Some(Timestamp(99_000)),
            },
            ..order.clone()
        }),
        Body::Redirect {
            order,
            moved_to: c("610116001"),
        },
    ];
    for body in bodies {
        let m = Message {
            origin: c("610116"),
            origin_seq: 7,
            destination: c("610116001001"),
            sent_at: Timestamp(1_000),
            body,
        };
        let (seq, back) = envelope_from_proto(envelope_to_proto(4, &m)).unwrap();
        assert_eq!(seq, 4);
        assert_eq!(back, m);
    }
}

#[test]
fn bad_peers_input_is_invalid_argument() {
    let case = sample_case(parties());
    let good = envelope_to_proto(
        1,
        &Message {
            origin: c("610116"),
            origin_seq: 1,
            destination: c("6101"),
            sent_at: Timestamp(1),
            body: Body::Close {
                case_id: case.id.clone(),
                epoch: 1,
            },
        },
    );
    let mut e = good.clone();
    e.origin = "61011".into();
    assert!(envelope_from_proto(e).is_err());
    let mut e = good.clone();
    e.link_seq = 0;
    assert!(envelope_from_proto(e).is_err());
    let mut e = good.clone();
    e.body = None;
    assert!(envelope_from_proto(e).is_err());
    let mut e = good;
    e.body = Some(pb::envelope::Body::Transfer(pb::CaseTransfer {
        case: Some(full(&case)),
        history: vec![],
        epoch: 2,
        kind: 0,
        reason: String::new(),
        rule_supervision: Vec::new(),
    }));
    let err = envelope_from_proto(e).unwrap_err();
    assert!(err.to_string().contains("transfer.kind"), "{err}");
}
