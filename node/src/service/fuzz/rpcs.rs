//! Every RPC of the operator API as an [`Rpc`]: how the harness calls it, what it needs, and
//! what an accepted request must have done ([`Rpc::accepted`]), read back from the store.

use fengqiao_proto::v1 as pb;
use fengqiao_proto::v1::api_key_service_server::ApiKeyService as _;
use fengqiao_proto::v1::backup_service_server::BackupService as _;
use fengqiao_proto::v1::case_service_server::CaseService as _;
use fengqiao_proto::v1::stats_service_server::StatsService as _;
use fengqiao_proto::v1::user_service_server::UserService as _;
use tonic::{Request, Response, Status};

use super::tree::{ACCESS, API_KEYS, CASES, EVENTS, LOGINS, META, ORDERS, OUTBOX, USERS};
use super::{
    Caller, Harness, Outcome, PARENT, Pick, Rpc, Seen, Target, added, ensure, writes_only,
};
use crate::app::App;
use crate::app::moves::View;
use crate::code::NodeCode;
use crate::convert;
use crate::domain::{Case, CaseStatus, EventKind};
use crate::identity::Action;

/// `R`'s checks of whatever `bytes` decode to: an entry of [`RPCS`].
type CheckBytes = fn(&Harness, Pick, Option<usize>, &[u8]) -> Result<Option<Outcome>, String>;

macro_rules! table {
    ($($rpc:ident),+ $(,)?) => {
        /// Every RPC of the operator API: its name and its checks of an encoded request.
        pub const RPCS: &[(&str, CheckBytes)] = &[
            $((<$rpc as Rpc>::NAME, Harness::check_bytes::<$rpc>),)+
        ];
    };
}

table![
    RegisterCase,
    GetCase,
    ListCases,
    ReviewCase,
    AssignCase,
    RecordMediation,
    ResolveCase,
    RecordFollowUp,
    GetCaseHistory,
    EscalateCase,
    TransferCase,
    SuperviseCase,
    GetLinks,
    ChangeRisk,
    ExtendDeadline,
    ListAlerts,
    ExportReport,
    UpdateCasePlan,
    AddCaseProgress,
    ListAuditEvents,
    ExportCases,
    ImportCases,
    AddUser,
    ListUsers,
    SetUserEnabled,
    ResetPassword,
    AddApiKey,
    ListApiKeys,
    RevokeApiKey,
    Backup,
    GetAggregates,
];

/// Calls handler `$method` of `$api` (a field of the harness) with `$req`.
macro_rules! call {
    ($h:expr, $api:ident . $method:ident, $req:expr) => {
        $h.block_on($h.$api.$method($req)).map(Response::into_inner)
    };
}

/// Implements `aim` and `case_id` for a request whose `case_id` names its case.
macro_rules! about_a_case {
    () => {
        const TARGET: Target = Target::Case;

        fn aim(req: &mut Self::Req, target: String) {
            req.case_id = target;
        }

        fn case_id(req: &Self::Req) -> Option<&str> {
            Some(&req.case_id)
        }
    };
}

/// Whether `v` is a number enum `E` does not define.
fn unknown<E: TryFrom<i32>>(v: i32) -> bool {
    E::try_from(v).is_err()
}

/// The identity a caller that was accepted has.
fn who(caller: Caller) -> Result<crate::identity::Identity, String> {
    caller
        .identity()
        .ok_or_else(|| "accepted without a certificate".to_owned())
}

fn stored(h: &Harness, id: &str) -> Result<Case, String> {
    h.state
        .store
        .get_case(id)
        .map_err(|e| format!("reading {id}: {e}"))?
        .ok_or_else(|| format!("case {id} is not stored"))
}

fn history(h: &Harness, id: &str) -> Result<Vec<crate::domain::Event>, String> {
    h.state
        .store
        .history(id)
        .map_err(|e| format!("reading the history of {id}: {e}"))
}

/// The answer is the stored case as this caller may see it.
fn answer_is(h: &Harness, caller: Caller, resp: &pb::Case, case: &Case) -> Result<(), String> {
    let reveal = App::reveals_personal(&who(caller)?);
    let want = convert::case_to_proto(case, reveal, h.app.now());
    ensure!(*resp == want, "the answer is not the stored case {want:?}");
    Ok(())
}

/// A timestamp as the node reads it (whole milliseconds), for comparisons.
fn millis(t: &Option<prost_types::Timestamp>) -> Option<crate::domain::Timestamp> {
    t.as_ref().and_then(|t| convert::ts_from_proto("t", t).ok())
}

/// Nothing written.
fn wrote_nothing(writes: &[crate::storage::Written]) -> Result<(), String> {
    writes_only(writes, &[])
}

/// Exactly one audit entry written, nothing else.
fn audited_once(writes: &[crate::storage::Written]) -> Result<(), String> {
    writes_only(writes, &[ACCESS])?;
    ensure!(
        added(writes, ACCESS) == 1 && writes.len() == 1,
        "not one audit entry: {writes:?}"
    );
    Ok(())
}

