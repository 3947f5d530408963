//! The messages nodes send each other, as stored in outboxes and applied by receivers.
//!
//! These are plain data (serde, persisted through the storage codec); `wire` converts them to
//! and from the `fengqiao.v1` federation protobuf. A message is addressed to a node
//! (`destination`) and carried hop by hop along the tree; each hop stores it in its own outbox
//! before acknowledging it to the previous one.

use serde::{Deserialize, Serialize};

use crate::code::NodeCode;
use crate::domain::alert::Alert;
use crate::domain::moves::MoveKind;
use crate::domain::{Case, Event, Timestamp};

/// Largest encoded size of one federation message (protobuf, envelope included) that this node
/// queues: 1 MiB, the lowest `limits.max_message_bytes` a node accepts, which is also the
/// largest single message a sender sends and a receiver takes (`link.rs` withholds, and
/// `service.rs` refuses, a larger one). So every message fits by construction. Supervised
/// copies are split into parts of at most this size ([`super::supervision`]); a case transfer
/// (case and whole history in one message) fits by the case data caps
/// (`crate::domain::validate::CASE_MAX_BYTES`; a unit test in `wire` builds the largest case
/// the caps allow).
pub const MESSAGE_BUDGET: usize = 1 << 20;

/// One message between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The node that created it.
    pub origin: NodeCode,
    /// The origin's counter of messages it created: with `origin`, a federation-wide id.
    /// 0 until the origin's storage assigns it when the message is first queued.
    pub origin_seq: u64,
    /// The node it is for.
    pub destination: NodeCode,
    /// When the origin created it.
    pub sent_at: Timestamp,
    pub body: Body,
}

impl Message {
    /// The case the message is about (every message is about exactly one case).
    pub fn case_id(&self) -> &str {
        match &self.body {
            Body::Transfer(t) => &t.case.id,
            Body::Refused(r) => &r.case.id,
            Body::Sync(c) => &c.case.id,
            Body::Close { case_id, .. } => case_id,
            Body::Order(o) | Body::Redirect { order: o, .. } => &o.case_id,
            // An alert names at least one case (checked when it comes off the wire).
            Body::Alert(a) => a.case_ids.first().map_or("", String::as_str),
            Body::Sighting(s) => &s.case_id,
        }
    }

    /// Every case the message names: the alert's cases, or the one case of any other kind.
    pub fn case_ids(&self) -> Vec<&str> {
        match &self.body {
            Body::Alert(a) => a.case_ids.iter().map(String::as_str).collect(),
            _ => vec![self.case_id()],
        }
    }

    /// `origin:origin_seq`, for logs.
    pub fn id(&self) -> String {
        format!("{}:{}", self.origin, self.origin_seq)
    }

    /// Short machine name of the body, for logs.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            Body::Transfer(_) => "transfer",
            Body::Refused(_) => "transfer_refused",
            Body::Sync(_) => "supervision_sync",
            Body::Close { .. } => "supervision_close",
            Body::Order(_) => "order",
            Body::Redirect { .. } => "order_redirect",
            Body::Alert(_) => "alert",
            Body::Sighting(_) => "person_sighting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Ownership moves to the destination.
    Transfer(Transfer),
    /// A transfer was refused: ownership returns to the destination (the old owner).
    Refused(Refused),
    /// The owner's read-only copy for a supervising ancestor.
    Sync(CaseCopy),
    /// The owner stopped keeping the destination in sync.
    Close { case_id: String, epoch: u64 },
    /// An ancestor's order, routed toward the case's owner.
    Order(Order),
    /// An order sent back to its issuer because the case moved out of the redirecting node's
    /// subtree; the issuer routes it again toward `moved_to`.
    Redirect { order: Order, moved_to: NodeCode },
    /// An alert raised below, for the destination's staff (its `forward_to` is empty: it goes
    /// no further). Stored under its key, so a repeat changes nothing.
    Alert(Alert),
    /// A person seen in a case of the origin's subtree, for the subtree repeat-person count
    /// (see `crate::storage::subtree`). Stored under hash ‖ registered at ‖ case id, so a
    /// repeat (or the same case reported again after a move) changes nothing.
    Sighting(Sighting),
}

/// A person (by the federation-wide hash of an ID number: never the number or a name) in one
/// case, reported up the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// The keyed hash of the ID number (`storage::secret::Secret::subtree_person`).
    pub person: [u8; 16],
    pub case_id: String,
    /// When the case was registered (its `created_at`): what the window counts.
    pub registered_at: Timestamp,
    /// The node that holds the case (where an order about it goes).
    pub node: NodeCode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The case as at the old owner before the hand-over (personal data in full).
    pub case: Case,
    /// Its whole history: hand-over event and relay events included.
    pub history: Vec<Event>,
    /// The new owner's epoch.
    pub epoch: u64,
    pub kind: MoveKind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub case: Case,
    pub history: Vec<Event>,
    /// The epoch of the refused transfer.
    pub epoch: u64,
    pub reason: String,
    /// Where the case was meant to go.
    pub intended_owner: NodeCode,
}

