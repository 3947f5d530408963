//! `fengqiao.v1.CaseService`: the operator API of a node.
//!
//! Only operator identities of this node reach the domain: [`CaseApi::caller`] refuses node
//! certificates and operators of other nodes (PERMISSION_DENIED) before anything is decoded.
//!
//! Every command goes through the state machine and then the rules' post-step
//! ([`alert::after_command`]: reopen supervision, alerts), all in one transaction; a
//! registration is followed by the early-warning evaluation (`crate::sweep::early`). Cases are
//! answered as seen at the node's clock, which gives their deadline warning.

use fengqiao_proto::v1 as pb;
use rand::Rng;
use tonic::{Request, Response, Status};
use tracing::Span;

use super::SharedState;
use super::moves::View;
use crate::convert;
use crate::domain::alert;
use crate::domain::{Command, Ctx, Deadlines, NewCase, machine, validate};
use crate::error::Error;
use crate::identity::{self, Action, Identity};
use crate::report::{self, render};
use crate::storage::{CaseQuery, StorageError, WriteError};
use crate::tls::peer_identity;

/// Most alerts ListAlerts answers with (the newest).
pub const MAX_ALERTS: usize = 500;

/// Default and largest page sizes of ListCases.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;

/// Alphabet of citizen lookup codes: no 0/O, 1/I/L, so they survive being read over the phone.
const LOOKUP_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// 12 symbols of 31: about 59 bits, unguessable.
const LOOKUP_LEN: usize = 12;

