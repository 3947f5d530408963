//! Backups of a store: a consistent copy taken while the node serves, in one checksummed
//! file, and a data folder built back from it.
//!
//! sled 0.34 has no snapshot, and copying its folder while it runs is unsafe. A backup runs
//! as one job on the writer thread ([`super::Store::backup`]): it writes out the batch in
//! progress, then scans the whole store into the file while every other write waits behind
//! it — a consistent cut, holding everything acknowledged before it (and possibly writes of
//! its own batch not yet acknowledged). The pause is the scan: see BENCHMARKS.md.
//!
//! # File format (version [`FILE_VERSION`])
//!
//! ```text
//! magic "FENGQIAO-BACKUP\n"                16 bytes
//! file version                            u32 big-endian
//! header length, header (JSON)            u32, bytes: node, store format, created_at (ms)
//! records: key length, key,               u32, bytes, u32, bytes (the store's raw entries,
//!          value length, value                       each value in its checksummed envelope)
//! end mark                                u32 0xFFFF_FFFF
//! record count                            u64
//! SHA-256 of everything above             32 bytes
//! ```
//!
//! Limits, checked when a file is read: keys up to 64 KiB, values up to 64 MiB, a header up to
//! 64 KiB; anything else is a damaged file, refused before anything is written.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ring::digest;
use serde::{Deserialize, Serialize};

use super::StorageError;
use super::db::{self, Batch, Db};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 16] = b"FENGQIAO-BACKUP\n";
/// The version of the file layout above.
pub const FILE_VERSION: u32 = 1;
const END: u32 = u32::MAX;
const KEY_MAX: u32 = 64 * 1024;
const VALUE_MAX: u32 = 64 * 1024 * 1024;
const HEADER_MAX: u32 = 64 * 1024;

/// What a backup says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The node whose store it is.
    pub node: String,
    /// The store's format version.
    pub store_format: u32,
    /// When it was taken (the node's clock, ms since the epoch).
    pub created_at_ms: i64,
}

/// A verified backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub header: BackupHeader,
    pub records: u64,
    pub bytes: u64,
    /// Hex of the SHA-256 at the file's end.
    pub sha256: String,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn damaged(path: &Path, why: impl Into<String>) -> StorageError {
    StorageError::Backup(format!("{}: {}", path.display(), why.into()))
}

/// A writer that hashes what it writes.
struct Hashing<W: Write> {
    inner: W,
    hash: digest::Context,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes every entry of `tree` to a new file at `path` (written to `path.partial`, synced,
/// then renamed), and answers what it wrote.
pub(crate) fn write(
    tree: &db::Tree,
    path: &Path,
    header: &BackupHeader,
) -> Result<BackupSummary, StorageError> {
    let partial = partial_of(path);
    let file = File::create(&partial).map_err(io("creating", &partial))?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: digest::Context::new(&digest::SHA256),
        bytes: 0,
    };
    let head = serde_json::to_vec(header)
        .map_err(|e| StorageError::Backup(format!("encoding the header: {e}")))?;
    let result = (|| -> Result<u64, std::io::Error> {
        out.write_all(MAGIC)?;
        out.write_all(&FILE_VERSION.to_be_bytes())?;
        out.write_all(&(head.len() as u32).to_be_bytes())?;
        out.write_all(&head)?;
        let mut records = 0u64;
        for entry in tree.iter() {
            let (k, v) = entry.map_err(std::io::Error::other)?;
            out.write_all(&(k.len() as u32).to_be_bytes())?;
            out.write_all(&k)?;
            out.write_all(&(v.len() as u32).to_be_bytes())?;
            out.write_all(&v)?;
            records += 1;
        }
        out.write_all(&END.to_be_bytes())?;
        out.write_all(&records.to_be_bytes())?;
        Ok(records)
    })();
    let records = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(io("writing", &partial)(e));
        }
    };
    let sum = out.hash.clone().finish();
    let bytes = out.bytes + 32;
    let mut inner = out.inner;
    let finish = inner
        .write_all(sum.as_ref())
        .and_then(|()| inner.flush())
        .and_then(|()| inner.into_inner().map_err(|e| e.into_error())?.sync_all());
    if let Err(e) = finish {
        let _ = std::fs::remove_file(&partial);
        return Err(io("writing", &partial)(e));
    }
    std::fs::rename(&partial, path).map_err(io("renaming", path))?;
    Ok(BackupSummary {
        header: header.clone(),
        records,
        bytes,
        sha256: hex(sum.as_ref()),
    })
}