/// What an accepted command on a case owned here must have done: the case stored after it is
/// the answer, its history grew by the command's event (`kind`) exactly once, first, in the
/// caller's name — or, for a command that may change nothing (`may_do_nothing`), nothing at
/// all was written — and `fields` holds of the stored case.
fn command_effect<Q>(
    h: &Harness,
    seen: &Seen<'_, Q, pb::Case>,
    id: &str,
    kind: EventKind,
    may_do_nothing: bool,
    fields: impl FnOnce(&Case) -> Result<(), String>,
) -> Result<(), String> {
    let before = seen
        .before
        .ok_or("accepted, but no case is stored under that id")?;
    ensure!(
        before.status != CaseStatus::Transferred,
        "accepted on a case that moved away"
    );
    let after = stored(h, id)?;
    let events = history(h, id)?;
    ensure!(
        events.len() as u64 == after.history_len,
        "{} events stored, the case says {}",
        events.len(),
        after.history_len
    );
    let new = events
        .get(usize::try_from(before.history_len).unwrap_or(usize::MAX)..)
        .unwrap_or_default();
    if new.is_empty() {
        ensure!(may_do_nothing, "no {kind:?} event recorded");
        wrote_nothing(seen.writes)?;
    } else {
        let n = new.iter().filter(|e| e.kind == kind).count();
        ensure!(n == 1, "{n} {kind:?} events recorded: {new:?}");
        ensure!(
            new[0].kind == kind,
            "the first new event is not {kind:?}: {new:?}"
        );
        ensure!(
            new[0].actor == who(seen.caller)?.uri(),
            "recorded in the name of {}",
            new[0].actor
        );
        ensure!(
            added(seen.writes, ACCESS) == 0
                && !seen
                    .writes
                    .iter()
                    .any(|w| [USERS, LOGINS, API_KEYS].contains(&w.tree.as_str())),
            "a command wrote outside the case: {:?}",
            seen.writes
        );
    }
    answer_is(h, seen.caller, seen.resp, &after)?;
    fields(&after)
}

/// What an order toward the owner of a case held elsewhere must have done: queued (the outbox
/// and the record of issued orders), no case written, answered with the case's id.
fn order_queued(seen: &Seen<'_, impl std::fmt::Debug, pb::Case>, id: &str) -> Result<(), String> {
    ensure!(
        seen.before
            .is_none_or(|c| c.status == CaseStatus::Transferred),
        "an order about a case owned here"
    );
    // The outbox, the record of issued orders and their counters.
    writes_only(seen.writes, &[OUTBOX, ORDERS, META])?;
    ensure!(
        added(seen.writes, OUTBOX) == 1 && added(seen.writes, ORDERS) == 1,
        "not one order queued: {:?}",
        seen.writes
    );
    ensure!(seen.resp.id == id, "answered about {}", seen.resp.id);
    Ok(())
}

pub struct RegisterCase;

impl Rpc for RegisterCase {
    const NAME: &'static str = "CaseService.RegisterCase";
    const REQUEST: &'static str = "fengqiao.v1.RegisterCaseRequest";
    type Req = pb::RegisterCaseRequest;
    type Resp = pb::Case;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.register_case, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::RegisterCase
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        unknown::<pb::Category>(r.category)
            || unknown::<pb::Channel>(r.channel)
            || unknown::<pb::RiskLevel>(r.risk)
            || r.parties.iter().any(|p| unknown::<pb::PartyRole>(p.role))
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        let case = stored(h, &seen.resp.id)?;
        let by_key = h
            .state
            .store
            .case_id_by_idempotency_key(&r.idempotency_key)
            .map_err(|e| e.to_string())?;
        ensure!(
            by_key.as_deref() == Some(case.id.as_str()),
            "the idempotency key leads to {by_key:?}"
        );
        answer_is(h, seen.caller, seen.resp, &case)?;
        if added(seen.writes, CASES) == 0 {
            // A repeated key: the original case, nothing written.
            return wrote_nothing(seen.writes);
        }
        ensure!(
            added(seen.writes, CASES) == 1,
            "several cases added: {:?}",
            seen.writes
        );
        let new = convert::new_case_from_proto(r.clone()).map_err(|e| e.to_string())?;
        ensure!(
            (
                &case.summary,
                &case.description,
                &case.parties,
                case.amount_fen,
                &case.grid_id,
                case.category,
                case.channel,
                case.status
            ) == (
                &new.summary,
                &new.description,
                &new.parties,
                new.amount_fen,
                &new.grid_id,
                new.category,
                new.channel,
                CaseStatus::Registered
            ),
            "stored {case:?}, sent {new:?}"
        );
        // The early warnings may raise the colour at once, never lower it.
        ensure!(
            case.risk >= new.risk,
            "risk {:?} < {:?}",
            case.risk,
            new.risk
        );
        let events = history(h, &case.id)?;
        ensure!(
            events.first().map(|e| e.kind) == Some(EventKind::Registered)
                && events
                    .iter()
                    .filter(|e| e.kind == EventKind::Registered)
                    .count()
                    == 1,
            "history {events:?}"
        );
        Ok(())
    }
}

