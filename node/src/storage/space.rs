//! The store's trees as key spaces of one engine tree.
//!
//! Since store format 3 every tree of `keys` lives in one sled tree (`STORE_TREE`), each
//! under its own prefix byte ([`TreeId::prefix`]). A group commit then reaches sled as one
//! `apply_batch` on that tree: atomic like a transaction over several trees, but without what
//! a sled 0.34 transaction adds to each write (a read of the old value through the tree before
//! every insert or removal, and two hash maps of copies), and in key order. A [`Space`] reads
//! one tree the way a [`db::Tree`] would: the keys it takes and returns have no prefix.

use std::ops::{Bound, RangeBounds};

use super::codec;
use super::db::{self, Batch, Bytes, Db, Syncer};
use super::keys::{self, TreeId};
use super::{STORE_FORMAT, StorageError};

/// Name of the sled tree that holds every tree of the store (persistent: never rename).
pub(crate) const STORE_TREE: &str = "store";

/// Keys copied per sled batch when an older store's trees are moved into the store tree.
const COPY_BATCH: usize = 10_000;

/// The first store format with every tree in the store tree.
const ONE_TREE_FORMAT: u32 = 3;

/// Moves the trees of a store of format 1 or 2 (one sled tree per tree, each named
/// [`TreeId::name`]) into the store tree, at open, before anything else reads the store.
///
/// The sled tree named like [`TreeId::Meta`], where formats 1 and 2 kept their metadata, keeps
/// only the store format afterwards ([`STORE_FORMAT`]), so that a binary that reads format 2
/// refuses the store instead of taking it for an empty one. The steps, each made durable
/// before the next: copy every old tree; write that format; drop the old trees. Interrupted,
/// the move simply runs again at the next open (the copy overwrites what it copied before),
/// or, once the format is written, only the dropping does. The meta tree of the store keeps
/// the format it had (1 or 2) until `storage::check_format` upgrades it.
///
/// A store of format 3 or later is in the store tree already: only the format in the old meta
/// tree moves up to the current one, so that the builds that read its older format refuse it
/// from now on (the store's own format follows when it is upgraded, see `storage::upgrade`).
pub(crate) fn adopt_older_layout(db: &Db, syncer: &mut Syncer) -> Result<(), StorageError> {
    let legacy_meta = db.open_tree(TreeId::Meta.name())?;
    let marker: Option<u32> = legacy_meta
        .get(keys::META_FORMAT)?
        .map(|bytes| codec::decode_format(keys::META_FORMAT, &bytes))
        .transpose()?;
    match marker {
        Some(found) if found > STORE_FORMAT => {
            return Err(StorageError::UnsupportedFormat {
                found,
                supported: STORE_FORMAT,
            });
        }
        Some(found) if found >= ONE_TREE_FORMAT => {
            if found != STORE_FORMAT {
                legacy_meta.insert(keys::META_FORMAT, codec::encode_format(STORE_FORMAT)?)?;
                syncer.sync(db)?;
            }
            return drop_older_trees(db, &legacy_meta, syncer);
        }
        _ => {}
    }
    let older: Vec<TreeId> = TreeId::ALL
        .iter()
        .copied()
        .filter(|t| db.has_tree(t.name()))
        .collect();
    let store = db.open_tree(STORE_TREE)?;
    let mut copied = 0;
    for &id in &older {
        let tree = db.open_tree(id.name())?;
        let mut batch = Batch::default();
        let mut in_batch = 0;
        for item in tree.iter() {
            let (key, value) = item?;
            batch.insert(full_key(id, &key), value);
            in_batch += 1;
            if in_batch == COPY_BATCH {
                store.apply_batch(std::mem::take(&mut batch))?;
                copied += in_batch;
                in_batch = 0;
            }
        }
        store.apply_batch(batch)?;
        copied += in_batch;
    }
    if copied > 0 {
        syncer.sync(db)?;
    }
    legacy_meta.insert(keys::META_FORMAT, codec::encode_format(STORE_FORMAT)?)?;
    syncer.sync(db)?;
    if copied > 0 {
        tracing::info!(
            keys = copied,
            "store trees moved into one sled tree (format 3)"
        );
    }
    drop_older_trees(db, &legacy_meta, syncer)
}

