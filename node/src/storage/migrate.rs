//! Frozen copies of old value formats and their conversion to the current ones.
//!
//! A struct here must never change: it is how bytes written by an older build are read. The
//! enums and small structs it refers to (`CaseStatus`, `Party`, ...) are append-only by their
//! own rule, so referring to the live types is safe.

use serde::Deserialize;

use crate::code::NodeCode;
use crate::domain::alert::Alert;
use crate::protocol::message::{
    Body, CaseCopy, Message, Order, OrderKind, OutboxEntry, Refused, Sighting, Transfer,
};

use crate::domain::{
    Case, CaseStatus, Category, Channel, Confirmation, MediationType, Party, RiskLevel, Timestamp,
};

/// A case as stored in format version 1 (before deadlines, rule supervision and the plan).
#[derive(Deserialize)]
pub(crate) struct CaseV1 {
    id: String,
    lookup_code: String,
    status: CaseStatus,
    owner_node: String,
    origin_node: String,
    epoch: u64,
    moved_to: Option<String>,
    category: Category,
    channel: Channel,
    risk: RiskLevel,
    summary: String,
    description: String,
    parties: Vec<Party>,
    amount_fen: i64,
    grid_id: String,
    handler: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    review_due_at: Timestamp,
    resolve_due_at: Option<Timestamp>,
    settled_amount_fen: i64,
    reopen_count: u32,
    reason: String,
    guidance: String,
    agreement: String,
    confirmation: Option<Confirmation>,
    satisfaction: Option<u8>,
    mediation_type: Option<MediationType>,
    mediation_sessions: u32,
    resolved_at: Option<Timestamp>,
    closed_at: Option<Timestamp>,
    history_len: u64,
    supervising_nodes: Vec<String>,
}

impl From<CaseV1> for Case {
    /// Version 1 knew no start of the resolution deadline (the warning then measures from
    /// registration), no follow-up deadline (a resolved case had none running) and no
    /// extension, rule supervision or plan.
    fn from(v: CaseV1) -> Case {
        let CaseV1 {
            id,
            lookup_code,
            status,
            owner_node,
            origin_node,
            epoch,
            moved_to,
            category,
            channel,
            risk,
            summary,
            description,
            parties,
            amount_fen,
            grid_id,
            handler,
            created_at,
            updated_at,
            review_due_at,
            resolve_due_at,
            settled_amount_fen,
            reopen_count,
            reason,
            guidance,
            agreement,
            confirmation,
            satisfaction,
            mediation_type,
            mediation_sessions,
            resolved_at,
            closed_at,
            history_len,
            supervising_nodes,
        } = v;
        Case {
            id,
            lookup_code,
            status,
            owner_node,
            origin_node,
            epoch,
            moved_to,
            category,
            channel,
            risk,
            summary,
            description,
            parties,
            amount_fen,
            grid_id,
            handler,
            created_at,
            updated_at,
            review_due_at,
            resolve_due_at,
            settled_amount_fen,
            reopen_count,
            reason,
            guidance,
            agreement,
            confirmation,
            satisfaction,
            mediation_type,
            mediation_sessions,
            resolved_at,
            closed_at,
            history_len,
            supervising_nodes,
            resolve_started_at: None,
            follow_up_due_at: None,
            deadline_extended: false,
            rule_supervision: Vec::new(),
            plan: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{self, ValueKind};
    use super::super::keys::TreeId;
    use crate::domain::{Case, CaseStatus, Timestamp};

    /// Bytes of a version-1 case, as the previous build wrote them: the same postcard fields in
    /// order, in the envelope with version byte 1.
    fn v1_bytes(case: &Case) -> Vec<u8> {
        // The v1 payload is the v2 payload without the fields appended since.
        let full = codec::encode(ValueKind::Case, case).unwrap();
        let payload = &full[8..];
        // Strip the five appended fields: re-encode them and cut their length from the end.
        let tail = postcard::to_allocvec(&(
            &case.resolve_started_at,
            &case.follow_up_due_at,
            &case.deadline_extended,
            &case.rule_supervision,
            &case.plan,
        ))
        .unwrap();
        let v1 = &payload[..payload.len() - tail.len()];
        let mut out = full[..8].to_vec();
        out[3] = 1;
        out[4..8].copy_from_slice(&crc32fast::hash(v1).to_be_bytes());
        out.extend_from_slice(v1);
        out
    }

    #[test]
    fn version_1_cases_are_read_and_converted() {
        let (mut case, _) = super::super::tests::new_case("20250131", 1);
        case.status = CaseStatus::Accepted;
        case.resolve_due_at = Some(Timestamp(case.created_at.0 + 1000));
        let bytes = v1_bytes(&case);
        let read = codec::decode_case(TreeId::Cases, b"k", &bytes).unwrap();
        assert_eq!(read, case, "defaults for the new fields");
        assert_eq!(read.deadline().map(|d| d.started_at), Some(case.created_at));
        // The current version reads as itself, and damage is still caught.
        let now = codec::encode(ValueKind::Case, &case).unwrap();
        assert_eq!(codec::decode_case(TreeId::Cases, b"k", &now).unwrap(), case);
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(codec::decode_case(TreeId::Cases, b"k", &bad).is_err());
    }
}

/// A queued message as stored in format version 1 (orders without their issuer's id).
#[derive(Deserialize)]
pub(crate) struct OutboxEntryV1 {
    queued_at: Timestamp,
    message: MessageV1,
}

#[derive(Deserialize)]
struct MessageV1 {
    origin: NodeCode,
    origin_seq: u64,
    destination: NodeCode,
    sent_at: Timestamp,
    body: BodyV1,
}

#[derive(Deserialize)]
enum BodyV1 {
    Transfer(Transfer),
    Refused(Refused),
    Sync(CaseCopy),
    Close { case_id: String, epoch: u64 },
    Order(OrderV1),
    Redirect { order: OrderV1, moved_to: NodeCode },
    Alert(Alert),
    Sighting(Sighting),
}

#[derive(Deserialize)]
struct OrderV1 {
    case_id: String,
    actor: String,
    redirects: u32,
    kind: OrderKind,
}

impl From<OrderV1> for Order {
    fn from(o: OrderV1) -> Order {
        Order {
            id: 0,
            case_id: o.case_id,
            actor: o.actor,
            redirects: o.redirects,
            kind: o.kind,
        }
    }
}

impl From<OutboxEntryV1> for OutboxEntry {
    fn from(v: OutboxEntryV1) -> OutboxEntry {
        let m = v.message;
        let body = match m.body {
            BodyV1::Transfer(t) => Body::Transfer(t),
            BodyV1::Refused(r) => Body::Refused(r),
            BodyV1::Sync(c) => Body::Sync(c),
            BodyV1::Close { case_id, epoch } => Body::Close { case_id, epoch },
            BodyV1::Order(o) => Body::Order(o.into()),
            BodyV1::Redirect { order, moved_to } => Body::Redirect {
                order: order.into(),
                moved_to,
            },
            BodyV1::Alert(a) => Body::Alert(a),
            BodyV1::Sighting(s) => Body::Sighting(s),
        };
        OutboxEntry {
            queued_at: v.queued_at,
            message: Message {
                origin: m.origin,
                origin_seq: m.origin_seq,
                destination: m.destination,
                sent_at: m.sent_at,
                body,
            },
            prev_seq: None,
        }
    }
}
