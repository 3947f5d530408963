//! Exact searches through the keyed-hash indexes: the cases a phone number or an ID number
//! appears in. The indexes hold HMACs with the store's secret, never the values.

use super::keys::{self, TreeId};
use super::secret::HASH_LEN;
use super::{StorageError, Store};
use crate::domain::Case;

/// Most cases one exact search answers with (newest first).
pub const SEARCH_MAX: usize = 200;

impl Store {
    /// The cases a party with this phone number is in (any status, tombstones excluded:
    /// they keep no parties), newest first, at most [`SEARCH_MAX`].
    pub fn cases_by_phone(&self, phone: &str) -> Result<Vec<Case>, StorageError> {
        let hash = self.inner.secret.phone(phone);
        let mut ids = Vec::new();
        for item in self.tree(TreeId::ByPhone).scan_prefix(hash) {
            let (key, _) = item?;
            if let Some(id) = key
                .get(HASH_LEN..)
                .and_then(|id| std::str::from_utf8(id).ok())
            {
                ids.push(id.to_owned());
            }
        }
        self.newest(ids)
    }

    /// The cases a party with this ID number is in, newest first, at most [`SEARCH_MAX`].
    pub fn cases_by_id_number(&self, id_number: &str) -> Result<Vec<Case>, StorageError> {
        let hash = self.inner.secret.person(id_number);
        let mut ids = Vec::new();
        for item in self.tree(TreeId::ByPerson).scan_prefix(hash) {
            let (key, _) = item?;
            if let Some((_, id)) = keys::person_parts(&key) {
                ids.push(id.to_owned());
            }
        }
        self.newest(ids)
    }

    fn newest(&self, mut ids: Vec<String>) -> Result<Vec<Case>, StorageError> {
        // Case ids sort by node, then day, then number: for one node, newest last.
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::new();
        for id in ids.iter().rev().take(SEARCH_MAX) {
            if let Some(case) = self.get_case(id)? {
                out.push(case);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// The cases held here that an ancestor supervises (督办), newest first (descending id):
    /// at most `limit`, and whether there are more.
    pub fn supervised_here(&self, limit: usize) -> Result<(Vec<Case>, bool), StorageError> {
        let mut out = Vec::new();
        let mut iter = self.tree(TreeId::BySupervised).iter().rev();
        for item in iter.by_ref() {
            let (key, _) = item?;
            if let Some(case) = self.get_case(std::str::from_utf8(&key).unwrap_or_default())? {
                out.push(case);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok((out, iter.next().is_some()))
    }
}

impl Store {
    /// The cases in work dispatched to one of `handlers` (派单), newest first: at most
    /// `limit`, and whether there are more.
    pub fn cases_by_handler(
        &self,
        handlers: &[&str],
        limit: usize,
    ) -> Result<(Vec<Case>, bool), StorageError> {
        let mut ids: Vec<Vec<u8>> = Vec::new();
        for handler in handlers.iter().filter(|h| !h.is_empty()) {
            let prefix = keys::handler_key(handler, "");
            for item in self.tree(TreeId::ByHandler).scan_prefix(&prefix) {
                let (key, _) = item?;
                ids.push(key[prefix.len()..].to_vec());
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let more = ids.len() > limit;
        let mut out = Vec::new();
        for id in ids.iter().rev().take(limit) {
            if let Some(case) = self.get_case(std::str::from_utf8(id).unwrap_or_default())? {
                out.push(case);
            }
        }
        Ok((out, more))
    }
}

/// Most cases a text search reads (newest first) before it stops.
pub const TEXT_SCAN_MAX: usize = 20_000;

impl Store {
    /// Cases for which `matches` holds, newest first: at most `limit`, reading at most
    /// [`TEXT_SCAN_MAX`] cases (tombstones included).
    pub fn scan_newest<F>(&self, limit: usize, matches: F) -> Result<Vec<Case>, StorageError>
    where
        F: Fn(&Case) -> bool,
    {
        let mut out = Vec::new();
        for item in self.tree(TreeId::Cases).iter().rev().take(TEXT_SCAN_MAX) {
            let (key, bytes) = item?;
            let case = super::codec::decode_case(TreeId::Cases, &key, &bytes)?;
            if matches(&case) {
                out.push(case);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
