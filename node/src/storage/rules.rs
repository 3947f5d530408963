//! The store's API for the rules: alerts, the early-warning indexes, scans for reports and
//! catch-up cursors.
//!
//! Reads go straight to sled like every read (see the module doc of `storage`); writes
//! (alerts, cursors) go through the writer thread and are durable when they return. Raising an
//! alert whose key is stored already does nothing, so callers may raise the same condition as
//! often as they evaluate it.

use std::ops::Bound;

use super::codec::{self, ValueKind};
use super::keys::{self, TreeId};
use super::{StorageError, Store, WriteError, change};
use crate::domain::alert::Alert;
use crate::domain::{Case, PartyRole, Timestamp};

/// The cases of one person (an ID number of a party of the case asked about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonMatch {
    /// The ID number as written on the case asked about (personal data: mask before showing).
    pub id_number: String,
    /// Ids of the newest (at most the limit asked) cases of that person registered in the
    /// time range asked, oldest first.
    pub case_ids: Vec<String>,
}

/// The open cases against one respondent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespondentMatch {
    /// The name as written on the case asked about.
    pub name: String,
    /// Ids of the last (at most the limit asked) open cases naming that respondent, in id
    /// order.
    pub case_ids: Vec<String>,
}

impl Store {
    /// Stores the alerts not stored yet; returns how many were new.
    pub async fn raise_alerts(&self, alerts: Vec<Alert>) -> Result<usize, WriteError> {
        if alerts.is_empty() {
            return Ok(0);
        }
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| change::raise(trees, &secret, &alerts))
            .await
    }

    /// Whether an alert of this key is stored.
    pub fn has_alert(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.tree(TreeId::Alerts).contains_key(key)?)
    }

    fn alert_at(&self, time_key: &[u8]) -> Result<Alert, StorageError> {
        let corrupt = |reason: &str| StorageError::Corrupt {
            tree: TreeId::AlertsByTime.name(),
            key: keys::display(time_key),
            reason: reason.to_owned(),
        };
        let key = time_key
            .get(8..)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| corrupt("index key without an alert key"))?;
        let bytes = self
            .tree(TreeId::Alerts)
            .get(key)?
            .ok_or_else(|| corrupt("index entry points to a missing alert"))?;
        codec::decode(ValueKind::Alert, TreeId::Alerts, key, &bytes)
    }

    /// The newest `limit` alerts, newest first.
    pub fn alerts_newest(&self, limit: usize) -> Result<Vec<Alert>, StorageError> {
        let mut out = Vec::new();
        for entry in self.tree(TreeId::AlertsByTime).iter().rev().take(limit) {
            let (key, _) = entry?;
            out.push(self.alert_at(&key)?);
        }
        Ok(out)
    }

    /// The alerts raised in `[from, to)`, oldest first.
    pub fn alerts_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Alert>, StorageError> {
        let range = (
            Bound::Included(keys::deadline_bound(from).to_vec()),
            Bound::Excluded(keys::deadline_bound(to).to_vec()),
        );
        let mut out = Vec::new();
        for entry in self.tree(TreeId::AlertsByTime).range::<Vec<u8>, _>(range) {
            let (key, _) = entry?;
            out.push(self.alert_at(&key)?);
        }
        Ok(out)
    }

    /// For each distinct ID number among `case`'s parties, the newest `limit` cases of that
    /// person registered in `[since, until]` (the case itself included once it is stored, if
    /// in range). The limit bounds the work for a person with very many cases.
    pub fn person_matches(
        &self,
        case: &Case,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<PersonMatch>, StorageError> {
        let mut out: Vec<PersonMatch> = Vec::new();
        for p in case
            .parties
            .iter()
            .filter(|p| !p.id_number.trim().is_empty())
        {
            let hash = self.inner.secret.person(&p.id_number);
            let prefix = keys::person_prefix(&hash);
            if out
                .iter()
                .any(|m| self.inner.secret.person(&m.id_number) == hash)
            {
                continue;
            }
            let start = keys::person(&hash, since, "");
            let end = keys::person(&hash, Timestamp(until.0.saturating_add(1)), "");
            let mut case_ids: Vec<String> = Vec::new();
            for entry in self.tree(TreeId::ByPerson).range(start..end).rev() {
                let (key, _) = entry?;
                if !key.starts_with(&prefix) || case_ids.len() >= limit {
                    break;
                }
                let id = keys::person_case_id(&key).ok_or_else(|| StorageError::Corrupt {
                    tree: TreeId::ByPerson.name(),
                    key: keys::display(&key),
                    reason: "index key without a case id".into(),
                })?;
                let id = String::from_utf8_lossy(id).into_owned();
                if !case_ids.contains(&id) {
                    case_ids.push(id);
                }
            }
            case_ids.reverse();
            out.push(PersonMatch {
                id_number: p.id_number.clone(),
                case_ids,
            });
        }
        Ok(out)
    }

    /// For each distinct respondent of `case`, the last `limit` open cases naming that
    /// respondent.
    pub fn respondent_matches(
        &self,
        case: &Case,
        limit: usize,
    ) -> Result<Vec<RespondentMatch>, StorageError> {
        let mut out: Vec<RespondentMatch> = Vec::new();
        let respondents = case
            .parties
            .iter()
            .filter(|p| p.role == PartyRole::Respondent);
        for p in respondents.filter(|p| !p.name.trim().is_empty()) {
            let hash = self.inner.secret.respondent(&p.name);
            if out
                .iter()
                .any(|m| self.inner.secret.respondent(&m.name) == hash)
            {
                continue;
            }
            let mut case_ids = Vec::new();
            for entry in self
                .tree(TreeId::ByRespondent)
                .scan_prefix(hash)
                .rev()
                .take(limit)
            {
                let (key, _) = entry?;
                let id = key.get(hash.len()..).unwrap_or_default();
                case_ids.push(String::from_utf8_lossy(id).into_owned());
            }
            case_ids.reverse();
            out.push(RespondentMatch {
                name: p.name.clone(),
                case_ids,
            });
        }
        Ok(out)
    }

    /// Calls `f` with every stored case, in id order; stops at the first error.
    pub fn visit_cases<E>(&self, mut f: impl FnMut(Case) -> Result<(), E>) -> Result<(), E>
    where
        E: From<StorageError>,
    {
        for entry in self.tree(TreeId::Cases).iter() {
            let (key, bytes) = entry.map_err(StorageError::from)?;
            f(codec::decode_case(TreeId::Cases, &key, &bytes)?)?;
        }
        Ok(())
    }

    /// The greatest case id starting with `prefix`, if any.
    pub fn last_case_id(&self, prefix: &str) -> Result<Option<String>, StorageError> {
        match self.tree(TreeId::Cases).scan_prefix(prefix).next_back() {
            Some(entry) => Ok(Some(String::from_utf8_lossy(&entry?.0).into_owned())),
            None => Ok(None),
        }
    }

    /// Up to `limit` cases whose id starts with `prefix` and sorts after `after`, in id order.
    pub fn cases_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Case>, StorageError> {
        let start = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Included(prefix.as_bytes().to_vec()),
        };
        let mut out = Vec::new();
        for entry in self
            .tree(TreeId::Cases)
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
        {
            let (key, bytes) = entry?;
            if !key.starts_with(prefix.as_bytes()) || out.len() >= limit {
                break;
            }
            out.push(codec::decode_case(TreeId::Cases, &key, &bytes)?);
        }
        Ok(out)
    }

    /// The value of a named cursor, if set.
    pub fn cursor(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = keys::cursor(name);
        self.tree(TreeId::Meta)
            .get(&key)?
            .map(|bytes| codec::decode(ValueKind::Bytes, TreeId::Meta, &key, &bytes))
            .transpose()
    }

    /// Sets a named cursor (durably).
    pub async fn set_cursor(&self, name: &str, value: Vec<u8>) -> Result<(), WriteError> {
        let secret = self.inner.secret.clone();
        let name = name.to_owned();
        self.inner
            .writer
            .submit(move |trees| change::set_cursor(trees, &secret, &name, &value))
            .await
    }
}

