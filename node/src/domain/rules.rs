//! Deadline warnings, the four-colour supervision rule, and the bookkeeping of supervision that
//! rules open and close. Pure: the state machine and the sweep call these functions with the
//! time they were given.
//!
//! # Warning levels
//!
//! Every live case has one running deadline ([`Case::deadline`]): review (未审核, from
//! registration), resolution (from acceptance or the latest reopen) or follow-up (回访, from the
//! end of mediation). Its share of time used gives the warning shown with the case, as
//! OpenSPP's grievance module does: **amber** from [`AMBER_PERCENT`] of the time, **red** from
//! [`RED_PERCENT`] (overdue cases are red too). The warning is computed from the clock whenever
//! a case is read; it is never stored, so it cannot go stale.
//!
//! # Who follows a colour
//!
//! Zizhou's four colours: red is followed by the county (the political-legal committee
//! secretary), orange by the township (the party secretary), yellow by the center director,
//! blue by the mediator. Yellow and blue stay inside the node that owns the case. Red and
//! orange need a tier: when the owner sits *below* that tier, the ancestor at that tier
//! supervises the case ([`risk_supervisor`]); at or above it, nobody extra is needed. So a red
//! case registered at a village is supervised by its county, a red case at a township also by
//! the county, an orange case at a village by its township, and a red case at a county or city
//! by nobody extra.
//!
//! # Supervision opened by rules
//!
//! Supervision means the ancestor's code is in `Case::supervising_nodes` (nearest first); the
//! federation keeps a read-only copy at every node listed there. Three rules open supervision:
//! the colour rule above, the overdue rule (a deadline overdue by more than
//! `deadlines.escalate_overdue_after` → the parent) and the reopen rule (a dissatisfied
//! follow-up → the parent, if `early_warning.reopen_supervise`). Each opening is recorded in
//! `Case::rule_supervision` as (node, cause), so that a rule closes only what it opened:
//! lowering the risk removes the colour's supervision but keeps the parent's supervision of an
//! overdue case, and never touches supervision opened by an escalation (提级督办), which has
//! no entry there. Only the colour rule ever closes supervision in place; overdue and reopen
//! supervision stay until the case moves out of their node's subtree (below) or someone ends
//! them through the federation.
//!
//! # Supervision after a move
//!
//! The colour rule depends on the owner as much as on the colour, so the node that installs a
//! moved case — the receiver of a transfer or take-over, or the old owner taking back a
//! refused one — re-applies it ([`reconcile_owner`], called by `moves::receive` and
//! `moves::restore`), with one event per change, recorded by the installing node after its
//! "received" or "returned" event:
//!
//! * a red case moved down from the county to a village (交办) is supervised by the county; an
//!   orange case moved from a village to a village of another township by the new township;
//! * a red village case taken over by the county (提级办理, or a transfer up) loses the
//!   county's risk supervision: the county owns it now;
//! * supervision opened for another cause (an escalation, an order, overdue, reopen) is kept
//!   as long as its node may still supervise.
//!
//! A supervisor must be a strict ancestor of the owner: its copies travel up the owner's
//! parent link, and `federation::supervision` sends nothing to anyone else. So after a move,
//! every supervisor that is not an ancestor of the new owner — the new owner itself, or an
//! ancestor of the old owner outside the new one's line — stops supervising, whatever opened
//! it, with an event naming the rules it supervised for. (The old owner's tombstone already
//! sent each former supervisor a close.) Nothing is moved to the new owner's ancestors except
//! by the colour rule here and the overdue rule at the next sweep (a case still overdue is
//! then supervised by its new parent); the reopen rule fires on a reopen only.
//!
//! Invariants kept by [`open`] and [`close`]: every node of `rule_supervision` is in
//! `supervising_nodes` (stale entries, whose node someone else removed, are dropped first);
//! `supervising_nodes` holds no duplicates and stays ordered nearest first; an event is due
//! whenever a rule opens or closes supervision for its cause, even when the node keeps
//! supervising for another cause, so `rule_supervision` never changes silently.

use std::time::Duration;

use super::{Case, EventKind, RiskLevel, RuleSupervision, SupervisionCause, Timestamp};
use crate::code::{NodeCode, Tier};

/// A case is flagged amber once this share (percent) of its running deadline is used...
pub const AMBER_PERCENT: i128 = 75;
/// ...and red from this share on (overdue included).
pub const RED_PERCENT: i128 = 90;

/// An event to append: its kind and readable detail (personal data already masked).
pub type Draft = (EventKind, String);

super::model::stable_enum!(
    /// How close a case is to its running deadline.
    Warning {
        None = 1 => "正常", "none";
        Amber = 2 => "黄灯", "amber";
        Red = 3 => "红灯", "red";
    }
);