pub struct GetCase;

impl Rpc for GetCase {
    const NAME: &'static str = "CaseService.GetCase";
    const REQUEST: &'static str = "fengqiao.v1.GetCaseRequest";
    type Req = pb::GetCaseRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.get_case, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ReadCase
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let reveal = App::reveals_personal(&who(seen.caller)?);
        let now = h.app.now();
        let (want, audited) = match h.app.view(&seen.req.case_id).map_err(|e| e.to_string())? {
            View::Owned(c) => {
                let audited = reveal && !c.parties.is_empty();
                (convert::case_to_proto(&c, reveal, now), audited)
            }
            View::Tombstone(c) => (convert::case_to_proto(&c, reveal, now), false),
            View::Copy(c, _) => (convert::case_to_proto(&c, false, now), false),
            View::Nothing => return Err("answered a case not held here".into()),
        };
        ensure!(
            *seen.resp == want,
            "the answer is not the stored case {want:?}"
        );
        if audited {
            audited_once(seen.writes)
        } else {
            wrote_nothing(seen.writes)
        }
    }
}

pub struct ListCases;

impl Rpc for ListCases {
    const NAME: &'static str = "CaseService.ListCases";
    const REQUEST: &'static str = "fengqiao.v1.ListCasesRequest";
    type Req = pb::ListCasesRequest;
    type Resp = pb::ListCasesResponse;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.list_cases, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ReadCase
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        unknown::<pb::CaseStatus>(r.status)
            || unknown::<pb::RiskLevel>(r.risk)
            || unknown::<pb::Category>(r.category)
    }

    fn accepted(_: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        wrote_nothing(seen.writes)?;
        let r = seen.req;
        let size = match r.page_size {
            0 => crate::app::cases::DEFAULT_PAGE_SIZE,
            n => n as usize,
        };
        let cases = &seen.resp.cases;
        ensure!(
            cases.len() <= size,
            "{} cases on a page of {size}",
            cases.len()
        );
        for c in cases {
            ensure!(
                (r.status == 0 || c.status == r.status)
                    && (r.risk == 0 || c.risk == r.risk)
                    && (r.category == 0 || c.category == r.category),
                "{} does not match the filters",
                c.id
            );
            ensure!(
                c.parties.iter().all(|p| {
                    crate::domain::mask::mask_id_number(&p.id_number) == p.id_number
                        && crate::domain::mask::mask_phone(&p.phone) == p.phone
                }),
                "{} listed with an ID number unmasked",
                c.id
            );
        }
        Ok(())
    }
}

pub struct ReviewCase;

impl Rpc for ReviewCase {
    const NAME: &'static str = "CaseService.ReviewCase";
    const REQUEST: &'static str = "fengqiao.v1.ReviewCaseRequest";
    type Req = pb::ReviewCaseRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.review_case, req)
    }

    fn action(r: &Self::Req) -> Action {
        if r.accept {
            Action::AcceptCase
        } else {
            Action::RejectCase
        }
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        let kind = if r.accept {
            EventKind::Accepted
        } else {
            EventKind::Rejected
        };
        command_effect(h, seen, &r.case_id, kind, false, |c| {
            if r.accept {
                ensure!(c.status == CaseStatus::Accepted, "status {:?}", c.status);
            } else {
                ensure!(
                    (c.status, &c.reason, &c.guidance)
                        == (CaseStatus::Rejected, &r.reason, &r.guidance),
                    "stored {c:?}"
                );
            }
            Ok(())
        })
    }
}

pub struct AssignCase;

impl Rpc for AssignCase {
    const NAME: &'static str = "CaseService.AssignCase";
    const REQUEST: &'static str = "fengqiao.v1.AssignCaseRequest";
    type Req = pb::AssignCaseRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.assign_case, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::AssignCase
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        command_effect(h, seen, &r.case_id, EventKind::Assigned, false, |c| {
            ensure!(
                c.handler.as_ref() == Some(&r.handler),
                "handler {:?}",
                c.handler
            );
            if let Some(due) = &r.due_at {
                let due = convert::ts_from_proto("due_at", due).map_err(|e| e.to_string())?;
                ensure!(c.resolve_due_at == Some(due), "due {:?}", c.resolve_due_at);
            }
            Ok(())
        })
    }
}

pub struct RecordMediation;

impl Rpc for RecordMediation {
    const NAME: &'static str = "CaseService.RecordMediation";
    const REQUEST: &'static str = "fengqiao.v1.RecordMediationRequest";
    type Req = pb::RecordMediationRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.record_mediation, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::RecordMediation
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        unknown::<pb::MediationMethod>(r.method)
            || unknown::<pb::MediationType>(r.mediation_type)
            || unknown::<pb::MediationResult>(r.result)
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        let sessions = seen.before.map_or(0, |c| c.mediation_sessions);
        command_effect(h, seen, &r.case_id, EventKind::Mediation, false, |c| {
            ensure!(
                c.status == CaseStatus::InMediation
                    && c.mediation_sessions == sessions.saturating_add(1)
                    && c.mediation_type.map(|t| pb::MediationType::from(t) as i32)
                        == Some(r.mediation_type),
                "stored {c:?}"
            );
            Ok(())
        })
    }
}

