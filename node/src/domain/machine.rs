//! The case state machine: how a dispute moves from registration to closing.
//!
//! A citizen's dispute enters at one window (一窗受理) — walk-in, hotline, online, a grid
//! worker's report, a court referral — and [`register`] writes it down as **Registered**
//! (未审核). Staff must review it within the node's review deadline (Kunming: 3 days). Review
//! either **accepts** it (待办理, and the resolution deadline starts running) or **rejects** it
//! (已拒绝) — but never silently: a rejection carries a reason and guidance telling the citizen
//! where to go instead, because every matter gets an answer (事事有回应).
//!
//! An accepted case is dispatched (派单) to a stationed department or a mediator, possibly with
//! its own deadline (限期办理), and mediated in as many sessions as it takes (Chang'an's wage
//! case took five); the first recorded session moves it to **InMediation** (调解中). Mediation
//! ends one of two ways: **Resolved** (已化解) with an agreement, the amount paid and how the
//! agreement was confirmed (司法确认, 赋强公证), or **Unresolved** (调解不成) with guidance
//! toward litigation or arbitration. Either way the center then calls the parties back
//! (回访): a satisfied party (3–5 of 5) **closes** the case (已办结); a dissatisfied one (1–2)
//! sends it back to mediation with a fresh deadline, and the reopen is counted.
//!
//! ```text
//!   register ─▶ Registered ──reject──▶ Rejected (final)
//!                   │ accept
//!                   ▼
//!               Accepted ──record mediation──▶ InMediation ◀──────────┐
//!               (assign ↺)                     (assign, record ↺)     │
//!                   │ resolve                       │ resolve         │
//!                   ▼                               ▼                 │
//!               Resolved / Unresolved ◀─────────────┘                 │
//!                   │          └──── follow-up 1–2 (reopen) ──────────┘
//!                   │ follow-up 3–5
//!                   ▼
//!               Closed (final)
//!
//!   Transferred (final): the case moved to another node; this copy is a tombstone.
//! ```
//!
//! Rejected, Closed and Transferred accept no command; any pair of status and command not drawn
//! above is a [`DomainError::IllegalTransition`]. Arguments are validated before the status is
//! looked at, so a malformed request is INVALID_ARGUMENT whatever the case's state.
//!
//! Invariants kept by every function here:
//! * pure: no clock, no randomness, no I/O — the time is [`Ctx::now`], ids come in as arguments;
//!   calling twice with the same input gives the same output (storage may re-run a transaction);
//! * every change appends events numbered `history_len + 1, + 2, ...`, and the returned case's
//!   `history_len` is the last of them; `updated_at` is the time of the change;
//! * `resolved_at` is the time the latest mediation ended, successfully or not (so it is set for
//!   Unresolved too, and cleared when a follow-up reopens the case); the outcome fields
//!   (`agreement`, `settled_amount_fen`, `confirmation`, `guidance`) describe the latest outcome;
//! * event details are readable Chinese for the history view and hold no personal data: party
//!   names, phones and id numbers typed into free text are masked by [`mask::redact`].

mod oversight;

use super::calendar::china_datetime;
use super::mask;
use super::rules::{self, Draft};
use super::validate;
use super::{Case, CaseStatus, Command, Ctx, DomainError, Event, EventKind, NewCase};

pub use super::calendar::china_day;
pub use oversight::PROGRESS_MAX;

/// The lowest follow-up satisfaction that closes a case; below it the case is reopened.
pub const CLOSE_SATISFACTION_MIN: u8 = 3;

/// `CODE-YYYYMMDD-NNNNNN`: the registering node, the day of registration in China, and the
/// node's sequence number for that day, zero-padded to 6 digits (wider past 999999).
pub fn case_id(node: &str, day: &str, seq: u32) -> String {
    format!("{node}-{day}-{seq:06}")
}

