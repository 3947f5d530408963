//! Round trips of every message body, and refusals of malformed input from peers.

use super::*;
use crate::domain::machine::tests::{parties, sample_case};
use crate::domain::{CaseStatus, Timestamp};
use crate::protocol::case_bytes;

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
        id: 42,
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
        Body::Order(Order {
            kind: OrderKind::RaiseRisk {
                reason: "辖区比对".into(),
            },
            ..order.clone()
        }),
        Body::Redirect {
            order,
            moved_to: c("610116001"),
        },
        Body::Alert(sample_alert(&case.id)),
        Body::Sighting(sample_sighting(&case.id)),
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

fn sample_alert(case_id: &str) -> crate::domain::alert::Alert {
    crate::domain::alert::Alert {
        key: format!("reopened/{case_id}/3"),
        kind: crate::domain::alert::AlertKind::Reopened,
        case_ids: vec![case_id.to_owned()],
        node: "610116".into(),
        raised_at: Timestamp(7_000),
        message: "回访不满意".into(),
        // Not carried: a forwarded alert goes no further.
        forward_to: Vec::new(),
    }
}

#[test]
fn malformed_alerts_from_peers_are_invalid_argument() {
    let case = sample_case(parties());
    let m = Message {
        origin: c("610116"),
        origin_seq: 1,
        destination: c("6101"),
        sent_at: Timestamp(1),
        body: Body::Alert(sample_alert(&case.id)),
    };
    let good = envelope_to_proto(1, &m);
    let with = |edit: &dyn Fn(&mut pb::ForwardedAlert)| {
        let mut e = good.clone();
        if let Some(pb::envelope::Body::Alert(a)) = &mut e.body {
            edit(a);
        }
        envelope_from_proto(e)
    };
    assert!(with(&|_| {}).is_ok());
    let field = |r: Result<(u64, Message)>| r.unwrap_err().to_string();
    assert!(field(with(&|a| a.key.clear())).contains("alert.key"));
    assert!(field(with(&|a| a.alert = None)).contains("alert.alert"));
    assert!(
        field(with(&|a| a.alert.as_mut().unwrap().kind = "panic".into())).contains("alert.kind")
    );
    assert!(
        field(with(&|a| a.alert.as_mut().unwrap().case_ids.clear())).contains("alert.case_ids")
    );
    assert!(
        field(with(&|a| a.alert.as_mut().unwrap().node = "6101x".into())).contains("alert.node")
    );
    // A long message (a group dispute lists every case) is not refused: that would stop the
    // link.
    assert!(with(&|a| a.alert.as_mut().unwrap().message = "长".repeat(10_000)).is_ok());
    assert!(field(with(&|a| a.key = "k".repeat(1_001))).contains("alert.key"));
}

fn sample_sighting(case_id: &str) -> Sighting {
    Sighting {
        person: [0xab; 16],
        case_id: case_id.to_owned(),
        registered_at: Timestamp(5_000),
        node: c("610116001001"),
    }
}

#[test]
fn malformed_sightings_from_peers_are_invalid_argument() {
    let case = sample_case(parties());
    let m = Message {
        origin: c("610116001001"),
        origin_seq: 1,
        destination: c("610116001"),
        sent_at: Timestamp(1),
        body: Body::Sighting(sample_sighting(&case.id)),
    };
    let good = envelope_to_proto(1, &m);
    let with = |edit: &dyn Fn(&mut pb::PersonSighting)| {
        let mut e = good.clone();
        if let Some(pb::envelope::Body::Sighting(s)) = &mut e.body {
            edit(s);
        }
        envelope_from_proto(e)
    };
    assert!(with(&|_| {}).is_ok());
    let field = |r: Result<(u64, Message)>| r.unwrap_err().to_string();
    assert!(field(with(&|s| s.person.pop().map_or((), drop))).contains("sighting.person"));
    assert!(field(with(&|s| s.person = vec![1; 32])).contains("sighting.person"));
    assert!(field(with(&|s| s.registered_at = None)).contains("sighting.registered_at"));
    assert!(field(with(&|s| s.node = "61011600100x".into())).contains("sighting.node"));
    assert!(field(with(&|s| s.case_id.clear())).contains("case"));
    assert!(field(with(&|s| s.case_id = "a\0b".into())).contains("case"));
}

#[test]
fn a_message_that_cannot_be_read_is_refused_on_its_own() {
    let m = Message {
        origin: c("610116001001"),
        origin_seq: 7,
        destination: c("610116001"),
        sent_at: Timestamp(1_000),
        body: Body::Close {
            case_id: "610116001001-20250101-000001".into(),
            epoch: 3,
        },
    };
    let good = envelope_to_proto(5, &m);
    let (seq, prev, got) = received_from_proto(good.clone(), 1 << 20).unwrap();
    assert_eq!(
        prev, None,
        "a plain envelope says nothing of the seq before it"
    );
    assert_eq!(seq, 5);
    assert_eq!(got, Received::Message(Box::new(m.clone())));
    let kind = |r: (u64, Option<u64>, Received)| match r.2 {
        Received::Refused(refusal) => Some(refusal.kind),
        _ => None,
    };
    // Larger than the receiver takes for one message.
    assert_eq!(
        kind(received_from_proto(good.clone(), 10).unwrap()),
        Some(RefusalKind::TooLarge)
    );
    // A body kind a newer version added arrives without a body this version can read.
    let newer = pb::Envelope {
        body: None,
        ..good.clone()
    };
    assert_eq!(
        kind(received_from_proto(newer, 1 << 20).unwrap()),
        Some(RefusalKind::Unknown)
    );
    // Malformed: an origin that is no division code.
    let bad = pb::Envelope {
        origin: "x".into(),
        ..good.clone()
    };
    assert_eq!(
        kind(received_from_proto(bad, 1 << 20).unwrap()),
        Some(RefusalKind::Invalid)
    );
    // Withheld by its sender: only moved past.
    let withheld = withheld_envelope(6, &m, "太大");
    assert_eq!(
        received_from_proto(withheld, 1 << 20).unwrap(),
        (6, None, Received::Withheld("太大".into()))
    );
    // A link seq of 0 makes the whole batch malformed.
    let zero = pb::Envelope {
        link_seq: 0,
        ..good
    };
    assert!(received_from_proto(zero, 1 << 20).is_err());
    // Refusals round-trip; an unknown kind from a newer peer still refuses.
    let r = Refusal::new(RefusalKind::TooLarge, "x");
    assert_eq!(refusal_from_proto(refusal_to_proto(3, &r)), (3, r));
    let newer = pb::Refusal {
        link_seq: 4,
        kind: 99,
        reason: "y".into(),
    };
    assert_eq!(refusal_from_proto(newer).1.kind, RefusalKind::Unknown);
}