pub struct ResolveCase;

impl Rpc for ResolveCase {
    const NAME: &'static str = "CaseService.ResolveCase";
    const REQUEST: &'static str = "fengqiao.v1.ResolveCaseRequest";
    type Req = pb::ResolveCaseRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.resolve_case, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ResolveCase
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        unknown::<pb::Confirmation>(r.confirmation)
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        let kind = if r.resolved {
            EventKind::Resolved
        } else {
            EventKind::Unresolved
        };
        command_effect(h, seen, &r.case_id, kind, false, |c| {
            if r.resolved {
                ensure!(
                    (c.status, &c.agreement, c.settled_amount_fen)
                        == (CaseStatus::Resolved, &r.agreement, r.settled_amount_fen),
                    "stored {c:?}"
                );
            } else {
                ensure!(
                    (c.status, &c.guidance) == (CaseStatus::Unresolved, &r.agreement),
                    "stored {c:?}"
                );
            }
            Ok(())
        })
    }
}

pub struct RecordFollowUp;

impl Rpc for RecordFollowUp {
    const NAME: &'static str = "CaseService.RecordFollowUp";
    const REQUEST: &'static str = "fengqiao.v1.RecordFollowUpRequest";
    type Req = pb::RecordFollowUpRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.record_follow_up, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::RecordFollowUp
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        let closes = r.satisfaction >= u32::from(crate::domain::machine::CLOSE_SATISFACTION_MIN);
        let (kind, status) = if closes {
            (EventKind::FollowUpClosed, CaseStatus::Closed)
        } else {
            (EventKind::Reopened, CaseStatus::InMediation)
        };
        command_effect(h, seen, &r.case_id, kind, false, |c| {
            ensure!(
                c.status == status && c.satisfaction.map(u32::from) == Some(r.satisfaction),
                "stored {c:?}"
            );
            Ok(())
        })
    }
}

pub struct GetCaseHistory;

impl Rpc for GetCaseHistory {
    const NAME: &'static str = "CaseService.GetCaseHistory";
    const REQUEST: &'static str = "fengqiao.v1.GetCaseRequest";
    type Req = pb::GetCaseRequest;
    type Resp = pb::CaseHistory;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.get_case_history, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ReadCase
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        wrote_nothing(seen.writes)?;
        let want = h
            .app
            .history(&who(seen.caller)?, &seen.req.case_id)
            .map_err(|e| e.to_string())?;
        let want: Vec<pb::CaseEvent> = want.iter().map(convert::event_to_proto).collect();
        ensure!(seen.resp.events == want, "not the stored history {want:?}");
        ensure!(seen.resp.case_id == seen.req.case_id, "about another case");
        ensure!(
            seen.resp
                .events
                .iter()
                .enumerate()
                .all(|(i, e)| e.seq == i as u64 + 1),
            "the history's seqs do not run 1, 2, ..."
        );
        Ok(())
    }
}

pub struct EscalateCase;

impl Rpc for EscalateCase {
    const NAME: &'static str = "CaseService.EscalateCase";
    const REQUEST: &'static str = "fengqiao.v1.EscalateCaseRequest";
    type Req = pb::EscalateCaseRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.escalate_case, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::EscalateCase
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        unknown::<pb::EscalationMode>(r.mode)
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        if r.mode == pb::EscalationMode::TakeOver as i32 {
            let before = seen.before.ok_or("escalated a case not stored here")?;
            let after = stored(h, &r.case_id)?;
            ensure!(
                after.status == CaseStatus::Transferred
                    && after.moved_to.as_deref() == Some(PARENT)
                    && after.parties.is_empty(),
                "not a tombstone moved to the parent: {after:?}"
            );
            let events = history(h, &r.case_id)?;
            let new = &events[before.history_len as usize..];
            ensure!(
                new.iter()
                    .filter(|e| e.kind == EventKind::Escalated)
                    .count()
                    == 1,
                "new events {new:?}"
            );
            // The case, and a close of the copy of each supervisor.
            ensure!(
                added(seen.writes, OUTBOX) >= 1,
                "not queued: {:?}",
                seen.writes
            );
            answer_is(h, seen.caller, seen.resp, &after)
        } else {
            command_effect(
                h,
                seen,
                &r.case_id,
                EventKind::SupervisionRequested,
                true,
                |c| {
                    ensure!(
                        c.supervising_nodes.iter().any(|s| s == PARENT),
                        "the parent does not supervise {c:?}"
                    );
                    Ok(())
                },
            )
        }
    }
}

pub struct TransferCase;

