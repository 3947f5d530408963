//! How ownership of a case moves between nodes, and how ancestors follow it: the pure half of
//! the federation (the network half is `crate::federation`).
//!
//! A case has exactly one owner. A move is two writes on two nodes, linked by a message:
//!
//! 1. [`hand_over`] at the old owner turns its record into a **tombstone** (status
//!    Transferred, `moved_to` and `owner_node` naming the destination, epoch unchanged) and
//!    appends the hand-over event (提级办理 for a take-over, 移交 otherwise). The case travels
//!    as it was before the hand-over (its status unchanged) with its whole history and the
//!    next epoch.
//! 2. Every node that passes it on appends [`relay_event`] to the carried history.
//! 3. [`receive`] at the destination installs it: owner = the destination, epoch = the carried
//!    one, status as before the move, plus a "received" event. Then the new owner re-applies
//!    the supervision rules ([`rules::reconcile_owner`]): the colour rule opens or closes the
//!    supervision the case's colour needs from the new owner's position (a red case moved
//!    down from the county is supervised by the county; one taken over by the county is not
//!    any more), and the ancestors that followed it (`supervising_nodes`) keep following it
//!    only where they are still ancestors of the new owner. Each change is an event after the
//!    "received" one.
//!
//! A refused transfer comes back and [`restore`] makes the old owner the owner again, with an
//! epoch above the refused one and the same re-application of the rules, so a late or repeated copy of the refused transfer is stale
//! everywhere. The epoch is a fencing token: it grows with every move, and a write carrying a
//! smaller epoch than the one a node holds is refused.
//!
//! Ancestors follow a case (提级督办) by being listed in `supervising_nodes`:
//! [`request_supervision`] adds the parent at the owner's request, [`supervision_order`] adds
//! an ancestor that issues an order (督办). The list is kept nearest first and never holds the
//! owner itself. Whoever changes it — these functions, or a risk rule — the storage layer sends
//! each listed node a read-only copy in the same transaction.
//!
//! Like [`super::machine`], everything here is deterministic and free of I/O.

use crate::code::NodeCode;

use super::calendar::china_datetime;
use super::machine::append_events;
use super::{
    Case, CaseStatus, Ctx, DomainError, Event, EventKind, Timestamp, mask, rules, validate,
};

/// Reasons and instructions attached to moves and orders: required, at most this many
/// characters.
pub const MOVE_TEXT_MAX_CHARS: usize = validate::TEXT_MAX_CHARS;

/// Why a case changes owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MoveKind {
    /// 提级办理: the parent takes the case over.
    TakeOver,
    /// 交办/移交/流转: the owner's director moves it up or down.
    Transfer,
    /// Moved on an ancestor's order (a sideways move, or a move ordered from above).
    Ordered,
}

impl MoveKind {
    pub fn label_zh(self) -> &'static str {
        match self {
            MoveKind::TakeOver => "提级办理",
            MoveKind::Transfer => "移交",
            MoveKind::Ordered => "按上级指令流转",
        }
    }
}

/// Identity URI of a node, the actor of events a node records on its own.
pub fn node_actor(code: &str) -> String {
    format!("{}node/{code}", crate::identity::SPIFFE_PREFIX)
}

/// Whether a case in `status` may change owner: not when final (rejected, closed) or already
/// gone (transferred).
pub fn movable(status: CaseStatus) -> bool {
    !matches!(
        status,
        CaseStatus::Rejected | CaseStatus::Closed | CaseStatus::Transferred
    )
}

fn event(case_len: u64, ctx: &Ctx, kind: EventKind, from: CaseStatus, to: CaseStatus) -> Event {
    Event {
        seq: case_len + 1,
        at: ctx.now,
        node: ctx.node.to_owned(),
        actor: ctx.actor.to_owned(),
        kind,
        from_status: Some(from),
        to_status: to,
        detail: String::new(),
    }
}

/// The old owner's half of a move: the tombstone it keeps and the hand-over event. The case to
/// send is `case` itself (status unchanged) with this event appended to its history.
pub fn hand_over(
    case: &Case,
    ctx: &Ctx,
    to: &str,
    kind: MoveKind,
    reason: &str,
) -> Result<(Case, Event), DomainError> {
    validate::required_text("reason", reason, MOVE_TEXT_MAX_CHARS)?;
    if !movable(case.status) {
        return Err(DomainError::IllegalTransition {
            action: "move",
            status: case.status,
        });
    }
    let mut tomb = case.clone();
    strip_personal_data(&mut tomb);
    tomb.status = CaseStatus::Transferred;
    tomb.moved_to = Some(to.to_owned());
    tomb.owner_node = to.to_owned();
    tomb.updated_at = ctx.now;
    let event_kind = match kind {
        MoveKind::TakeOver => EventKind::Escalated,
        MoveKind::Transfer | MoveKind::Ordered => EventKind::TransferredOut,
    };
    let mut e = event(
        case.history_len,
        ctx,
        event_kind,
        case.status,
        CaseStatus::Transferred,
    );
    e.detail = format!(
        "{}：由{}移交{to}。理由：{}",
        kind.label_zh(),
        ctx.node,
        mask::redact(reason, &case.parties)
    );
    tomb.history_len = e.seq;
    Ok((tomb, e))
}