/// Drops what is left of the trees of format 1 or 2 once their keys are in the store tree.
fn drop_older_trees(
    db: &Db,
    legacy_meta: &db::Tree,
    syncer: &mut Syncer,
) -> Result<(), StorageError> {
    let mut changed = false;
    for id in TreeId::ALL.iter().filter(|&&t| t != TreeId::Meta) {
        if db.has_tree(id.name()) {
            db.drop_tree(id.name())?;
            changed = true;
        }
    }
    let mut batch = Batch::default();
    for key in legacy_meta.iter().keys() {
        let key = key?;
        if key != keys::META_FORMAT {
            batch.remove(key);
            changed = true;
        }
    }
    legacy_meta.apply_batch(batch)?;
    if changed {
        syncer.sync(db)?;
    }
    Ok(())
}

/// One tree of the store: the keys of the store's engine tree under one prefix byte.
#[derive(Clone, Copy)]
pub(crate) struct Space<'a> {
    tree: &'a db::Tree,
    prefix: u8,
}

/// The full key of `key` in `tree`'s space.
pub(crate) fn full_key(tree: TreeId, key: &[u8]) -> Vec<u8> {
    prefixed(tree.prefix(), key)
}

fn prefixed(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(key.len() + 1);
    full.push(prefix);
    full.extend_from_slice(key);
    full
}

impl<'a> Space<'a> {
    pub(crate) fn new(tree: &'a db::Tree, id: TreeId) -> Space<'a> {
        Space {
            tree,
            prefix: id.prefix(),
        }
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        prefixed(self.prefix, key)
    }

    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> db::Result<Option<Bytes>> {
        self.tree.get(self.full(key.as_ref()))
    }

    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> db::Result<bool> {
        self.tree.contains_key(self.full(key.as_ref()))
    }

    /// Writes at once, outside any group commit: for code that runs at open, before the
    /// writer thread starts, and for tests.
    pub(crate) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
    ) -> db::Result<Option<Bytes>> {
        self.tree.insert(self.full(key.as_ref()), value)
    }

    /// Stores `value` under `key` only if the key is absent; `Ok(false)` if it was present.
    /// At open only (see [`Space::insert`]).
    pub(crate) fn insert_new(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
    ) -> db::Result<bool> {
        self.tree.insert_new(self.full(key.as_ref()), value)
    }

    /// Every key of the tree, in order.
    pub(crate) fn iter(&self) -> Iter {
        self.range::<&[u8], _>(..)
    }