impl Rpc for TransferCase {
    const NAME: &'static str = "CaseService.TransferCase";
    const REQUEST: &'static str = "fengqiao.v1.TransferCaseRequest";
    type Req = pb::TransferCaseRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.transfer_case, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::TransferCase
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        let to = NodeCode::parse(&r.to_node).map_err(|e| format!("to_node accepted: {e}"))?;
        match seen.before.filter(|c| c.status != CaseStatus::Transferred) {
            Some(before) => {
                let after = stored(h, &r.case_id)?;
                ensure!(
                    after.status == CaseStatus::Transferred
                        && after.moved_to.as_deref() == Some(to.as_str()),
                    "not a tombstone moved to {to}: {after:?}"
                );
                let events = history(h, &r.case_id)?;
                let new = &events[before.history_len as usize..];
                ensure!(
                    new.iter()
                        .filter(|e| e.kind == EventKind::TransferredOut)
                        .count()
                        == 1,
                    "new events {new:?}"
                );
                // The case, and a close of the copy of each supervisor.
                ensure!(
                    added(seen.writes, OUTBOX) >= 1,
                    "not queued: {:?}",
                    seen.writes
                );
                answer_is(h, seen.caller, seen.resp, &after)
            }
            None => order_queued(seen, &r.case_id),
        }
    }
}

pub struct SuperviseCase;

impl Rpc for SuperviseCase {
    const NAME: &'static str = "CaseService.SuperviseCase";
    const REQUEST: &'static str = "fengqiao.v1.SuperviseCaseRequest";
    type Req = pb::SuperviseCaseRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.supervise_case, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::SuperviseCase
    }

    fn accepted(_: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        order_queued(seen, &seen.req.case_id)
    }
}

pub struct GetLinks;

impl Rpc for GetLinks {
    const NAME: &'static str = "CaseService.GetLinks";
    const REQUEST: &'static str = "fengqiao.v1.GetLinksRequest";
    type Req = pb::GetLinksRequest;
    type Resp = pb::Links;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.get_links, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ReadLinks
    }

    fn accepted(_: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        wrote_nothing(seen.writes)?;
        let peers: Vec<&str> = seen.resp.links.iter().map(|l| l.peer.as_str()).collect();
        ensure!(
            seen.resp.node == super::NODE
                && peers.contains(&PARENT)
                && peers.contains(&super::CHILD),
            "links {peers:?}"
        );
        Ok(())
    }
}

pub struct ChangeRisk;

impl Rpc for ChangeRisk {
    const NAME: &'static str = "CaseService.ChangeRisk";
    const REQUEST: &'static str = "fengqiao.v1.ChangeRiskRequest";
    type Req = pb::ChangeRiskRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.change_risk, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ChangeRisk
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        unknown::<pb::RiskLevel>(r.risk)
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        // The same colour again changes nothing.
        command_effect(h, seen, &r.case_id, EventKind::RiskChanged, true, |c| {
            ensure!(
                pb::RiskLevel::from(c.risk) as i32 == r.risk,
                "risk {:?}",
                c.risk
            );
            Ok(())
        })
    }
}

pub struct ExtendDeadline;

impl Rpc for ExtendDeadline {
    const NAME: &'static str = "CaseService.ExtendDeadline";
    const REQUEST: &'static str = "fengqiao.v1.ExtendDeadlineRequest";
    type Req = pb::ExtendDeadlineRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.extend_deadline, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ExtendDeadline
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        let until = r
            .until
            .as_ref()
            .map(|t| convert::ts_from_proto("until", t))
            .transpose()
            .map_err(|e| e.to_string())?
            .ok_or("accepted without `until`")?;
        command_effect(
            h,
            seen,
            &r.case_id,
            EventKind::DeadlineExtended,
            false,
            |c| {
                ensure!(
                    c.resolve_due_at == Some(until) && c.deadline_extended,
                    "stored {c:?}"
                );
                Ok(())
            },
        )
    }
}

pub struct ListAlerts;

impl Rpc for ListAlerts {
    const NAME: &'static str = "CaseService.ListAlerts";
    const REQUEST: &'static str = "fengqiao.v1.ListAlertsRequest";
    type Req = pb::ListAlertsRequest;
    type Resp = pb::Alerts;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.list_alerts, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ReadAlerts
    }

    fn accepted(_: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        wrote_nothing(seen.writes)?;
        ensure!(
            seen.resp.alerts.len() <= crate::app::cases::MAX_ALERTS,
            "{} alerts",
            seen.resp.alerts.len()
        );
        Ok(())
    }
}

pub struct ExportReport;

impl Rpc for ExportReport {
    const NAME: &'static str = "CaseService.ExportReport";
    const REQUEST: &'static str = "fengqiao.v1.ExportReportRequest";
    type Req = pb::ExportReportRequest;
    type Resp = pb::Report;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.export_report, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ExportReport
    }

    fn accepted(_: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        audited_once(seen.writes)?;
        let r = seen.resp;
        ensure!(
            r.node == super::NODE
                && millis(&r.from) < millis(&r.to)
                && !r.csv.is_empty()
                && !r.text.is_empty(),
            "report {} {} {:?}..{:?}",
            r.node,
            r.period,
            r.from,
            r.to
        );
        Ok(())
    }
}

pub struct UpdateCasePlan;

