//! Early warnings (预警) evaluated when a case is registered, and caught up by the sweep.
//!
//! * **Repeat person** (Zhuanghe: repeated petitions growing into a safety risk): if one of the
//!   case's parties, by ID number, is in `policy.repeat_person_cases` or more cases of this
//!   node registered within `policy.repeat_person_window` up to this case, a `repeat_person`
//!   alert is raised (for this node and its parent) and this case's risk goes up one colour
//!   through the state machine ([`Command::RaiseRisk`]), which applies the colour rule. Alert
//!   and risk change are one transaction gated by the alert's key: applied once per case.
//! * **Group dispute** (wage arrears by one employer): if the case's respondent, by normalised
//!   name, is named in `policy.respondent_open_cases` or more open cases, a `group_dispute`
//!   alert is raised, keyed by the case that reached the count.
//! * **Supervision at registration**: a colour that opened supervision when the case was
//!   registered raises its `supervision` alert here (registration writes one event and no
//!   alert).
//!
//! Counting here is local: the indexes hold this node's cases only. The count over a subtree
//! runs at the ancestors, on sightings reported up the tree under the federation's person key
//! (see `federation::subtree` and `storage::secret`).

use std::sync::Arc;

use crate::domain::alert::{self, Alert};
use crate::domain::{Case, Command, Ctx, Timestamp, machine, mask};
use crate::service::NodeState;
use crate::storage::{StorageError, WriteError};

use super::{EARLY_WARNING_CURSOR, SweepError};

/// Cases evaluated per batch of the catch-up.
const BATCH: usize = 200;
/// Most cases of one person or respondent read for one evaluation (an alert lists at most
/// these, the newest); bounds the work for a party with very many cases.
const MATCH_LIMIT: usize = 100;

/// Evaluates the early warnings of a freshly registered (or caught-up) case. Returns the
/// number of new alerts.
pub async fn after_register(
    state: &Arc<NodeState>,
    case: &Case,
    now: Timestamp,
) -> Result<usize, SweepError> {
    let mut new = 0;
    if case.history_len == 1 {
        let alerts = alert::of_change(None, case, &[], case.created_at);
        new += state.store.raise_alerts(alerts).await?;
    }
    new += repeat_person(state, case, now).await?;
    new += subtree_repeat_person(state, case, now).await?;
    new += group_dispute(state, case, now).await?;
    Ok(new)
}