/// The warning level of a deadline that started at `started` and is due at `due`, at `now`.
/// A deadline with no length (due at or before its start) is red once due.
pub fn warning_level(started: Timestamp, due: Timestamp, now: Timestamp) -> Warning {
    let total = i128::from(due.0) - i128::from(started.0);
    let used = i128::from(now.0) - i128::from(started.0);
    if total <= 0 {
        return if now >= due {
            Warning::Red
        } else {
            Warning::None
        };
    }
    if used * 100 >= RED_PERCENT * total {
        Warning::Red
    } else if used * 100 >= AMBER_PERCENT * total {
        Warning::Amber
    } else {
        Warning::None
    }
}

impl Case {
    /// The warning level of the running deadline at `now`; `None` when no deadline runs.
    pub fn warning(&self, now: Timestamp) -> Warning {
        self.deadline().map_or(Warning::None, |d| {
            warning_level(d.started_at, d.due_at, now)
        })
    }
}

/// The tier that must follow a case of this colour, when it is not the owning node itself.
pub fn followed_at(risk: RiskLevel) -> Option<Tier> {
    match risk {
        RiskLevel::Red => Some(Tier::County),
        RiskLevel::Orange => Some(Tier::Township),
        RiskLevel::Yellow | RiskLevel::Blue => None,
    }
}

/// Who follows a colour, as said at the centers.
pub fn follower_zh(risk: RiskLevel) -> &'static str {
    match risk {
        RiskLevel::Red => "县委政法委书记",
        RiskLevel::Orange => "乡镇党委书记",
        RiskLevel::Yellow => "中心主任",
        RiskLevel::Blue => "调解员",
    }
}

/// The ancestor that must supervise a case of colour `risk` owned by `owner`, if any: the
/// ancestor at [`followed_at`] when `owner` is below that tier.
pub fn risk_supervisor(owner: &str, risk: RiskLevel) -> Option<String> {
    let tier = followed_at(risk)?;
    let code = NodeCode::parse(owner).ok()?;
    if code.tier() <= tier {
        return None;
    }
    code.at_tier(tier).map(String::from)
}

/// The parent of `owner`, if it has one (a province has none).
pub fn parent_of(owner: &str) -> Option<String> {
    NodeCode::parse(owner).ok()?.parent().map(String::from)
}

/// What [`open`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The node was added to `supervising_nodes`: an event is due.
    Added,
    /// The node already supervised because of another rule; this cause is recorded too.
    Recorded,
    /// Nothing changed: the cause was recorded already, or the node supervises for a reason
    /// outside the rules (an escalation), which then covers this rule as well.
    Unchanged,
}

/// Drops `rule_supervision` entries whose node no longer supervises.
fn prune(case: &mut Case) {
    let Case {
        supervising_nodes,
        rule_supervision,
        ..
    } = case;
    rule_supervision.retain(|r| supervising_nodes.contains(&r.node));
}

/// Opens supervision of `case` by `node` for `cause` (see the module doc).
pub fn open(case: &mut Case, node: &str, cause: SupervisionCause) -> Opened {
    prune(case);
    if case
        .rule_supervision
        .iter()
        .any(|r| r.node == node && r.cause == cause)
    {
        return Opened::Unchanged;
    }
    let supervising = case.supervising_nodes.iter().any(|n| n == node);
    let by_rule = case.rule_supervision.iter().any(|r| r.node == node);
    if supervising && !by_rule {
        return Opened::Unchanged;
    }
    case.rule_supervision.push(RuleSupervision {
        node: node.to_owned(),
        cause,
    });
    if supervising {
        return Opened::Recorded;
    }
    // Nearest first: a longer code is a nearer ancestor.
    let at = case
        .supervising_nodes
        .iter()
        .position(|n| n.len() < node.len())
        .unwrap_or(case.supervising_nodes.len());
    case.supervising_nodes.insert(at, node.to_owned());
    Opened::Added
}

/// Closes every supervision opened for `cause`, except by `keep`. Returns each node whose
/// supervision for `cause` ended, with `true` if it still supervises for another rule.
pub fn close(case: &mut Case, cause: SupervisionCause, keep: Option<&str>) -> Vec<(String, bool)> {
    prune(case);
    let mut ended = Vec::new();
    case.rule_supervision.retain(|r| {
        let gone = r.cause == cause && Some(r.node.as_str()) != keep;
        if gone {
            ended.push(r.node.clone());
        }
        !gone
    });
    let Case {
        supervising_nodes,
        rule_supervision,
        ..
    } = case;
    let ended: Vec<(String, bool)> = ended
        .into_iter()
        .map(|n| {
            let stays = rule_supervision.iter().any(|r| r.node == n);
            (n, stays)
        })
        .collect();
    supervising_nodes.retain(|n| !ended.iter().any(|(e, stays)| e == n && !stays));
    ended
}

/// Brings the colour's supervision in line with the case's current risk and owner: closes
/// what a former colour (or a former owner's tier) opened, opens what this one requires.
/// Returns the events due.
pub fn reconcile_risk(case: &mut Case) -> Vec<Draft> {
    let want = risk_supervisor(&case.owner_node, case.risk);
    let mut drafts = Vec::new();
    for (node, stays) in close(case, SupervisionCause::Risk, want.as_deref()) {
        let detail = risk_closed_detail(case, &node, stays);
        drafts.push((EventKind::SupervisionClosed, detail));
    }
    if let Some(node) = want {
        let opened = open(case, &node, SupervisionCause::Risk);
        if opened != Opened::Unchanged {
            drafts.push((
                EventKind::SupervisionOpened,
                opened_detail(risk_opened_detail(case.risk, &node), opened),
            ));
        }
    }
    drafts
}