impl Rpc for UpdateCasePlan {
    const NAME: &'static str = "CaseService.UpdateCasePlan";
    const REQUEST: &'static str = "fengqiao.v1.UpdateCasePlanRequest";
    type Req = pb::UpdateCasePlanRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.update_case_plan, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::PlanCase
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        // Giving only the current values changes nothing.
        command_effect(h, seen, &r.case_id, EventKind::PlanUpdated, true, |c| {
            let p = &c.plan;
            for (given, stored) in [
                (&r.lead_leader, &p.lead_leader),
                (&r.mediation_org, &p.mediation_org),
                (&r.liaison_unit, &p.liaison_unit),
                (&r.plan, &p.plan),
                (&r.legal_briefing, &p.legal_briefing),
            ] {
                if let Some(v) = given {
                    ensure!(v == stored, "stored {stored:?}, sent {v:?}");
                }
            }
            Ok(())
        })
    }
}

pub struct AddCaseProgress;

impl Rpc for AddCaseProgress {
    const NAME: &'static str = "CaseService.AddCaseProgress";
    const REQUEST: &'static str = "fengqiao.v1.AddCaseProgressRequest";
    type Req = pb::AddCaseProgressRequest;
    type Resp = pb::Case;
    about_a_case!();

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.add_case_progress, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::PlanCase
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        let entries = seen.before.map_or(0, |c| c.plan.progress.len());
        command_effect(h, seen, &r.case_id, EventKind::Progress, false, |c| {
            let p = &c.plan.progress;
            ensure!(
                p.len() == entries + 1 && p.last().is_some_and(|e| e.text == r.text),
                "progress {p:?}"
            );
            Ok(())
        })
    }
}

pub struct ListAuditEvents;

impl Rpc for ListAuditEvents {
    const NAME: &'static str = "CaseService.ListAuditEvents";
    const REQUEST: &'static str = "fengqiao.v1.ListAuditEventsRequest";
    type Req = pb::ListAuditEventsRequest;
    type Resp = pb::AuditEvents;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.list_audit_events, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ReadAccessLog
    }

    fn accepted(_: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        wrote_nothing(seen.writes)?;
        let r = seen.req;
        let limit = match r.limit {
            0 => crate::app::cases::DEFAULT_ACCESS,
            n => n as usize,
        };
        let events = &seen.resp.events;
        ensure!(
            events.len() <= limit,
            "{} events over {limit}",
            events.len()
        );
        for e in events {
            ensure!(
                r.since.is_none() || millis(&e.at) >= millis(&r.since),
                "{e:?} before {:?}",
                r.since
            );
            ensure!(r.case_id.is_empty() || e.case_id == r.case_id, "{e:?}");
            ensure!(
                r.actor.is_empty()
                    || e.actor == r.actor
                    || e.actor.ends_with(&format!("/{}", r.actor)),
                "{e:?}"
            );
        }
        Ok(())
    }
}

pub struct ExportCases;

impl Rpc for ExportCases {
    const NAME: &'static str = "CaseService.ExportCases";
    const REQUEST: &'static str = "fengqiao.v1.ExportCasesRequest";
    type Req = pb::ExportCasesRequest;
    type Resp = pb::ExportedCases;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.export_cases, req)
    }

    fn action(r: &Self::Req) -> Action {
        if r.unmasked {
            Action::ReadPersonalData
        } else {
            Action::ReadCase
        }
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        unknown::<pb::ExportFormat>(r.format)
            || unknown::<pb::CaseStatus>(r.status)
            || unknown::<pb::RiskLevel>(r.risk)
            || unknown::<pb::Category>(r.category)
    }

    fn accepted(_: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        audited_once(seen.writes)?;
        let x = seen.resp;
        ensure!(
            (x.rows as usize) <= crate::app::console_views::EXPORT_MAX_ROWS,
            "{} rows",
            x.rows
        );
        // The file reads back (title, header, one line a case).
        let table = crate::report::sheet::read_table(&x.file_name, &x.content)
            .map_err(|e| format!("{}: the export does not read back: {e:?}", x.file_name))?;
        ensure!(
            table.len() == x.rows as usize + 2,
            "{} lines read back for {} rows",
            table.len(),
            x.rows
        );
        Ok(())
    }
}

pub struct ImportCases;

impl Rpc for ImportCases {
    const NAME: &'static str = "CaseService.ImportCases";
    const REQUEST: &'static str = "fengqiao.v1.ImportCasesRequest";
    type Req = pb::ImportCasesRequest;
    type Resp = pb::ImportCasesResult;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, case.import_cases, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ImportCases
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let first = seen.resp;
        ensure!(
            added(seen.writes, ACCESS) == 1,
            "not audited once: {:?}",
            seen.writes
        );
        ensure!(
            added(seen.writes, CASES) == first.imported as usize,
            "{} cases added, {} reported",
            added(seen.writes, CASES),
            first.imported
        );
        writes_only(
            seen.writes,
            &[
                ACCESS,
                CASES,
                EVENTS,
                "idempotencykey_caseid",
                "lookupcode_caseid",
                META,
                "deadline_caseid",
                "personhash_registeredat_caseid",
                "respondenthash_caseid",
                "kind_node_bucket_entry",
                "seq_statskey",
                "status_risk_category_caseid",
                "phonehash_caseid",
                "at_kind_caseid_seq_amount",
                "subtreepersonhash_registeredat_caseid_node",
            ],
        )?;
        // Imported again: nothing added, every row imported before is said so.
        let before = h.state.store.fingerprint();
        let again = ImportCases::call(h, h.request(seen.caller, seen.req.clone()))
            .map_err(|e| format!("the same import again: {e:?}"))?;
        let writes = before.changes(&h.state.store.fingerprint());
        audited_once(&writes).map_err(|e| format!("the same import again: {e}"))?;
        ensure!(
            again.imported == 0
                && again.repeated == first.imported + first.repeated
                && again.rejected == first.rejected,
            "the same import again: {again:?}"
        );
        Ok(())
    }
}

