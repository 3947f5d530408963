//! Listing and pagination of cases.
//!
//! A listing walks exactly one tree, chosen from the filters: the facets index (status ‖ risk
//! ‖ category ‖ case id) when status, risk or category is filtered, else (for an overdue
//! listing) the deadline index below `now`, else the cases tree itself in id order. So a
//! filtered listing never scans every case: it visits only the index entries that match the
//! status, risk and category filters, and checks every filter on the case record.
//!
//! In the facets index a listing is a few key ranges, walked in key order: one for a status
//! (with its risk and category, when given), one per status for a risk, one per status and
//! risk for a category alone. So a listing by status comes grouped by risk, then category, then
//! in id order; an overdue listing comes in deadline order; an unfiltered one in id order.
//!
//! Newest first (`CaseQuery::newest_first`, what the console shows), a listing walks every
//! full-depth range of the facets index (status ‖ risk ‖ category: within one, keys are in case
//! id order) backwards and merges them by case id, descending; without facet filters it walks
//! the cases (or copies) tree backwards. Its page token is the last case id returned, and the
//! next page continues strictly below it in every range. An overdue listing stays in deadline
//! order.
//!
//! A listing of supervised copies walks the copies tree in id order and checks every filter
//! on each copy: a node supervises few cases (those escalated to it for supervision, or
//! whose colour calls for its tier), so they have no indexes of their own.
//!
//! A page token is `<tree name>/<filters>:<hex of the last key returned>`. It is opaque to
//! callers; the tree name and filters let us refuse a token made for another listing, and the
//! key must lie inside one of the current listing's ranges. Pages continue strictly after that
//! key, so concurrent writes never make a listing return a case twice under the same key; a
//! case whose index key changes between pages may be seen twice or not at all (the listing is
//! not a snapshot).

use std::ops::Bound;

use super::keys::{self, TreeId};
use super::trees::Trees;
use super::{CasePage, CaseQuery, StorageError, read_case};
use crate::domain::{Case, CaseStatus, Category, RiskLevel};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 500;

pub(crate) fn page_size(requested: usize) -> usize {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// Which tree a listing walks and the key ranges of the listing in it.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    tree: TreeId,
    /// The ranges, in key order: the keys starting with each prefix (possibly empty).
    prefixes: Vec<Vec<u8>>,
    /// Exclusive upper bound of the (single) range; `None` means the end of each prefix range.
    end: Option<Vec<u8>>,
    /// What distinguishes this listing from others on the same tree, in its page tokens.
    filters: String,
}

impl Plan {
    fn for_query(q: &CaseQuery) -> Plan {
        let whole = |tree| Plan {
            tree,
            prefixes: vec![Vec::new()],
            end: None,
            filters: String::new(),
        };
        if q.supervised {
            return whole(TreeId::Copies);
        }
        if q.status.is_some() || q.risk.is_some() || q.category.is_some() {
            return Plan::facets(q.status, q.risk, q.category);
        }
        if let Some(now) = q.overdue_at {
            return Plan {
                end: Some(keys::deadline_bound(now).to_vec()),
                ..whole(TreeId::ByDeadline)
            };
        }
        whole(TreeId::Cases)
    }

    /// The ranges of the facets index that hold the cases with these codes: the codes given,
    /// and every code of a facet not given that comes before one given.
    fn facets(
        status: Option<CaseStatus>,
        risk: Option<RiskLevel>,
        category: Option<Category>,
    ) -> Plan {
        let depth = if category.is_some() {
            3
        } else if risk.is_some() {
            2
        } else {
            1
        };
        let prefixes = facet_prefixes(status, risk, category, depth);
        let code = |c: Option<u8>| c.map_or_else(|| "-".to_owned(), |c| c.to_string());
        Plan {
            tree: TreeId::ByFacets,
            prefixes,
            end: None,
            filters: format!(
                "{}.{}.{}",
                code(status.map(|s| s.code())),
                code(risk.map(|r| r.code())),
                code(category.map(|c| c.code()))
            ),
        }
    }

