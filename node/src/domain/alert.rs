//! Alerts (预警): what a node tells its staff, and its parent, that needs attention now.
//!
//! An [`Alert`] is a record, not a case change: kind, the cases concerned, the node that raised
//! it, when, a readable Chinese message with personal data masked, and the nodes it is meant
//! for besides its own (`forward_to`: the parent for early warnings and reopens, the supervising
//! node for supervision). The record carries everything another node needs, so the federation
//! can forward it as it is.
//!
//! Every alert has a `key` naming the condition it reports (`kind/case id/...`). Storage keeps
//! one alert per key and raising a stored key does nothing: the sweep may re-evaluate a
//! condition as often as it likes without repeating itself. What makes a new condition:
//!
//! | kind            | raised when                                                   | key            |
//! |-----------------|---------------------------------------------------------------|----------------|
//! | `overdue`       | a running deadline has passed                                 | case, due time |
//! | `supervision`   | a node starts supervising a case (rules or registration)      | case, node, seq|
//! | `repeat_person` | a new case makes one ID number's count in the window reach the threshold | case |
//! | `repeat_person` | the same over a subtree, at an ancestor (`federation::subtree`) | node, case |
//! | `group_dispute` | a new case makes a respondent's open cases reach the threshold | case          |
//! | `reopened`      | a dissatisfied follow-up reopens a case                       | case, seq      |
//! | `security`      | a message from a neighbour failed verification and was refused (`federation::trust`) | neighbour, message |
//! | `undelivered`   | a neighbour refused a message this node sent it, or a link is blocked | neighbour, message |
//!
//! [`after_command`] is the pure post-step of every operator command: it applies the reopen
//! rule (supervision by the parent) and derives the alerts of the change, so that both are
//! written in the command's own transaction.

use serde::{Deserialize, Serialize};

use super::machine::append_events;
use super::model::stable_enum;
use super::rules::{self, Opened};
use super::{
    Case, Ctx, Event, EventKind, Policy, RiskLevel, SupervisionCause, Timestamp, calendar, mask,
};

stable_enum!(
    /// What an alert is about.
    AlertKind {
        Overdue = 1 => "逾期", "overdue";
        Supervision = 2 => "督办", "supervision";
        RepeatPerson = 3 => "重复来访", "repeat person";
        GroupDispute = 4 => "群体性纠纷苗头", "group dispute";
        Reopened = 5 => "回访不满意", "reopened";
        Security = 6 => "安全告警", "security";
        Undelivered = 7 => "消息被拒收", "undelivered";
        LinkResync = 8 => "链路重新同步", "link_resync";
        Damaged = 9 => "存储记录损坏", "damaged record";
    }
);

impl AlertKind {
    /// The kind of a machine name ([`AlertKind::as_str`]).
    pub fn from_name(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// Machine name used on the wire (`Alert.kind`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::Overdue => "overdue",
            AlertKind::Supervision => "supervision",
            AlertKind::RepeatPerson => "repeat_person",
            AlertKind::GroupDispute => "group_dispute",
            AlertKind::Reopened => "reopened",
            AlertKind::Security => "security",
            AlertKind::Undelivered => "undelivered",
            AlertKind::LinkResync => "link_resync",
            AlertKind::Damaged => "damaged_record",
        }
    }
}

/// One alert. Holds no personal data in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The condition reported; at most one alert per key is ever stored.
    pub key: String,
    pub kind: AlertKind,
    pub case_ids: Vec<String>,
    /// The node that raised it.
    pub node: String,
    pub raised_at: Timestamp,
    /// Readable Chinese, personal data masked.
    pub message: String,
    /// Nodes it is meant for besides `node`, for the federation to deliver.
    pub forward_to: Vec<String>,
}

/// `security`: this node refused message `message_id` (of `kind`, about `case_id`) from
/// neighbour `from`. For this node's staff only.
pub fn security(
    node: &str,
    from: &str,
    kind: &str,
    message_id: &str,
    case_id: &str,
    reason: &str,
    now: Timestamp,
) -> Alert {
    let message = format!("拒绝了来自{from}的{kind}消息{message_id}（案件{case_id}）：{reason}");
    link_alert(
        AlertKind::Security,
        node,
        from,
        kind,
        message_id,
        case_id,
        message,
        now,
    )
}