/// What the old owner's tombstone keeps of a case that moved away: what it needs to answer a
/// citizen who comes back or an order that arrives late — id, lookup code, status, where the
/// case went and when, category, amounts, dates, supervisors, the summary (party names and
/// numbers in it masked) and the history (whose details are masked already) — but not the
/// parties' names, phones and ID numbers, nor the free text that quotes them (description,
/// reason, guidance, agreement, the "六个一" plan): PIPL's minimum necessary. The new owner
/// holds the full record; a refused transfer comes back with it (`restore` installs the
/// carried case, never the tombstone).
pub fn strip_personal_data(tomb: &mut Case) {
    let parties = std::mem::take(&mut tomb.parties);
    tomb.summary = mask::redact(&tomb.summary, &parties);
    for text in [
        &mut tomb.description,
        &mut tomb.reason,
        &mut tomb.guidance,
        &mut tomb.agreement,
    ] {
        text.clear();
    }
    tomb.plan = Default::default();
}

/// The event a node appends to a carried history when it passes a case on toward `to`.
pub fn relay_event(history_len: u64, ctx: &Ctx, to: &str) -> Event {
    let mut e = event(
        history_len,
        ctx,
        EventKind::Relayed,
        CaseStatus::Transferred,
        CaseStatus::Transferred,
    );
    e.detail = format!("经{}转送{to}", ctx.node);
    e
}

/// The new owner's record of a received case: `carried` is the case as sent (status before the
/// move), `history_len` the length of the carried history, `epoch` the transfer's epoch.
/// Returns the case and the events to append: "received", then those of the supervision rules
/// re-applied for the new owner ([`rules::reconcile_owner`]).
pub fn receive(
    carried: &Case,
    history_len: u64,
    ctx: &Ctx,
    epoch: u64,
    from: &str,
    kind: MoveKind,
) -> (Case, Vec<Event>) {
    let mut e = event(
        history_len,
        ctx,
        EventKind::Received,
        CaseStatus::Transferred,
        carried.status,
    );
    e.detail = format!(
        "{}接收（{}，来自{from}），状态{}",
        ctx.node,
        kind.label_zh(),
        carried.status.label_zh()
    );
    install(carried, ctx, epoch, e)
}

/// Makes `ctx.node` the owner of `carried` at `epoch`, records `first` (the "received" or
/// "returned" event), then brings supervision in line with the new owner
/// ([`rules::reconcile_owner`]: the colour rule again, and only ancestors of the owner keep
/// supervising), one event per change.
fn install(carried: &Case, ctx: &Ctx, epoch: u64, first: Event) -> (Case, Vec<Event>) {
    let mut case = carried.clone();
    case.owner_node = ctx.node.to_owned();
    case.epoch = epoch;
    case.moved_to = None;
    case.updated_at = ctx.now;
    case.history_len = first.seq;
    let mut events = vec![first];
    let drafts = rules::reconcile_owner(&mut case);
    let status = case.status;
    append_events(&mut case, ctx, status, drafts, &mut events);
    (case, events)
}

/// The old owner takes a refused case back: owner again, epoch above the refused one, the
/// supervision rules re-applied as by [`receive`] (so the colour rule holds there too). The
/// reason is the refusing node's own text (its words, or its configured
/// `federation.refuse_transfers`), so the division codes in it stay readable; only the
/// parties' data is masked ([`mask::redact_parties`]).
pub fn restore(
    carried: &Case,
    history_len: u64,
    ctx: &Ctx,
    refused_epoch: u64,
    intended: &str,
    reason: &str,
) -> (Case, Vec<Event>) {
    let mut e = event(
        history_len,
        ctx,
        EventKind::Returned,
        CaseStatus::Transferred,
        carried.status,
    );
    e.detail = format!(
        "移交{intended}未成，案件退回{}。原因：{}",
        ctx.node,
        mask::redact_parties(reason, &carried.parties)
    );
    install(carried, ctx, refused_epoch.saturating_add(1), e)
}

