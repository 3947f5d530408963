//! Federation messages ⇄ `fengqiao.v1` protobuf: the federation's half of the conversion
//! layer (`crate::convert` holds the operator API's half and the shared helpers).
//!
//! Decoding checks everything a peer could get wrong: node codes, required enums (unknown or
//! UNSPECIFIED values are errors, as everywhere), timestamps, event kinds, and the shape of a
//! carried history. Messages are destructured exhaustively so that a field added to the proto
//! cannot be forgotten here.

use fengqiao_proto::v1 as pb;

use crate::code::NodeCode;
use crate::convert::{
    case_to_proto, event_to_proto, optional, required, ts_from_proto, ts_to_proto,
};
use crate::domain::alert::{Alert, AlertKind};
use crate::domain::moves::MoveKind;
use crate::domain::{
    Case, CasePlan, DomainError, Event, EventKind, Party, ProgressEntry, RuleSupervision,
    SupervisionCause,
};

use crate::protocol::message::{
    Body, CaseCopy, Message, Order, OrderKind, Received, Refusal, RefusalKind, Refused, Sighting,
    Transfer,
};

type Result<T> = std::result::Result<T, DomainError>;

fn code(field: &'static str, s: &str) -> Result<NodeCode> {
    NodeCode::parse(s).map_err(|e| DomainError::invalid(field, e.to_string()))
}

fn ts(field: &'static str, t: Option<prost_types::Timestamp>) -> Result<crate::domain::Timestamp> {
    let t = t.ok_or_else(|| DomainError::invalid(field, "is required"))?;
    ts_from_proto(field, &t)
}

fn opt_ts(
    field: &'static str,
    t: Option<prost_types::Timestamp>,
) -> Result<Option<crate::domain::Timestamp>> {
    t.map(|t| ts_from_proto(field, &t)).transpose()
}