/// `link_resync`: the link to neighbour `peer` did not continue where this node left it (a
/// node replaced, or restored from an older copy of its folder) and resynchronised; `what`
/// says how, `at_seq` (the link seq where it happened) keeps each event apart.
pub fn link_resync(node: &str, peer: &str, at_seq: u64, what: String, now: Timestamp) -> Alert {
    let id = format!("seq{at_seq}");
    link_alert(
        AlertKind::LinkResync,
        node,
        peer,
        "link",
        &id,
        "",
        what,
        now,
    )
}

/// `undelivered`, at the receiving end: message `link_seq` of neighbour `from` could not be
/// taken here (`what`: unreadable, too large, of a kind this version does not know, or
/// withheld by its sender as too large); the link moved past it.
pub fn not_received(
    node: &str,
    from: &str,
    link_seq: u64,
    what: &str,
    reason: &str,
    now: Timestamp,
) -> Alert {
    let id = format!("seq{link_seq}");
    let message = format!("来自{from}的第{link_seq}条消息未能接收（{what}）：{reason}");
    link_alert(
        AlertKind::Undelivered,
        node,
        from,
        "incoming",
        &id,
        "",
        message,
        now,
    )
}

/// `undelivered`: neighbour `peer` refused message `message_id` (of `kind`, about `case_id`)
/// that this node sent it, or (with an empty `case_id`) refuses every call of the link.
pub fn undelivered(
    node: &str,
    peer: &str,
    kind: &str,
    message_id: &str,
    case_id: &str,
    reason: &str,
    now: Timestamp,
) -> Alert {
    let message = if case_id.is_empty() {
        format!("发往{peer}的链路无法投递：{reason}")
    } else {
        format!("发往{peer}的{kind}消息{message_id}（案件{case_id}）被拒收：{reason}")
    };
    link_alert(
        AlertKind::Undelivered,
        node,
        peer,
        kind,
        message_id,
        case_id,
        message,
        now,
    )
}

/// An alert about a message on the link to `peer`, keyed by kind, peer and message.
#[allow(clippy::too_many_arguments)]
fn link_alert(
    alert: AlertKind,
    node: &str,
    peer: &str,
    kind: &str,
    message_id: &str,
    case_id: &str,
    message: String,
    now: Timestamp,
) -> Alert {
    Alert {
        key: format!("{}/{peer}/{message_id}/{kind}", alert.as_str()),
        kind: alert,
        case_ids: if case_id.is_empty() {
            Vec::new()
        } else {
            vec![case_id.to_owned()]
        },
        node: node.to_owned(),
        raised_at: now,
        message,
        forward_to: Vec::new(),
    }
}

/// Characters of a case summary quoted in a message.
const SUMMARY_CHARS: usize = 30;

/// The case summary for a message: personal data masked, shortened.
fn summary(case: &Case) -> String {
    let s = mask::redact(case.summary.trim(), &case.parties);
    if s.chars().count() <= SUMMARY_CHARS {
        return s;
    }
    let mut out: String = s.chars().take(SUMMARY_CHARS).collect();
    out.push('…');
    out
}

fn parent(case: &Case) -> Vec<String> {
    rules::parent_of(&case.owner_node).into_iter().collect()
}

/// `overdue`: the case's running deadline has passed at `now`.
/// `damaged_record`: a stored record a read found damaged and skipped (`record` names its tree
/// and key; no personal data), for the node's staff and county IT: restore it from a backup.
pub fn damaged(record: &str, why: &str, node: &str, now: Timestamp) -> Alert {
    Alert {
        key: format!("damaged/{record}"),
        kind: AlertKind::Damaged,
        case_ids: Vec::new(),
        node: node.to_owned(),
        raised_at: now,
        message: format!(
            "存储记录损坏，已跳过：{record}（{why}）。节点照常运行；请联系县级技术人员从备份恢复。"
        ),
        forward_to: Vec::new(),
    }
}