/// A case with its history: what a supervisor keeps (personal data masked), or one part of it
/// on the way there.
///
/// `history` holds the *last* events up to `case.history_len`: events
/// `history_from() + 1 ..= case.history_len`. A stored copy, and a full copy, start at 0; a
/// delta (the events one write appended) or a later part of a split copy starts where the
/// supervisor's copy ends (see [`super::supervision`]). Copies queued by older versions always
/// start at 0, so they read as full copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseCopy {
    pub case: Case,
    pub history: Vec<Event>,
}

impl CaseCopy {
    /// How many events precede the ones carried (0: a full copy, or its first part).
    pub fn history_from(&self) -> u64 {
        self.case
            .history_len
            .saturating_sub(self.history.len() as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Chosen by the issuer (random, never 0 once queued), which keeps the order under it
    /// (`storage`'s issued orders): a redirect is honoured only for an order its issuer holds.
    /// 0 on an order from a node of the previous version.
    pub id: u64,
    pub case_id: String,
    /// The operator who issued it (identity URI) at the message's origin.
    pub actor: String,
    /// Times it was redirected to follow a moved case.
    pub redirects: u32,
    pub kind: OrderKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderKind {
    /// 督办: lands in the history; the issuer follows the case from then on.
    Supervise {
        instruction: String,
        due_at: Option<Timestamp>,
    },
    /// Move the case to `to_node`.
    Transfer { to_node: NodeCode, reason: String },
    /// Raise the risk one colour (the repeat-person rule over the issuer's subtree), unless
    /// the case's own repeat-person alert is held already.
    RaiseRisk { reason: String },
    /// A supervisor's copy does not continue (a part went missing, or the copy was lost): the
    /// owner queues the copy again, the events after `from` (split as usual), changing nothing
    /// in the case. Issued by the supervisor itself ([`super::apply`]).
    ResendCopy { from: u64 },
}

impl OrderKind {
    /// Chinese description for history details.
    pub fn label_zh(&self) -> String {
        match self {
            OrderKind::Supervise { .. } => "督办".to_owned(),
            OrderKind::Transfer { to_node, .. } => format!("流转至{to_node}"),
            OrderKind::RaiseRisk { .. } => "风险升级".to_owned(),
            OrderKind::ResendCopy { .. } => "重发督办副本".to_owned(),
        }
    }
}

/// One message as it came off a link: decoded, refused as it came (malformed, unknown, too
/// large), or withheld by its sender (which dealt with it already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Message(Box<Message>),
    Refused(Refusal),
    Withheld(String),
}

/// Why a receiver did not apply one message: final, the message is not sent again as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// Readable (Chinese), for histories and alerts.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Failed the receiver's verification (see `federation::trust`).
    Forbidden,
    /// Malformed.
    Invalid,
    /// Larger than the receiver accepts for one message.
    TooLarge,
    /// A kind this receiver's version does not know.
    Unknown,
}

impl RefusalKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Forbidden => "forbidden",
            RefusalKind::Invalid => "invalid",
            RefusalKind::TooLarge => "too_large",
            RefusalKind::Unknown => "unknown",
        }
    }

    pub const fn label_zh(self) -> &'static str {
        match self {
            RefusalKind::Forbidden => "未通过校验",
            RefusalKind::Invalid => "格式错误",
            RefusalKind::TooLarge => "超出大小限制",
            RefusalKind::Unknown => "版本不支持",
        }
    }
}

impl Refusal {
    pub fn new(kind: RefusalKind, reason: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            reason: reason.into(),
        }
    }
}

/// A message to queue for the neighbour `next_hop`, written in the same transaction as the
/// change that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub next_hop: NodeCode,
    /// When it was queued here (for the age of the oldest undelivered message).
    pub queued_at: Timestamp,
    pub message: Message,
}

impl Outgoing {
    /// A message created at `origin` at `at` for `destination`, queued for `next_hop`; its
    /// `origin_seq` is assigned when storage queues it.
    pub fn new(
        origin: &NodeCode,
        next_hop: NodeCode,
        destination: NodeCode,
        at: Timestamp,
        body: Body,
    ) -> Outgoing {
        Outgoing {
            next_hop,
            queued_at: at,
            message: Message {
                origin: origin.clone(),
                origin_seq: 0,
                destination,
                sent_at: at,
                body,
            },
        }
    }
}

/// A queued message as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub queued_at: Timestamp,
    pub message: Message,
    /// The link seq of the message queued for the same peer just before this one (0: none);
    /// `None` for an entry queued by a version that did not record it (its seqs were
    /// contiguous: the previous is this one's minus one).
    pub prev_seq: Option<u64>,
}

impl OutboxEntry {
    /// The link seq before `seq`, this entry's.
    pub fn prev(&self, seq: u64) -> u64 {
        self.prev_seq.unwrap_or(seq.saturating_sub(1))
    }
}

/// Encoded size of a case with its history (`earlier` then `appended`), as a transfer
/// carries it (envelope aside): what `domain::validate::CASE_MAX_BYTES` bounds.
pub fn case_bytes(case: &Case, earlier: &[Event], appended: &[Event]) -> usize {
    use crate::convert::{case_to_proto, event_to_proto};
    use prost::Message as _;
    let record = case_to_proto(case, true, case.updated_at).encoded_len();
    let events: usize = earlier
        .iter()
        .chain(appended)
        .map(|e| event_to_proto(e).encoded_len() + 4)
        .sum();
    record + events
}