/// A whole case from a peer (personal data in full), its history length given separately
/// (the proto does not carry it).
pub fn case_from_proto(c: pb::Case, history_len: u64) -> Result<Case> {
    let pb::Case {
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
        parties,
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
        resolved_at,
        closed_at,
        supervising_nodes,
        // Derived from the deadlines by whoever shows the case.
        warning: _,
        mediation_sessions,
        follow_up_due_at,
        resolve_started_at,
        deadline_extended,
        plan,
    } = c;
    let parties = parties
        .into_iter()
        .map(|p| {
            let pb::Party {
                role,
                name,
                phone,
                id_number,
            } = p;
            Ok(Party {
                role: required::<pb::PartyRole, _>("case.parties.role", role)?,
                name,
                phone,
                id_number,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for s in &supervising_nodes {
        code("case.supervising_nodes", s)?;
    }
    code("case.owner_node", &owner_node)?;
    code("case.origin_node", &origin_node)?;
    Ok(Case {
        id,
        lookup_code,
        status: required::<pb::CaseStatus, _>("case.status", status)?,
        owner_node,
        origin_node,
        epoch,
        moved_to: (!moved_to.is_empty()).then_some(moved_to),
        category: required::<pb::Category, _>("case.category", category)?,
        channel: required::<pb::Channel, _>("case.channel", channel)?,
        risk: required::<pb::RiskLevel, _>("case.risk", risk)?,
        summary,
        description,
        parties,
        amount_fen,
        grid_id,
        handler: (!handler.is_empty()).then_some(handler),
        created_at: ts("case.created_at", created_at)?,
        updated_at: ts("case.updated_at", updated_at)?,
        review_due_at: ts("case.review_due_at", review_due_at)?,
        resolve_due_at: opt_ts("case.resolve_due_at", resolve_due_at)?,
        settled_amount_fen,
        reopen_count,
        reason,
        guidance,
        agreement,
        confirmation: optional::<pb::Confirmation, _>("case.confirmation", confirmation)?,
        satisfaction: match satisfaction {
            0 => None,
            s => Some(
                u8::try_from(s)
                    .map_err(|_| DomainError::invalid("case.satisfaction", "out of range"))?,
            ),
        },
        mediation_type: optional::<pb::MediationType, _>("case.mediation_type", mediation_type)?,
        mediation_sessions,
        resolved_at: opt_ts("case.resolved_at", resolved_at)?,
        closed_at: opt_ts("case.closed_at", closed_at)?,
        history_len,
        supervising_nodes,
        resolve_started_at: opt_ts("case.resolve_started_at", resolve_started_at)?,
        follow_up_due_at: opt_ts("case.follow_up_due_at", follow_up_due_at)?,
        deadline_extended,
        // Carried beside the case (see `rules_from_proto`).
        rule_supervision: Vec::new(),
        plan: plan.map(plan_from_proto).transpose()?.unwrap_or_default(),
    })
}

fn plan_from_proto(p: pb::CasePlan) -> Result<CasePlan> {
    let pb::CasePlan {
        lead_leader,
        mediation_org,
        liaison_unit,
        plan,
        legal_briefing,
        progress,
    } = p;
    Ok(CasePlan {
        lead_leader,
        mediation_org,
        liaison_unit,
        plan,
        legal_briefing,
        progress: progress
            .into_iter()
            .map(|pb::ProgressEntry { at, actor, text }| {
                Ok(ProgressEntry {
                    at: ts("case.plan.progress.at", at)?,
                    actor,
                    text,
                })
            })
            .collect::<Result<_>>()?,
    })
}

fn cause_to_proto(c: SupervisionCause) -> pb::RuleCause {
    match c {
        SupervisionCause::Risk => pb::RuleCause::Risk,
        SupervisionCause::Overdue => pb::RuleCause::Overdue,
        SupervisionCause::Reopened => pb::RuleCause::Reopened,
    }
}

fn rules_to_proto(case: &Case) -> Vec<pb::RuleSupervision> {
    case.rule_supervision
        .iter()
        .map(|RuleSupervision { node, cause }| pb::RuleSupervision {
            node: node.clone(),
            cause: cause_to_proto(*cause) as i32,
        })
        .collect()
}

fn rules_from_proto(rules: Vec<pb::RuleSupervision>) -> Result<Vec<RuleSupervision>> {
    rules
        .into_iter()
        .map(|pb::RuleSupervision { node, cause }| {
            let cause = match pb::RuleCause::try_from(cause) {
                Ok(pb::RuleCause::Risk) => SupervisionCause::Risk,
                Ok(pb::RuleCause::Overdue) => SupervisionCause::Overdue,
                Ok(pb::RuleCause::Reopened) => SupervisionCause::Reopened,
                Ok(pb::RuleCause::Unspecified) | Err(_) => {
                    return Err(DomainError::invalid(
                        "rule_supervision.cause",
                        format!("unknown or unspecified value {cause}"),
                    ));
                }
            };
            code("rule_supervision.node", &node)?;
            Ok(RuleSupervision { node, cause })
        })
        .collect()
}

pub fn event_from_proto(e: pb::CaseEvent) -> Result<Event> {
    let pb::CaseEvent {
        seq,
        at,
        node,
        actor,
        kind,
        from_status,
        to_status,
        detail,
    } = e;
    Ok(Event {
        seq,
        at: ts("history.at", at)?,
        node,
        actor,
        kind: EventKind::from_name(&kind).ok_or_else(|| {
            DomainError::invalid("history.kind", format!("unknown kind {kind:?}"))
        })?,
        from_status: optional::<pb::CaseStatus, _>("history.from_status", from_status)?,
        to_status: required::<pb::CaseStatus, _>("history.to_status", to_status)?,
        detail,
    })
}

/// A case, its rule supervisions and its history; the history must run 1, 2, 3, ... without
/// gaps.
fn case_with_history(
    c: Option<pb::Case>,
    history: Vec<pb::CaseEvent>,
    rules: Vec<pb::RuleSupervision>,
) -> Result<(Case, Vec<Event>)> {
    case_with_history_from(c, 0, history, rules)
}

/// A case with the events after `from` (a supervised copy's part; 0 for a whole history).
fn case_with_history_from(
    c: Option<pb::Case>,
    from: u64,
    history: Vec<pb::CaseEvent>,
    rules: Vec<pb::RuleSupervision>,
) -> Result<(Case, Vec<Event>)> {
    let events = history
        .into_iter()
        .map(event_from_proto)
        .collect::<Result<Vec<_>>>()?;
    let first = from
        .checked_add(1)
        .ok_or_else(|| DomainError::invalid("history_from", "is out of range"))?;
    if events.iter().zip(first..).any(|(e, seq)| e.seq != seq) {
        return Err(DomainError::invalid(
            "history",
            "must be numbered from history_from + 1 without gaps",
        ));
    }
    let len = from
        .checked_add(events.len() as u64)
        .ok_or_else(|| DomainError::invalid("history_from", "is out of range"))?;
    let c = c.ok_or_else(|| DomainError::invalid("case", "is required"))?;
    let mut case = case_from_proto(c, len)?;
    case.rule_supervision = rules_from_proto(rules)?;
    Ok((case, events))
}

fn move_kind_to_proto(k: MoveKind) -> pb::TransferKind {
    match k {
        MoveKind::TakeOver => pb::TransferKind::TakeOver,
        MoveKind::Transfer => pb::TransferKind::Transfer,
        MoveKind::Ordered => pb::TransferKind::Ordered,
    }
}

fn move_kind_from_proto(v: i32) -> Result<MoveKind> {
    match pb::TransferKind::try_from(v) {
        Ok(pb::TransferKind::TakeOver) => Ok(MoveKind::TakeOver),
        Ok(pb::TransferKind::Transfer) => Ok(MoveKind::Transfer),
        Ok(pb::TransferKind::Ordered) => Ok(MoveKind::Ordered),
        Ok(pb::TransferKind::Unspecified) => Err(DomainError::invalid(
            "transfer.kind",
            "is required (UNSPECIFIED given)",
        )),
        Err(_) => Err(DomainError::invalid(
            "transfer.kind",
            format!("unknown value {v}"),
        )),
    }
}

fn history_to_proto(h: &[Event]) -> Vec<pb::CaseEvent> {
    h.iter().map(event_to_proto).collect()
}

fn order_to_proto(o: &Order) -> pb::CaseOrder {
    let Order {
        id,
        case_id,
        actor,
        redirects,
        kind,
    } = o;
    let kind = match kind {
        OrderKind::Supervise {
            instruction,
            due_at,
        } => pb::case_order::Kind::Supervise(pb::SupervisionOrder {
            instruction: instruction.clone(),
            due_at: due_at.map(ts_to_proto),
        }),
        OrderKind::Transfer { to_node, reason } => {
            pb::case_order::Kind::Transfer(pb::TransferOrder {
                to_node: to_node.to_string(),
                reason: reason.clone(),
            })
        }
        OrderKind::RaiseRisk { reason } => pb::case_order::Kind::RaiseRisk(pb::RiskRaiseOrder {
            reason: reason.clone(),
        }),
        OrderKind::ResendCopy { from } => {
            pb::case_order::Kind::ResendCopy(pb::ResendCopyOrder { from: *from })
        }
    };
    pb::CaseOrder {
        order_id: *id,
        case_id: case_id.clone(),
        actor: actor.clone(),
        redirects: *redirects,
        kind: Some(kind),
    }
}

fn order_from_proto(o: Option<pb::CaseOrder>) -> Result<Order> {
    let pb::CaseOrder {
        order_id,
        case_id,
        actor,
        redirects,
        kind,
    } = o.ok_or_else(|| DomainError::invalid("order", "is required"))?;
    let kind = match kind.ok_or_else(|| DomainError::invalid("order.kind", "is required"))? {
        pb::case_order::Kind::Supervise(pb::SupervisionOrder {
            instruction,
            due_at,
        }) => OrderKind::Supervise {
            instruction,
            due_at: opt_ts("order.supervise.due_at", due_at)?,
        },
        pb::case_order::Kind::Transfer(pb::TransferOrder { to_node, reason }) => {
            OrderKind::Transfer {
                to_node: code("order.transfer.to_node", &to_node)?,
                reason,
            }
        }
        pb::case_order::Kind::RaiseRisk(pb::RiskRaiseOrder { reason }) => {
            OrderKind::RaiseRisk { reason }
        }
        pb::case_order::Kind::ResendCopy(pb::ResendCopyOrder { from }) => {
            OrderKind::ResendCopy { from }
        }
    };
    Ok(Order {
        id: order_id,
        case_id,
        actor,
        redirects,
        kind,
    })
}

/// A case in full (personal data included: a transfer hands the record over; a supervision
/// copy is masked before it is queued). Its warning is not carried: the receiver derives it.
fn full(case: &Case) -> pb::Case {
    case_to_proto(case, true, case.updated_at)
}

/// One queued message as it goes on the wire, with its link seq.
pub fn envelope_to_proto(link_seq: u64, m: &Message) -> pb::Envelope {
    use pb::envelope::Body as B;
    let Message {
        origin,
        origin_seq,
        destination,
        sent_at,
        body,
    } = m;
    let body = match body {
        Body::Transfer(Transfer {
            case,
            history,
            epoch,
            kind,
            reason,
        }) => B::Transfer(pb::CaseTransfer {
            case: Some(full(case)),
            history: history_to_proto(history),
            epoch: *epoch,
            kind: move_kind_to_proto(*kind) as i32,
            reason: reason.clone(),
            rule_supervision: rules_to_proto(case),
        }),
        Body::Refused(Refused {
            case,
            history,
            epoch,
            reason,
            intended_owner,
        }) => B::Refused(pb::TransferRefused {
            case: Some(full(case)),
            history: history_to_proto(history),
            epoch: *epoch,
            reason: reason.clone(),
            intended_owner: intended_owner.to_string(),
            rule_supervision: rules_to_proto(case),
        }),
        Body::Sync(copy) => B::Sync(pb::SupervisionSync {
            case: Some(full(&copy.case)),
            history: history_to_proto(&copy.history),
            rule_supervision: rules_to_proto(&copy.case),
            history_from: copy.history_from(),
        }),
        Body::Close { case_id, epoch } => B::Close(pb::SupervisionClose {
            case_id: case_id.clone(),
            epoch: *epoch,
        }),
        Body::Order(o) => B::Order(order_to_proto(o)),
        Body::Redirect { order, moved_to } => B::Redirect(pb::OrderRedirect {
            order: Some(order_to_proto(order)),
            moved_to: moved_to.to_string(),
        }),
        Body::Alert(a) => B::Alert(pb::ForwardedAlert {
            key: a.key.clone(),
            alert: Some(crate::convert::alert_to_proto(a)),
        }),
        Body::Sighting(Sighting {
            person,
            case_id,
            registered_at,
            node,
        }) => B::Sighting(pb::PersonSighting {
            person: person.to_vec(),
            case_id: case_id.clone(),
            registered_at: Some(ts_to_proto(*registered_at)),
            node: node.to_string(),
        }),
    };
    pb::Envelope {
        link_seq,
        origin: origin.to_string(),
        origin_seq: *origin_seq,
        destination: destination.to_string(),
        sent_at: Some(ts_to_proto(*sent_at)),
        withheld: String::new(),
        body: Some(body),
        prev_seq: None,
    }
}

/// The envelope of a message this node withholds (`reason`): the receiver only moves past it.
pub fn withheld_envelope(link_seq: u64, m: &Message, reason: &str) -> pb::Envelope {
    pb::Envelope {
        link_seq,
        origin: m.origin.to_string(),
        origin_seq: m.origin_seq,
        destination: m.destination.to_string(),
        sent_at: Some(ts_to_proto(m.sent_at)),
        withheld: reason.to_owned(),
        body: None,
        prev_seq: None,
    }
}

/// The envelope of queued `entry` as sent on its link (`link_seq`), with the seq before it.
pub fn queued_envelope(
    link_seq: u64,
    entry: &crate::protocol::message::OutboxEntry,
) -> pb::Envelope {
    pb::Envelope {
        prev_seq: Some(entry.prev(link_seq)),
        ..envelope_to_proto(link_seq, &entry.message)
    }
}

/// A message from a peer as it comes off the wire: its link seq (an error when 0: the batch is
/// malformed) and the message, or why it is refused as it came — larger than `max_bytes`
/// encoded, of a kind this version does not know (no body this version can read), or
/// malformed — or the sender's reason for withholding it.
pub fn received_from_proto(
    e: pb::Envelope,
    max_bytes: usize,
) -> Result<(u64, Option<u64>, Received)> {
    use prost::Message as _;
    let link_seq = e.link_seq;
    let prev = e.prev_seq;
    if link_seq == 0 {
        return Err(DomainError::invalid("link_seq", "must be at least 1"));
    }
    if !e.withheld.is_empty() {
        let reason = e.withheld.chars().take(MAX_REFUSAL_CHARS).collect();
        return Ok((link_seq, prev, Received::Withheld(reason)));
    }
    let size = e.encoded_len();
    if size > max_bytes {
        return Ok((
            link_seq,
            prev,
            Received::Refused(Refusal::new(
                RefusalKind::TooLarge,
                format!("消息{size}字节，超过上限{max_bytes}字节"),
            )),
        ));
    }
    if e.body.is_none() {
        return Ok((
            link_seq,
            prev,
            Received::Refused(Refusal::new(
                RefusalKind::Unknown,
                "消息类型不为本版本所知（对端版本较新？）",
            )),
        ));
    }
    Ok(match envelope_from_proto(e) {
        Ok((_, m)) => (link_seq, prev, Received::Message(Box::new(m))),
        Err(err) => (
            link_seq,
            prev,
            Received::Refused(Refusal::new(RefusalKind::Invalid, err.to_string())),
        ),
    })
}

/// A refusal as it goes back to the sender.
pub fn refusal_to_proto(link_seq: u64, r: &Refusal) -> pb::Refusal {
    let kind = match r.kind {
        RefusalKind::Forbidden => pb::RefusalKind::Forbidden,
        RefusalKind::Invalid => pb::RefusalKind::Invalid,
        RefusalKind::TooLarge => pb::RefusalKind::TooLarge,
        RefusalKind::Unknown => pb::RefusalKind::Unknown,
    };
    pb::Refusal {
        link_seq,
        kind: kind as i32,
        reason: r.reason.clone(),
    }
}

/// A peer's refusal of a message this node sent it. A kind unknown to this version is taken as
/// `Unknown`: the refusal stands whatever its kind.
pub fn refusal_from_proto(r: pb::Refusal) -> (u64, Refusal) {
    let kind = match pb::RefusalKind::try_from(r.kind) {
        Ok(pb::RefusalKind::Forbidden) => RefusalKind::Forbidden,
        Ok(pb::RefusalKind::Invalid) => RefusalKind::Invalid,
        Ok(pb::RefusalKind::TooLarge) => RefusalKind::TooLarge,
        _ => RefusalKind::Unknown,
    };
    let reason: String = r.reason.chars().take(MAX_REFUSAL_CHARS).collect();
    (r.link_seq, Refusal::new(kind, reason))
}

/// Characters of a peer's refusal or withholding reason kept (it lands in histories and
/// alerts).
const MAX_REFUSAL_CHARS: usize = 500;

/// Longest alert key accepted from a peer, in bytes (keys are `kind/case id/...`). The message
/// text is bounded only by the size limit of a request: it lists the cases of a group dispute,
/// which can be many, and refusing it would stop the link.
const MAX_ALERT_KEY: usize = 1_000;

fn alert_from_proto(a: pb::ForwardedAlert) -> Result<Alert> {
    let pb::ForwardedAlert { key, alert } = a;
    let pb::Alert {
        kind,
        case_ids,
        node,
        raised_at,
        message,
    } = alert.ok_or_else(|| DomainError::invalid("alert.alert", "is required"))?;
    if key.is_empty() || key.len() > MAX_ALERT_KEY {
        return Err(DomainError::invalid("alert.key", "must be 1–1000 bytes"));
    }
    let kind = AlertKind::from_name(&kind)
        .ok_or_else(|| DomainError::invalid("alert.kind", format!("unknown kind {kind:?}")))?;
    if case_ids.is_empty() {
        return Err(DomainError::invalid("alert.case_ids", "must name a case"));
    }
    for id in &case_ids {
        crate::storage::check_message_case_id(id)?;
    }
    Ok(Alert {
        key,
        kind,
        case_ids,
        node: code("alert.node", &node)?.to_string(),
        raised_at: ts("alert.raised_at", raised_at)?,
        message,
        forward_to: Vec::new(),
    })
}

/// A message from a peer, with its link seq.
pub fn envelope_from_proto(e: pb::Envelope) -> Result<(u64, Message)> {
    use pb::envelope::Body as B;
    let pb::Envelope {
        link_seq,
        origin,
        origin_seq,
        destination,
        sent_at,
        withheld: _,
        body,
        prev_seq: _,
    } = e;
    if link_seq == 0 {
        return Err(DomainError::invalid("link_seq", "must be at least 1"));
    }
    let body = match body.ok_or_else(|| DomainError::invalid("body", "is required"))? {
        B::Transfer(pb::CaseTransfer {
            case,
            history,
            epoch,
            kind,
            reason,
            rule_supervision,
        }) => {
            let (case, history) = case_with_history(case, history, rule_supervision)?;
            Body::Transfer(Transfer {
                case,
                history,
                epoch,
                kind: move_kind_from_proto(kind)?,
                reason,
            })
        }
        B::Refused(pb::TransferRefused {
            case,
            history,
            epoch,
            reason,
            intended_owner,
            rule_supervision,
        }) => {
            let (case, history) = case_with_history(case, history, rule_supervision)?;
            Body::Refused(Refused {
                case,
                history,
                epoch,
                reason,
                intended_owner: code("refused.intended_owner", &intended_owner)?,
            })
        }
        B::Sync(pb::SupervisionSync {
            case,
            history,
            rule_supervision,
            history_from,
        }) => {
            let (case, history) =
                case_with_history_from(case, history_from, history, rule_supervision)?;
            Body::Sync(CaseCopy { case, history })
        }
        B::Close(pb::SupervisionClose { case_id, epoch }) => Body::Close { case_id, epoch },
        B::Order(o) => Body::Order(order_from_proto(Some(o))?),
        B::Redirect(pb::OrderRedirect { order, moved_to }) => Body::Redirect {
            order: order_from_proto(order)?,
            moved_to: code("redirect.moved_to", &moved_to)?,
        },
        B::Alert(a) => Body::Alert(alert_from_proto(a)?),
        B::Sighting(pb::PersonSighting {
            person,
            case_id,
            registered_at,
            node,
        }) => Body::Sighting(Sighting {
            person: person
                .as_slice()
                .try_into()
                .map_err(|_| DomainError::invalid("sighting.person", "must be 16 bytes"))?,
            case_id,
            registered_at: ts("sighting.registered_at", registered_at)?,
            node: code("sighting.node", &node)?,
        }),
    };
    let message = Message {
        origin: code("origin", &origin)?,
        origin_seq,
        destination: code("destination", &destination)?,
        sent_at: ts("sent_at", sent_at)?,
        body,
    };
    crate::storage::check_message_case_id(message.case_id())?;
    Ok((link_seq, message))
}

#[cfg(test)]
mod tests;
