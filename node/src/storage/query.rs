//! Listing and pagination of cases.
//!
//! A listing walks exactly one tree, chosen from the filters in this order: the status index,
//! else the risk index, else the category index, else (for an overdue listing) the deadline
//! index below `now`, else the cases tree itself in id order. So a filtered listing never scans
//! every case: it visits only the entries of the most selective index we keep, and checks every
//! filter (the one used for the index included) on the case record.
//!
//! A listing of supervised copies walks the copies tree in id order and checks every filter
//! on each copy: a node supervises few cases (those escalated to it for supervision, or
//! whose colour calls for its tier), so they have no indexes of their own.
//!
//! A page token is `<tree name>:<hex of the last key returned>`. It is opaque to callers; the
//! tree name lets us refuse a token made for another index, and the key must lie inside the
//! range of the current listing. Pages continue strictly after that key, so concurrent writes
//! never make a listing return a case twice under the same key; a case whose index key changes
//! between pages may be seen twice or not at all (the listing is not a snapshot).

use std::ops::Bound;

use super::keys::{self, TreeId, Trees};
use super::{CasePage, CaseQuery, StorageError, read_case};
use crate::domain::Case;

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 500;

pub(crate) fn page_size(requested: usize) -> usize {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// Which tree a listing walks and the key range of the listing in it.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    tree: TreeId,
    /// Bytes every key of the listing starts with (the index code), possibly empty.
    prefix: Vec<u8>,
    /// Exclusive upper bound of the range; `None` means the end of the prefix range.
    end: Option<Vec<u8>>,
}

impl Plan {
    fn for_query(q: &CaseQuery) -> Plan {
        if q.supervised {
            return Plan {
                tree: TreeId::Copies,
                prefix: Vec::new(),
                end: None,
            };
        }
        let by_code = |tree, code: u8| Plan {
            tree,
            prefix: vec![code],
            end: None,
        };
        if let Some(status) = q.status {
            by_code(TreeId::ByStatus, status.code())
        } else if let Some(risk) = q.risk {
            by_code(TreeId::ByRisk, risk.code())
        } else if let Some(category) = q.category {
            by_code(TreeId::ByCategory, category.code())
        } else if let Some(now) = q.overdue_at {
            Plan {
                tree: TreeId::ByDeadline,
                prefix: Vec::new(),
                end: Some(keys::deadline_bound(now).to_vec()),
            }
        } else {
            Plan {
                tree: TreeId::Cases,
                prefix: Vec::new(),
                end: None,
            }
        }
    }