    /// The case id inside a key of this plan's tree.
    fn case_id<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let skip = match self.tree {
            TreeId::ByFacets => keys::FACETS_LEN,
            TreeId::ByDeadline => 8,
            _ => 0,
        };
        key.get(skip..).filter(|id| !id.is_empty())
    }

    fn name(&self) -> String {
        format!("{}/{}", self.tree.name(), self.filters)
    }

    fn token(&self, last_key: &[u8]) -> String {
        let hex: String = last_key.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:{hex}", self.name())
    }

    /// The key a token continues after, if the token was made for this listing.
    fn resume_key(&self, token: &str) -> Result<Vec<u8>, StorageError> {
        let bad = |why: &str| StorageError::BadPageToken(why.to_owned());
        let (name, hex) = token.rsplit_once(':').ok_or_else(|| bad("malformed"))?;
        if name != self.name() {
            return Err(bad("made for another listing"));
        }
        let key = decode_hex(hex).ok_or_else(|| bad("malformed"))?;
        let in_range = self.prefixes.iter().any(|p| key.starts_with(p))
            && self.case_id(&key).is_some()
            && self.end.as_ref().is_none_or(|end| key < *end);
        if !in_range {
            return Err(bad("made for another listing"));
        }
        Ok(key)
    }

    /// The end of the range of keys starting with `prefix`.
    fn upper_bound(&self, prefix: &[u8]) -> Bound<Vec<u8>> {
        if let Some(end) = &self.end {
            return Bound::Excluded(end.clone());
        }
        match keys::prefix_end(prefix) {
            Some(next) => Bound::Excluded(next),
            None => Bound::Unbounded,
        }
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

/// The facets-index prefixes of `depth` facets (status, then risk, then category) that hold
/// the cases with these codes: the codes given, every code of a facet not given. `ALL` is in
/// discriminant order, which is code order: the prefixes come out in key order.
fn facet_prefixes(
    status: Option<CaseStatus>,
    risk: Option<RiskLevel>,
    category: Option<Category>,
    depth: usize,
) -> Vec<Vec<u8>> {
    let facets: [Vec<u8>; 3] = [
        status.map_or_else(
            || CaseStatus::ALL.iter().map(|s| s.code()).collect(),
            |s| vec![s.code()],
        ),
        risk.map_or_else(
            || RiskLevel::ALL.iter().map(|r| r.code()).collect(),
            |r| vec![r.code()],
        ),
        category.map_or_else(
            || Category::ALL.iter().map(|c| c.code()).collect(),
            |c| vec![c.code()],
        ),
    ];
    let mut prefixes = vec![Vec::new()];
    for codes in &facets[..depth] {
        prefixes = prefixes
            .iter()
            .flat_map(|p| codes.iter().map(move |c| [p.as_slice(), &[*c]].concat()))
            .collect();
    }
    prefixes
}

/// The case a listing's entry stands for: the case or copy itself in the cases or copies
/// tree, else the case an index entry names (`id`).
fn listed_case(
    trees: &Trees,
    tree: TreeId,
    key: &[u8],
    value: &[u8],
    id: Option<&[u8]>,
) -> Result<Case, StorageError> {
    let corrupt = |reason: &str| StorageError::Corrupt {
        tree: tree.name(),
        key: keys::display(key),
        reason: reason.to_owned(),
    };
    match tree {
        TreeId::Cases => super::codec::decode_case(TreeId::Cases, key, value),
        TreeId::Copies => {
            let copy: crate::protocol::message::CaseCopy = super::codec::decode(
                super::codec::ValueKind::CaseCopy,
                TreeId::Copies,
                key,
                value,
            )?;
            Ok(copy.case)
        }
        _ => {
            let id = id
                .filter(|id| !id.is_empty())
                .ok_or_else(|| corrupt("index key without a case id"))?;
            read_case(trees, id)?.ok_or_else(|| corrupt("index entry points to a missing case"))
        }
    }
}

/// A listed case, or `None` for a damaged record: skipped (logged once and kept in the store's
/// list of damaged records, which the sweep turns into an alert and `/metrics` counts), so that
/// one damaged record does not stop every listing, sweep and report that meets it.
fn skip_damaged(
    trees: &Trees,
    listed: Result<Case, StorageError>,
) -> Result<Option<Case>, StorageError> {
    match listed {
        Ok(case) => Ok(Some(case)),
        Err(StorageError::Corrupt { tree, key, reason }) => {
            trees.signals.note_damaged(format!("{tree}/{key}"), reason);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A newest-first listing (see the module's documentation).
fn list_newest(trees: &Trees, q: &CaseQuery) -> Result<CasePage, StorageError> {
    let limit = page_size(q.page_size);
    let (tree, prefixes) = if q.supervised {
        (TreeId::Copies, vec![Vec::new()])
    } else if q.status.is_some() || q.risk.is_some() || q.category.is_some() {
        (
            TreeId::ByFacets,
            facet_prefixes(q.status, q.risk, q.category, 3),
        )
    } else {
        (TreeId::Cases, vec![Vec::new()])
    };
    let name = format!(
        "{}/newest.{}.{}.{}",
        tree.name(),
        q.status.map_or(0, |s| s.code()),
        q.risk.map_or(0, |r| r.code()),
        q.category.map_or(0, |c| c.code())
    );
    let below: Option<Vec<u8>> = match q.page_token.as_deref() {
        None => None,
        Some(token) => {
            let bad = |why: &str| StorageError::BadPageToken(why.to_owned());
            let (n, hex) = token.rsplit_once(':').ok_or_else(|| bad("malformed"))?;
            if n != name {
                return Err(bad("made for another listing"));
            }
            let id = decode_hex(hex).ok_or_else(|| bad("malformed"))?;
            if id.is_empty() {
                return Err(bad("malformed"));
            }
            Some(id)
        }
    };
    let space = trees.get(tree);
    let skip = if tree == TreeId::ByFacets {
        keys::FACETS_LEN
    } else {
        0
    };
    // One backwards walk per range, each with its next entry; merged by case id.
    let mut walks = Vec::with_capacity(prefixes.len());
    for prefix in &prefixes {
        let start = Bound::Included(prefix.clone());
        let end = match &below {
            Some(id) => Bound::Excluded([prefix.as_slice(), id].concat()),
            None => match keys::prefix_end(prefix) {
                Some(next) => Bound::Excluded(next),
                None => Bound::Unbounded,
            },
        };
        let mut walk = space.range::<Vec<u8>, _>((start, end)).rev();
        let head = walk.next().transpose()?;
        walks.push((walk, head));
    }
    let mut page = CasePage::default();
    let mut last_id: Option<Vec<u8>> = None;
    loop {
        let newest = walks
            .iter()
            .enumerate()
            .filter_map(|(i, (_, head))| {
                head.as_ref()
                    .and_then(|(k, _)| k.get(skip..))
                    .map(|id| (i, id))
            })
            .max_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i);
        let Some(i) = newest else {
            return Ok(page);
        };
        if page.cases.len() >= limit {
            page.next_page_token = last_id.map(|id| {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                format!("{name}:{hex}")
            });
            return Ok(page);
        }
        let (walk, head) = &mut walks[i];
        let (key, value) = head.take().expect("a head was chosen");
        *head = walk.next().transpose()?;
        let id = key[skip..].to_vec();
        let Some(case) = skip_damaged(trees, listed_case(trees, tree, &key, &value, Some(&id)))?
        else {
            continue;
        };
        if matches(q, &case) {
            page.cases.push(case);
        }
        last_id = Some(id);
    }
}

pub(crate) fn list(trees: &Trees, q: &CaseQuery) -> Result<CasePage, StorageError> {
    if q.newest_first && q.overdue_at.is_none() {
        return list_newest(trees, q);
    }
    let plan = Plan::for_query(q);
    let limit = page_size(q.page_size);
    let resume = q
        .page_token
        .as_deref()
        .map(|token| plan.resume_key(token))
        .transpose()?;
    let tree = trees.get(plan.tree);
    // Every range in key order, each from the token's key on if the token lies in it; the
    // ranges before the token's are skipped.
    let ranges = plan.prefixes.iter().filter_map(|prefix| {
        let start = match &resume {
            Some(key) if key.starts_with(prefix) => Bound::Excluded(key.clone()),
            Some(key) if key.as_slice() > prefix.as_slice() => return None,
            _ => Bound::Included(prefix.clone()),
        };
        Some((start, plan.upper_bound(prefix)))
    });
    let mut entries = ranges.flat_map(|range| tree.range::<Vec<u8>, _>(range));
    let mut page = CasePage::default();
    let mut last_key = None;
    while page.cases.len() < limit {
        let Some(entry) = entries.next() else {
            return Ok(page);
        };
        let (key, value) = entry?;
        let listed = listed_case(trees, plan.tree, &key, &value, plan.case_id(&key));
        let Some(case) = skip_damaged(trees, listed)? else {
            last_key = Some(key);
            continue;
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
    use crate::domain::Timestamp;

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(page_size(0), 50);
        assert_eq!(page_size(1), 1);
        assert_eq!(page_size(500), 500);
        assert_eq!(page_size(501), 500);
        assert_eq!(page_size(usize::MAX), 500);
    }

    #[test]
    fn index_and_ranges_follow_the_filters() {
        let q = |status, risk, category, overdue_at| CaseQuery {
            status,
            risk,
            category,
            overdue_at,
            ..Default::default()
        };
        let now = Some(Timestamp(1000));
        let (accepted, red, labor) = (
            CaseStatus::Accepted.code(),
            RiskLevel::Red.code(),
            Category::Labor.code(),
        );
        let all = Plan::for_query(&q(
            Some(CaseStatus::Accepted),
            Some(RiskLevel::Red),
            Some(Category::Labor),
            now,
        ));
        assert_eq!(all.tree, TreeId::ByFacets);
        assert_eq!(all.prefixes, vec![vec![accepted, red, labor]]);
        let status = Plan::for_query(&q(Some(CaseStatus::Accepted), None, None, now));
        assert_eq!(status.prefixes, vec![vec![accepted]]);
        let risk = Plan::for_query(&q(None, Some(RiskLevel::Red), None, None));
        assert_eq!(risk.prefixes.len(), CaseStatus::ALL.len());
        assert!(risk.prefixes.iter().all(|p| p.len() == 2 && p[1] == red));
        let category = Plan::for_query(&q(None, None, Some(Category::Labor), None));
        assert_eq!(
            category.prefixes.len(),
            CaseStatus::ALL.len() * RiskLevel::ALL.len()
        );
        assert!(
            category
                .prefixes
                .iter()
                .all(|p| p.len() == 3 && p[2] == labor)
        );
        let status_category = Plan::for_query(&q(
            Some(CaseStatus::Accepted),
            None,
            Some(Category::Labor),
            None,
        ));
        assert_eq!(status_category.prefixes.len(), RiskLevel::ALL.len());
        for plan in [&risk, &category, &status_category] {
            assert!(plan.prefixes.is_sorted(), "ranges in key order");
        }

        let overdue = Plan::for_query(&q(None, None, None, now));
        assert_eq!(overdue.tree, TreeId::ByDeadline);
        assert_eq!(
            overdue.upper_bound(&[]),
            Bound::Excluded(keys::deadline_bound(Timestamp(1000)).to_vec())
        );
        let unfiltered = Plan::for_query(&q(None, None, None, None));
        assert_eq!(unfiltered.tree, TreeId::Cases);
        assert_eq!(unfiltered.upper_bound(&[]), Bound::Unbounded);
        let copies = CaseQuery {
            supervised: true,
            ..q(Some(CaseStatus::Accepted), None, None, now)
        };
        assert_eq!(Plan::for_query(&copies).tree, TreeId::Copies);
    }

    fn case_with(status: CaseStatus, risk: RiskLevel, id: &str) -> Case {
        let (mut case, _) = crate::storage::tests::new_case("20250131", 1);
        case.id = id.to_owned();
        case.status = status;
        case.risk = risk;
        case
    }

    #[test]
    fn tokens_round_trip_and_are_checked() {
        let plan = Plan::facets(None, Some(RiskLevel::Red), None);
        let key = keys::facets(&case_with(
            CaseStatus::Accepted,
            RiskLevel::Red,
            "610116-20250131-000001",
        ));
        assert_eq!(plan.resume_key(&plan.token(&key)).unwrap(), key);

        let bad =
            |token: &str| matches!(plan.resume_key(token), Err(StorageError::BadPageToken(_)));
        let name = plan.name();
        assert!(bad(""));
        assert!(bad(&name));
        assert!(bad(&format!("{name}:0")));
        assert!(bad(&format!("{name}:zz")));
        assert!(bad(&format!("{name}:020401")), "no case id after the codes");
        assert!(
            bad(&plan.token(&keys::facets(&case_with(
                CaseStatus::Accepted,
                RiskLevel::Blue,
                "x"
            )))),
            "another risk level"
        );
        let other = Plan::facets(Some(CaseStatus::Accepted), None, None);
        assert!(
            bad(&other.token(&key)),
            "another listing, though the key fits"
        );

        let overdue = Plan {
            tree: TreeId::ByDeadline,
            prefixes: vec![vec![]],
            end: Some(keys::deadline_bound(Timestamp(10)).to_vec()),
            filters: String::new(),
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
