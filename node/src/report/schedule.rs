//! Scheduled reports: at each sweep, the report of the last complete period of the node's
//! cadence is written if it is not there yet.
//!
//! Files: `DIR/CODE-CADENCE-FIRSTDAY.csv` and `.txt` (e.g. `610116001-week-2026-11-09.txt`),
//! each written to a temporary name and renamed, the text last: a report whose `.txt` exists
//! is complete, and its existence is what marks the period as done. So a restart never writes
//! a period twice, and a node that was down over a boundary writes the missed period at its
//! first sweep (only the latest one: periods further back are made on demand).

use std::path::{Path, PathBuf};

use super::{Cadence, period, render};
use crate::domain::Timestamp;
use crate::storage::{StorageError, Store};
use crate::text::Lang;

/// Why a scheduled report was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("writing report {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn write_atomically(path: &Path, body: &str) -> Result<(), ScheduleError> {
    let io = |source| ScheduleError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Writes the report of the last complete `cadence` period before `now` into `dir`, unless it
/// is there already. Returns the text file written, if any. Blocking: run it off the runtime.
pub fn write_due(
    store: &Store,
    node: &str,
    cadence: Cadence,
    dir: &Path,
    now: Timestamp,
) -> Result<Option<PathBuf>, ScheduleError> {
    let p = period::last_complete(cadence, now);
    let first_day = p.label.split("..").next().unwrap_or(&p.label);
    let stem = format!("{node}-{}-{first_day}", cadence.as_str());
    let txt = dir.join(format!("{stem}.txt"));
    if txt.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).map_err(|source| ScheduleError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let data = super::make(store, node, &p, now)?;
    write_atomically(&dir.join(format!("{stem}.csv")), &render::to_csv(&data))?;
    write_atomically(&txt, &render::to_text(&data, Lang::Zh))?;
    Ok(Some(txt))
}