pub struct AddUser;

impl Rpc for AddUser {
    const NAME: &'static str = "UserService.AddUser";
    const REQUEST: &'static str = "fengqiao.v1.AddUserRequest";
    type Req = pb::AddUserRequest;
    type Resp = pb::IssuedUser;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, users.add_user, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ManageUsers
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        writes_only(seen.writes, &[USERS, ACCESS])?;
        ensure!(
            added(seen.writes, USERS) == 1 && added(seen.writes, ACCESS) == 1,
            "wrote {:?}",
            seen.writes
        );
        let u = h
            .state
            .store
            .user(&r.username)
            .map_err(|e| e.to_string())?
            .ok_or("no account stored")?;
        ensure!(
            (u.role.as_str(), u.name.as_str(), u.enabled, u.must_change)
                == (r.role.as_str(), r.name.trim(), true, r.password.is_empty()),
            "stored {u:?}"
        );
        let password = match &seen.resp.one_time_password {
            p if r.password.is_empty() => p,
            p => {
                ensure!(p.is_empty(), "a one-time password for a chosen one");
                &r.password
            }
        };
        ensure!(
            crate::app::users::verify_password(password, &u.password_hash),
            "the password does not sign in"
        );
        ensure!(
            seen.resp
                .user
                .as_ref()
                .is_some_and(|x| x.username == r.username),
            "answered about another account"
        );
        Ok(())
    }
}

pub struct ListUsers;

impl Rpc for ListUsers {
    const NAME: &'static str = "UserService.ListUsers";
    const REQUEST: &'static str = "fengqiao.v1.ListUsersRequest";
    type Req = pb::ListUsersRequest;
    type Resp = pb::Users;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, users.list_users, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ManageUsers
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        wrote_nothing(seen.writes)?;
        let stored = h.state.store.users().map_err(|e| e.to_string())?;
        let listed: Vec<&str> = seen
            .resp
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect();
        let want: Vec<&str> = stored.iter().map(|u| u.username.as_str()).collect();
        ensure!(listed == want, "listed {listed:?}, stored {want:?}");
        Ok(())
    }
}

pub struct SetUserEnabled;

impl Rpc for SetUserEnabled {
    const NAME: &'static str = "UserService.SetUserEnabled";
    const REQUEST: &'static str = "fengqiao.v1.SetUserEnabledRequest";
    const TARGET: Target = Target::User;
    type Req = pb::SetUserEnabledRequest;
    type Resp = pb::User;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, users.set_user_enabled, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ManageUsers
    }

    fn aim(req: &mut Self::Req, target: String) {
        req.username = target;
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        writes_only(seen.writes, &[USERS, LOGINS, ACCESS])?;
        ensure!(added(seen.writes, ACCESS) == 1, "not audited once");
        let u = h
            .state
            .store
            .user(&r.username)
            .map_err(|e| e.to_string())?
            .ok_or("no account stored")?;
        ensure!(
            u.enabled == r.enabled && seen.resp.enabled == r.enabled,
            "stored {u:?}"
        );
        if r.enabled {
            let login = h
                .state
                .store
                .login_state(&r.username)
                .map_err(|e| e.to_string())?;
            ensure!(
                login.failures == 0 && login.locked_at.is_none(),
                "still locked"
            );
        }
        Ok(())
    }
}

pub struct ResetPassword;

impl Rpc for ResetPassword {
    const NAME: &'static str = "UserService.ResetPassword";
    const REQUEST: &'static str = "fengqiao.v1.ResetPasswordRequest";
    const TARGET: Target = Target::User;
    type Req = pb::ResetPasswordRequest;
    type Resp = pb::IssuedUser;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, users.reset_password, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ManageUsers
    }

    fn aim(req: &mut Self::Req, target: String) {
        req.username = target;
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        writes_only(seen.writes, &[USERS, LOGINS, ACCESS])?;
        ensure!(added(seen.writes, ACCESS) == 1, "not audited once");
        let u = h
            .state
            .store
            .user(&r.username)
            .map_err(|e| e.to_string())?
            .ok_or("no account stored")?;
        ensure!(u.must_change == r.password.is_empty(), "stored {u:?}");
        let password = if r.password.is_empty() {
            &seen.resp.one_time_password
        } else {
            &r.password
        };
        ensure!(
            crate::app::users::verify_password(password, &u.password_hash),
            "the new password does not sign in"
        );
        Ok(())
    }
}

