//! What the console asks of the application layer beyond the operator API's operations: which
//! actions a caller has on a case, where a case may be transferred, the report files.

use super::App;
use super::cases::Listing;
use super::moves::View;
use crate::code::NodeCode;
use crate::domain::{Case, Command, DomainError, PlanUpdate, machine};
use crate::error::Error;
use crate::identity::{self, Action, Identity};

/// Most rows of a 台账 export.
pub const EXPORT_MAX_ROWS: usize = 10_000;

/// The file a 台账 export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerFormat {
    /// An Excel workbook (opens in Excel and WPS).
    Xlsx,
    /// CSV, UTF-8 with a BOM (for Excel and WPS).
    Csv,
}

/// An exported 台账.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub file_name: String,
    pub content_type: &'static str,
    pub content: Vec<u8>,
    pub rows: usize,
}

/// The actions a caller may take on a case in its current status: the forms its page shows.
/// The operations check the same rules again when a form is posted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions {
    pub review: bool,
    pub reject: bool,
    pub assign: bool,
    pub mediate: bool,
    pub resolve: bool,
    pub follow_up: bool,
    pub risk: bool,
    pub extend: bool,
    pub plan: bool,
    pub escalate: bool,
    pub transfer: bool,
    pub supervise: bool,
}

/// Longest name of a report file.
const REPORT_NAME_MAX: usize = 128;

impl App {
    fn may(who: &Identity, action: Action) -> bool {
        match who {
            Identity::Operator { role, .. } => identity::allowed(*role, action),
            Identity::Node { .. } => false,
        }
    }

    /// The actions `who` has on case `id` as this node holds it.
    pub fn actions(&self, who: &Identity, id: &str) -> Result<Actions, Error> {
        self.authorize(who, Action::ReadCase)?;
        Ok(match self.view(id)? {
            View::Owned(case) => self.owner_actions(who, &case),
            // An ancestor may order (督办) and move (交办) a case it follows.
            View::Copy(case, _) => Actions {
                supervise: Self::may(who, Action::SuperviseCase),
                transfer: crate::domain::moves::movable(case.status)
                    && Self::may(who, Action::TransferCase)
                    && !self.copy_targets(&case).is_empty(),
                ..Actions::default()
            },
            View::Tombstone(_) | View::Nothing => Actions::default(),
        })
    }

    fn owner_actions(&self, who: &Identity, case: &Case) -> Actions {
        let s = case.status;
        let can =
            |action: Action, cmd: &Command| Self::may(who, action) && machine::permits(s, cmd);
        let review = Command::Review {
            accept: true,
            reason: String::new(),
            guidance: String::new(),
        };
        let assign = Command::Assign {
            handler: String::new(),
            due_at: None,
        };
        let follow = Command::FollowUp {
            satisfaction: 5,
            notes: String::new(),
        };
        let extend = Command::ExtendDeadline {
            until: case.created_at,
            reason: String::new(),
        };
        let plan = Command::UpdatePlan(PlanUpdate::default());
        let movable = !s.is_final();
        Actions {
            review: can(Action::AcceptCase, &review),
            reject: can(Action::RejectCase, &review),
            assign: can(Action::AssignCase, &assign),
            mediate: can(Action::RecordMediation, &assign),
            resolve: can(Action::ResolveCase, &assign),
            follow_up: can(Action::RecordFollowUp, &follow),
            risk: can(Action::ChangeRisk, &plan),
            extend: can(Action::ExtendDeadline, &extend) && !case.deadline_extended,
            plan: can(Action::PlanCase, &plan),
            escalate: movable
                && Self::may(who, Action::EscalateCase)
                && self.state.federation.parent.is_some(),
            transfer: movable
                && Self::may(who, Action::TransferCase)
                && !self.transfer_targets_of().is_empty(),
            supervise: false,
        }
    }

    /// The children this node knows, but the one `case` lies below.
    fn copy_targets(&self, case: &Case) -> Vec<NodeCode> {
        self.state
            .federation
            .known_children()
            .into_iter()
            .filter(|c| !case.owner_node.starts_with(c.as_str()))
            .collect()
    }

    fn transfer_targets_of(&self) -> Vec<NodeCode> {
        let mut out: Vec<NodeCode> = self.state.federation.parent.iter().cloned().collect();
        out.extend(self.state.federation.known_children());
        out
    }

    /// Where case `id` may be transferred from the console: for a case owned here, the
    /// parent and the children this node knows (links and figures); for a case it follows
    /// (a copy), the children other than the one the case lies below.
    pub fn transfer_targets(&self, who: &Identity, id: &str) -> Result<Vec<NodeCode>, Error> {
        self.authorize(who, Action::TransferCase)?;
        Ok(match self.view(id)? {
            View::Owned(_) => self.transfer_targets_of(),
            View::Copy(case, _) => self.copy_targets(&case),
            View::Tombstone(_) | View::Nothing => Vec::new(),
        })
    }

