//! The storage engine, behind a thin layer: the only module of the crate that names sled.
//!
//! A store is one sled 0.34 database ([`Db`]) in its directory, holding since store format 3
//! every key space of `keys` in one tree of it ([`Tree`], see `space`); the layouts of formats
//! 1 and 2 (one tree per key space) are read once, at open, to move them there. The rest of
//! storage reaches the engine through the types here only:
//!
//! * [`Db`] opens the database with the store's settings, lists, opens and drops its trees,
//!   and flushes it; [`Syncer`] then makes what the engine wrote durable (`sync`: it knows
//!   which files sled writes and how).
//! * [`Tree`]: point reads and writes, ordered iteration over a range or a prefix ([`Iter`]),
//!   and [`Batch`]es, applied atomically (one group commit is one batch, see `overlay`).
//! * [`Bytes`]: a key or value read back, sled's `IVec` as it comes (inline up to 22 bytes,
//!   else shared): reads copy nothing, and a value kept in a batch is cloned by reference.
//! * [`Error`]: a failure of the engine; it becomes `StorageError::Engine`.
//!
//! Replacing the engine means rewriting this module and `sync` (and keeping the on-disk
//! format readable: every key and value stored so far is in sled's files).

mod sync;

use std::fmt;
use std::ops::{Deref, RangeBounds};
use std::path::Path;

pub(crate) use sync::{BEFORE_SYNC_OPS, Syncer};

/// The result of an engine operation.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A failure of the engine (sled's error). Displayed as `sled: ...`.
#[derive(Debug)]
pub struct Error(sled::Error);

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sled: {}", self.0)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl Error {
    /// The I/O error the engine met, if that is what it was.
    pub(crate) fn io(&self) -> Option<&std::io::Error> {
        match &self.0 {
            sled::Error::Io(e) => Some(e),
            _ => None,
        }
    }

    /// The directory is locked by another handle on it: another process, or (in the same
    /// process) one dropped a moment ago, which sled 0.34 frees through epoch-deferred
    /// destruction (`Store::open_again` retries then).
    pub(crate) fn is_locked(&self) -> bool {
        self.io()
            .is_some_and(|e| e.to_string().contains("could not acquire lock"))
    }

    /// An I/O error as the engine reports it (tests of error handling).
    #[cfg(test)]
    pub(crate) fn from_io(e: std::io::Error) -> Error {
        Error(sled::Error::Io(e))
    }
}

/// The database of one store.
pub(crate) struct Db(sled::Db);

impl Db {
    /// Opens (creating if needed) the database in `dir` with a page cache of
    /// `cache_capacity_bytes`, the engine's background flush running every `flush_every_ms`.
    /// Fails if the directory is locked (by another process, or by a handle dropped a moment ago).
    pub(crate) fn open(dir: &Path, cache_capacity_bytes: u64, flush_every_ms: u64) -> Result<Db> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity_bytes)
            .flush_every_ms(Some(flush_every_ms))
            .open()?;
        Ok(Db(db))
    }

    /// [`Db::open`] with the engine's default settings: for a database written once and closed
    /// (a restore), and for tests.
    pub(crate) fn open_default(dir: &Path) -> Result<Db> {
        Ok(Db(sled::Config::new().path(dir).open()?))
    }

    /// The tree named `name`, created if absent.
    pub(crate) fn open_tree(&self, name: &str) -> Result<Tree> {
        Ok(Tree(self.0.open_tree(name)?))
    }

    /// Whether a tree named `name` exists.
    pub(crate) fn has_tree(&self, name: &str) -> bool {
        self.0
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
    }

    /// Drops the tree named `name` and all its keys; false if there was none.
    pub(crate) fn drop_tree(&self, name: &str) -> Result<bool> {
        Ok(self.0.drop_tree(name)?)
    }

    /// Writes the engine's buffers to its files. Not durable by itself: see [`Syncer`].
    pub(crate) fn flush(&self) -> Result<()> {
        self.0.flush()?;
        Ok(())
    }
}

/// One tree of the database: keys and values of bytes, in key order. A handle: cheap to clone.
#[derive(Clone)]
pub(crate) struct Tree(sled::Tree);

impl Tree {
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        Ok(self.0.get(key)?.map(Bytes))
    }

    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.0.contains_key(key)?)
    }

    /// Writes one key at once; returns the value it replaced.
    pub(crate) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
    ) -> Result<Option<Bytes>> {
        Ok(self.0.insert(key, value.into().0)?.map(Bytes))
    }

    /// Writes `value` under `key` only if the key is absent, atomically; false if it was
    /// present (and nothing was written).
    pub(crate) fn insert_new(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
    ) -> Result<bool> {
        let swapped = self
            .0
            .compare_and_swap(key, None::<&[u8]>, Some(value.into().0))?;
        Ok(swapped.is_ok())
    }

    /// Removes one key at once; returns its value.
    #[cfg(test)]
    pub(crate) fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        Ok(self.0.remove(key)?.map(Bytes))
    }

    /// Applies every write of `batch`, atomically: a reader sees all of them or none.
    pub(crate) fn apply_batch(&self, batch: Batch) -> Result<()> {
        Ok(self.0.apply_batch(batch.0)?)
    }

    /// Every key, in order.
    pub(crate) fn iter(&self) -> Iter {
        Iter(self.0.iter())
    }

    /// The keys within `range`, in order.
    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        Iter(self.0.range(range))
    }

    /// The keys starting with `prefix`, in order.
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        Iter(self.0.scan_prefix(prefix))
    }

    /// Whether the tree holds no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of keys (a full scan).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Writes to apply together ([`Tree::apply_batch`]); the last write of a key wins.