/// The case data caps keep a case transfer within the message budget: the largest record the
/// operator API allows, a history grown to `CASE_MAX_BYTES` with events of the longest text,
/// then moves on top (which the cap does not refuse), each two events with the longest reason.
#[test]
fn the_largest_case_the_caps_allow_travels_in_one_message() {
    use crate::domain::machine::PROGRESS_MAX;
    use crate::domain::validate::*;
    use crate::domain::{Party, ProgressEntry};
    use prost::Message as _;
    let long = |n: usize| "调".repeat(n);
    let actor = format!(
        "spiffe://fengqiao/op/610116001001/director/{}",
        "x".repeat(64)
    );
    let mut case = sample_case(parties());
    case.summary = long(SUMMARY_MAX_CHARS);
    case.description = long(DESCRIPTION_MAX_CHARS);
    let role = case.parties[0].role;
    case.parties = (0..PARTIES_MAX)
        .map(|_| Party {
            role,
            name: long(PARTY_NAME_MAX_CHARS),
            phone: "1".repeat(PHONE_MAX_CHARS),
            id_number: "1".repeat(ID_NUMBER_CHARS),
        })
        .collect();
    case.reason = long(TEXT_MAX_CHARS);
    case.guidance = long(TEXT_MAX_CHARS);
    case.agreement = long(TEXT_MAX_CHARS);
    case.grid_id = long(GRID_ID_MAX_CHARS);
    case.handler = Some(long(HANDLER_MAX_CHARS));
    case.plan.lead_leader = long(PLAN_NAME_MAX_CHARS);
    case.plan.mediation_org = long(PLAN_NAME_MAX_CHARS);
    case.plan.liaison_unit = long(PLAN_NAME_MAX_CHARS);
    case.plan.plan = long(TEXT_MAX_CHARS);
    case.plan.legal_briefing = long(TEXT_MAX_CHARS);
    case.plan.progress = vec![
        ProgressEntry {
            at: Timestamp(5),
            actor: actor.clone(),
            text: long(PROGRESS_TEXT_MAX_CHARS),
        };
        PROGRESS_MAX
    ];
    let record = case_bytes(&case, &[], &[]);
    assert!(
        record < CASE_MAX_BYTES / 2,
        "the largest record leaves room for a history: {record} bytes"
    );
    let event = |seq: u64| Event {
        seq,
        at: Timestamp(5),
        node: "610116001001".into(),
        actor: actor.clone(),
        kind: EventKind::TransferredOut,
        from_status: Some(CaseStatus::InMediation),
        to_status: CaseStatus::InMediation,
        // The longest text an event quotes, with its wording around it.
        detail: long(TEXT_MAX_CHARS + 100),
    };
    let mut history = Vec::new();
    loop {
        let next = event(history.len() as u64 + 1);
        if case_bytes(&case, &history, std::slice::from_ref(&next)) > CASE_MAX_BYTES {
            break;
        }
        history.push(next);
    }
    // Fifteen moves of the full case, each with the longest reason.
    for _ in 0..30 {
        history.push(event(history.len() as u64 + 1));
    }
    case.history_len = history.len() as u64;
    let m = Message {
        origin: c("610116001001"),
        origin_seq: u64::MAX,
        destination: c("6101"),
        sent_at: Timestamp(5),
        body: Body::Transfer(Transfer {
            case,
            history,
            epoch: u64::MAX,
            kind: MoveKind::Ordered,
            reason: long(TEXT_MAX_CHARS),
        }),
    };
    let size = envelope_to_proto(u64::MAX, &m).encoded_len();
    assert!(
        size <= crate::protocol::message::MESSAGE_BUDGET,
        "{size} bytes"
    );
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// Whatever bytes arrive as an envelope, the receiver decodes and checks them into a
        /// message, a refusal or an error: never a panic.
        #[test]
        fn arbitrary_envelopes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
            use prost::Message as _;
            if let Ok(e) = pb::Envelope::decode(bytes.as_slice()) {
                let _ = received_from_proto(e, 1 << 20);
            }
        }

        /// Arbitrary names and numbers in an envelope are refused or decoded, never trusted
        /// blindly: a link seq of 0 is always refused.
        #[test]
        fn arbitrary_fields_never_panic(
            origin in ".{0,20}",
            destination in ".{0,20}",
            withheld in ".{0,10}",
            link_seq in 0u64..4,
            origin_seq in any::<u64>(),
        ) {
            let e = pb::Envelope {
                link_seq,
                origin,
                destination,
                withheld,
                origin_seq,
                ..Default::default()
            };
            let r = received_from_proto(e, 1 << 20);
            if link_seq == 0 {
                prop_assert!(r.is_err());
            }
        }
    }
}
