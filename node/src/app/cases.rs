//! Cases at their owner: registration, reading, listing, the lifecycle and oversight commands,
//! alerts and reports.
//!
//! Every command goes through the state machine and then the rules' post-step
//! ([`alert::after_command`]: reopen supervision, alerts), all in one transaction; a
//! registration is followed by the early-warning evaluation (`crate::sweep::early`).

use rand::Rng;

use super::moves::View;
use super::{App, Shown};
use crate::domain::alert::{self, Alert};
use crate::domain::audit::Access;
use crate::domain::{
    CaseStatus, Category, Command, Ctx, Deadlines, DomainError, Event, NewCase, RiskLevel, machine,
    mask, validate,
};
use crate::error::Error;
use crate::identity::{Action, Identity};
use crate::report::{self, ReportData};
use crate::storage::{CaseQuery, StorageError, WriteError};

/// Most alerts [`App::alerts`] answers with (the newest).
pub const MAX_ALERTS: usize = 500;

/// Default and largest number of views [`App::access_log`] answers with.
pub const DEFAULT_ACCESS: usize = 100;
pub const MAX_ACCESS: usize = 1000;

/// Default and largest page sizes of [`App::list`].
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;

/// Alphabet of citizen lookup codes: no 0/O, 1/I/L, so they survive being read over the phone.
pub(crate) const LOOKUP_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// 12 symbols of 31: about 59 bits, unguessable.
pub(crate) const LOOKUP_LEN: usize = 12;

/// A fresh lookup code (from [`crate::random`]).
pub(crate) fn new_lookup_code() -> String {
    crate::random::with(|rng| lookup_code_from(rng))
}

fn lookup_code_from(rng: &mut dyn rand::RngCore) -> String {
    let mut s = String::with_capacity(LOOKUP_LEN + 2);
    for i in 0..LOOKUP_LEN {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        let idx = rng.random_range(0..LOOKUP_ALPHABET.len());
        s.push(char::from(LOOKUP_ALPHABET[idx]));
    }
    s
}

/// What a listing asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub status: Option<CaseStatus>,
    pub risk: Option<RiskLevel>,
    pub category: Option<Category>,
    /// Only cases whose running deadline has passed.
    pub overdue_only: bool,
    /// Supervised copies instead of owned cases and tombstones.
    pub supervised: bool,
    /// 0: [`DEFAULT_PAGE_SIZE`]; at most [`MAX_PAGE_SIZE`].
    pub page_size: usize,
    pub page_token: Option<String>,
    /// Newest first (descending case id) instead of the index's order (see
    /// `storage::CaseQuery::newest_first`).
    pub newest_first: bool,
}

/// One page of a listing: cases with personal data masked.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub cases: Vec<crate::domain::Case>,
    pub next_page_token: Option<String>,
}

/// What a form's registration ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    Registered(Box<Shown>),
    /// Not saved: the open cases here with the same ID number or phone (masked).
    RepeatVisits(Vec<crate::domain::Case>),
}

/// The permission a command needs.
fn action_of(cmd: &Command) -> Result<Action, Error> {
    Ok(match cmd {
        Command::Review { accept: true, .. } => Action::AcceptCase,
        Command::Review { accept: false, .. } => Action::RejectCase,
        Command::Assign { .. } => Action::AssignCase,
        Command::RecordMediation { .. } => Action::RecordMediation,
        Command::Resolve { .. } => Action::ResolveCase,
        Command::FollowUp { .. } => Action::RecordFollowUp,
        Command::ChangeRisk { .. } => Action::ChangeRisk,
        Command::ExtendDeadline { .. } => Action::ExtendDeadline,
        Command::UpdatePlan(_) | Command::AddProgress { .. } => Action::PlanCase,
        // The node's own rules issue these; no operator does.
        Command::SuperviseOverdue { .. } | Command::RaiseRisk { .. } => {
            return Err(Error::PermissionDenied(
                "this command is issued by the node's rules, not by an operator".into(),
            ));
        }
    })
}

impl App {
    /// Registers a new case here (one window for every channel). A repeated idempotency key
    /// answers with the original case and changes nothing.
    pub async fn register(&self, who: &Identity, new: NewCase) -> Result<Shown, Error> {
        self.authorize(who, Action::RegisterCase)?;
        validate::validate_new_case(&new)?;
        let (case, _) = self.register_by(who.uri(), new).await?;
        Ok(self.shown(who, case))
    }