/// Builds a freshly registered case and its first event.
///
/// The case is Registered, owned by and originating at `ctx.node` with epoch 1, and must be
/// reviewed by `now + deadlines.review`. `id` (see [`case_id`]) and `lookup_code` are chosen by
/// the caller, which owns the sequence counter and the randomness. A colour that must be
/// followed above this node's tier opens that supervision at once ([`rules::reconcile_risk`]);
/// the registration's one event says so.
pub fn register(
    ctx: &Ctx,
    new: &NewCase,
    id: String,
    lookup_code: String,
) -> Result<(Case, Event), DomainError> {
    validate::validate_new_case(new)?;
    let NewCase {
        idempotency_key: _,
        category,
        channel,
        summary,
        description,
        parties,
        amount_fen,
        risk,
        grid_id,
    } = new;
    let review_due_at = ctx.now.plus(ctx.deadlines.review);
    let mut case = Case {
        id,
        lookup_code,
        status: CaseStatus::Registered,
        owner_node: ctx.node.to_owned(),
        origin_node: ctx.node.to_owned(),
        epoch: 1,
        moved_to: None,
        category: *category,
        channel: *channel,
        risk: *risk,
        summary: summary.clone(),
        description: description.clone(),
        parties: parties.clone(),
        amount_fen: *amount_fen,
        grid_id: grid_id.clone(),
        handler: None,
        created_at: ctx.now,
        updated_at: ctx.now,
        review_due_at,
        resolve_due_at: None,
        settled_amount_fen: 0,
        reopen_count: 0,
        reason: String::new(),
        guidance: String::new(),
        agreement: String::new(),
        confirmation: None,
        satisfaction: None,
        mediation_type: None,
        mediation_sessions: 0,
        resolved_at: None,
        closed_at: None,
        history_len: 1,
        supervising_nodes: Vec::new(),
        resolve_started_at: None,
        follow_up_due_at: None,
        deadline_extended: false,
        rule_supervision: Vec::new(),
        plan: Default::default(),
    };
    let mut detail = format!(
        "登记受理：{}，{}，{}色风险，当事人{}人，涉及金额{}元；审核期限{}",
        category.label_zh(),
        channel.label_zh(),
        risk.label_zh(),
        parties.len(),
        yuan(*amount_fen),
        china_datetime(review_due_at),
    );
    for (_, opened) in rules::reconcile_risk(&mut case) {
        detail.push('；');
        detail.push_str(&opened);
    }
    let event = Event {
        seq: 1,
        at: ctx.now,
        node: ctx.node.to_owned(),
        actor: ctx.actor.to_owned(),
        kind: EventKind::Registered,
        from_status: None,
        to_status: CaseStatus::Registered,
        detail,
    };
    Ok((case, event))
}

/// Whether `status` admits `cmd` at all (arguments aside): the transition table above.
pub fn permits(status: CaseStatus, cmd: &Command) -> bool {
    use CaseStatus::*;
    match cmd {
        Command::Review { .. } => status == Registered,
        Command::Assign { .. } | Command::RecordMediation { .. } | Command::Resolve { .. } => {
            matches!(status, Accepted | InMediation)
        }
        Command::FollowUp { .. } => matches!(status, Resolved | Unresolved),
        Command::ExtendDeadline { .. } => matches!(status, Accepted | InMediation),
        Command::ChangeRisk { .. }
        | Command::UpdatePlan(_)
        | Command::AddProgress { .. }
        | Command::SuperviseOverdue { .. }
        | Command::RaiseRisk { .. } => !status.is_final(),
    }
}

/// Applies `cmd` to `case`: validates the arguments, then checks the status, then returns the
/// next version of the case and the events to append to its history. A rule command that
/// finds nothing to do (see [`oversight`]) returns the case unchanged and no event.
pub fn apply(case: &Case, ctx: &Ctx, cmd: &Command) -> Result<(Case, Vec<Event>), DomainError> {
    validate::validate_command(cmd, ctx.now)?;
    if !permits(case.status, cmd) {
        return Err(DomainError::IllegalTransition {
            action: cmd.action(),
            status: case.status,
        });
    }
    let mut next = case.clone();
    let drafts = match lifecycle(case, &mut next, ctx, cmd) {
        Some(draft) => vec![draft],
        None => oversight::apply(case, &mut next, ctx, cmd)?,
    };
    if drafts.is_empty() {
        return Ok((case.clone(), Vec::new()));
    }
    let mut events = Vec::with_capacity(drafts.len());
    append_events(&mut next, ctx, case.status, drafts, &mut events);
    Ok((next, events))
}

/// Turns drafts into events continuing `next`'s history (the first records the change of
/// status from `from`, the others none), and sets `updated_at` and `history_len`.
pub fn append_events(
    next: &mut Case,
    ctx: &Ctx,
    from: CaseStatus,
    drafts: Vec<Draft>,
    out: &mut Vec<Event>,
) {
    let mut from = from;
    for (kind, detail) in drafts {
        let event = Event {
            seq: next.history_len + 1,
            at: ctx.now,
            node: ctx.node.to_owned(),
            actor: ctx.actor.to_owned(),
            kind,
            from_status: Some(from),
            to_status: next.status,
            detail,
        };
        next.history_len = event.seq;
        next.updated_at = ctx.now;
        from = next.status;
        out.push(event);
    }
}

