//! Protobuf ⇄ domain conversions: the only place where `fengqiao_proto` types meet domain types.
//!
//! Enums are decoded through `TryFrom<i32>` so an unknown number is an error rather than the
//! silent default that prost's generated getters give; `*_UNSPECIFIED` is an error where a value
//! is required and "no filter" where it filters. Requests are destructured exhaustively so that a
//! field added to the proto cannot be forgotten here. Every error is a
//! [`DomainError::InvalidArgument`] naming the proto field.

pub mod stats;

use fengqiao_proto::v1 as pb;

use crate::domain::alert::Alert;
use crate::domain::mask;
use crate::domain::rules::Warning;
use crate::domain::{
    Case, CasePlan, CaseStatus, Category, Channel, Command, Confirmation, DomainError, Event,
    MediationMethod, MediationResult, MediationType, NewCase, Party, PartyRole, PlanUpdate,
    ProgressEntry, RiskLevel, Timestamp,
};

macro_rules! enum_conv {
    ($pb:ident, $dom:ident, [$($v:ident),+ $(,)?]) => {
        impl From<$dom> for pb::$pb {
            fn from(d: $dom) -> Self {
                match d { $($dom::$v => pb::$pb::$v,)+ }
            }
        }
        impl TryFrom<pb::$pb> for $dom {
            type Error = ();
            fn try_from(p: pb::$pb) -> Result<Self, ()> {
                match p {
                    pb::$pb::Unspecified => Err(()),
                    $(pb::$pb::$v => Ok($dom::$v),)+
                }
            }
        }
    };
}

enum_conv!(
    CaseStatus,
    CaseStatus,
    [
        Registered,
        Accepted,
        InMediation,
        Resolved,
        Unresolved,
        Rejected,
        Closed,
        Transferred
    ]
);
enum_conv!(
    Category,
    Category,
    [
        Labor,
        PropertyManagement,
        LandContract,
        MarriageFamily,
        Neighbor,
        Medical,
        Traffic,
        Finance,
        ConstructionDemolition,
        Lease,
        Consumer,
        Other
    ]
);
enum_conv!(
    Channel,
    Channel,
    [
        WalkIn,
        Hotline12348,
        Online,
        GridReport,
        CourtReferral,
        Petition,
        DepartmentTransfer
    ]
);
enum_conv!(RiskLevel, RiskLevel, [Blue, Yellow, Orange, Red]);
enum_conv!(PartyRole, PartyRole, [Applicant, Respondent, Other]);
enum_conv!(MediationMethod, MediationMethod, [Phone, FaceToFace, Video]);
enum_conv!(
    MediationType,
    MediationType,
    [Peoples, Administrative, Judicial, Industry]
);
enum_conv!(
    MediationResult,
    MediationResult,
    [Agreed, NotAgreed, Continuing]
);
enum_conv!(Confirmation, Confirmation, [None, Judicial, Notarized]);
enum_conv!(Warning, Warning, [None, Amber, Red]);

/// Decodes a required enum field: unknown numbers and `*_UNSPECIFIED` are errors.
pub fn required<P, D>(field: &'static str, v: i32) -> Result<D, DomainError>
where
    P: TryFrom<i32>,
    D: TryFrom<P, Error = ()>,
{
    let p =
        P::try_from(v).map_err(|_| DomainError::invalid(field, format!("unknown value {v}")))?;
    D::try_from(p).map_err(|()| DomainError::invalid(field, "is required (UNSPECIFIED given)"))
}

/// Decodes an optional enum (a filter): `*_UNSPECIFIED` is `None`, unknown numbers are errors.
pub fn optional<P, D>(field: &'static str, v: i32) -> Result<Option<D>, DomainError>
where
    P: TryFrom<i32>,
    D: TryFrom<P, Error = ()>,
{
    if v == 0 {
        return Ok(None);
    }
    required::<P, D>(field, v).map(Some)
}

pub fn ts_to_proto(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // rem_euclid(1000) is in 0..1000, so the product fits in i32.
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn ts_from_proto(
    field: &'static str,
    t: &prost_types::Timestamp,
) -> Result<Timestamp, DomainError> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(DomainError::invalid(field, "nanos out of range"));
    }
    t.seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(t.nanos / 1_000_000)))
        .map(Timestamp)
        .ok_or_else(|| DomainError::invalid(field, "timestamp out of range"))
}