    /// The case id inside a key of this plan's tree.
    fn case_id<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let skip = match self.tree {
            TreeId::ByStatus | TreeId::ByRisk | TreeId::ByCategory => 1,
            TreeId::ByDeadline => 8,
            _ => 0,
        };
        key.get(skip..).filter(|id| !id.is_empty())
    }

    fn token(&self, last_key: &[u8]) -> String {
        let hex: String = last_key.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:{hex}", self.tree.name())
    }

    /// The key a token continues after, if the token was made for this listing.
    fn resume_key(&self, token: &str) -> Result<Vec<u8>, StorageError> {
        let bad = |why: &str| StorageError::BadPageToken(why.to_owned());
        let (name, hex) = token.split_once(':').ok_or_else(|| bad("malformed"))?;
        if name != self.tree.name() {
            return Err(bad("made for another listing"));
        }
        let key = decode_hex(hex).ok_or_else(|| bad("malformed"))?;
        let in_range = key.starts_with(&self.prefix)
            && self.case_id(&key).is_some()
            && self.end.as_ref().is_none_or(|end| key < *end);
        if !in_range {
            return Err(bad("made for another listing"));
        }
        Ok(key)
    }

    fn upper_bound(&self) -> Bound<Vec<u8>> {
        if let Some(end) = &self.end {
            return Bound::Excluded(end.clone());
        }
        // The smallest key above every key starting with the prefix.
        let mut next = self.prefix.clone();
        while let Some(last) = next.pop() {
            if last < u8::MAX {
                next.push(last + 1);
                return Bound::Excluded(next);
            }
        }
        Bound::Unbounded
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn matches(q: &CaseQuery, case: &Case) -> bool {
    q.status.is_none_or(|s| case.status == s)
        && q.risk.is_none_or(|r| case.risk == r)
        && q.category.is_none_or(|c| case.category == c)
        && q.overdue_at.is_none_or(|now| case.is_overdue(now))
}

pub(crate) fn list(trees: &Trees, q: &CaseQuery) -> Result<CasePage, StorageError> {
    let plan = Plan::for_query(q);
    let limit = page_size(q.page_size);
    let start = match &q.page_token {
        Some(token) => Bound::Excluded(plan.resume_key(token)?),
        None => Bound::Included(plan.prefix.clone()),
    };
    let mut entries = trees
        .get(plan.tree)
        .range::<Vec<u8>, _>((start, plan.upper_bound()));
    let mut page = CasePage::default();
    let mut last_key = None;
    while page.cases.len() < limit {
        let Some(entry) = entries.next() else {
            return Ok(page);
        };
        let (key, value) = entry?;
        let case = if plan.tree == TreeId::Cases {
            super::codec::decode_case(TreeId::Cases, &key, &value)?
        } else if plan.tree == TreeId::Copies {
            let copy: crate::federation::message::CaseCopy = super::codec::decode(
                super::codec::ValueKind::CaseCopy,
                TreeId::Copies,
                &key,
                &value,
            )?;
            copy.case
        } else {
            let corrupt = |reason: &str| StorageError::Corrupt {
                tree: plan.tree.name(),
                key: keys::display(&key),
                reason: reason.to_owned(),
            };
            let id = plan
                .case_id(&key)
                .ok_or_else(|| corrupt("index key without a case id"))?;
            read_case(trees, id)?.ok_or_else(|| corrupt("index entry points to a missing case"))?
        };
        if matches(q, &case) {
            page.cases.push(case);
        }
        last_key = Some(key);
    }
    if entries.next().is_some() {
        page.next_page_token = last_key.map(|key| plan.token(&key));
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CaseStatus, Category, RiskLevel, Timestamp};

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(page_size(0), 50);
        assert_eq!(page_size(1), 1);
        assert_eq!(page_size(500), 500);
        assert_eq!(page_size(501), 500);
        assert_eq!(page_size(usize::MAX), 500);
    }

    #[test]
    fn index_is_chosen_by_priority() {
        let q = |status, risk, category, overdue_at| CaseQuery {
            status,
            risk,
            category,
            overdue_at,
            ..Default::default()
        };
        let now = Some(Timestamp(1000));
        let all = q(
            Some(CaseStatus::Accepted),
            Some(RiskLevel::Red),
            Some(Category::Labor),
            now,
        );
        assert_eq!(Plan::for_query(&all).tree, TreeId::ByStatus);
        assert_eq!(
            Plan::for_query(&all).prefix,
            vec![CaseStatus::Accepted.code()]
        );
        assert_eq!(
            Plan::for_query(&q(None, Some(RiskLevel::Red), Some(Category::Labor), now)).tree,
            TreeId::ByRisk
        );
        assert_eq!(
            Plan::for_query(&q(None, None, Some(Category::Labor), now)).tree,
            TreeId::ByCategory
        );
        let overdue = Plan::for_query(&q(None, None, None, now));
        assert_eq!(overdue.tree, TreeId::ByDeadline);
        assert_eq!(
            overdue.upper_bound(),
            Bound::Excluded(keys::deadline_bound(Timestamp(1000)).to_vec())
        );
        assert_eq!(
            Plan::for_query(&q(None, None, None, None)).tree,
            TreeId::Cases
        );
        assert_eq!(
            Plan::for_query(&q(None, None, None, None)).upper_bound(),
            Bound::Unbounded
        );
        let copies = CaseQuery {
            supervised: true,
            ..q(Some(CaseStatus::Accepted), None, None, now)
        };
        assert_eq!(Plan::for_query(&copies).tree, TreeId::Copies);
    }

    #[test]
    fn tokens_round_trip_and_are_checked() {
        let plan = Plan {
            tree: TreeId::ByRisk,
            prefix: vec![4],
            end: None,
        };
        let key = keys::code_index(4, "610116-20250131-000001");
        assert_eq!(plan.resume_key(&plan.token(&key)).unwrap(), key);
        assert_eq!(plan.upper_bound(), Bound::Excluded(vec![5]));

        let bad =
            |token: &str| matches!(plan.resume_key(token), Err(StorageError::BadPageToken(_)));
        assert!(bad(""));
        assert!(bad("risk_caseid"));
        assert!(bad("risk_caseid:0"));
        assert!(bad("risk_caseid:zz"));
        assert!(bad("risk_caseid:04"), "no case id after the code");
        assert!(
            bad(&plan.token(&keys::code_index(3, "x"))),
            "another risk level"
        );
        let other = Plan {
            tree: TreeId::ByStatus,
            prefix: vec![4],
            end: None,
        };
        assert!(bad(&other.token(&key)), "another index");

        let overdue = Plan {
            tree: TreeId::ByDeadline,
            prefix: vec![],
            end: Some(keys::deadline_bound(Timestamp(10)).to_vec()),
        };
        assert!(
            overdue
                .resume_key(&overdue.token(&keys::deadline(Timestamp(9), "x")))
                .is_ok()
        );
        assert!(matches!(
            overdue.resume_key(&overdue.token(&keys::deadline(Timestamp(10), "x"))),
            Err(StorageError::BadPageToken(_))
        ));
    }
}