    /// The keys within `range` (bounds without the prefix), in order.
    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        let start = match range.start_bound() {
            Bound::Included(k) => Bound::Included(self.full(k.as_ref())),
            Bound::Excluded(k) => Bound::Excluded(self.full(k.as_ref())),
            Bound::Unbounded => Bound::Included(vec![self.prefix]),
        };
        let end = match range.end_bound() {
            Bound::Included(k) => Bound::Included(self.full(k.as_ref())),
            Bound::Excluded(k) => Bound::Excluded(self.full(k.as_ref())),
            Bound::Unbounded => match self.prefix.checked_add(1) {
                Some(next) => Bound::Excluded(vec![next]),
                None => Bound::Unbounded,
            },
        };
        Iter(self.tree.range::<Vec<u8>, _>((start, end)))
    }

    /// Up to `around` keys starting with `prefix` on each side of `at` (below it, and from it
    /// on), in key order.
    pub(crate) fn around(
        &self,
        prefix: &[u8],
        at: &[u8],
        around: usize,
    ) -> db::Result<Vec<(Bytes, Bytes)>> {
        let mut rows = self
            .range(prefix..at)
            .rev()
            .take(around)
            .collect::<db::Result<Vec<_>>>()?;
        rows.reverse();
        let after = match keys::prefix_end(prefix) {
            Some(end) => self.range(at..end.as_slice()),
            None => self.range(at..),
        };
        for entry in after.take(around) {
            rows.push(entry?);
        }
        Ok(rows)
    }

    /// The keys starting with `prefix`, in order.
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        Iter(self.tree.scan_prefix(self.full(prefix.as_ref())))
    }

    /// Removes `keys` at once, in one engine batch: for the writer thread, after the batch in
    /// progress was written out (see `Trees::get`).
    pub(crate) fn remove_keys(&self, keys: impl IntoIterator<Item = Bytes>) -> db::Result<()> {
        let mut batch = Batch::default();
        for key in keys {
            batch.remove(self.full(&key));
        }
        self.tree.apply_batch(batch)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    #[cfg(test)]
    pub(crate) fn remove(&self, key: impl AsRef<[u8]>) -> db::Result<Option<Bytes>> {
        self.tree.remove(self.full(key.as_ref()))
    }

    /// Removes every key of the tree at once.
    #[cfg(test)]
    pub(crate) fn clear(&self) -> db::Result<()> {
        let mut batch = Batch::default();
        for item in self.tree.scan_prefix([self.prefix]).keys() {
            batch.remove(item?);
        }
        self.tree.apply_batch(batch)
    }
}

/// An iterator over a [`Space`]: `(key without prefix, value)`.
pub(crate) struct Iter(db::Iter);

fn strip((key, value): (Bytes, Bytes)) -> (Bytes, Bytes) {
    let len = key.len().saturating_sub(1);
    let key = if len == 0 {
        Bytes::default()
    } else {
        key.subslice(1, len)
    };
    (key, value)
}

impl Iterator for Iter {
    type Item = db::Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map(strip))
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|r| r.map(strip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_see_only_their_own_keys() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_default(dir.path()).unwrap();
        let tree = db.open_tree(STORE_TREE).unwrap();
        let cases = Space::new(&tree, TreeId::Cases);
        let events = Space::new(&tree, TreeId::Events);
        let last = Space::new(&tree, *TreeId::ALL.last().unwrap());
        for k in ["a", "b", "c"] {
            cases.insert(k, k.as_bytes()).unwrap();
            events.insert(k, b"e".as_slice()).unwrap();
            last.insert(k, b"l".as_slice()).unwrap();
        }
        events.insert("", b"empty key".as_slice()).unwrap();
        fn keys(it: impl Iterator<Item = db::Result<(Bytes, Bytes)>>) -> Vec<Vec<u8>> {
            it.map(|r| r.unwrap().0.to_vec()).collect()
        }
        assert_eq!(keys(cases.iter()), [b"a", b"b", b"c"]);
        assert_eq!(keys(cases.range("b".."c")), [b"b"]);
        assert_eq!(keys(cases.range::<&str, _>("b"..)), [b"b", b"c"]);
        assert_eq!(keys(cases.range::<&str, _>(..="b")), [b"a", b"b"]);
        assert_eq!(keys(cases.iter().rev()), [b"c", b"b", b"a"]);
        assert_eq!(keys(events.iter()), [b"".as_slice(), b"a", b"b", b"c"]);
        assert_eq!(keys(last.scan_prefix("c")), [b"c"]);
        assert_eq!(cases.get("b").unwrap().unwrap(), b"b");
        assert!(cases.get("e").unwrap().is_none());
        assert!(!cases.insert_new("a", b"x".as_slice()).unwrap());
        assert!(cases.insert_new("d", b"x".as_slice()).unwrap());
        cases.clear().unwrap();
        assert!(cases.is_empty());
        assert_eq!(keys(events.iter()).len(), 4);
        assert_eq!(keys(last.iter()).len(), 3);
    }
}