fn party_from_proto(p: pb::Party) -> Result<Party, DomainError> {
    let pb::Party {
        role,
        name,
        phone,
        id_number,
    } = p;
    Ok(Party {
        role: required::<pb::PartyRole, _>("parties.role", role)?,
        name,
        phone,
        id_number,
    })
}

fn party_to_proto(p: &Party) -> pb::Party {
    pb::Party {
        role: pb::PartyRole::from(p.role) as i32,
        name: p.name.clone(),
        phone: p.phone.clone(),
        id_number: p.id_number.clone(),
    }
}

pub fn new_case_from_proto(r: pb::RegisterCaseRequest) -> Result<NewCase, DomainError> {
    let pb::RegisterCaseRequest {
        idempotency_key,
        category,
        channel,
        summary,
        description,
        parties,
        amount_fen,
        risk,
        grid_id,
    } = r;
    Ok(NewCase {
        idempotency_key,
        category: required::<pb::Category, _>("category", category)?,
        channel: required::<pb::Channel, _>("channel", channel)?,
        summary,
        description,
        parties: parties
            .into_iter()
            .map(party_from_proto)
            .collect::<Result<_, _>>()?,
        amount_fen,
        risk: required::<pb::RiskLevel, _>("risk", risk)?,
        grid_id,
    })
}

pub fn review_from_proto(r: pb::ReviewCaseRequest) -> (String, Command) {
    let pb::ReviewCaseRequest {
        case_id,
        accept,
        reason,
        guidance,
    } = r;
    (
        case_id,
        Command::Review {
            accept,
            reason,
            guidance,
        },
    )
}

pub fn assign_from_proto(r: pb::AssignCaseRequest) -> Result<(String, Command), DomainError> {
    let pb::AssignCaseRequest {
        case_id,
        handler,
        due_at,
    } = r;
    let due_at = due_at
        .as_ref()
        .map(|t| ts_from_proto("due_at", t))
        .transpose()?;
    Ok((case_id, Command::Assign { handler, due_at }))
}

pub fn mediation_from_proto(
    r: pb::RecordMediationRequest,
) -> Result<(String, Command), DomainError> {
    let pb::RecordMediationRequest {
        case_id,
        method,
        mediation_type,
        mediator,
        notes,
        result,
    } = r;
    Ok((
        case_id,
        Command::RecordMediation {
            method: required::<pb::MediationMethod, _>("method", method)?,
            mediation_type: required::<pb::MediationType, _>("mediation_type", mediation_type)?,
            mediator,
            notes,
            result: required::<pb::MediationResult, _>("result", result)?,
        },
    ))
}

pub fn resolve_from_proto(r: pb::ResolveCaseRequest) -> Result<(String, Command), DomainError> {
    let pb::ResolveCaseRequest {
        case_id,
        resolved,
        agreement,
        settled_amount_fen,
        confirmation,
    } = r;
    // The confirmation only means something for a settled case; unresolved may leave it unset.
    let confirmation = if resolved {
        required::<pb::Confirmation, _>("confirmation", confirmation)?
    } else {
        optional::<pb::Confirmation, _>("confirmation", confirmation)?.unwrap_or(Confirmation::None)
    };
    Ok((
        case_id,
        Command::Resolve {
            resolved,
            agreement,
            settled_amount_fen,
            confirmation,
        },
    ))
}

pub fn follow_up_from_proto(
    r: pb::RecordFollowUpRequest,
) -> Result<(String, Command), DomainError> {
    let pb::RecordFollowUpRequest {
        case_id,
        satisfaction,
        notes,
    } = r;
    let satisfaction = u8::try_from(satisfaction)
        .ok()
        .filter(|s| (1..=5).contains(s))
        .ok_or_else(|| {
            DomainError::invalid("satisfaction", format!("must be 1–5, got {satisfaction}"))
        })?;
    Ok((
        case_id,
        Command::FollowUp {
            satisfaction,
            notes,
        },
    ))
}

pub fn change_risk_from_proto(r: pb::ChangeRiskRequest) -> Result<(String, Command), DomainError> {
    let pb::ChangeRiskRequest {
        case_id,
        risk,
        reason,
    } = r;
    let risk = required::<pb::RiskLevel, _>("risk", risk)?;
    Ok((case_id, Command::ChangeRisk { risk, reason }))
}

