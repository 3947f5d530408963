//! The commands that watch over a case rather than move it along: risk changes, the deadline
//! extension, the "六个一" plan and progress table, and the two rule commands the node issues
//! itself (overdue supervision, early-warning risk raise). None of them changes the status.
//!
//! * `ChangeRisk` needs a reason and a colour other than the current one; the colour rule
//!   ([`rules::reconcile_risk`]) then opens or closes supervision, one event each.
//! * `ExtendDeadline` moves the running resolution deadline later, once per case: `until`
//!   must be after the current deadline and at most one more `deadlines.resolve` beyond it.
//! * `UpdatePlan` sets the given fields; giving only the current values changes nothing. Its
//!   event quotes the names and records a longer field (plan, briefing) as changed, with its
//!   length: the case holds the current text.
//! * `AddProgress` appends to the progress table, at most [`PROGRESS_MAX`] entries.
//! * `SuperviseOverdue` opens the parent's supervision of a case whose running deadline is
//!   overdue by more than `after`; it is refused if the case is not, and changes nothing if
//!   the parent already supervises it for that reason (or the owner has no parent).
//! * `RaiseRisk` raises the colour one step (nothing for a red case) and applies the colour
//!   rule.

use std::time::Duration;

use super::super::calendar::china_datetime;
use super::super::rules::{self, Draft, Opened};
use super::super::validate;
use super::super::{
    Case, Command, Ctx, DomainError, EventKind, PlanUpdate, ProgressEntry, RiskLevel,
    SupervisionCause, Timestamp, mask,
};

/// The progress table holds at most this many entries.
pub const PROGRESS_MAX: usize = 200;
/// A "六个一" field up to this many characters (the names) is quoted in the plan-update event;
/// a longer one (the plan, the briefing) is recorded as changed, with its length.
pub const PLAN_SHOWN_MAX_CHARS: usize = validate::PLAN_NAME_MAX_CHARS;

/// Applies an oversight command to `next` (a copy of `case`); the lifecycle commands are not
/// handled here and give no draft.
pub(super) fn apply(
    case: &Case,
    next: &mut Case,
    ctx: &Ctx,
    cmd: &Command,
) -> Result<Vec<Draft>, DomainError> {
    match cmd {
        Command::ChangeRisk { risk, reason } => Ok(change_risk(case, next, *risk, reason)),
        Command::ExtendDeadline { until, reason } => {
            extend_deadline(case, next, ctx, *until, reason)
        }
        Command::UpdatePlan(update) => Ok(update_plan(case, next, update)),
        Command::AddProgress { text } => add_progress(case, next, ctx, text),
        Command::SuperviseOverdue { after } => supervise_overdue(case, next, ctx, *after),
        Command::RaiseRisk { reason } => Ok(raise_risk(case, next, reason)),
        Command::Review { .. }
        | Command::Assign { .. }
        | Command::RecordMediation { .. }
        | Command::Resolve { .. }
        | Command::FollowUp { .. } => Ok(Vec::new()),
    }
}

fn change_risk(case: &Case, next: &mut Case, risk: RiskLevel, reason: &str) -> Vec<Draft> {
    if risk == case.risk {
        return Vec::new();
    }
    next.risk = risk;
    let mut drafts = vec![(
        EventKind::RiskChanged,
        format!(
            "风险等级由{}色调整为{}色。理由：{}",
            case.risk.label_zh(),
            risk.label_zh(),
            mask::redact(reason, &case.parties)
        ),
    )];
    drafts.extend(rules::reconcile_risk(next));
    drafts
}

fn raise_risk(case: &Case, next: &mut Case, reason: &str) -> Vec<Draft> {
    let risk = case.risk.raised();
    if risk == case.risk {
        return Vec::new();
    }
    next.risk = risk;
    let mut drafts = vec![(
        EventKind::RiskChanged,
        format!(
            "预警自动升级：风险等级由{}色调整为{}色。{}",
            case.risk.label_zh(),
            risk.label_zh(),
            mask::redact(reason, &case.parties)
        ),
    )];
    drafts.extend(rules::reconcile_risk(next));
    drafts
}