fn partial_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    path.with_file_name(name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A reader that hashes what it reads.
struct Reading<R: Read> {
    inner: R,
    hash: digest::Context,
    bytes: u64,
}

impl<R: Read> Reading<R> {
    fn exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.hash.update(buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        let mut b = [0; 4];
        self.exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }
}

/// Reads and checks the whole file at `path`, calling `each(key, value)` for every record in
/// order; answers what the file holds. A damaged file is [`StorageError::Backup`]: `each` may
/// then have seen some records, so a caller that writes must verify first ([`verify`]).
pub fn read(
    path: &Path,
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
) -> Result<BackupSummary, StorageError> {
    let file = File::open(path).map_err(io("opening", path))?;
    let mut r = Reading {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: digest::Context::new(&digest::SHA256),
        bytes: 0,
    };
    let cut = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => damaged(path, "the file ends early (cut short?)"),
        _ => io("reading", path)(e),
    };
    let mut magic = [0; 16];
    r.exact(&mut magic).map_err(cut)?;
    if &magic != MAGIC {
        return Err(damaged(path, "not a fengqiao backup"));
    }
    let version = r.u32().map_err(cut)?;
    if version != FILE_VERSION {
        return Err(damaged(
            path,
            format!("backup file version {version}; this fqnode reads version {FILE_VERSION}"),
        ));
    }
    let len = r.u32().map_err(cut)?;
    if len > HEADER_MAX {
        return Err(damaged(path, "header too long"));
    }
    let mut head = vec![0; len as usize];
    r.exact(&mut head).map_err(cut)?;
    let header: BackupHeader =
        serde_json::from_slice(&head).map_err(|e| damaged(path, format!("header: {e}")))?;
    let mut records = 0u64;
    let mut key = Vec::new();
    let mut value = Vec::new();
    loop {
        let klen = r.u32().map_err(cut)?;
        if klen == END {
            break;
        }
        if klen == 0 || klen > KEY_MAX {
            return Err(damaged(
                path,
                format!("record {records}: key length {klen}"),
            ));
        }
        key.resize(klen as usize, 0);
        r.exact(&mut key).map_err(cut)?;
        let vlen = r.u32().map_err(cut)?;
        if vlen > VALUE_MAX {
            return Err(damaged(
                path,
                format!("record {records}: value length {vlen}"),
            ));
        }
        value.resize(vlen as usize, 0);
        r.exact(&mut value).map_err(cut)?;
        each(&key, &value)?;
        records += 1;
    }
    let mut count = [0; 8];
    r.exact(&mut count).map_err(cut)?;
    if u64::from_be_bytes(count) != records {
        return Err(damaged(path, "record count does not match"));
    }
    let sum = r.hash.clone().finish();
    let mut stored = [0; 32];
    r.inner.read_exact(&mut stored).map_err(cut)?;
    if stored != sum.as_ref() {
        return Err(damaged(
            path,
            "checksum does not match: the file is damaged",
        ));
    }
    let mut rest = [0; 1];
    if r.inner.read(&mut rest).map_err(io("reading", path))? != 0 {
        return Err(damaged(path, "bytes after the checksum"));
    }
    Ok(BackupSummary {
        header,
        records,
        bytes: r.bytes + 32,
        sha256: hex(&stored),
    })
}

/// Checks a backup file whole (layout, limits, record count, checksum) without writing
/// anything.
pub fn verify(path: &Path) -> Result<BackupSummary, StorageError> {
    read(path, |_, _| Ok(()))
}

