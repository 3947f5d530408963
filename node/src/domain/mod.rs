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
//! * [`rules`] — deadline warning levels, the four-colour supervision rule and the supervision
//!   bookkeeping the state machine uses; [`alert`] — early-warning alerts and the pure
//!   post-step that derives them (and reopen supervision) from a change.
//!
//! Invariants: history is append-only (event `seq` runs 1, 2, 3, ... with no gaps and
//! `Case::history_len` equals the last seq); amounts are integer fen and never negative;
//! timestamps are UTC milliseconds, and "the day" of a case id is the day in China (UTC+8).

pub mod alert;
pub mod apikeys;
pub mod audit;
pub mod calendar;
pub mod import;
pub mod machine;
pub mod mask;
pub mod model;
pub mod moves;
pub mod rules;
pub mod users;
pub mod validate;

pub use model::*;

use std::time::Duration;

/// A rule of the domain refused the request. Maps to INVALID_ARGUMENT, FAILED_PRECONDITION or
/// PERMISSION_DENIED (`crate::error`).
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
    /// The status allows the action but the case's state refuses it (a deadline already
    /// extended once, a full progress table, ...). Maps to FAILED_PRECONDITION.
    #[error("cannot {action}: {reason}")]
    Refused {
        action: &'static str,
        reason: String,
    },
    /// Where the case is, or how this node is linked, does not allow the request here (the
    /// case is owned elsewhere, no link leads to the target, ...). Maps to FAILED_PRECONDITION.
    #[error("{0}")]
    Precondition(String),
    /// The caller may not ask this of this node (who may order which move: the README's
    /// table). Maps to PERMISSION_DENIED.
    #[error("{0}")]
    Forbidden(String),
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
    /// A case whose running deadline is overdue by more than this is put under supervision by
    /// the parent (提级督办); `None` turns the rule off.
    pub escalate_overdue_after: Option<Duration>,
}

const DAY_SECS: u64 = 24 * 3600;

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            review: Duration::from_secs(3 * DAY_SECS),
            resolve: Duration::from_secs(30 * DAY_SECS),
            follow_up: Duration::from_secs(7 * DAY_SECS),
            escalate_overdue_after: Some(Duration::from_secs(DAY_SECS)),
        }
    }
}

/// Early-warning thresholds of a node, from its tier config (`[early_warning]`). A count of 0
/// turns its rule off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The same person (by ID number) in this many cases...
    pub repeat_person_cases: u32,
    /// ...registered within this window raises an alert and the newest case's risk one level.
    pub repeat_person_window: Duration,
    /// This many open cases against one respondent raise a group-dispute alert.
    pub respondent_open_cases: u32,
    /// A reopen after a dissatisfied follow-up puts the case under the parent's supervision.
    pub reopen_supervise: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            repeat_person_cases: 3,
            repeat_person_window: Duration::from_secs(180 * DAY_SECS),
            respondent_open_cases: 3,
            reopen_supervise: true,
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
    /// 风险调整: a new four-colour risk, with its reason. Opens or closes the supervision the
    /// colour requires.
    ChangeRisk { risk: RiskLevel, reason: String },
    /// 延期: moves the running resolution deadline later, once per case, with a reason.
    ExtendDeadline { until: Timestamp, reason: String },
    /// "六个一": sets the given fields of the plan.
    UpdatePlan(PlanUpdate),
    /// 办理进展: appends an entry to the progress table.
    AddProgress { text: String },
    /// Rule (the deadline sweep): the running deadline is overdue by more than `after`, so the
    /// parent supervises. A case already under the parent's overdue supervision is unchanged.
    SuperviseOverdue { after: Duration },
    /// Rule (early warning): raises the risk one colour, for `reason` (already masked).
    RaiseRisk { reason: String },
}

/// The "六个一" fields to change: `None` keeps a field, `Some("")` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanUpdate {
    pub lead_leader: Option<String>,
    pub mediation_org: Option<String>,
    pub liaison_unit: Option<String>,
    pub plan: Option<String>,
    pub legal_briefing: Option<String>,
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
            Command::ChangeRisk { .. } => "change the risk of",
            Command::ExtendDeadline { .. } => "extend the deadline of",
            Command::UpdatePlan(_) => "update the plan of",
            Command::AddProgress { .. } => "add progress to",
            Command::SuperviseOverdue { .. } => "open overdue supervision on",
            Command::RaiseRisk { .. } => "raise the risk of",
        }
    }
}