fn extend_deadline(
    case: &Case,
    next: &mut Case,
    ctx: &Ctx,
    until: Timestamp,
    reason: &str,
) -> Result<Vec<Draft>, DomainError> {
    let refused = |reason: &str| DomainError::Refused {
        action: "extend the deadline",
        reason: reason.to_owned(),
    };
    if case.deadline_extended {
        return Err(refused(
            "the resolution deadline has already been extended once (延期仅限一次)",
        ));
    }
    let Some(current) = case.resolve_due_at else {
        return Err(refused("no resolution deadline is running"));
    };
    if until <= current {
        return Err(DomainError::invalid(
            "until",
            format!(
                "must be later than the current deadline {}",
                china_datetime(current)
            ),
        ));
    }
    let latest = current.plus(ctx.deadlines.resolve);
    if until > latest {
        return Err(DomainError::invalid(
            "until",
            format!(
                "at most {} beyond the current deadline, i.e. by {}",
                rules::duration_zh(ctx.deadlines.resolve),
                china_datetime(latest)
            ),
        ));
    }
    next.resolve_due_at = Some(until);
    next.deadline_extended = true;
    Ok(vec![(
        EventKind::DeadlineExtended,
        format!(
            "办理期限由{}延长至{}。理由：{}",
            china_datetime(current),
            china_datetime(until),
            mask::redact(reason, &case.parties)
        ),
    )])
}

fn update_plan(case: &Case, next: &mut Case, update: &PlanUpdate) -> Vec<Draft> {
    let PlanUpdate {
        lead_leader,
        mediation_org,
        liaison_unit,
        plan,
        legal_briefing,
    } = update;
    let p = &mut next.plan;
    let mut said = Vec::new();
    for (label, field, value) in [
        ("包案领导", &mut p.lead_leader, lead_leader),
        ("调解组织", &mut p.mediation_org, mediation_org),
        ("联系单位", &mut p.liaison_unit, liaison_unit),
        ("化解方案", &mut p.plan, plan),
        ("法律政策宣讲", &mut p.legal_briefing, legal_briefing),
    ] {
        let Some(value) = value.as_ref().filter(|v| *v != field) else {
            continue;
        };
        *field = value.clone();
        // The case holds the text; the history records that it changed, and the text itself
        // only when it is a name (a long plan, rewritten hundreds of times in a long-running
        // case, would otherwise fill the history: see `validate::CASE_MAX_BYTES`).
        let text = value.trim();
        let chars = text.chars().count();
        let shown = if text.is_empty() {
            "（清空）".to_owned()
        } else if chars > PLAN_SHOWN_MAX_CHARS {
            format!("已更新（{chars}字）")
        } else {
            mask::redact(text, &case.parties)
        };
        said.push(format!("{label}：{shown}"));
    }
    if said.is_empty() {
        return Vec::new();
    }
    vec![(
        EventKind::PlanUpdated,
        format!("六个一更新。{}", said.join("；")),
    )]
}

fn add_progress(
    case: &Case,
    next: &mut Case,
    ctx: &Ctx,
    text: &str,
) -> Result<Vec<Draft>, DomainError> {
    if case.plan.progress.len() >= PROGRESS_MAX {
        return Err(DomainError::Refused {
            action: "add progress",
            reason: format!("the progress table is full ({PROGRESS_MAX} entries)"),
        });
    }
    next.plan.progress.push(ProgressEntry {
        at: ctx.now,
        actor: ctx.actor.to_owned(),
        text: text.to_owned(),
    });
    Ok(vec![(
        EventKind::Progress,
        format!(
            "进展第{}条：{}",
            next.plan.progress.len(),
            mask::redact(text.trim(), &case.parties)
        ),
    )])
}

fn supervise_overdue(
    case: &Case,
    next: &mut Case,
    ctx: &Ctx,
    after: Duration,
) -> Result<Vec<Draft>, DomainError> {
    let refused = |reason: String| DomainError::Refused {
        action: "open overdue supervision",
        reason,
    };
    let Some(deadline) = case.deadline() else {
        return Err(refused("no deadline is running".into()));
    };
    if ctx.now <= deadline.due_at.plus(after) {
        return Err(refused(format!(
            "the {} is not overdue by more than {}",
            deadline.kind.label_en(),
            rules::duration_zh(after)
        )));
    }
    let Some(parent) = rules::parent_of(&case.owner_node) else {
        return Ok(Vec::new());
    };
    let opened = rules::open(next, &parent, SupervisionCause::Overdue);
    if opened == Opened::Unchanged {
        return Ok(Vec::new());
    }
    let detail = format!(
        "{}（{}）已逾期超过{}，提请上级{parent}督办",
        deadline.kind.label_zh(),
        china_datetime(deadline.due_at),
        rules::duration_zh(after)
    );
    Ok(vec![(
        EventKind::SupervisionOpened,
        rules::opened_detail(detail, opened),
    )])
}

#[cfg(test)]
mod tests;