#[derive(Default)]
pub(crate) struct Batch(sled::Batch);

impl Batch {
    pub(crate) fn insert(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.0.insert(key.into().0, value.into().0);
    }

    pub(crate) fn remove(&mut self, key: impl Into<Bytes>) {
        self.0.remove(key.into().0);
    }
}

/// An iterator over a [`Tree`]: `(key, value)` in key order, from either end.
pub(crate) struct Iter(sled::Iter);

#[inline]
fn entry(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(Bytes, Bytes)> {
    match item {
        Ok((key, value)) => Ok((Bytes(key), Bytes(value))),
        Err(e) => Err(Error(e)),
    }
}

impl Iter {
    /// The keys only.
    pub(crate) fn keys(self) -> impl DoubleEndedIterator<Item = Result<Bytes>> {
        self.map(|item| item.map(|(key, _)| key))
    }
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(entry)
    }
}

impl DoubleEndedIterator for Iter {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(entry)
    }
}

/// Bytes of a key or value, as the engine holds them: read without a copy, cloned by
/// reference (sled's `IVec`: up to 22 bytes inline, else shared). Dereferences to `[u8]`.
#[derive(Clone, Default, PartialOrd, Ord, Hash)]
pub(crate) struct Bytes(sled::IVec);

impl Bytes {
    /// `len` bytes from `offset`, sharing these bytes (no copy of a shared value).
    ///
    /// # Panics
    ///
    /// If the range is not within these bytes.
    pub(crate) fn subslice(&self, offset: usize, len: usize) -> Bytes {
        Bytes(self.0.subslice(offset, len))
    }
}

impl Deref for Bytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::borrow::Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl<T: AsRef<[u8]>> PartialEq<T> for Bytes {
    fn eq(&self, other: &T) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_ref() == other
    }
}

impl Eq for Bytes {}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v.into())
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.into())
    }
}

impl<const N: usize> From<&[u8; N]> for Bytes {
    fn from(v: &[u8; N]) -> Self {
        Bytes(v.as_slice().into())
    }
}

impl From<&Bytes> for Bytes {
    fn from(v: &Bytes) -> Self {
        v.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_batches_and_iteration() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_default(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        assert!(tree.is_empty());
        assert!(db.has_tree("t") && !db.has_tree("u"));
        let mut batch = Batch::default();
        for k in [b"a", b"b", b"c"] {
            batch.insert(k, k);
        }
        batch.remove(b"b");
        tree.apply_batch(batch).unwrap();
        fn keys(it: impl Iterator<Item = Result<(Bytes, Bytes)>>) -> Vec<Vec<u8>> {
            it.map(|kv| kv.unwrap().0.to_vec()).collect()
        }
        assert_eq!(keys(tree.iter()), [b"a", b"c"]);
        assert_eq!(keys(tree.iter().rev()), [b"c", b"a"]);
        assert_eq!(keys(tree.range(b"b".as_slice()..)), [b"c"]);
        assert_eq!(keys(tree.scan_prefix(b"a")), [b"a"]);
        let rev: Vec<Bytes> = tree.iter().keys().rev().map(|k| k.unwrap()).collect();
        assert_eq!(rev, [b"c", b"a"]);
        assert_eq!(tree.get(b"a").unwrap().unwrap(), b"a");
        assert!(tree.contains_key(b"c").unwrap());
        assert!(!tree.insert_new(b"a", b"x").unwrap());
        assert!(tree.insert_new(b"d", b"x").unwrap());
        assert_eq!(tree.insert(b"d", b"y").unwrap().unwrap(), b"x");
        assert_eq!(tree.remove(b"d").unwrap().unwrap(), b"y");
        assert_eq!(tree.len(), 2);
        db.flush().unwrap();
        assert!(db.drop_tree("t").unwrap());
        assert!(!db.has_tree("t"));
    }

    #[test]
    fn bytes_share_and_compare_as_slices() {
        let long = Bytes::from(vec![7u8; 100]);
        let tail = long.subslice(1, 99);
        assert_eq!(tail, vec![7u8; 99]);
        assert_eq!(&tail[..], &[7u8; 99][..]);
        assert_eq!(Bytes::from(b"ab").subslice(1, 1), b"b");
        assert!(Bytes::default().is_empty());
        assert_eq!(format!("{:?}", Bytes::from(b"\x01")), "[1]");
    }

    #[test]
    fn errors_say_what_the_engine_met() {
        let e = Error::from_io(std::io::Error::from_raw_os_error(24));
        assert_eq!(e.io().and_then(std::io::Error::raw_os_error), Some(24));
        assert!(e.to_string().starts_with("sled: "));
        assert!(!e.is_locked());
        let dir = tempfile::tempdir().unwrap();
        let _held = Db::open_default(dir.path()).unwrap();
        let locked = Db::open_default(dir.path()).err().expect("locked");
        assert!(locked.is_locked(), "{locked}");
    }
}
