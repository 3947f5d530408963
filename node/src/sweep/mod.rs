//! The sweep: the node applying its time-driven rules to itself.
//!
//! [`run_once`] does, at the time it is given:
//!
//! 1. **Deadlines.** It walks the deadline index below `now` (so only overdue cases are
//!    visited). Each overdue deadline raises one `overdue` alert. A deadline overdue by more
//!    than `deadlines.escalate_overdue_after` puts the case under the parent's supervision
//!    through the state machine ([`Command::SuperviseOverdue`]), with its event and a
//!    `supervision` alert in the same transaction.
//! 2. **Early warnings, catching up.** The repeat-person and group-dispute rules run right
//!    after each registration ([`early::after_register`]); a crash between the registration's
//!    commit and that evaluation must not lose a warning, so the sweep also evaluates every
//!    case this node registered since a stored cursor (`early_warning`) and then moves the
//!    cursor. On a store without a cursor it starts from the newest case, so an upgrade does
//!    not flood the node with warnings about its past.
//! 3. **Reports.** With `[reports] cadence` set, it writes the last complete period's report
//!    if it is not there yet (`crate::report::schedule`).
//!
//! Everything is idempotent: alerts are keyed by their condition, supervision is recorded per
//! cause, the early-warning risk raise is gated by its alert, reports by their file. Running
//! the sweep twice at the same time, or after a restart, changes nothing more. The node runs it
//! once when it starts (before serving, so a restart is enough to apply the rules at a new
//! `clock_offset`) and then every `rules.sweep_every`; tests call it directly with a
//! [`crate::clock::ManualClock`] time.

pub mod early;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::alert::{self, Alert};
use crate::domain::{Command, Ctx, SupervisionCause, Timestamp, machine, rules};
use crate::report::schedule::{self, ScheduleError};
use crate::service::NodeState;
use crate::storage::{CaseQuery, StorageError, WriteError};

/// Cases read per page of the deadline index.
const PAGE: usize = 500;
/// Name of the early-warning catch-up cursor.
pub const EARLY_WARNING_CURSOR: &str = "early_warning";

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// New `overdue` alerts.
    pub overdue_alerts: usize,
    /// Cases put under the parent's supervision for being overdue.
    pub supervised: Vec<String>,
    /// New alerts raised by the early-warning catch-up.
    pub early_warnings: usize,
    /// The scheduled report written, if any.
    pub report: Option<PathBuf>,
    /// Delivered messages deleted (kept no longer than `federation.keep_delivered`).
    pub trimmed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Report(#[from] ScheduleError),
    #[error("report task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// One sweep at `now` (see the module doc).
pub async fn run_once(state: &Arc<NodeState>, now: Timestamp) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    deadlines(state, now, &mut report).await?;
    // Records a read found damaged (and skipped): one alert each, once.
    let damaged: Vec<_> = state
        .store
        .damaged_records()
        .iter()
        .map(|(record, why)| alert::damaged(record, why, state.code.as_str(), now))
        .collect();
    if !damaged.is_empty() {
        state.store.raise_alerts(damaged).await?;
    }
    report.early_warnings = early::catch_up(state, now).await?;
    let keep = state.federation.config.keep_delivered;
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    report.trimmed = state
        .store
        .trim_delivered(Timestamp(now.millis().saturating_sub(keep_ms)))
        .await?;
    if let Some(cadence) = state.report_cadence {
        let st = state.clone();
        report.report = tokio::task::spawn_blocking(move || {
            schedule::write_due(&st.store, st.code.as_str(), cadence, &st.reports_dir, now)
        })
        .await??;
    }
    Ok(report)
}

async fn deadlines(
    state: &Arc<NodeState>,
    now: Timestamp,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let node = state.code.as_str();
    let mut query = CaseQuery {
        overdue_at: Some(now),
        page_size: PAGE,
        ..Default::default()
    };
    let mut alerts: Vec<Alert> = Vec::new();
    let mut to_supervise = Vec::new();
    loop {
        let page = state.store.list_cases(&query)?;
        // Only cases this node owns: a copy kept here for supervision is its owner's to watch.
        for case in page.cases.iter().filter(|c| c.owner_node == node) {
            if let Some(a) = alert::overdue(case, node, now) {
                if !state.store.has_alert(&a.key)? {
                    alerts.push(a);
                }
            }
            if needs_overdue_supervision(state, case, now) {
                to_supervise.push(case.id.clone());
            }
        }
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => break,
        }
    }
    report.overdue_alerts = state.store.raise_alerts(alerts).await?;
    let Some(after) = state.deadlines.escalate_overdue_after else {
        return Ok(());
    };
    for id in to_supervise {
        let node = node.to_owned();
        let actor = state.rule_actor();
        let deadlines = state.deadlines.clone();
        let result = state
            .store
            .update_raising(id.clone(), move |case| {
                let ctx = Ctx {
                    now,
                    node: &node,
                    actor: &actor,
                    deadlines: &deadlines,
                };
                let (next, events) =
                    machine::apply(case, &ctx, &Command::SuperviseOverdue { after })?;
                let alerts = alert::of_change(Some(case), &next, &events, now);
                Ok((next, events, alerts))
            })
            .await;
        match result {
            Ok(_) => {
                tracing::info!(case_id = %id, "overdue: parent supervision opened");
                report.supervised.push(id);
            }
            // The case changed since it was read (resolved, extended): nothing to do.
            Err(WriteError::Domain(e)) => tracing::debug!(case_id = %id, "overdue rule: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether the overdue rule would open supervision on `case` now.
fn needs_overdue_supervision(
    state: &NodeState,
    case: &crate::domain::Case,
    now: Timestamp,
) -> bool {
    let (Some(after), Some(due)) = (state.deadlines.escalate_overdue_after, case.open_deadline())
    else {
        return false;
    };
    let Some(parent) = rules::parent_of(&case.owner_node) else {
        return false;
    };
    let recorded = case
        .rule_supervision
        .iter()
        .any(|r| r.node == parent && r.cause == SupervisionCause::Overdue);
    let externally = case.supervising_nodes.contains(&parent)
        && !case.rule_supervision.iter().any(|r| r.node == parent);
    case.owner_node == state.code.as_str() && now > due.plus(after) && !recorded && !externally
}

/// Runs the sweep every `sweep_every` until `shutdown` turns true. Failures are logged; the
/// next sweep tries again.
pub fn spawn(state: Arc<NodeState>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(state.sweep_every) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
            let now = state.clock.now();
            match run_once(&state, now).await {
                Ok(r) if r != SweepReport::default() => tracing::info!(?r, "sweep"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweep failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests;