fn new_lookup_code() -> String {
    let mut rng = rand::rng();
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

pub struct CaseApi {
    pub(crate) state: SharedState,
}

impl CaseApi {
    pub fn new(state: SharedState) -> Self {
        CaseApi { state }
    }

    /// The caller's identity, if it may perform `action` on this node.
    pub(crate) fn caller<T>(&self, req: &Request<T>, action: Action) -> Result<Identity, Status> {
        let id = peer_identity(req)?;
        Span::current().record("caller", id.uri().as_str());
        identity::authorize(&id, &self.state.code, action).map_err(|e| {
            tracing::warn!(caller = %id.uri(), ?action, "permission denied: {e}");
            Status::from(Error::PermissionDenied(e.to_string()))
        })?;
        Ok(id)
    }

    pub(crate) fn reveals_personal(id: &Identity) -> bool {
        match id {
            Identity::Operator { role, .. } => identity::allowed(*role, Action::ReadPersonalData),
            Identity::Node { .. } => false,
        }
    }

    /// Applies `cmd` to `case_id` durably and answers with the new case.
    async fn change(
        &self,
        caller: &Identity,
        case_id: String,
        cmd: Command,
    ) -> Result<pb::Case, Status> {
        Span::current().record("case_id", case_id.as_str());
        let node = self.state.code.as_str().to_string();
        let actor = caller.uri();
        let deadlines: Deadlines = self.state.deadlines.clone();
        let policy = self.state.policy.clone();
        let now = self.state.clock.now();
        let case = self
            .state
            .store
            .update_raising(case_id, move |case| {
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
        Ok(convert::case_to_proto(
            &case,
            Self::reveals_personal(caller),
            now,
        ))
    }
}

#[tonic::async_trait]
impl pb::case_service_server::CaseService for CaseApi {
    #[tracing::instrument(name = "RegisterCase", skip_all, fields(case_id, caller))]
    async fn register_case(
        &self,
        req: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::RegisterCase)?;
        let new: NewCase = convert::new_case_from_proto(req.into_inner())?;
        validate::validate_new_case(&new)?;
        let now = self.state.clock.now();
        let day = machine::china_day(now);
        let node = self.state.code.as_str().to_string();
        let actor = caller.uri();
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
        Span::current().record("case_id", reg.case.id.as_str());
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
        Ok(Response::new(convert::case_to_proto(
            &case,
            Self::reveals_personal(&caller),
            self.state.clock.now(),
        )))
    }

    #[tracing::instrument(name = "GetCase", skip_all, fields(case_id, caller))]
    async fn get_case(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::ReadCase)?;
        let id = req.into_inner().case_id;
        Span::current().record("case_id", id.as_str());
        let reveal = Self::reveals_personal(&caller);
        let now = self.state.clock.now();
        match self.view(&id)? {
            View::Owned(case) | View::Tombstone(case) => {
                Ok(Response::new(convert::case_to_proto(&case, reveal, now)))
            }
            // A supervised copy is already masked: the owner keeps the personal data.
            View::Copy(case, _) => Ok(Response::new(convert::case_to_proto(&case, false, now))),
            View::Nothing => Err(Error::NotFound(id).into()),
        }
    }

    #[tracing::instrument(name = "ListCases", skip_all, fields(caller))]
    async fn list_cases(
        &self,
        req: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        self.caller(&req, Action::ReadCase)?;
        let pb::ListCasesRequest {
            status,
            risk,
            category,
            overdue_only,
            page_size,
            page_token,
            supervised,
        } = req.into_inner();
        let page_size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n as usize > MAX_PAGE_SIZE => {
                return Err(crate::domain::DomainError::invalid(
                    "page_size",
                    format!("at most {MAX_PAGE_SIZE}, got {n}"),
                )
                .into());
            }
            n => n as usize,
        };
        let now = self.state.clock.now();
        let query = CaseQuery {
            status: convert::optional::<pb::CaseStatus, _>("status", status)?,
            risk: convert::optional::<pb::RiskLevel, _>("risk", risk)?,
            category: convert::optional::<pb::Category, _>("category", category)?,
            overdue_at: overdue_only.then_some(now),
            supervised,
            page_size,
            page_token: (!page_token.is_empty()).then_some(page_token),
        };
        let page = self.state.store.list_cases(&query)?;
        Ok(Response::new(pb::ListCasesResponse {
            cases: page
                .cases
                .iter()
                .map(|c| convert::case_to_proto(c, false, now))
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "ReviewCase", skip_all, fields(case_id, caller))]
    async fn review_case(
        &self,
        req: Request<pb::ReviewCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let action = if req.get_ref().accept {
            Action::AcceptCase
        } else {
            Action::RejectCase
        };
        let caller = self.caller(&req, action)?;
        let (id, cmd) = convert::review_from_proto(req.into_inner());
        Ok(Response::new(self.change(&caller, id, cmd).await?))
    }

    #[tracing::instrument(name = "AssignCase", skip_all, fields(case_id, caller))]
    async fn assign_case(
        &self,
        req: Request<pb::AssignCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::AssignCase)?;
        let (id, cmd) = convert::assign_from_proto(req.into_inner())?;
        Ok(Response::new(self.change(&caller, id, cmd).await?))
    }

    #[tracing::instrument(name = "RecordMediation", skip_all, fields(case_id, caller))]
    async fn record_mediation(
        &self,
        req: Request<pb::RecordMediationRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::RecordMediation)?;
        let (id, cmd) = convert::mediation_from_proto(req.into_inner())?;
        Ok(Response::new(self.change(&caller, id, cmd).await?))
    }

    #[tracing::instrument(name = "ResolveCase", skip_all, fields(case_id, caller))]
    async fn resolve_case(
        &self,
        req: Request<pb::ResolveCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::ResolveCase)?;
        let (id, cmd) = convert::resolve_from_proto(req.into_inner())?;
        Ok(Response::new(self.change(&caller, id, cmd).await?))
    }

    #[tracing::instrument(name = "RecordFollowUp", skip_all, fields(case_id, caller))]
    async fn record_follow_up(
        &self,
        req: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::RecordFollowUp)?;
        let (id, cmd) = convert::follow_up_from_proto(req.into_inner())?;
        Ok(Response::new(self.change(&caller, id, cmd).await?))
    }

    #[tracing::instrument(name = "GetCaseHistory", skip_all, fields(case_id, caller))]
    async fn get_case_history(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::CaseHistory>, Status> {
        self.caller(&req, Action::ReadCase)?;
        let id = req.into_inner().case_id;
        Span::current().record("case_id", id.as_str());
        let events = match self.view(&id)? {
            View::Owned(_) | View::Tombstone(_) => self.state.store.history(&id)?,
            View::Copy(_, history) => history,
            View::Nothing => return Err(Error::NotFound(id).into()),
        };
        Ok(Response::new(pb::CaseHistory {
            case_id: id,
            events: events.iter().map(convert::event_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "EscalateCase", skip_all, fields(case_id, caller))]
    async fn escalate_case(
        &self,
        req: Request<pb::EscalateCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::EscalateCase)?;
        let req = req.into_inner();
        Span::current().record("case_id", req.case_id.as_str());
        Ok(Response::new(self.escalate(&caller, req).await?))
    }

    #[tracing::instrument(name = "TransferCase", skip_all, fields(case_id, caller))]
    async fn transfer_case(
        &self,
        req: Request<pb::TransferCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::TransferCase)?;
        let req = req.into_inner();
        Span::current().record("case_id", req.case_id.as_str());
        Ok(Response::new(self.transfer(&caller, req).await?))
    }

    #[tracing::instrument(name = "SuperviseCase", skip_all, fields(case_id, caller))]
    async fn supervise_case(
        &self,
        req: Request<pb::SuperviseCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::SuperviseCase)?;
        let req = req.into_inner();
        Span::current().record("case_id", req.case_id.as_str());
        Ok(Response::new(self.supervise(&caller, req).await?))
    }

    #[tracing::instrument(name = "GetLinks", skip_all, fields(caller))]
    async fn get_links(
        &self,
        req: Request<pb::GetLinksRequest>,
    ) -> Result<Response<pb::Links>, Status> {
        self.caller(&req, Action::ReadLinks)?;
        Ok(Response::new(self.links()?))
    }

    #[tracing::instrument(name = "ChangeRisk", skip_all, fields(case_id, caller))]
    async fn change_risk(
        &self,
        req: Request<pb::ChangeRiskRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::ChangeRisk)?;
        let (id, cmd) = convert::change_risk_from_proto(req.into_inner())?;
        Ok(Response::new(self.change(&caller, id, cmd).await?))
    }

    #[tracing::instrument(name = "ExtendDeadline", skip_all, fields(case_id, caller))]
    async fn extend_deadline(
        &self,
        req: Request<pb::ExtendDeadlineRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::ExtendDeadline)?;
        let (id, cmd) = convert::extend_from_proto(req.into_inner())?;
        Ok(Response::new(self.change(&caller, id, cmd).await?))
    }

    #[tracing::instrument(name = "ListAlerts", skip_all, fields(caller))]
    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::Alerts>, Status> {
        self.caller(&req, Action::ReadAlerts)?;
        let pb::ListAlertsRequest {} = req.into_inner();
        let alerts = self.state.store.alerts_newest(MAX_ALERTS)?;
        Ok(Response::new(pb::Alerts {
            alerts: alerts.iter().map(convert::alert_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "ExportReport", skip_all, fields(caller))]
    async fn export_report(
        &self,
        req: Request<pb::ExportReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        self.caller(&req, Action::ExportReport)?;
        let pb::ExportReportRequest { period } = req.into_inner();
        let now = self.state.clock.now();
        let period = report::period::parse(&period, self.state.default_cadence(), now)?;
        let state = self.state.clone();
        let data = tokio::task::spawn_blocking(move || {
            report::make(&state.store, state.code.as_str(), &period, now)
        })
        .await
        .map_err(|e| Status::from(Error::from(e)))??;
        Ok(Response::new(pb::Report {
            node: data.node.clone(),
            period: data.period.clone(),
            from: Some(convert::ts_to_proto(data.from)),
            to: Some(convert::ts_to_proto(data.to)),
            csv: render::to_csv(&data),
            text: render::to_text(&data, crate::text::Lang::Zh),
        }))
    }

    #[tracing::instrument(name = "UpdateCasePlan", skip_all, fields(case_id, caller))]
    async fn update_case_plan(
        &self,
        req: Request<pb::UpdateCasePlanRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::PlanCase)?;
        let (id, cmd) = convert::plan_from_proto(req.into_inner());
        Ok(Response::new(self.change(&caller, id, cmd).await?))
    }

    #[tracing::instrument(name = "AddCaseProgress", skip_all, fields(case_id, caller))]
    async fn add_case_progress(
        &self,
        req: Request<pb::AddCaseProgressRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let caller = self.caller(&req, Action::PlanCase)?;
        let (id, cmd) = convert::progress_from_proto(req.into_inner());
        Ok(Response::new(self.change(&caller, id, cmd).await?))
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
}