/// 提级督办: asks `supervisor` (the parent) to follow the case. Asking again changes nothing
/// and appends no event.
pub fn request_supervision(
    case: &Case,
    ctx: &Ctx,
    supervisor: &str,
    reason: &str,
) -> Result<(Case, Vec<Event>), DomainError> {
    validate::required_text("reason", reason, MOVE_TEXT_MAX_CHARS)?;
    if case.status == CaseStatus::Transferred {
        return Err(DomainError::IllegalTransition {
            action: "escalate",
            status: case.status,
        });
    }
    if case.supervising_nodes.iter().any(|s| s == supervisor) {
        return Ok((case.clone(), Vec::new()));
    }
    let mut next = case.clone();
    add_supervisor(&mut next, supervisor);
    next.updated_at = ctx.now;
    let mut e = event(
        case.history_len,
        ctx,
        EventKind::SupervisionRequested,
        case.status,
        case.status,
    );
    e.detail = format!(
        "提级督办：请{supervisor}督办，{}继续办理。理由：{}",
        ctx.node,
        mask::redact(reason, &case.parties)
    );
    next.history_len = e.seq;
    Ok((next, vec![e]))
}

/// 督办 recorded at the owner: the order lands in the history and the issuer (`ctx.node`, an
/// ancestor of the owner) follows the case from now on.
pub fn supervision_order(
    case: &Case,
    ctx: &Ctx,
    instruction: &str,
    due_at: Option<Timestamp>,
) -> (Case, Event) {
    let mut next = case.clone();
    add_supervisor(&mut next, ctx.node);
    next.updated_at = ctx.now;
    let mut e = event(
        case.history_len,
        ctx,
        EventKind::SupervisionOrdered,
        case.status,
        case.status,
    );
    let due = due_at.map_or(String::new(), |d| {
        format!("；督办期限{}", china_datetime(d))
    });
    e.detail = format!(
        "{}督办：{}{due}",
        ctx.node,
        mask::redact(instruction, &case.parties)
    );
    next.history_len = e.seq;
    (next, e)
}

/// Records that an ancestor's order (`what`) was not carried out, and why.
pub fn order_not_executed(case: &Case, ctx: &Ctx, what: &str, why: &str) -> (Case, Event) {
    let mut next = case.clone();
    next.updated_at = ctx.now;
    let mut e = event(
        case.history_len,
        ctx,
        EventKind::OrderNotExecuted,
        case.status,
        case.status,
    );
    e.detail = format!("{}的指令（{what}）未执行：{why}", ctx.node);
    next.history_len = e.seq;
    (next, e)
}

/// Who may order a TransferCase at node `me` toward `to` (the README's table of moves):
///
/// * a case owned here (`owned_here`) moves up or down, by the owner's director or admin (the
///   permission table checks the role); never to `me`, and never sideways — that is ordered
///   by a director at the common ancestor of owner and target, or above;
/// * a case held elsewhere moves by an order, which only a director gives (`director`), and
///   only toward a node of this node's area (`me` or below).
pub fn check_transfer(
    me: &NodeCode,
    to: &NodeCode,
    case_id: &str,
    owned_here: bool,
    director: bool,
) -> Result<(), DomainError> {
    if owned_here {
        if to == me {
            return Err(DomainError::invalid(
                "to_node",
                format!("case {case_id} is already at {me}"),
            ));
        }
        if !me.is_ancestor_of(to) && !to.is_ancestor_of(me) {
            let above = me
                .common_ancestor(to)
                .map(String::from)
                .unwrap_or_else(|| "the top".into());
            return Err(DomainError::Forbidden(format!(
                "{to} is neither above nor below {me}: a sideways move is ordered by a director at {above} or above"
            )));
        }
        return Ok(());
    }
    if !director {
        return Err(DomainError::Forbidden(
            "only a director orders a move of a case owned by another node".into(),
        ));
    }
    if to != me && !me.is_ancestor_of(to) {
        return Err(DomainError::Forbidden(format!(
            "{to} is outside the area of node {me}"
        )));
    }
    Ok(())
}

/// Checks an order's text before it is sent.
pub fn validate_instruction(field: &'static str, text: &str) -> Result<(), DomainError> {
    validate::required_text(field, text, MOVE_TEXT_MAX_CHARS)
}

fn add_supervisor(case: &mut Case, code: &str) {
    if code == case.owner_node || case.supervising_nodes.iter().any(|s| s == code) {
        return;
    }
    case.supervising_nodes.push(code.to_owned());
    // Nearest first: a longer division code is a lower tier.
    case.supervising_nodes
        .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
}

#[cfg(test)]
mod tests;