    /// Registers `new` (validated by the caller) in the name of `actor` (an identity URI, or
    /// the citizens' channel's actor): the one registration of every channel. Also answers
    /// whether the case is new (false: its idempotency key had registered it before).
    pub(crate) async fn register_by(
        &self,
        actor: String,
        new: NewCase,
    ) -> Result<(crate::domain::Case, bool), Error> {
        let now = self.now();
        let day = machine::china_day(now);
        let node = self.state.code.as_str().to_string();
        let deadlines = self.state.deadlines.clone();
        // A fresh lookup code colliding with an existing one is astronomically rare (59 bits),
        // but it is retried rather than reported as a failure.
        let mut attempts = 0;
        let reg = loop {
            attempts += 1;
            let (node, actor, deadlines, new) =
                (node.clone(), actor.clone(), deadlines.clone(), new.clone());
            let lookup_code = new_lookup_code();
            let build_day = day.clone();
            let result = self
                .state
                .store
                .register(new.idempotency_key.clone(), day.clone(), move |seq| {
                    let ctx = Ctx {
                        now,
                        node: &node,
                        actor: &actor,
                        deadlines: &deadlines,
                    };
                    let id = machine::case_id(&node, &build_day, seq);
                    machine::register(&ctx, &new, id, lookup_code.clone())
                })
                .await;
            match result {
                Err(WriteError::Storage(StorageError::LookupCodeTaken { .. })) if attempts < 3 => {}
                other => break other?,
            }
        };
        tracing::Span::current().record("case_id", reg.case.id.as_str());
        let mut case = reg.case;
        if reg.created {
            tracing::info!(status = ?case.status, risk = ?case.risk, "case registered");
            // The registration stands whatever happens here; the sweep catches up on failure.
            match crate::sweep::early::after_register(&self.state, &case, now).await {
                Ok(0) => {}
                Ok(_) => {
                    if let Some(c) = self.state.store.get_case(&case.id)? {
                        case = c;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "early warning deferred to the sweep"),
            }
        } else {
            tracing::info!("repeated registration: original case returned");
        }
        Ok((case, reg.created))
    }

    /// Registers a case taken through a form (the console's 登记, the citizens' channel):
    /// [`App::register`] after the stricter checks of such forms
    /// ([`validate::validate_intake`]: ID check character, plausible phones). Unless
    /// `repeat_seen`, a registration whose ID number or phone is in an open case here is not
    /// saved: those cases come back first (重复来访, [`App::repeat_visits`]).
    pub async fn register_form(
        &self,
        who: &Identity,
        new: NewCase,
        repeat_seen: bool,
    ) -> Result<Intake, Error> {
        self.authorize(who, Action::RegisterCase)?;
        validate::validate_intake(&new)?;
        if !repeat_seen {
            let ids: Vec<String> = new.parties.iter().map(|p| p.id_number.clone()).collect();
            let phones: Vec<String> = new.parties.iter().map(|p| p.phone.clone()).collect();
            let found = self.repeat_visits(who, &ids, &phones)?;
            if !found.is_empty() {
                return Ok(Intake::RepeatVisits(found));
            }
        }
        Ok(Intake::Registered(Box::new(self.register(who, new).await?)))
    }

    /// A case as this node holds it: owned, else its supervised copy (masked), else its
    /// tombstone. A view of an owned case's personal data, unmasked, is recorded for the
    /// auditor before it is answered ([`App::access_log`]).
    pub async fn get(&self, who: &Identity, id: &str) -> Result<Shown, Error> {
        self.authorize(who, Action::ReadCase)?;
        let key = id.to_owned();
        match self.read(move |app| app.view(&key)).await? {
            View::Owned(case) => {
                let shown = self.shown(who, case);
                if shown.reveal && !shown.case.parties.is_empty() {
                    self.audit(who, id, "GetCase".into()).await?;
                }
                Ok(shown)
            }
            View::Tombstone(case) => Ok(self.shown(who, case)),
            View::Copy(case, _) => Ok(Shown {
                case,
                reveal: false,
            }),
            View::Nothing => Err(Error::NotFound(id.to_owned())),
        }
    }

    /// A page of owned cases and tombstones (or of supervised copies), newest first, masked.
    pub fn list(&self, who: &Identity, listing: Listing) -> Result<Page, Error> {
        let page = self.list_unmasked(who, listing)?;
        // A listing never shows personal data: the parties and the free text are masked for
        // every reader (the case page is where a role that may see them does).
        Ok(Page {
            cases: page.cases.iter().map(mask::masked).collect(),
            next_page_token: page.next_page_token,
        })
    }

    /// [`App::list`] before masking: for a caller that masks or audits itself (the 台账
    /// export of a role that may see personal data).
    pub(crate) fn list_unmasked(&self, who: &Identity, listing: Listing) -> Result<Page, Error> {
        self.authorize(who, Action::ReadCase)?;
        let page_size = match listing.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(DomainError::invalid(
                    "page_size",
                    format!("at most {MAX_PAGE_SIZE}, got {n}"),
                )
                .into());
            }
            n => n,
        };
        let query = CaseQuery {
            status: listing.status,
            risk: listing.risk,
            category: listing.category,
            overdue_at: listing.overdue_only.then_some(self.now()),
            supervised: listing.supervised,
            page_size,
            page_token: listing.page_token.filter(|t| !t.is_empty()),
            newest_first: listing.newest_first,
        };
        let page = self.state.store.list_cases(&query)?;
        Ok(Page {
            cases: page.cases,
            next_page_token: page.next_page_token,
        })
    }

    /// The whole history of a case held here (owned, tombstone or supervised copy).
    pub fn history(&self, who: &Identity, id: &str) -> Result<Vec<Event>, Error> {
        self.authorize(who, Action::ReadCase)?;
        match self.view(id)? {
            View::Owned(_) | View::Tombstone(_) => Ok(self.state.store.history(id)?),
            View::Copy(_, history) => Ok(history),
            View::Nothing => Err(Error::NotFound(id.to_owned())),
        }
    }

    /// Applies an operator's command to a case owned here, durably, with the rules'
    /// post-step in the same transaction.
    pub async fn command(
        &self,
        who: &Identity,
        case_id: &str,
        cmd: Command,
    ) -> Result<Shown, Error> {
        self.authorize(who, action_of(&cmd)?)?;
        let case = self.command_by(who.uri(), case_id, cmd).await?;
        Ok(self.shown(who, case))
    }

    /// Applies `cmd` to case `case_id` owned here in the name of `actor` (authorized by the
    /// caller), durably, with the rules' post-step in the same transaction.
    pub(crate) async fn command_by(
        &self,
        actor: String,
        case_id: &str,
        cmd: Command,
    ) -> Result<crate::domain::Case, Error> {
        let node = self.state.code.as_str().to_string();
        let deadlines: Deadlines = self.state.deadlines.clone();
        let policy = self.state.policy.clone();
        let now = self.now();
        let case = self
            .state
            .store
            .update_raising(case_id.to_owned(), move |case| {
                let ctx = Ctx {
                    now,
                    node: &node,
                    actor: &actor,
                    deadlines: &deadlines,
                };
                let (next, events) = machine::apply(case, &ctx, &cmd)?;
                Ok(alert::after_command(case, next, events, &ctx, &policy))
            })
            .await?;
        Ok(case)
    }

    /// Who viewed personal data here, newest first (at most `limit`, 1–[`MAX_ACCESS`]; 0:
    /// [`DEFAULT_ACCESS`]), at or after `since`, by `actor` (its whole identity URI or its
    /// end, as "director/boss" or "boss"), about `case_id` (empty: any).
    pub fn access_log(
        &self,
        who: &Identity,
        limit: usize,
        since: Option<crate::domain::Timestamp>,
        actor: &str,
        case_id: &str,
    ) -> Result<Vec<Access>, Error> {
        self.authorize(who, Action::ReadAccessLog)?;
        let limit = match limit {
            0 => DEFAULT_ACCESS,
            n if n > MAX_ACCESS => {
                return Err(DomainError::invalid(
                    "limit",
                    format!("at most {MAX_ACCESS}, got {n}"),
                )
                .into());
            }
            n => n,
        };
        let actor_ok = |a: &Access| {
            actor.is_empty() || a.actor == actor || a.actor.ends_with(&format!("/{actor}"))
        };
        let case_ok = |a: &Access| case_id.is_empty() || a.case_id == case_id;
        Ok(self
            .state
            .store
            .access_newest(limit, since, |a| actor_ok(a) && case_ok(a))?)
    }

    /// The newest alerts of this node (at most [`MAX_ALERTS`]).
    pub fn alerts(&self, who: &Identity) -> Result<Vec<Alert>, Error> {
        self.newest_alerts(who, MAX_ALERTS)
    }

    /// The `limit` newest alerts of this node (at most [`MAX_ALERTS`]).
    pub fn newest_alerts(&self, who: &Identity, limit: usize) -> Result<Vec<Alert>, Error> {
        self.authorize(who, Action::ReadAlerts)?;
        Ok(self.state.store.alerts_newest(limit.min(MAX_ALERTS))?)
    }

    /// The cadence report of `period` (empty: the last complete one of the node's cadence),
    /// recorded in the audit log.
    pub async fn report(&self, who: &Identity, period: &str) -> Result<ReportData, Error> {
        self.authorize(who, Action::ExportReport)?;
        let now = self.now();
        let period = report::period::parse(period, self.state.default_cadence(), now)?;
        let label = period.label.clone();
        let state = self.state.clone();
        let data = tokio::task::spawn_blocking(move || {
            report::make(&state.store, state.code.as_str(), &period, now)
        })
        .await??;
        // Recorded before the report leaves the node.
        self.audit(who, "", format!("ExportReport {label}")).await?;
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_codes_use_the_readable_alphabet() {
        let a = new_lookup_code();
        let b = new_lookup_code();
        assert_ne!(a, b);
        assert_eq!(a.len(), LOOKUP_LEN + 2);
        assert!(
            a.chars()
                .all(|c| c == '-' || LOOKUP_ALPHABET.contains(&(c as u8))),
            "{a}"
        );
    }

    #[test]
    fn rule_commands_are_not_for_operators() {
        assert!(action_of(&Command::RaiseRisk { reason: "x".into() }).is_err());
        assert_eq!(
            action_of(&Command::AddProgress { text: "x".into() }).unwrap(),
            Action::PlanCase
        );
    }
}
