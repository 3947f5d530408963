//! 备份: a consistent backup of the node's store, for the admin (`fqctl backup`, the
//! `BackupService`); the file format and the restore are `crate::storage::backup`'s.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::App;
use crate::error::Error;
use crate::identity::{Action, Identity};
use crate::storage::backup::BackupSummary;

/// A backup file written for one caller; removed when dropped (after it was streamed, or
/// when the stream was abandoned).
pub struct BackupFile {
    pub path: PathBuf,
    pub summary: BackupSummary,
    state: crate::service::SharedState,
}

impl Drop for BackupFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.state.backing_up.store(false, Ordering::SeqCst);
    }
}

impl App {
    /// Takes a backup into a file under the node's `backup-tmp` folder (one at a time:
    /// RESOURCE_EXHAUSTED while another runs), recorded in the audit log first (so the backup
    /// holds the record of its own taking).
    pub async fn backup(&self, who: &Identity) -> Result<BackupFile, Error> {
        self.authorize(who, Action::Backup)?;
        if self
            .state
            .backing_up
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(Error::Overloaded(
                "a backup is already running: try again when it is done".into(),
            ));
        }
        let dir = self.state.backup_dir.clone();
        let path = dir.join(format!(
            "backup-{}-{}.fqbackup",
            self.state.code,
            self.now().millis()
        ));
        let taken = async {
            // Recorded first, so that the backup itself holds the record of its taking.
            self.audit(who, "", "Backup".into()).await?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::Internal(format!("cannot create {}: {e}", dir.display())))?;
            let started = std::time::Instant::now();
            let summary = self.state.store.backup(path.clone(), self.now()).await?;
            tracing::info!(
                records = summary.records,
                bytes = summary.bytes,
                took_ms = started.elapsed().as_millis() as u64,
                "backup taken"
            );
            Ok::<_, Error>(summary)
        }
        .await;
        let summary = match taken {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                self.state.backing_up.store(false, Ordering::SeqCst);
                return Err(e);
            }
        };
        tracing::info!(caller = %who.uri(), sha256 = %summary.sha256, "backup handed out");
        Ok(BackupFile {
            path,
            summary,
            state: self.state.clone(),
        })
    }
}
