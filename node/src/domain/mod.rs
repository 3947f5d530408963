//! The domain core: what a case is and how it may change. No I/O lives here.
//!
//! * [`model`] — the case record, its history events and the vocabulary (status, category,
//!   channel, risk, ...), each enum with stable one-byte codes and Chinese/English labels.
//! * [`machine`] — the pure state machine: [`machine::register`] builds a new case and
//!   [`machine::apply`] turns `(&Case, Command)` into the next case plus the events to append.
//!   Persistence and the network sit around it, never inside: the storage layer may call these
//!   functions more than once for one request (a sled transaction can re-run its closure), so
//!   they must stay deterministic and side-effect free.
//! * [`calendar`] — days and times in China Standard Time (UTC+8) for ids and texts.
//! * [`validate`] — input limits, checked before anything is written.
//! * [`mask`] — masking of personal data for listings and logs.
//! * [`moves`] — ownership moves between nodes and ancestors following a case (pure).
//!
//! Invariants: history is append-only (event `seq` runs 1, 2, 3, ... with no gaps and
//! `Case::history_len` equals the last seq); amounts are integer fen and never negative;
//! timestamps are UTC milliseconds, and "the day" of a case id is the day in China (UTC+8).

pub mod calendar;
pub mod machine;
pub mod mask;
pub mod model;
pub mod moves;
pub mod validate;

pub use model::*;

use std::time::Duration;

/// A rule of the domain refused the request. Maps to INVALID_ARGUMENT / FAILED_PRECONDITION.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field of the request is malformed or out of its documented bounds.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        field: &'static str,
        message: String,
    },
    /// The action is not allowed in the case's current status.
    #[error("cannot {action} a case whose status is {} ({})", status.label_en(), status.label_zh())]
    IllegalTransition {
        action: &'static str,
        status: CaseStatus,
    },
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::InvalidArgument {
            field,
            message: message.into(),
        }
    }
}

/// Deadlines a node applies, from its tier config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines {
    /// 未审核 must be reviewed within this (Kunming: 3 days).
    pub review: Duration,
    /// Accepted cases must be resolved within this (people's mediation: 30 days).
    pub resolve: Duration,
    /// Follow-up (回访) due within this after resolution.
    pub follow_up: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Deadlines {
            review: Duration::from_secs(3 * DAY),
            resolve: Duration::from_secs(30 * DAY),
            follow_up: Duration::from_secs(7 * DAY),
        }
    }
}

/// Who does what, where and when: the context every transition is applied in.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub now: Timestamp,
    /// Code of the node applying the change.
    pub node: &'a str,
    /// Caller identity URI (spiffe://fengqiao/op/CODE/ROLE/USER).
    pub actor: &'a str,
    pub deadlines: &'a Deadlines,
}

/// A registration request after decoding, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCase {
    pub idempotency_key: String,
    pub category: Category,
    pub channel: Channel,
    pub summary: String,
    pub description: String,
    pub parties: Vec<Party>,
    pub amount_fen: i64,
    pub risk: RiskLevel,
    pub grid_id: String,
}

/// A change requested on an existing case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 审核: accept → Accepted; reject → Rejected (reason and guidance required).
    Review {
        accept: bool,
        reason: String,
        guidance: String,
    },
    /// 派单: dispatch to a department or mediator, optionally with a deadline (限期办理).
    Assign {
        handler: String,
        due_at: Option<Timestamp>,
    },
    RecordMediation {
        method: MediationMethod,
        mediation_type: MediationType,
        mediator: String,
        notes: String,
        result: MediationResult,
    },
    /// resolved → Resolved (agreement + confirmation required); else Unresolved with guidance.
    Resolve {
        resolved: bool,
        agreement: String,
        settled_amount_fen: i64,
        confirmation: Confirmation,
    },
    /// 回访: 3–5 closes, 1–2 reopens (back to InMediation).
    FollowUp { satisfaction: u8, notes: String },
}

impl Command {
    /// Short verb used in error messages and logs.
    pub fn action(&self) -> &'static str {
        match self {
            Command::Review { accept: true, .. } => "accept",
            Command::Review { accept: false, .. } => "reject",
            Command::Assign { .. } => "assign",
            Command::RecordMediation { .. } => "record mediation on",
            Command::Resolve { .. } => "resolve",
            Command::FollowUp { .. } => "follow up",
        }
    }
}