/// Builds a data folder at `dir` (absent or empty) from the backup at `path`, verified first.
/// The node started on it raises its counters at open (ids and message numbers continue
/// above anything issued before, see `federation::raise_floors`) and resynchronises its links
/// (see `storage::federation`), so nothing is issued twice and no message is lost.
pub fn restore(path: &Path, dir: &Path) -> Result<BackupSummary, StorageError> {
    let summary = verify(path)?;
    if summary.header.store_format > super::STORE_FORMAT {
        return Err(StorageError::UnsupportedFormat {
            found: summary.header.store_format,
            supported: super::STORE_FORMAT,
        });
    }
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io("reading", dir))?;
        if entries.next().is_some() {
            return Err(StorageError::Backup(format!(
                "{} is not empty: restore into a new folder (nothing was written)",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let db = Db::open_default(dir)?;
    let tree = db.open_tree(super::space::STORE_TREE)?;
    let mut batch = Batch::default();
    let mut in_batch = 0usize;
    let written = read(path, |k, v| {
        batch.insert(k, v);
        in_batch += 1;
        if in_batch == 10_000 {
            tree.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
        Ok(())
    })?;
    tree.apply_batch(batch)?;
    // One more restore: the next open lifts today's case numbers above the lost node's.
    let meta = super::space::Space::new(&tree, super::keys::TreeId::Meta);
    let key = super::keys::META_RESTORES;
    let kind = super::codec::ValueKind::Counter;
    let restores: u32 = meta
        .get(key)?
        .map(|v| super::codec::decode(kind, super::keys::TreeId::Meta, key, &v))
        .transpose()?
        .unwrap_or(0);
    meta.insert(
        key,
        super::codec::encode(kind, &restores.saturating_add(1))?,
    )?;
    db.flush()?;
    drop(tree);
    drop(db);
    if let Some(parent) = dir.parent() {
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens a database folder, waiting for a handle dropped a moment ago to release its lock
    /// (sled frees it through epoch-deferred destruction).
    fn tree(dir: &Path) -> (Db, db::Tree) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            match Db::open_default(dir) {
                Ok(db) => break db,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(e.to_string().contains("lock"), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        };
        let t = db.open_tree(super::super::space::STORE_TREE).unwrap();
        (db, t)
    }

    fn header() -> BackupHeader {
        BackupHeader {
            node: "610116001001".into(),
            store_format: super::super::STORE_FORMAT,
            created_at_ms: 1,
        }
    }

    #[test]
    fn a_backup_restores_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let (_db, t) = tree(&tmp.path().join("a"));
        for i in 0..1000u32 {
            t.insert(i.to_be_bytes(), vec![i as u8; (i % 50) as usize])
                .unwrap();
        }
        let file = tmp.path().join("x.fqbackup");
        let made = write(&t, &file, &header()).unwrap();
        assert_eq!(made.records, 1000);
        let checked = verify(&file).unwrap();
        assert_eq!(checked, made);
        assert_eq!(checked.bytes, std::fs::metadata(&file).unwrap().len());
        let restored = restore(&file, &tmp.path().join("b")).unwrap();
        assert_eq!(restored.records, 1000);
        let (_db2, t2) = tree(&tmp.path().join("b"));
        for entry in t.iter() {
            let (k, v) = entry.unwrap();
            assert_eq!(t2.get(&k).unwrap(), Some(v));
        }
        // And the count of restores, which lifts the case numbers at the next open.
        assert_eq!(t2.len(), 1001);
    }

    #[test]
    fn damage_is_found_and_nothing_is_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let (_db, t) = tree(&tmp.path().join("a"));
        t.insert(b"k", b"v".to_vec()).unwrap();
        let file = tmp.path().join("x.fqbackup");
        write(&t, &file, &header()).unwrap();
        let good = std::fs::read(&file).unwrap();
        // One bit flipped anywhere, or the file cut short: refused.
        for at in [20, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            std::fs::write(&file, &bad).unwrap();
            assert!(verify(&file).is_err(), "flip at {at}");
        }
        std::fs::write(&file, &good[..good.len() - 5]).unwrap();
        let err = restore(&file, &tmp.path().join("b")).unwrap_err();
        assert!(err.to_string().contains("ends early"), "{err}");
        assert!(!tmp.path().join("b").exists());
        std::fs::write(&file, b"not a backup at all").unwrap();
        assert!(verify(&file).is_err());
    }

    #[test]
    fn restore_wants_an_empty_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let (_db, t) = tree(&tmp.path().join("a"));
        let file = tmp.path().join("x.fqbackup");
        write(&t, &file, &header()).unwrap();
        let busy = tmp.path().join("busy");
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::write(busy.join("x"), b"x").unwrap();
        assert!(restore(&file, &busy).is_err());
    }
}