pub fn extend_from_proto(r: pb::ExtendDeadlineRequest) -> Result<(String, Command), DomainError> {
    let pb::ExtendDeadlineRequest {
        case_id,
        until,
        reason,
    } = r;
    let until = until
        .as_ref()
        .map(|t| ts_from_proto("until", t))
        .transpose()?
        .ok_or_else(|| DomainError::invalid("until", "is required"))?;
    Ok((case_id, Command::ExtendDeadline { until, reason }))
}

pub fn plan_from_proto(r: pb::UpdateCasePlanRequest) -> (String, Command) {
    let pb::UpdateCasePlanRequest {
        case_id,
        lead_leader,
        mediation_org,
        liaison_unit,
        plan,
        legal_briefing,
    } = r;
    let update = PlanUpdate {
        lead_leader,
        mediation_org,
        liaison_unit,
        plan,
        legal_briefing,
    };
    (case_id, Command::UpdatePlan(update))
}

pub fn progress_from_proto(r: pb::AddCaseProgressRequest) -> (String, Command) {
    let pb::AddCaseProgressRequest { case_id, text } = r;
    (case_id, Command::AddProgress { text })
}

fn plan_to_proto(p: &CasePlan) -> pb::CasePlan {
    let CasePlan {
        lead_leader,
        mediation_org,
        liaison_unit,
        plan,
        legal_briefing,
        progress,
    } = p;
    pb::CasePlan {
        lead_leader: lead_leader.clone(),
        mediation_org: mediation_org.clone(),
        liaison_unit: liaison_unit.clone(),
        plan: plan.clone(),
        legal_briefing: legal_briefing.clone(),
        progress: progress
            .iter()
            .map(|ProgressEntry { at, actor, text }| pb::ProgressEntry {
                at: Some(ts_to_proto(*at)),
                actor: actor.clone(),
                text: text.clone(),
            })
            .collect(),
    }
}

pub fn alert_to_proto(a: &Alert) -> pb::Alert {
    let Alert {
        key: _,
        kind,
        case_ids,
        node,
        raised_at,
        message,
        forward_to: _,
    } = a;
    pb::Alert {
        kind: kind.as_str().to_owned(),
        case_ids: case_ids.clone(),
        node: node.clone(),
        raised_at: Some(ts_to_proto(*raised_at)),
        message: message.clone(),
    }
}

/// A case for the wire, as seen at `now` (its deadline warning is computed from it). Personal
/// data is masked unless `reveal_personal` (GetCase for a role that needs it); listings always
/// pass `false`.
pub fn case_to_proto(c: &Case, reveal_personal: bool, now: Timestamp) -> pb::Case {
    if !reveal_personal {
        // Free text too: the parties' names and numbers, and any phone or ID number typed
        // into it, are masked for a caller that may not see personal data.
        let shown = mask::mask_free_text(c);
        return case_to_proto_as_is(&shown, false, now);
    }
    case_to_proto_as_is(c, true, now)
}