/// The repeat-person count over this node's subtree, for a case registered here (see
/// `federation::subtree::check_own`): only at a node with children, and with the federation's
/// person key. An alert it completes orders the holder of the newest case to raise its risk;
/// when that case is held here, it is raised here, through the same command and gate.
async fn subtree_repeat_person(
    state: &Arc<NodeState>,
    case: &Case,
    now: Timestamp,
) -> Result<usize, SweepError> {
    if state.policy.repeat_person_cases == 0 || state.code.tier() == crate::code::Tier::Village {
        return Ok(0);
    }
    let fed = state.federation.clone();
    let children = fed.known_children();
    let new = state
        .store
        .check_own_sightings(case.id.clone(), move |s, held| {
            crate::protocol::subtree::check_own(&fed.node(now, &children), s, held)
        })
        .await?;
    let count = new.len();
    for (raised, newest) in new {
        tracing::info!(case_id = %newest.case_id, "early warning: repeat person over the subtree");
        if newest.node != state.code {
            continue;
        }
        let me = state.code.to_string();
        let reason = raised.message.clone();
        let written = raise_once(
            state,
            &newest.case_id,
            reason.clone(),
            now,
            move |before, to| alert::repeat_person_ordered(before, &me, &reason, to, now),
        )
        .await;
        match written {
            Ok(_) => {}
            // Closed meanwhile: the alert stands, the colour no longer matters.
            Err(WriteError::Domain(e)) => {
                tracing::debug!(case_id = %newest.case_id, "subtree repeat-person rule: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(count)
}

async fn repeat_person(
    state: &Arc<NodeState>,
    case: &Case,
    now: Timestamp,
) -> Result<usize, SweepError> {
    let policy = &state.policy;
    let threshold = policy.repeat_person_cases as usize;
    if threshold == 0 {
        return Ok(0);
    }
    if state.store.has_alert(&alert::repeat_person_key(&case.id))? {
        return Ok(0);
    }
    let window = i64::try_from(policy.repeat_person_window.as_millis()).unwrap_or(i64::MAX);
    let since = Timestamp(case.created_at.0.saturating_sub(window));
    let limit = MATCH_LIMIT.max(threshold);
    let matches = state
        .store
        .person_matches(case, since, case.created_at, limit)?;
    let Some(m) = matches
        .into_iter()
        .find(|m| m.case_ids.len() >= threshold && m.case_ids.contains(&case.id))
    else {
        return Ok(0);
    };
    let masked = mask::mask_id_number(&m.id_number);
    if case.status.is_final() {
        let a = alert::repeat_person(case, &masked, &m.case_ids, policy, case.risk, now);
        return Ok(state.store.raise_alerts(vec![a]).await?);
    }
    let policy = policy.clone();
    let reason = format!(
        "同一当事人（身份证号{masked}）{}内第{}件案件",
        crate::domain::rules::duration_zh(policy.repeat_person_window),
        m.case_ids.len()
    );
    let ids = m.case_ids;
    let written = raise_once(state, &case.id, reason, now, move |before, to| {
        alert::repeat_person(before, &masked, &ids, &policy, to, now)
    })
    .await;
    match written {
        Ok(Some(after)) => {
            tracing::info!(case_id = %after.id, risk = ?after.risk, "early warning: repeat person");
            Ok(1)
        }
        Ok(None) => Ok(0),
        // The case was closed meanwhile: the next catch-up raises the alert alone.
        Err(WriteError::Domain(e)) => {
            tracing::debug!(case_id = %case.id, "repeat-person rule: {e}");
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

/// Raises the risk of `case_id` one colour for a repeat person, with `reason`, and stores the
/// alert `alert_of(case before, risk after)` under the case's repeat-person key, which gates
/// it: applied once per case, whichever rule (this node's, or the count over its subtree) comes
/// first. `Ok(None)` when the gate was held.
async fn raise_once(
    state: &Arc<NodeState>,
    case_id: &str,
    reason: String,
    now: Timestamp,
    alert_of: impl Fn(&Case, crate::domain::RiskLevel) -> Alert + Send + 'static,
) -> Result<Option<Case>, WriteError> {
    let node = state.code.as_str().to_owned();
    let actor = state.rule_actor();
    let deadlines = state.deadlines.clone();
    let gate = alert::repeat_person_key(case_id);
    state
        .store
        .apply_once(case_id.to_owned(), gate, move |before| {
            let ctx = Ctx {
                now,
                node: &node,
                actor: &actor,
                deadlines: &deadlines,
            };
            let cmd = Command::RaiseRisk {
                reason: reason.clone(),
            };
            let (next, events) = machine::apply(before, &ctx, &cmd)?;
            let mut alerts = vec![alert_of(before, next.risk)];
            alerts.extend(alert::of_change(Some(before), &next, &events, now));
            Ok((next, events, alerts))
        })
        .await
}

async fn group_dispute(
    state: &Arc<NodeState>,
    case: &Case,
    now: Timestamp,
) -> Result<usize, SweepError> {
    let threshold = state.policy.respondent_open_cases as usize;
    if threshold == 0 || !case.status.is_open() {
        return Ok(0);
    }
    let alerts: Vec<Alert> = state
        .store
        .respondent_matches(case, MATCH_LIMIT.max(threshold))?
        .into_iter()
        .filter(|m| m.case_ids.len() >= threshold)
        .map(|m| alert::group_dispute(case, &mask::display_respondent(&m.name), &m.case_ids, now))
        .take(1)
        .collect();
    Ok(state.store.raise_alerts(alerts).await?)
}

/// Evaluates every case this node registered since the cursor, then moves the cursor.
pub(super) async fn catch_up(state: &Arc<NodeState>, now: Timestamp) -> Result<usize, SweepError> {
    let prefix = format!("{}-", state.code);
    let cursor = match state.store.cursor(EARLY_WARNING_CURSOR)? {
        Some(bytes) => String::from_utf8(bytes).map_err(|_| StorageError::Corrupt {
            tree: "meta",
            key: format!("cursor/{EARLY_WARNING_CURSOR}"),
            reason: "not UTF-8".into(),
        })?,
        None => {
            // First sweep of this store: start from now, not from the past.
            let start = state.store.last_case_id(&prefix)?.unwrap_or_default();
            state
                .store
                .set_cursor(EARLY_WARNING_CURSOR, start.clone().into_bytes())
                .await?;
            start
        }
    };
    let mut after = (!cursor.is_empty()).then_some(cursor);
    let mut new = 0;
    loop {
        let batch = state.store.cases_after(&prefix, after.as_deref(), BATCH)?;
        let Some(last) = batch.last().map(|c| c.id.clone()) else {
            return Ok(new);
        };
        for case in &batch {
            new += after_register(state, case, now).await?;
        }
        state
            .store
            .set_cursor(EARLY_WARNING_CURSOR, last.clone().into_bytes())
            .await?;
        if batch.len() < BATCH {
            return Ok(new);
        }
        after = Some(last);
    }
}
