//! 历史台账导入: legacy records read in from an office's spreadsheet
//! (`fqctl case import`, the console's 导入, the `ImportCases` RPC): one rule for all three.
//!
//! The file is read (`crate::report::sheet`), every row checked (`crate::domain::import`),
//! and each good row registered as a case of its historic date and status through the one
//! idempotent registration of the store (key: the row's content), several at a time so that
//! the store's group commit writes them together. Running an import twice adds nothing: the
//! second run reports every row as already imported. No early-warning rule runs on legacy
//! records (a repeat visit of years ago is not news). The import is recorded in the audit log.

use super::App;
use crate::domain::import::{self, LegacyRow, Rejected};
use crate::domain::{Ctx, machine, validate};
use crate::error::Error;
use crate::identity::{Action, Identity};

/// How many rows are written at once (each waits for the group commit of its batch).
const IN_FLIGHT: usize = 64;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Imported {
    /// Rows that became new cases.
    pub imported: usize,
    /// Rows imported by an earlier run (the same record): nothing added.
    pub repeated: usize,
    /// Rows refused, as `第N行：reason`, in the file's order.
    pub rejected: Vec<String>,
}

impl App {
    /// Imports the legacy records of `content` (an `.xlsx` or `.csv` named `file_name`).
    /// A file that is not the template at all (unreadable, a missing header) is
    /// INVALID_ARGUMENT with nothing written; otherwise each row is imported or reported.
    pub async fn import_cases(
        &self,
        who: &Identity,
        file_name: &str,
        content: &[u8],
    ) -> Result<Imported, Error> {
        self.authorize(who, Action::ImportCases)?;
        let now = self.now();
        let table = crate::report::sheet::read_table(file_name, content).map_err(template)?;
        let (rows, bad) = import::read_rows(&table, crate::domain::calendar::china_date(now))
            .map_err(template)?;
        let mut rejected: Vec<Rejected> = bad;
        let mut good = Vec::with_capacity(rows.len());
        for row in rows {
            // The registration's own limits, as for any registration (the row's checks are
            // stricter; this is the guard that no path skips).
            match validate::validate_new_case(&row.new_case()) {
                Ok(()) => good.push(row),
                Err(e) => rejected.push(Rejected {
                    line: row.line,
                    reason: e.to_string(),
                }),
            }
        }
        let mut out = Imported::default();
        let actor = who.uri();
        let mut results = Vec::with_capacity(good.len());
        let mut running = tokio::task::JoinSet::new();
        for row in good {
            if running.len() >= IN_FLIGHT
                && let Some(done) = running.join_next().await
            {
                results.push(done.map_err(|e| Error::Internal(format!("import task: {e}")))?);
            }
            let (app, actor) = (self.clone(), actor.clone());
            running.spawn(async move { (row.line, app.import_row(actor, row).await) });
        }
        while let Some(done) = running.join_next().await {
            results.push(done.map_err(|e| Error::Internal(format!("import task: {e}")))?);
        }
        for (line, result) in results {
            match result {
                Ok(true) => out.imported += 1,
                Ok(false) => out.repeated += 1,
                Err(Error::Domain(e)) => rejected.push(Rejected {
                    line,
                    reason: e.to_string(),
                }),
                // A storage failure stops the import: what was written stays (a second run
                // completes it), and the caller learns why.
                Err(e) => return Err(e),
            }
        }
        rejected.sort_by_key(|r| r.line);
        out.rejected = rejected.iter().map(ToString::to_string).collect();
        tracing::info!(
            imported = out.imported,
            repeated = out.repeated,
            rejected = out.rejected.len(),
            "legacy records imported"
        );
        self.audit(
            who,
            "",
            format!(
                "ImportCases {file_name}: {} imported, {} already, {} rejected",
                out.imported,
                out.repeated,
                out.rejected.len()
            ),
        )
        .await?;
        Ok(out)
    }

    /// Registers one legacy row; true when it made a new case.
    async fn import_row(&self, actor: String, row: LegacyRow) -> Result<bool, Error> {
        let now = self.now();
        let node = self.state.code.as_str().to_string();
        let deadlines = self.state.deadlines.clone();
        let day = row.day();
        let key = row.key();
        let build_day = day.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (node, actor, deadlines, row, build_day) = (
                node.clone(),
                actor.clone(),
                deadlines.clone(),
                row.clone(),
                build_day.clone(),
            );
            let code = super::cases::new_lookup_code();
            let result = self
                .state
                .store
                .register(key.clone(), day.clone(), move |seq| {
                    let ctx = Ctx {
                        now,
                        node: &node,
                        actor: &actor,
                        deadlines: &deadlines,
                    };
                    let id = machine::case_id(&node, &build_day, seq);
                    import::legacy_case(&ctx, &row, id, code.clone())
                })
                .await;
            match result {
                Err(crate::storage::WriteError::Storage(
                    crate::storage::StorageError::LookupCodeTaken { .. },
                )) if attempts < 3 => {}
                other => return Ok(other?.created),
            }
        }
    }
}

fn template(e: import::TemplateError) -> Error {
    crate::domain::DomainError::invalid("file", e.0).into()
}
