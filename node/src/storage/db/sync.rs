//! Making what the engine wrote durable: sled 0.34's own flush does not (see [`Syncer`]), so
//! the store fsyncs sled's files itself. The only code that knows which files sled writes.
//!
//! An error names what was done to which file (`StorageError::Io`'s `op`), and that decides
//! what it means (`commit::classify`): [`BEFORE_SYNC_OPS`] fail before anything was fsynced.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::Db;
use crate::storage::StorageError;

/// The `op`s of the errors of [`Syncer`] met before any fsync: the named file or directory
/// could not be opened, listed or inspected, so nothing was synced at all (and nothing that
/// was dirty was dropped).
pub(crate) const BEFORE_SYNC_OPS: [&str; 3] = ["opening to sync", "listing", "inspecting"];

/// Makes what sled wrote durable. sled 0.34 writes its log to `db` with `sync_file_range`
/// (no metadata, no disk cache flush), writes large values to `blobs/<lsn>` without fsync,
/// writes `conf` once without fsync, and never fsyncs the directory. Snapshots (`snap.*`) it
/// fsyncs itself but renames without a directory fsync.
pub(crate) struct Syncer {
    dir: PathBuf,
    db_file: File,
    /// Blob name → length already synced (blobs are write-once; a grown one was mid-write).
    blobs: HashMap<OsString, u64>,
    /// Names in the store directory at the last directory sync.
    entries: HashSet<OsString>,
}

impl Syncer {
    /// Opens the handles kept for the store's lifetime and syncs what sled wrote on open.
    /// `created`: the directory itself is new, so its parent is synced too.
    pub(crate) fn open(dir: &Path, created: bool) -> Result<Syncer, StorageError> {
        let db_path = dir.join("db");
        let db_file = OpenOptions::new()
            .write(true)
            .open(&db_path)
            .map_err(io("opening", &db_path))?;
        let conf = dir.join("conf");
        File::open(&conf)
            .and_then(|f| f.sync_all())
            .map_err(io("syncing", &conf))?;
        if let Some(parent) = dir.parent().filter(|_| created) {
            sync_dir(parent)?;
        }
        Ok(Syncer {
            dir: dir.to_owned(),
            db_file,
            blobs: HashMap::new(),
            entries: HashSet::new(),
        })
    }

    /// Flushes sled's buffers and fsyncs every file and directory they reached.
    pub(crate) fn sync(&mut self, db: &Db) -> Result<(), StorageError> {
        db.flush()?;
        // fdatasync also persists the file size, which sync_file_range does not.
        self.db_file
            .sync_data()
            .map_err(|source| StorageError::Io {
                op: "syncing",
                path: self.dir.join("db"),
                source,
            })?;
        self.sync_blobs()?;
        let entries = list(&self.dir)?;
        if entries != self.entries {
            sync_dir(&self.dir)?;
            self.entries = entries;
        }
        Ok(())
    }

    fn sync_blobs(&mut self) -> Result<(), StorageError> {
        let blobs_dir = self.dir.join("blobs");
        let mut seen = HashMap::with_capacity(self.blobs.len());
        let mut new_entry = false;
        for entry in std::fs::read_dir(&blobs_dir).map_err(io("listing", &blobs_dir))? {
            let entry = entry.map_err(io("listing", &blobs_dir))?;
            let path = entry.path();
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                // Removed by sled's cleanup since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("inspecting", &path)(e)),
            };
            let name = entry.file_name();
            match self.blobs.get(&name) {
                Some(&synced) if synced == len => {}
                previous => {
                    new_entry |= previous.is_none();
                    let file = match OpenOptions::new().write(true).open(&path) {
                        Ok(file) => file,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io("opening to sync", &path)(e)),
                    };
                    file.sync_data().map_err(io("syncing", &path))?;
                }
            }
            seen.insert(name, len);
        }
        self.blobs = seen;
        if new_entry {
            sync_dir(&blobs_dir)?;
        }
        Ok(())
    }
}

/// Wraps an I/O error with what was done to which path. The `op` decides what a failure
/// means (`commit::classify`): only "opening to sync", "listing" and "inspecting"
/// ([`BEFORE_SYNC_OPS`]) leave the store writable.
fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_owned();
    move |source| StorageError::Io { op, path, source }
}

fn list(dir: &Path) -> Result<HashSet<OsString>, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(io("listing", dir))?;
    entries
        .map(|e| e.map(|e| e.file_name()).map_err(io("listing", dir)))
        .collect()
}

/// fsyncs a directory so that the entries created or renamed in it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    File::open(dir)
        .map_err(io("opening to sync", dir))?
        .sync_all()
        .map_err(io("syncing directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
