//! `fengqiao.v1.CaseService`: the operator API of a node, an adapter over `crate::app`.
//!
//! Each handler takes the caller's identity from its client certificate, decodes the request
//! with `convert` (`TryFrom` for enums: an unknown value is INVALID_ARGUMENT), calls the
//! application layer — which authorizes the caller (only operators of this node, with a role
//! allowed the action), validates and applies the rules — and encodes the answer as seen at
//! the node's clock, which gives its deadline warning. Errors map to gRPC codes in
//! `crate::error`, the one mapping.

use fengqiao_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::Span;

use super::SharedState;
use super::moves::link_to_proto;
use crate::app::cases::Listing;
use crate::app::console_views::LedgerFormat;
use crate::app::moves::{Escalation, Known};
use crate::app::{App, Shown};
use crate::convert;
use crate::domain::DomainError;
use crate::identity::Identity;
use crate::report::render;
use crate::text::Lang;
use crate::tls::peer_identity;

pub use crate::app::cases::{DEFAULT_PAGE_SIZE, MAX_ALERTS, MAX_PAGE_SIZE};

pub struct CaseApi {
    app: App,
}

impl CaseApi {
    pub fn new(state: SharedState) -> Self {
        CaseApi {
            app: App::new(state),
        }
    }

    /// The caller, from its client certificate.
    fn who<T>(req: &Request<T>) -> Result<Identity, Status> {
        let id = peer_identity(req)?;
        Span::current().record("caller", id.uri().as_str());
        Ok(id)
    }

    fn case(&self, s: &Shown) -> pb::Case {
        convert::case_to_proto(&s.case, s.reveal, self.app.now())
    }