/// What a report reads from the indexes, never from every case (a report at a node of a
/// million cases reads the events of its period and the cases it lists).
impl Store {
    /// Calls `f(kind, amount)` for every event this node wrote in `[from, to)` (the amount of
    /// a registration, 0 for other events), from the activity index.
    pub fn activity_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        mut f: impl FnMut(crate::domain::EventKind, i64),
    ) -> Result<(), StorageError> {
        let range = (
            Bound::Included(keys::deadline_bound(from).to_vec()),
            Bound::Excluded(keys::deadline_bound(to).to_vec()),
        );
        for entry in self.tree(TreeId::ByActivity).range::<Vec<u8>, _>(range) {
            let (key, bytes) = entry?;
            let kind = keys::activity_kind(&key)
                .and_then(crate::domain::EventKind::from_code)
                .ok_or_else(|| StorageError::Corrupt {
                    tree: TreeId::ByActivity.name(),
                    key: keys::display(&key),
                    reason: "no event kind".into(),
                })?;
            let amount: i64 = codec::decode(ValueKind::Activity, TreeId::ByActivity, &key, &bytes)?;
            f(kind, amount);
        }
        Ok(())
    }

    /// The open cases here (unreviewed, accepted, in mediation): the node's own current
    /// statistics entry, kept in the transaction of every case change (one read).
    pub fn count_open(&self) -> Result<u64, StorageError> {
        let node = self.inner.trees.node().clone();
        Ok(self
            .stats_entry(
                crate::stats::Kind::Own,
                &node,
                crate::stats::figures::CURRENT,
                &[],
            )?
            .map_or(0, |e| e.cells.total.open))
    }

    /// The cases whose running deadline passed before `now`: how many, and the `limit` that
    /// are due earliest.
    pub fn overdue_cases(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<(u64, Vec<Case>), StorageError> {
        let mut count = 0u64;
        let mut cases = Vec::new();
        let range = ..keys::deadline_bound(now).to_vec();
        for entry in self.tree(TreeId::ByDeadline).range(range) {
            let (key, _) = entry?;
            count += 1;
            if cases.len() < limit
                && let Some(case) = self.read_case(key.get(8..).unwrap_or_default())?
            {
                cases.push(case);
            }
        }
        Ok((count, cases))
    }

    /// The red and orange cases here that are not final (rejected, closed, moved away): how
    /// many, and up to `limit` (red first).
    pub fn high_risk_cases(&self, limit: usize) -> Result<(u64, Vec<Case>), StorageError> {
        use crate::domain::{CaseStatus, RiskLevel};
        let mut count = 0u64;
        let mut cases = Vec::new();
        for risk in [RiskLevel::Red, RiskLevel::Orange] {
            for status in CaseStatus::ALL.iter().filter(|s| !s.is_final()) {
                for entry in self
                    .tree(TreeId::ByFacets)
                    .scan_prefix([status.code(), risk.code()])
                {
                    let (key, _) = entry?;
                    count += 1;
                    if cases.len() < limit
                        && let Some(case) =
                            self.read_case(key.get(keys::FACETS_LEN..).unwrap_or_default())?
                    {
                        cases.push(case);
                    }
                }
            }
        }
        Ok((count, cases))
    }
}