pub struct AddApiKey;

impl Rpc for AddApiKey {
    const NAME: &'static str = "ApiKeyService.AddApiKey";
    const REQUEST: &'static str = "fengqiao.v1.AddApiKeyRequest";
    type Req = pb::AddApiKeyRequest;
    type Resp = pb::IssuedApiKey;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, keys.add_api_key, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ManageUsers
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        unknown::<pb::Channel>(r.channel)
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        let r = seen.req;
        writes_only(seen.writes, &[API_KEYS, ACCESS])?;
        ensure!(
            added(seen.writes, API_KEYS) == 1 && added(seen.writes, ACCESS) == 1,
            "wrote {:?}",
            seen.writes
        );
        let key = h
            .app
            .check_api_key(&seen.resp.key)
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("the key issued is refused: {e:?}"))?;
        let channel = if r.channel == 0 {
            pb::Channel::Online as i32
        } else {
            r.channel
        };
        ensure!(
            key.name == r.name && pb::Channel::from(key.channel) as i32 == channel,
            "stored {key:?}"
        );
        Ok(())
    }
}

pub struct ListApiKeys;

impl Rpc for ListApiKeys {
    const NAME: &'static str = "ApiKeyService.ListApiKeys";
    const REQUEST: &'static str = "fengqiao.v1.ListApiKeysRequest";
    type Req = pb::ListApiKeysRequest;
    type Resp = pb::ApiKeys;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, keys.list_api_keys, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ManageUsers
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        wrote_nothing(seen.writes)?;
        let stored = h.state.store.api_keys().map_err(|e| e.to_string())?;
        ensure!(
            seen.resp.api_keys.len() == stored.len(),
            "{} listed, {} stored",
            seen.resp.api_keys.len(),
            stored.len()
        );
        Ok(())
    }
}

pub struct RevokeApiKey;

impl Rpc for RevokeApiKey {
    const NAME: &'static str = "ApiKeyService.RevokeApiKey";
    const REQUEST: &'static str = "fengqiao.v1.RevokeApiKeyRequest";
    const TARGET: Target = Target::ApiKey;
    type Req = pb::RevokeApiKeyRequest;
    type Resp = pb::ApiKey;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, keys.revoke_api_key, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ManageUsers
    }

    fn aim(req: &mut Self::Req, target: String) {
        req.name = target;
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        writes_only(seen.writes, &[API_KEYS, ACCESS])?;
        ensure!(added(seen.writes, ACCESS) == 1, "not audited once");
        let key = h
            .state
            .store
            .api_key(&seen.req.name)
            .map_err(|e| e.to_string())?
            .ok_or("no key stored")?;
        ensure!(
            key.revoked_at.is_some() && seen.resp.revoked_at.is_some(),
            "not revoked: {key:?}"
        );
        Ok(())
    }
}

pub struct Backup;

impl Rpc for Backup {
    const NAME: &'static str = "BackupService.Backup";
    const REQUEST: &'static str = "fengqiao.v1.BackupRequest";
    type Req = pb::BackupRequest;
    /// The file, as streamed.
    type Resp = Vec<u8>;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        use tokio_stream::StreamExt as _;
        h.block_on(async {
            let mut chunks = h.backup.backup(req).await?.into_inner();
            let mut file = Vec::new();
            while let Some(chunk) = chunks.next().await {
                file.extend(chunk?.data);
            }
            Ok(file)
        })
    }

    fn action(_: &Self::Req) -> Action {
        Action::Backup
    }

    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        // The backup holds the record of its own taking.
        audited_once(seen.writes)?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("b.fqbackup");
        std::fs::write(&path, seen.resp).map_err(|e| e.to_string())?;
        let summary = crate::storage::backup::verify(&path)
            .map_err(|e| format!("the backup does not verify: {e}"))?;
        let records = h.state.store.fingerprint().len();
        ensure!(
            summary.records as usize == records,
            "{} records backed up of {records}",
            summary.records
        );
        Ok(())
    }
}

pub struct GetAggregates;

impl Rpc for GetAggregates {
    const NAME: &'static str = "StatsService.GetAggregates";
    const REQUEST: &'static str = "fengqiao.v1.GetAggregatesRequest";
    type Req = pb::GetAggregatesRequest;
    type Resp = pb::Aggregates;

    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status> {
        call!(h, stats.get_aggregates, req)
    }

    fn action(_: &Self::Req) -> Action {
        Action::ReadStats
    }

    fn unknown_enum(r: &Self::Req) -> bool {
        r.group_by.iter().any(|g| unknown::<pb::GroupBy>(*g))
    }

    fn accepted(_: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String> {
        wrote_nothing(seen.writes)?;
        ensure!(
            seen.resp.groups.len() == seen.req.group_by.len(),
            "{} breakdowns for {} asked",
            seen.resp.groups.len(),
            seen.req.group_by.len()
        );
        Ok(())
    }
}