    fn known(&self, k: &Known) -> pb::Case {
        match k {
            Known::Held(s) => self.case(s),
            Known::Nothing { id, origin } => pb::Case {
                id: id.clone(),
                origin_node: origin.as_ref().map(|o| o.to_string()).unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    /// Runs an operator's command, decoded as (case id, command).
    async fn command(
        &self,
        who: Identity,
        (id, cmd): (String, crate::domain::Command),
    ) -> Result<Response<pb::Case>, Status> {
        Span::current().record("case_id", id.as_str());
        let shown = self.app.command(&who, &id, cmd).await?;
        Ok(Response::new(self.case(&shown)))
    }
}

/// The filters of a listing (ListCases, ExportCases) as the API sends them.
fn filters(
    status: i32,
    risk: i32,
    category: i32,
    overdue_only: bool,
    supervised: bool,
) -> Result<Listing, DomainError> {
    Ok(Listing {
        status: convert::optional::<pb::CaseStatus, _>("status", status)?,
        risk: convert::optional::<pb::RiskLevel, _>("risk", risk)?,
        category: convert::optional::<pb::Category, _>("category", category)?,
        overdue_only,
        supervised,
        ..Listing::default()
    })
}

#[tonic::async_trait]
impl pb::case_service_server::CaseService for CaseApi {
    #[tracing::instrument(name = "RegisterCase", skip_all, fields(case_id, caller))]
    async fn register_case(
        &self,
        req: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        let new = convert::new_case_from_proto(req.into_inner())?;
        let shown = self.app.register(&who, new).await?;
        Ok(Response::new(self.case(&shown)))
    }

    #[tracing::instrument(name = "GetCase", skip_all, fields(case_id, caller))]
    async fn get_case(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        let id = req.into_inner().case_id;
        Span::current().record("case_id", id.as_str());
        Ok(Response::new(self.case(&self.app.get(&who, &id).await?)))
    }

    #[tracing::instrument(name = "ListCases", skip_all, fields(caller))]
    async fn list_cases(
        &self,
        req: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let who = Self::who(&req)?;
        let pb::ListCasesRequest {
            status,
            risk,
            category,
            overdue_only,
            page_size,
            page_token,
            supervised,
        } = req.into_inner();
        let listing = Listing {
            page_size: usize::try_from(page_size).unwrap_or(usize::MAX),
            page_token: Some(page_token),
            // The API's order is the index's (documented in case.proto).
            newest_first: false,
            ..filters(status, risk, category, overdue_only, supervised)?
        };
        let page = self.app.read(move |app| app.list(&who, listing)).await?;
        let now = self.app.now();
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
        let who = Self::who(&req)?;
        self.command(who, convert::review_from_proto(req.into_inner()))
            .await
    }

    #[tracing::instrument(name = "AssignCase", skip_all, fields(case_id, caller))]
    async fn assign_case(
        &self,
        req: Request<pb::AssignCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        self.command(who, convert::assign_from_proto(req.into_inner())?)
            .await
    }

    #[tracing::instrument(name = "RecordMediation", skip_all, fields(case_id, caller))]
    async fn record_mediation(
        &self,
        req: Request<pb::RecordMediationRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        self.command(who, convert::mediation_from_proto(req.into_inner())?)
            .await
    }

    #[tracing::instrument(name = "ResolveCase", skip_all, fields(case_id, caller))]
    async fn resolve_case(
        &self,
        req: Request<pb::ResolveCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        self.command(who, convert::resolve_from_proto(req.into_inner())?)
            .await
    }

    #[tracing::instrument(name = "RecordFollowUp", skip_all, fields(case_id, caller))]
    async fn record_follow_up(
        &self,
        req: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        self.command(who, convert::follow_up_from_proto(req.into_inner())?)
            .await
    }

    #[tracing::instrument(name = "GetCaseHistory", skip_all, fields(case_id, caller))]
    async fn get_case_history(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::CaseHistory>, Status> {
        let who = Self::who(&req)?;
        let id = req.into_inner().case_id;
        Span::current().record("case_id", id.as_str());
        let events = {
            let (who, id) = (who.clone(), id.clone());
            self.app.read(move |app| app.history(&who, &id)).await?
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
        let who = Self::who(&req)?;
        let pb::EscalateCaseRequest {
            case_id,
            mode,
            reason,
        } = req.into_inner();
        Span::current().record("case_id", case_id.as_str());
        let mode = match pb::EscalationMode::try_from(mode) {
            Ok(pb::EscalationMode::TakeOver) => Escalation::TakeOver,
            Ok(pb::EscalationMode::Supervise) => Escalation::Supervise,
            _ => {
                return Err(DomainError::invalid(
                    "mode",
                    format!("{mode} is not TAKE_OVER or SUPERVISE"),
                )
                .into());
            }
        };
        let shown = self.app.escalate(&who, case_id, mode, reason).await?;
        Ok(Response::new(self.case(&shown)))
    }

    #[tracing::instrument(name = "TransferCase", skip_all, fields(case_id, caller))]
    async fn transfer_case(
        &self,
        req: Request<pb::TransferCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        let pb::TransferCaseRequest {
            case_id,
            to_node,
            reason,
        } = req.into_inner();
        Span::current().record("case_id", case_id.as_str());
        let known = self.app.transfer(&who, case_id, &to_node, reason).await?;
        Ok(Response::new(self.known(&known)))
    }

    #[tracing::instrument(name = "SuperviseCase", skip_all, fields(case_id, caller))]
    async fn supervise_case(
        &self,
        req: Request<pb::SuperviseCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        let pb::SuperviseCaseRequest {
            case_id,
            instruction,
            due_at,
        } = req.into_inner();
        Span::current().record("case_id", case_id.as_str());
        let due_at = due_at
            .as_ref()
            .map(|t| convert::ts_from_proto("due_at", t))
            .transpose()?;
        let known = self
            .app
            .supervise(&who, case_id, instruction, due_at)
            .await?;
        Ok(Response::new(self.known(&known)))
    }

    #[tracing::instrument(name = "GetLinks", skip_all, fields(caller))]
    async fn get_links(
        &self,
        req: Request<pb::GetLinksRequest>,
    ) -> Result<Response<pb::Links>, Status> {
        let who = Self::who(&req)?;
        let views = self.app.read(move |app| app.links(&who)).await?;
        Ok(Response::new(pb::Links {
            node: self.app.state.code.to_string(),
            links: views.iter().map(link_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "ChangeRisk", skip_all, fields(case_id, caller))]
    async fn change_risk(
        &self,
        req: Request<pb::ChangeRiskRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        self.command(who, convert::change_risk_from_proto(req.into_inner())?)
            .await
    }

    #[tracing::instrument(name = "ExtendDeadline", skip_all, fields(case_id, caller))]
    async fn extend_deadline(
        &self,
        req: Request<pb::ExtendDeadlineRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        self.command(who, convert::extend_from_proto(req.into_inner())?)
            .await
    }

    #[tracing::instrument(name = "ListAlerts", skip_all, fields(caller))]
    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::Alerts>, Status> {
        let who = Self::who(&req)?;
        let pb::ListAlertsRequest {} = req.into_inner();
        let alerts = self.app.read(move |app| app.alerts(&who)).await?;
        Ok(Response::new(pb::Alerts {
            alerts: alerts.iter().map(convert::alert_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "ExportCases", skip_all, fields(caller))]
    async fn export_cases(
        &self,
        req: Request<pb::ExportCasesRequest>,
    ) -> Result<Response<pb::ExportedCases>, Status> {
        let who = Self::who(&req)?;
        let pb::ExportCasesRequest {
            format,
            status,
            risk,
            category,
            overdue_only,
            supervised,
            query,
            english,
            unmasked,
        } = req.into_inner();
        let format = match pb::ExportFormat::try_from(format) {
            Ok(pb::ExportFormat::Xlsx) => LedgerFormat::Xlsx,
            Ok(pb::ExportFormat::Csv) => LedgerFormat::Csv,
            Ok(pb::ExportFormat::Unspecified) => {
                return Err(DomainError::invalid("format", "is required").into());
            }
            Err(_) => {
                return Err(
                    DomainError::invalid("format", format!("unknown value {format}")).into(),
                );
            }
        };
        let listing = Listing {
            newest_first: true,
            ..filters(status, risk, category, overdue_only, supervised)?
        };
        let lang = if english { Lang::En } else { Lang::Zh };
        let ledger = self
            .app
            .export_ledger(&who, listing, &query, format, lang, unmasked)
            .await?;
        Ok(Response::new(pb::ExportedCases {
            file_name: ledger.file_name,
            content: ledger.content,
            rows: u32::try_from(ledger.rows).unwrap_or(u32::MAX),
        }))
    }

    #[tracing::instrument(name = "ImportCases", skip_all, fields(caller))]
    async fn import_cases(
        &self,
        req: Request<pb::ImportCasesRequest>,
    ) -> Result<Response<pb::ImportCasesResult>, Status> {
        let who = Self::who(&req)?;
        let pb::ImportCasesRequest { file_name, content } = req.into_inner();
        let done = self.app.import_cases(&who, &file_name, &content).await?;
        Ok(Response::new(pb::ImportCasesResult {
            imported: u32::try_from(done.imported).unwrap_or(u32::MAX),
            repeated: u32::try_from(done.repeated).unwrap_or(u32::MAX),
            rejected: done.rejected,
        }))
    }

    #[tracing::instrument(name = "ListAuditEvents", skip_all, fields(caller))]
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::AuditEvents>, Status> {
        let who = Self::who(&req)?;
        let pb::ListAuditEventsRequest {
            limit,
            since,
            actor,
            case_id,
        } = req.into_inner();
        let since = since
            .as_ref()
            .map(|t| convert::ts_from_proto("since", t))
            .transpose()?;
        let events = self.app.access_log(
            &who,
            usize::try_from(limit).unwrap_or(usize::MAX),
            since,
            &actor,
            &case_id,
        )?;
        Ok(Response::new(pb::AuditEvents {
            events: events
                .iter()
                .map(|a| pb::AuditEvent {
                    at: Some(convert::ts_to_proto(a.at)),
                    actor: a.actor.clone(),
                    case_id: a.case_id.clone(),
                    what: a.what.clone(),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(name = "ExportReport", skip_all, fields(caller))]
    async fn export_report(
        &self,
        req: Request<pb::ExportReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let who = Self::who(&req)?;
        let pb::ExportReportRequest { period } = req.into_inner();
        let data = self.app.report(&who, &period).await?;
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
        let who = Self::who(&req)?;
        self.command(who, convert::plan_from_proto(req.into_inner()))
            .await
    }

    #[tracing::instrument(name = "AddCaseProgress", skip_all, fields(case_id, caller))]
    async fn add_case_progress(
        &self,
        req: Request<pb::AddCaseProgressRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let who = Self::who(&req)?;
        self.command(who, convert::progress_from_proto(req.into_inner()))
            .await
    }
}
