//! Cadence reports (Zizhou: villages screen daily, townships analyse weekly, counties assess
//! monthly): one report per node and period, made on demand (`ExportReport`, `fqctl report`)
//! and on a schedule (`[reports] cadence`, written under `[reports] dir`).
//!
//! A report holds, for the period `[from, to)`:
//!
//! * **figures** counted from the case histories, one per event this node wrote in the period:
//!   received (登记受理), accepted, rejected, resolved (化解成功), unresolved (调解不成),
//!   closed (回访办结), reopened; the success rate resolved / (resolved + unresolved); the
//!   amount involved in the cases received. Events another node wrote (before a case moved
//!   here) are that node's figures, so nothing is counted twice across the federation;
//! * **stock** as of when the report is made (a report of a past period says how things stand
//!   now, not how they stood then): open cases, and the cases past their running deadline
//!   (review, resolution or follow-up);
//! * the **overdue list** and the **red and orange cases** still live here, with their
//!   deadline, warning and supervising nodes;
//! * the **alerts** raised in the period.
//!
//! [`ReportData`] is the report as data. `render` writes it as CSV (one table; the `section`
//! column says what a row is, machine names in English, times RFC 3339 in China time) and as
//! readable text in Chinese or English; the CSV reads back into the same data, so `fqctl report
//! --lang en` renders the node's report in English from the CSV without another request.
//! Personal data never enters a report: summaries are masked with the case's parties, alert
//! messages are masked when raised.
//!
//! Making a report reads indexes, not every case: the events of the period from the activity
//! index, the stock from the facets and deadline indexes, and only the cases it lists (at most
//! [`REPORT_LIST_MAX`] per list, the figures counting them all); callers run it off the async
//! runtime.

pub mod ledger;
pub mod period;
pub mod render;
pub mod schedule;
pub mod sheet;

pub use period::{Cadence, Period};

use crate::domain::alert::{Alert, AlertKind};
use crate::domain::rules::Warning;
use crate::domain::{
    Case, CaseStatus, Category, DeadlineKind, EventKind, RiskLevel, Timestamp, mask,
};
use crate::storage::{StorageError, Store};

/// The figures of a report (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub resolved: u64,
    pub unresolved: u64,
    pub closed: u64,
    pub reopened: u64,
    /// Amount involved in the cases received, fen.
    pub amount_fen: i64,
    /// Open (unreviewed, accepted, in mediation) when the report was made.
    pub open: u64,
    /// Past their running deadline (review, resolution or follow-up) when it was made.
    pub overdue: u64,
    /// Red and orange cases not closed when it was made.
    pub high_risk: u64,
}

impl Figures {
    /// resolved / (resolved + unresolved) in tenths of a percent; `None` when no mediation
    /// ended in the period.
    pub fn success_permille(&self) -> Option<u64> {
        let ended = self.resolved + self.unresolved;
        (ended > 0).then(|| (self.resolved * 1000 + ended / 2) / ended)
    }
}

/// A case listed in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseLine {
    pub case_id: String,
    pub status: CaseStatus,
    pub risk: RiskLevel,
    pub category: Category,
    pub deadline: Option<DeadlineKind>,
    pub due_at: Option<Timestamp>,
    pub warning: Warning,
    pub supervising: Vec<String>,
    /// Personal data masked.
    pub summary: String,
}

impl CaseLine {
    fn of(case: &Case, now: Timestamp) -> CaseLine {
        let deadline = case.deadline();
        CaseLine {
            case_id: case.id.clone(),
            status: case.status,
            risk: case.risk,
            category: case.category,
            deadline: deadline.map(|d| d.kind),
            due_at: deadline.map(|d| d.due_at),
            warning: case.warning(now),
            supervising: case.supervising_nodes.clone(),
            summary: mask::redact(case.summary.trim(), &case.parties),
        }
    }
}

/// An alert listed in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertLine {
    pub raised_at: Timestamp,
    pub kind: AlertKind,
    pub node: String,
    pub case_ids: Vec<String>,
    pub message: String,
}

impl From<&Alert> for AlertLine {
    fn from(a: &Alert) -> AlertLine {
        AlertLine {
            raised_at: a.raised_at,
            kind: a.kind,
            node: a.node.clone(),
            case_ids: a.case_ids.clone(),
            message: a.message.clone(),
        }
    }
}

/// One report, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportData {
    pub node: String,
    pub period: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub made_at: Timestamp,
    pub figures: Figures,
    pub overdue: Vec<CaseLine>,
    pub high_risk: Vec<CaseLine>,
    pub alerts: Vec<AlertLine>,
}

/// Most cases each list of a report holds (the overdue ones due earliest, the red ones
/// first), and most alerts (the earliest of the period); the figures count them all.
pub const REPORT_LIST_MAX: usize = 1000;

/// Makes the report of node `node` for `period` at `now`, from the store's indexes: the
/// figures from the activity index (the events of the period) and the facets and deadline
/// indexes (the stock); only the cases listed are read. Bounded whatever the node holds.
pub fn make(
    store: &Store,
    node: &str,
    period: &Period,
    now: Timestamp,
) -> Result<ReportData, StorageError> {
    let mut figures = Figures {
        open: store.count_open()?,
        ..Figures::default()
    };
    store.activity_between(period.from, period.to, |kind, amount_fen| match kind {
        EventKind::Registered => {
            figures.received += 1;
            figures.amount_fen = figures.amount_fen.saturating_add(amount_fen);
        }
        EventKind::Accepted => figures.accepted += 1,
        EventKind::Rejected => figures.rejected += 1,
        EventKind::Resolved => figures.resolved += 1,
        EventKind::Unresolved => figures.unresolved += 1,
        EventKind::FollowUpClosed => figures.closed += 1,
        EventKind::Reopened => figures.reopened += 1,
        EventKind::Assigned
        | EventKind::Mediation
        | EventKind::RiskChanged
        | EventKind::SupervisionOpened
        | EventKind::SupervisionClosed
        | EventKind::DeadlineExtended
        | EventKind::PlanUpdated
        | EventKind::Progress
        | EventKind::Escalated
        | EventKind::TransferredOut
        | EventKind::Relayed
        | EventKind::Received
        | EventKind::Returned
        | EventKind::SupervisionRequested
        | EventKind::SupervisionOrdered
        | EventKind::OrderNotExecuted => {}
    })?;
    let (overdue_count, overdue_cases) = store.overdue_cases(now, REPORT_LIST_MAX)?;
    figures.overdue = overdue_count;
    let overdue: Vec<CaseLine> = overdue_cases
        .iter()
        .filter(|c| c.owner_node == node)
        .map(|c| CaseLine::of(c, now))
        .collect();
    let (high_count, high_cases) = store.high_risk_cases(REPORT_LIST_MAX)?;
    figures.high_risk = high_count;
    let mut high_risk: Vec<CaseLine> = high_cases
        .iter()
        .filter(|c| c.owner_node == node)
        .map(|c| CaseLine::of(c, now))
        .collect();
    high_risk.sort_by(|a, b| b.risk.cmp(&a.risk).then_with(|| a.case_id.cmp(&b.case_id)));
    let alerts = store
        .alerts_between(period.from, period.to)?
        .iter()
        .take(REPORT_LIST_MAX)
        .map(AlertLine::from)
        .collect();
    Ok(ReportData {
        node: node.to_owned(),
        period: period.label.clone(),
        from: period.from,
        to: period.to,
        made_at: now,
        figures,
        overdue,
        high_risk,
        alerts,
    })
}

#[cfg(test)]
mod tests;