fn case_to_proto_as_is(c: &Case, reveal_personal: bool, now: Timestamp) -> pb::Case {
    let parties = if reveal_personal {
        c.parties.iter().map(party_to_proto).collect()
    } else {
        c.parties
            .iter()
            .map(|p| party_to_proto(&mask::mask_party(p)))
            .collect()
    };
    let Case {
        id,
        lookup_code,
        status,
        owner_node,
        origin_node,
        epoch,
        moved_to,
        category,
        channel,
        risk,
        summary,
        description,
        parties: _,
        amount_fen,
        grid_id,
        handler,
        created_at,
        updated_at,
        review_due_at,
        resolve_due_at,
        settled_amount_fen,
        reopen_count,
        reason,
        guidance,
        agreement,
        confirmation,
        satisfaction,
        mediation_type,
        mediation_sessions,
        resolved_at,
        closed_at,
        history_len: _,
        supervising_nodes,
        resolve_started_at,
        follow_up_due_at,
        deadline_extended,
        rule_supervision: _,
        plan,
    } = c;
    pb::Case {
        id: id.clone(),
        lookup_code: lookup_code.clone(),
        status: pb::CaseStatus::from(*status) as i32,
        owner_node: owner_node.clone(),
        origin_node: origin_node.clone(),
        epoch: *epoch,
        moved_to: moved_to.clone().unwrap_or_default(),
        category: pb::Category::from(*category) as i32,
        channel: pb::Channel::from(*channel) as i32,
        risk: pb::RiskLevel::from(*risk) as i32,
        summary: summary.clone(),
        description: description.clone(),
        parties,
        amount_fen: *amount_fen,
        grid_id: grid_id.clone(),
        handler: handler.clone().unwrap_or_default(),
        created_at: Some(ts_to_proto(*created_at)),
        updated_at: Some(ts_to_proto(*updated_at)),
        review_due_at: Some(ts_to_proto(*review_due_at)),
        resolve_due_at: resolve_due_at.map(ts_to_proto),
        settled_amount_fen: *settled_amount_fen,
        reopen_count: *reopen_count,
        reason: reason.clone(),
        guidance: guidance.clone(),
        agreement: agreement.clone(),
        confirmation: confirmation.map_or(0, |c| pb::Confirmation::from(c) as i32),
        satisfaction: satisfaction.map_or(0, u32::from),
        mediation_type: mediation_type.map_or(0, |m| pb::MediationType::from(m) as i32),
        resolved_at: resolved_at.map(ts_to_proto),
        closed_at: closed_at.map(ts_to_proto),
        supervising_nodes: supervising_nodes.clone(),
        warning: pb::Warning::from(c.warning(now)) as i32,
        mediation_sessions: *mediation_sessions,
        follow_up_due_at: follow_up_due_at.map(ts_to_proto),
        resolve_started_at: resolve_started_at.map(ts_to_proto),
        deadline_extended: *deadline_extended,
        plan: Some(plan_to_proto(plan)),
    }
}

pub fn event_to_proto(e: &Event) -> pb::CaseEvent {
    let Event {
        seq,
        at,
        node,
        actor,
        kind,
        from_status,
        to_status,
        detail,
    } = e;
    pb::CaseEvent {
        seq: *seq,
        at: Some(ts_to_proto(*at)),
        node: node.clone(),
        actor: actor.clone(),
        kind: kind.as_str().to_string(),
        from_status: from_status.map_or(0, |s| pb::CaseStatus::from(s) as i32),
        to_status: pb::CaseStatus::from(*to_status) as i32,
        detail: detail.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_unspecified_enums_are_errors() {
        let e = required::<pb::Category, Category>("category", 99).unwrap_err();
        assert!(e.to_string().contains("category"), "{e}");
        assert!(e.to_string().contains("99"), "{e}");
        let e = required::<pb::Category, Category>("category", 0).unwrap_err();
        assert!(e.to_string().contains("required"), "{e}");
        assert_eq!(
            required::<pb::Category, Category>("category", 1),
            Ok(Category::Labor)
        );
    }

    #[test]
    fn filters_treat_unspecified_as_none() {
        assert_eq!(optional::<pb::RiskLevel, RiskLevel>("risk", 0), Ok(None));
        assert_eq!(
            optional::<pb::RiskLevel, RiskLevel>("risk", 4),
            Ok(Some(RiskLevel::Red))
        );
        assert!(optional::<pb::RiskLevel, RiskLevel>("risk", 5).is_err());
    }

    #[test]
    fn domain_codes_match_proto_numbers() {
        for s in CaseStatus::ALL {
            assert_eq!(pb::CaseStatus::from(*s) as i32, i32::from(s.code()));
        }
        for c in Category::ALL {
            assert_eq!(pb::Category::from(*c) as i32, i32::from(c.code()));
        }
        for c in Channel::ALL {
            assert_eq!(pb::Channel::from(*c) as i32, i32::from(c.code()));
        }
        for r in RiskLevel::ALL {
            assert_eq!(pb::RiskLevel::from(*r) as i32, i32::from(r.code()));
        }
    }

    #[test]
    fn timestamps_round_trip_including_before_epoch() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1, -1001] {
            let t = Timestamp(ms);
            assert_eq!(ts_from_proto("t", &ts_to_proto(t)), Ok(t));
        }
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -5,
        };
        assert!(ts_from_proto("due_at", &bad).is_err());
    }

    #[test]
    fn satisfaction_out_of_range_is_rejected() {
        for s in [0, 6, 300] {
            let r = pb::RecordFollowUpRequest {
                case_id: "x".into(),
                satisfaction: s,
                notes: String::new(),
            };
            assert!(follow_up_from_proto(r).is_err());
        }
    }
}