/// The lifecycle commands: each writes exactly one event. `None` for the other commands.
fn lifecycle(case: &Case, next: &mut Case, ctx: &Ctx, cmd: &Command) -> Option<Draft> {
    let now = ctx.now;
    let draft = match cmd {
        Command::Review { accept: true, .. } => {
            let due = now.plus(ctx.deadlines.resolve);
            next.status = CaseStatus::Accepted;
            next.resolve_due_at = Some(due);
            next.resolve_started_at = Some(now);
            (
                EventKind::Accepted,
                format!("审核通过，予以受理；办理期限{}", china_datetime(due)),
            )
        }
        Command::Review {
            accept: false,
            reason,
            guidance,
        } => {
            next.status = CaseStatus::Rejected;
            next.reason = reason.clone();
            next.guidance = guidance.clone();
            let detail = format!(
                "不予受理。理由：{}；引导：{}",
                mask::redact(reason, &case.parties),
                mask::redact(guidance, &case.parties),
            );
            (EventKind::Rejected, detail)
        }
        Command::Assign { handler, due_at } => {
            next.handler = Some(handler.clone());
            let detail = match (due_at, case.resolve_due_at) {
                (Some(d), _) => format!("派单给{handler}，限{}前办结", china_datetime(*d)),
                (None, Some(d)) => format!("派单给{handler}，办理期限{}", china_datetime(d)),
                (None, None) => format!("派单给{handler}"),
            };
            if let Some(d) = due_at {
                next.resolve_due_at = Some(*d);
            }
            (EventKind::Assigned, detail)
        }
        Command::RecordMediation {
            method,
            mediation_type,
            mediator,
            notes,
            result,
        } => {
            next.status = CaseStatus::InMediation;
            next.mediation_sessions = case.mediation_sessions.saturating_add(1);
            next.mediation_type = Some(*mediation_type);
            let detail = format!(
                "第{}次调解（{}，{}），调解员{mediator}，结果：{}{}",
                next.mediation_sessions,
                method.label_zh(),
                mediation_type.label_zh(),
                result.label_zh(),
                notes_suffix("记录", notes, case),
            );
            (EventKind::Mediation, detail)
        }
        Command::Resolve {
            resolved: true,
            agreement,
            settled_amount_fen,
            confirmation,
        } => {
            let follow_up_due = now.plus(ctx.deadlines.follow_up);
            next.status = CaseStatus::Resolved;
            next.agreement = agreement.clone();
            next.settled_amount_fen = *settled_amount_fen;
            next.confirmation = Some(*confirmation);
            next.guidance = String::new();
            next.resolved_at = Some(now);
            next.follow_up_due_at = Some(follow_up_due);
            let detail = format!(
                "化解成功：达成调解协议，履行金额{}元，确认方式：{}。协议：{}；回访期限{}",
                yuan(*settled_amount_fen),
                confirmation.label_zh(),
                mask::redact(agreement, &case.parties),
                china_datetime(follow_up_due),
            );
            (EventKind::Resolved, detail)
        }
        Command::Resolve {
            resolved: false,
            agreement: guidance,
            ..
        } => {
            let follow_up_due = now.plus(ctx.deadlines.follow_up);
            next.status = CaseStatus::Unresolved;
            next.guidance = guidance.clone();
            next.agreement = String::new();
            next.settled_amount_fen = 0;
            next.confirmation = None;
            next.resolved_at = Some(now);
            next.follow_up_due_at = Some(follow_up_due);
            let detail = format!(
                "调解不成，已引导：{}；回访期限{}",
                mask::redact(guidance, &case.parties),
                china_datetime(follow_up_due),
            );
            (EventKind::Unresolved, detail)
        }
        Command::FollowUp {
            satisfaction,
            notes,
        } if *satisfaction >= CLOSE_SATISFACTION_MIN => {
            next.status = CaseStatus::Closed;
            next.satisfaction = Some(*satisfaction);
            next.closed_at = Some(now);
            let detail = format!(
                "回访满意度{satisfaction}/5，案结事了{}",
                notes_suffix("回访记录", notes, case)
            );
            (EventKind::FollowUpClosed, detail)
        }
        Command::FollowUp {
            satisfaction,
            notes,
        } => {
            let due = now.plus(ctx.deadlines.resolve);
            next.status = CaseStatus::InMediation;
            next.satisfaction = Some(*satisfaction);
            next.reopen_count = case.reopen_count.saturating_add(1);
            next.resolve_due_at = Some(due);
            next.resolve_started_at = Some(now);
            next.resolved_at = None;
            next.follow_up_due_at = None;
            let detail = format!(
                "回访满意度{satisfaction}/5，不满意，第{}次重新办理；办理期限{}{}",
                next.reopen_count,
                china_datetime(due),
                notes_suffix("回访记录", notes, case),
            );
            (EventKind::Reopened, detail)
        }
        Command::ChangeRisk { .. }
        | Command::ExtendDeadline { .. }
        | Command::UpdatePlan(_)
        | Command::AddProgress { .. }
        | Command::SuperviseOverdue { .. }
        | Command::RaiseRisk { .. } => return None,
    };
    Some(draft)
}

/// The handler named by the detail of an [`EventKind::Assigned`] event (as `lifecycle` writes
/// it: "派单给HANDLER" up to the first "，").
pub fn assigned_handler(detail: &str) -> Option<&str> {
    let rest = detail.strip_prefix("派单给")?;
    let handler = rest.split('，').next().unwrap_or(rest);
    (!handler.is_empty()).then_some(handler)
}

/// `。label：notes` with personal data redacted, or nothing for blank notes.
fn notes_suffix(label: &str, notes: &str, case: &Case) -> String {
    if notes.trim().is_empty() {
        String::new()
    } else {
        format!("。{label}：{}", mask::redact(notes.trim(), &case.parties))
    }
}

/// Fen as yuan with two decimals: `440000` → `4400.00`. Amounts are validated non-negative.
pub(crate) fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, (fen % 100).abs())
}

#[cfg(test)]
pub(crate) mod tests;