pub fn overdue(case: &Case, node: &str, now: Timestamp) -> Option<Alert> {
    let d = case.deadline().filter(|d| d.due_at < now)?;
    Some(Alert {
        key: format!("overdue/{}/{}", case.id, d.due_at.0),
        kind: AlertKind::Overdue,
        case_ids: vec![case.id.clone()],
        node: node.to_owned(),
        raised_at: now,
        message: format!(
            "案件{}（{}色风险）{}{}已到期未办结：{}",
            case.id,
            case.risk.label_zh(),
            d.kind.label_zh(),
            calendar::china_datetime(d.due_at),
            summary(case)
        ),
        forward_to: Vec::new(),
    })
}

/// `repeat_person`: `case` is one of `case_ids`, the cases of one person (ID number shown
/// masked as `masked_id`) registered within `policy.repeat_person_window`. `raised_to` is the
/// case's risk after the rule raised it.
pub fn repeat_person(
    case: &Case,
    masked_id: &str,
    case_ids: &[String],
    policy: &Policy,
    raised_to: RiskLevel,
    now: Timestamp,
) -> Alert {
    let mut message = format!(
        "重复来访预警：同一当事人（身份证号{masked_id}）{}内已有{}件案件（{}）",
        rules::duration_zh(policy.repeat_person_window),
        case_ids.len(),
        case_ids.join("、")
    );
    if raised_to != case.risk {
        message.push_str(&format!(
            "，案件{}风险由{}色升为{}色",
            case.id,
            case.risk.label_zh(),
            raised_to.label_zh()
        ));
    } else {
        message.push_str(&format!(
            "，案件{}已为{}色风险",
            case.id,
            case.risk.label_zh()
        ));
    }
    Alert {
        key: repeat_person_key(&case.id),
        kind: AlertKind::RepeatPerson,
        case_ids: case_ids.to_vec(),
        node: case.owner_node.clone(),
        raised_at: now,
        message,
        forward_to: parent(case),
    }
}

/// `repeat_person` over a subtree, raised at ancestor `at`: the cases `case_ids` of one person
/// (known there only by a keyed hash: no ID number to show), held at `holders`, registered
/// within `policy.repeat_person_window` up to `newest` (held at `newest_holder`). Keyed by
/// `at` and `newest`, so raised once; for `at` and its parent.
pub fn repeat_person_subtree(
    at: &str,
    newest: &str,
    newest_holder: &str,
    case_ids: &[String],
    holders: &[String],
    policy: &Policy,
    now: Timestamp,
) -> Alert {
    Alert {
        key: format!("repeat_person_subtree/{at}/{newest}"),
        kind: AlertKind::RepeatPerson,
        case_ids: case_ids.to_vec(),
        node: at.to_owned(),
        raised_at: now,
        message: format!(
            "重复来访预警（辖区比对）：同一当事人{}内在{at}辖区{}个中心（{}）共有{}件案件（{}），最新案件{newest}由{newest_holder}办理",
            rules::duration_zh(policy.repeat_person_window),
            holders.len(),
            holders.join("、"),
            case_ids.len(),
            case_ids.join("、")
        ),
        forward_to: rules::parent_of(at).into_iter().collect(),
    }
}

/// The key of a case's own `repeat_person` alert: held, the case's risk was raised for it once
/// (by this node's rule, or by an ancestor's order), and neither does it again.
pub fn repeat_person_key(case_id: &str) -> String {
    format!("repeat_person/{case_id}")
}

/// `repeat_person` at the owner, for an ancestor's order after the count over its subtree
/// (`reason` names the count; no personal data). Kept here: the ancestor's own alert went up.
pub fn repeat_person_ordered(
    case: &Case,
    issuer: &str,
    reason: &str,
    raised_to: RiskLevel,
    now: Timestamp,
) -> Alert {
    let risk = if raised_to != case.risk {
        format!(
            "案件{}风险由{}色升为{}色",
            case.id,
            case.risk.label_zh(),
            raised_to.label_zh()
        )
    } else {
        format!("案件{}已为{}色风险", case.id, case.risk.label_zh())
    };
    Alert {
        key: repeat_person_key(&case.id),
        kind: AlertKind::RepeatPerson,
        case_ids: vec![case.id.clone()],
        node: case.owner_node.clone(),
        raised_at: now,
        message: format!("{issuer}辖区比对发现重复来访：{reason}；{risk}"),
        forward_to: Vec::new(),
    }
}

