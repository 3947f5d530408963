//! Finding cases at this node: by case id, lookup code, a party's phone or ID number (exact,
//! through the keyed-hash indexes) or words of a name or summary; and the repeat-visit hint
//! of the intake form (重复来访).

use super::App;
use crate::domain::{Case, DomainError, mask};
use crate::error::Error;
use crate::identity::{Action, Identity};

/// Most cases a search answers with.
pub const SEARCH_LIMIT: usize = 100;
/// Longest search text.
pub const QUERY_MAX_CHARS: usize = 64;

/// What a search text was taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Searched {
    CaseId,
    LookupCode,
    IdNumber,
    Phone,
    Text,
}

impl Searched {
    pub fn label_zh(self) -> &'static str {
        match self {
            Searched::CaseId => "案件编号",
            Searched::LookupCode => "查询码",
            Searched::IdNumber => "身份证号",
            Searched::Phone => "电话",
            Searched::Text => "姓名或摘要",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Searched::CaseId => "case id",
            Searched::LookupCode => "lookup code",
            Searched::IdNumber => "ID number",
            Searched::Phone => "phone",
            Searched::Text => "name or summary",
        }
    }
}

/// How a search text reads: a case id (`CODE-YYYYMMDD-NNNNNN`), a lookup code
/// (`XXXX-XXXX-XXXX`), an ID number (18 characters, or 15 digits), a phone (5 or more digits
/// with `+`, `-`, spaces), else words.
pub fn classify(q: &str) -> Searched {
    let q = q.trim();
    let digits = q.chars().filter(char::is_ascii_digit).count();
    let parts: Vec<&str> = q.split('-').collect();
    if parts.len() == 3
        && parts[0].len() >= 2
        && parts[1].len() == 8
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Searched::CaseId;
    }
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Searched::LookupCode;
    }
    let upper = q.to_ascii_uppercase();
    let b = upper.as_bytes();
    if (b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && (b[17].is_ascii_digit() || b[17] == b'X'))
        || (b.len() == 15 && b.iter().all(u8::is_ascii_digit))
    {
        return Searched::IdNumber;
    }
    if digits >= 5
        && q.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' '))
    {
        return Searched::Phone;
    }
    Searched::Text
}

impl App {
    /// The cases at this node that `q` finds (owned cases and tombstones), newest first,
    /// masked for the listing. Searching by a phone or ID number needs the permission to see
    /// personal data (a search by them is a use of them).
    pub fn search(&self, who: &Identity, q: &str) -> Result<(Searched, Vec<Case>), Error> {
        let (kind, found) = self.search_unmasked(who, q)?;
        Ok((kind, found.iter().map(mask::masked).collect()))
    }

    /// [`App::search`] before masking (at most [`SEARCH_LIMIT`] cases): for a caller that
    /// masks or audits itself.
    pub(crate) fn search_unmasked(
        &self,
        who: &Identity,
        q: &str,
    ) -> Result<(Searched, Vec<Case>), Error> {
        self.authorize(who, Action::ReadCase)?;
        let q = q.trim();
        if q.is_empty() || q.chars().count() > QUERY_MAX_CHARS {
            return Err(
                DomainError::invalid("q", format!("1 to {QUERY_MAX_CHARS} characters")).into(),
            );
        }
        let kind = classify(q);
        let store = &self.state.store;
        let found: Vec<Case> = match kind {
            Searched::CaseId => store.get_case(q)?.into_iter().collect(),
            Searched::LookupCode => store
                .case_by_lookup_code(&q.to_ascii_uppercase())?
                .into_iter()
                .collect(),
            Searched::IdNumber => {
                self.authorize(who, Action::ReadPersonalData)?;
                store.cases_by_id_number(q)?
            }
            Searched::Phone => {
                self.authorize(who, Action::ReadPersonalData)?;
                store.cases_by_phone(q)?
            }
            Searched::Text => {
                // Names are personal data: only a role that may see them searches by them.
                let by_name = Self::reveals_personal(who);
                store.scan_newest(SEARCH_LIMIT, |c| {
                    c.summary.contains(q)
                        || (by_name && c.parties.iter().any(|p| p.name.contains(q)))
                })?
            }
        };
        Ok((kind, found.into_iter().take(SEARCH_LIMIT).collect()))
    }

    /// The cases held here that an ancestor supervises (上级督办), newest first, masked: at
    /// most `limit`, and whether there are more.
    pub fn supervised_from_above(
        &self,
        who: &Identity,
        limit: usize,
    ) -> Result<(Vec<Case>, bool), Error> {
        self.authorize(who, Action::ReadCase)?;
        let (cases, more) = self.state.store.supervised_here(limit)?;
        Ok((cases.iter().map(mask::masked).collect(), more))
    }

    /// The cases in work dispatched to `who` (派单 to its account's name or username),
    /// newest first, masked: at most `limit`, and whether there are more.
    pub fn dispatched_to(
        &self,
        who: &Identity,
        names: &[&str],
        limit: usize,
    ) -> Result<(Vec<Case>, bool), Error> {
        self.authorize(who, Action::ReadCase)?;
        let (cases, more) = self.state.store.cases_by_handler(names, limit)?;
        Ok((cases.iter().map(mask::masked).collect(), more))
    }

    /// The open cases at this node that one of these ID numbers or phones is in (重复来访),
    /// masked: the hint the intake form shows before a registration.
    pub fn repeat_visits(
        &self,
        who: &Identity,
        id_numbers: &[String],
        phones: &[String],
    ) -> Result<Vec<Case>, Error> {
        self.authorize(who, Action::RegisterCase)?;
        let store = &self.state.store;
        let mut found: Vec<Case> = Vec::new();
        for id in id_numbers.iter().filter(|s| !s.trim().is_empty()) {
            found.extend(store.cases_by_id_number(id)?);
        }
        for phone in phones.iter().filter(|s| !s.trim().is_empty()) {
            found.extend(store.cases_by_phone(phone)?);
        }
        found.retain(|c| c.status.is_open());
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        found.dedup_by(|a, b| a.id == b.id);
        Ok(found.iter().map(mask::masked).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_texts_are_classified() {
        assert_eq!(classify("610116001001-20261205-000001"), Searched::CaseId);
        assert_eq!(classify("ABCD-2345-WXYZ"), Searched::LookupCode);
        assert_eq!(classify("610102199001011231"), Searched::IdNumber);
        assert_eq!(classify("11010519491231002x"), Searched::IdNumber);
        assert_eq!(classify("138 1234 5678"), Searched::Phone);
        assert_eq!(classify("12348"), Searched::Phone);
        assert_eq!(classify("讨薪"), Searched::Text);
        assert_eq!(classify("张三"), Searched::Text);
    }
}