/// Brings a moved case's supervision in line with its new owner (`case.owner_node`, already
/// set by the move): re-applies the colour rule ([`reconcile_risk`]), then ends the
/// supervision of every node that is not a strict ancestor of the new owner, whatever opened
/// it (see "Supervision after a move" in the module doc). Returns the events due; none when
/// nothing changed, so applying it twice changes nothing.
pub fn reconcile_owner(case: &mut Case) -> Vec<Draft> {
    let mut drafts = reconcile_risk(case);
    drafts.extend(drop_non_ancestors(case));
    drafts
}

/// `node` may supervise a case owned by `owner`: it is a strict ancestor by division code.
pub fn may_supervise(node: &str, owner: &str) -> bool {
    match (NodeCode::parse(node), NodeCode::parse(owner)) {
        (Ok(node), Ok(owner)) => node.is_ancestor_of(&owner),
        _ => false,
    }
}

/// The event detail of the colour's supervision by `node` ending: because the colour went
/// down, or because the case moved (to `node` itself, or out of its subtree).
fn risk_closed_detail(case: &Case, node: &str, stays: bool) -> String {
    let owner = case.owner_node.as_str();
    let colour = case.risk.label_zh();
    if node == owner {
        return format!("{node}已承办本案，{colour}色风险由其自行跟踪，解除风险督办");
    }
    if !may_supervise(node, owner) {
        // Whatever else `node` supervised for ends next ([`drop_non_ancestors`]).
        return format!("案件现由{owner}承办，{node}不是其上级，解除风险督办");
    }
    let mut detail = format!("风险等级为{colour}色，无需{node}跟踪，解除风险督办");
    if stays {
        detail.push_str("（因其他原因仍在督办）");
    }
    detail
}

/// Removes every supervisor that is not a strict ancestor of the owner, with its rule
/// entries; one event each, naming the rules it supervised for.
fn drop_non_ancestors(case: &mut Case) -> Vec<Draft> {
    prune(case);
    let owner = case.owner_node.clone();
    let (kept, gone): (Vec<String>, Vec<String>) = std::mem::take(&mut case.supervising_nodes)
        .into_iter()
        .partition(|n| may_supervise(n, &owner));
    case.supervising_nodes = kept;
    let mut drafts = Vec::with_capacity(gone.len());
    for node in gone {
        let causes: Vec<&str> = case
            .rule_supervision
            .iter()
            .filter(|r| r.node == node)
            .map(|r| r.cause.label_zh())
            .collect();
        let mut detail = if node == owner {
            format!("{node}已承办本案，不再督办")
        } else {
            format!("案件现由{owner}承办，{node}不是其上级，督办随之结束")
        };
        if !causes.is_empty() {
            detail.push_str(&format!("（原督办原因：{}）", causes.join("、")));
        }
        drafts.push((EventKind::SupervisionClosed, detail));
    }
    prune(case);
    drafts
}

/// `detail`, noting when the node was already supervising for another rule.
pub fn opened_detail(detail: String, opened: Opened) -> String {
    match opened {
        Opened::Recorded => format!("{detail}（已在督办）"),
        Opened::Added | Opened::Unchanged => detail,
    }
}

/// The event detail of supervision opened by the colour rule.
pub fn risk_opened_detail(risk: RiskLevel, node: &str) -> String {
    format!(
        "{}色风险由{}跟踪，提请{node}督办",
        risk.label_zh(),
        follower_zh(risk)
    )
}

/// A duration as people say it: "3天", "12小时", "90秒" (the largest exact unit).
pub fn duration_zh(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}毫秒", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}天", s / 86_400),
        s if s % 3_600 == 0 => format!("{}小时", s / 3_600),
        s if s % 60 == 0 => format!("{}分钟", s / 60),
        s => format!("{s}秒"),
    }
}

/// An ID number as compared by the repeat-person rule: trimmed, check letter upper-cased.
pub fn normalize_id_number(id: &str) -> String {
    id.trim().to_uppercase()
}

/// A phone number as searched: its digits only, without a leading 86 country code on a
/// mainland mobile number. So "+86 138-1234-5678" and "13812345678" are the same phone.
pub fn normalize_phone(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix("86") {
        Some(rest) if rest.len() == 11 && rest.starts_with('1') => rest.to_owned(),
        _ => digits,
    }
}

/// A respondent's name as compared by the group-dispute rule: no whitespace (full-width
/// included), full-width letters, digits and brackets folded to ASCII, ASCII lower-cased. So
/// "某建筑 有限公司（西安）" and "某建筑有限公司(西安)" are the same respondent.
pub fn normalize_respondent(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            // Full-width ASCII variants (！ to ～) sit at a fixed distance from ASCII.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests;