/// `group_dispute`: `case` brings the open cases against one respondent (shown as
/// `respondent`, see [`mask::display_respondent`]) to `case_ids`.
pub fn group_dispute(case: &Case, respondent: &str, case_ids: &[String], now: Timestamp) -> Alert {
    Alert {
        key: format!("group_dispute/{}", case.id),
        kind: AlertKind::GroupDispute,
        case_ids: case_ids.to_vec(),
        node: case.owner_node.clone(),
        raised_at: now,
        message: format!(
            "群体性纠纷苗头：被申请人“{respondent}”涉及{}件在办案件（{}），最新：{}",
            case_ids.len(),
            case_ids.join("、"),
            summary(case)
        ),
        forward_to: parent(case),
    }
}

/// The alerts a change of a case raises: `reopened` for a reopen, `supervision` for each node
/// that started supervising. `before` is `None` for a registration.
pub fn of_change(
    before: Option<&Case>,
    after: &Case,
    events: &[Event],
    now: Timestamp,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for e in events.iter().filter(|e| e.kind == EventKind::Reopened) {
        alerts.push(Alert {
            key: format!("reopened/{}/{}", after.id, e.seq),
            kind: AlertKind::Reopened,
            case_ids: vec![after.id.clone()],
            node: after.owner_node.clone(),
            raised_at: now,
            message: format!(
                "案件{}回访不满意（满意度{}/5），第{}次重新办理：{}",
                after.id,
                after.satisfaction.unwrap_or(0),
                after.reopen_count,
                summary(after)
            ),
            forward_to: parent(after),
        });
    }
    let was = |n: &String| before.is_some_and(|b| b.supervising_nodes.contains(n));
    for node in after.supervising_nodes.iter().filter(|n| !was(n)) {
        let causes: Vec<&str> = after
            .rule_supervision
            .iter()
            .filter(|r| &r.node == node)
            .map(|r| r.cause.label_zh())
            .collect();
        let why = if causes.is_empty() {
            String::new()
        } else {
            format!("，原因：{}", causes.join("、"))
        };
        alerts.push(Alert {
            key: format!("supervision/{}/{node}/{}", after.id, after.history_len),
            kind: AlertKind::Supervision,
            case_ids: vec![after.id.clone()],
            node: after.owner_node.clone(),
            raised_at: now,
            message: format!(
                "案件{}（{}色风险，{}）提请{node}督办{why}：{}",
                after.id,
                after.risk.label_zh(),
                after.category.label_zh(),
                summary(after)
            ),
            forward_to: vec![node.clone()],
        });
    }
    alerts
}

/// The pure post-step of an operator command that produced `next` and `events` from
/// `before`: applies the reopen rule (`policy.reopen_supervise`: the parent supervises a
/// reopened case) and derives the change's alerts.
pub fn after_command(
    before: &Case,
    mut next: Case,
    mut events: Vec<Event>,
    ctx: &Ctx,
    policy: &Policy,
) -> (Case, Vec<Event>, Vec<Alert>) {
    let reopened = events.iter().any(|e| e.kind == EventKind::Reopened);
    if reopened && policy.reopen_supervise {
        if let Some(parent) = rules::parent_of(&next.owner_node) {
            let opened = rules::open(&mut next, &parent, SupervisionCause::Reopened);
            if opened != Opened::Unchanged {
                let detail = rules::opened_detail(
                    format!("回访不满意重新办理，提请上级{parent}督办"),
                    opened,
                );
                let status = next.status;
                append_events(
                    &mut next,
                    ctx,
                    status,
                    vec![(EventKind::SupervisionOpened, detail)],
                    &mut events,
                );
            }
        }
    }
    let alerts = of_change(Some(before), &next, &events, ctx.now);
    (next, events, alerts)
}

#[cfg(test)]
mod tests;