    /// Records in the audit log that `who` exported a listing (a 台账), before it is
    /// answered.
    pub async fn record_export(&self, who: &Identity, what: &str) -> Result<(), Error> {
        self.authorize(who, Action::ReadCase)?;
        self.audit(who, "", what.to_owned()).await
    }

    /// The cases of a 台账 export (the console's 导出, `fqctl case export`): those of the search
    /// `q` if not empty, else of `listing` (every page), at most [`EXPORT_MAX_ROWS`]; masked as
    /// listings are unless `unmasked` is asked by a role that may see personal data (refused
    /// for another; supervised copies stay masked: their owner keeps the data). The export,
    /// and whether it was unmasked, is recorded in the audit log before it is answered.
    pub async fn export_cases(
        &self,
        who: &Identity,
        mut listing: Listing,
        q: &str,
        unmasked: bool,
    ) -> Result<Vec<Case>, Error> {
        if unmasked {
            self.authorize(who, Action::ReadPersonalData)?;
        }
        let reveal = unmasked && !listing.supervised;
        let mut cases = if !q.trim().is_empty() {
            let found = self.search_unmasked(who, q)?.1;
            if reveal {
                found
            } else {
                found.iter().map(crate::domain::mask::masked).collect()
            }
        } else {
            listing.page_size = super::cases::MAX_PAGE_SIZE;
            let mut cases = Vec::new();
            loop {
                let page = if reveal {
                    self.list_unmasked(who, listing.clone())?
                } else {
                    self.list(who, listing.clone())?
                };
                cases.extend(page.cases);
                match page.next_page_token {
                    Some(t) if cases.len() < EXPORT_MAX_ROWS => listing.page_token = Some(t),
                    _ => break,
                }
            }
            cases
        };
        cases.truncate(EXPORT_MAX_ROWS);
        let what = if reveal {
            format!("ExportCases {} rows unmasked (含个人信息)", cases.len())
        } else {
            format!("ExportCases {} rows", cases.len())
        };
        self.record_export(who, &what).await?;
        Ok(cases)
    }

    /// The 台账 of [`App::export_cases`] as a file: a title row naming the node and the
    /// moment, then the cases (see `crate::report::ledger`).
    pub async fn export_ledger(
        &self,
        who: &Identity,
        listing: Listing,
        q: &str,
        format: LedgerFormat,
        lang: crate::text::Lang,
        unmasked: bool,
    ) -> Result<Ledger, Error> {
        let cases = self.export_cases(who, listing, q, unmasked).await?;
        let code = &self.state.code;
        let title = format!(
            "{code} {}（{} {}）",
            lang.t("矛盾纠纷台账", "dispute register"),
            lang.t("导出于", "exported"),
            crate::domain::calendar::china_datetime(self.now())
        );
        let (ext, content_type, content) = match format {
            LedgerFormat::Xlsx => (
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                crate::report::ledger::xlsx(&title, &cases, lang)
                    .map_err(|e| Error::Internal(format!("writing the workbook: {e}")))?,
            ),
            LedgerFormat::Csv => (
                "csv",
                "text/csv; charset=utf-8",
                crate::report::ledger::csv(&title, &cases, lang).into_bytes(),
            ),
        };
        Ok(Ledger {
            file_name: format!("cases-{code}.{ext}"),
            content_type,
            content,
            rows: cases.len(),
        })
    }

    /// The cadence reports written in the reports folder (name, size in bytes), newest
    /// first.
    pub fn report_files(&self, who: &Identity) -> Result<Vec<(String, u64)>, Error> {
        self.authorize(who, Action::ExportReport)?;
        let dir = &self.state.reports_dir;
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::Internal(format!("reading {}: {e}", dir.display()))),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if report_name_ok(&name) {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((name, size));
            }
        }
        out.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(out)
    }

    /// The bytes of report file `name` (one of [`App::report_files`]), recorded in the audit
    /// log as an export.
    pub async fn report_file(&self, who: &Identity, name: &str) -> Result<Vec<u8>, Error> {
        self.authorize(who, Action::ExportReport)?;
        if !report_name_ok(name) {
            return Err(DomainError::invalid("name", "not a report file name").into());
        }
        let path = self.state.reports_dir.join(name);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(name.to_owned()));
            }
            Err(e) => return Err(Error::Internal(format!("reading {}: {e}", path.display()))),
        };
        self.audit(who, "", format!("ExportReport {name}")).await?;
        Ok(bytes)
    }
}

/// A report file's name: `[A-Za-z0-9._-]`, ending in `.txt` or `.csv`, not hidden.
fn report_name_ok(name: &str) -> bool {
    name.len() <= REPORT_NAME_MAX
        && !name.starts_with('.')
        && (name.ends_with(".txt") || name.ends_with(".csv"))
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_cannot_leave_the_folder() {
        assert!(report_name_ok("610116-month-2026-11-01.csv"));
        for bad in ["../x.csv", "a/b.txt", ".hidden.txt", "x.sh", "x.csv\0"] {
            assert!(!report_name_ok(bad), "{bad}");
        }
    }
}
