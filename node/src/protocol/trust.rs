//! What a node believes of a message from a child. Pure.
//!
//! # The trust model
//!
//! A node trusts its **parent**: everything for or about its subtree reaches it over the
//! link it opened to its parent, whose certificate names the parent (`connect`), and a parent
//! relays every message between its children and the rest of the tree, so a node that did
//! not trust its parent could not work at all. Orders from above are therefore carried out as
//! they come, provided the node named as issuer is an ancestor of the owner (`apply`).
//!
//! A node trusts a **child** only as far as it can check. The child's certificate
//! (`spiffe://fengqiao/node/CODE`, verified against the federation CA at the handshake) tells
//! which subtree the link speaks for; the village at the bottom of a tree is the least
//! protected machine in it, so a child's messages are believed only about that subtree, as
//! this node knows it:
//!
//! * **where a case is** ([`holder`]): every transfer and refusal between a child's subtree
//!   and the rest of the tree crosses the link to this node, which records where it sent the
//!   case and at which epoch (`storage`'s whereabouts); a case that never crossed it is where
//!   it was registered (its id names the registering node); a case held here is here.
//! * a **transfer**, **refusal** or **supervision copy** from a child must be about a case in
//!   the child's subtree, and a transfer or copy must come from the owner it names;
//! * a **supervision close** may remove only a copy of a case owned in the child's subtree;
//! * an **alert** must be raised by the node that sends it, and a **person sighting** must
//!   be held in the sender's subtree, each about cases that are, or were registered, there;
//! * an **order** never comes from below (orders go from an ancestor toward the owner); a
//!   **redirect** of an order is honoured only by the order's issuer, and only for an order it
//!   holds under that id, with the kind and target it issued (`apply`), so a relay can neither
//!   manufacture nor re-address one;
//! * the **actor** of every event a child reports as recorded in its subtree must be an
//!   operator or a node of that subtree (or, for a move an ancestor ordered, that ancestor's).
//!
//! A message that fails is refused on its own ([`super::message::Refusal`], kind FORBIDDEN):
//! it changes nothing, the link moves on, the refusal travels back to the sender, and this
//! node raises a `security` alert for its staff. What this cannot see: events a child reports
//! as recorded *outside* its subtree (e.g. an ancestor's order carried out there) are taken as
//! they come, since only their node could vouch for them; and a node restored from an old copy
//! of its store has forgotten moves made since, so it may refuse a message it should accept
//! until the case moves again.

use crate::code::NodeCode;
use crate::domain::{Case, CaseStatus, Event, EventKind};
use crate::faults::{Fault, planted};
use crate::identity::Identity;

use super::message::{Body, Message, Refusal, RefusalKind};
use super::route;

/// Where this node last sent a case (to `holder`, at `epoch`): written for every transfer
/// and refusal it sends or passes on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Located {
    pub holder: NodeCode,
    pub epoch: u64,
}

/// The node that registered a case, from its id (`CODE-YYYYMMDD-NNNNNN`).
pub fn registered_at(case_id: &str) -> Option<NodeCode> {
    let code = case_id.split('-').next()?;
    NodeCode::parse(code).ok()
}

/// Where this node believes case `case_id` is: where it last sent it, unless its own record is
/// newer (held here: `me`; a tombstone: where it went); otherwise where it was registered.
pub fn holder(
    me: &NodeCode,
    case_id: &str,
    located: Option<&Located>,
    record: Option<&Case>,
) -> Option<NodeCode> {
    let from_record = record.map(|c| {
        let at = if c.status == CaseStatus::Transferred {
            c.moved_to.as_deref().and_then(|m| NodeCode::parse(m).ok())
        } else {
            Some(me.clone())
        };
        (at, c.epoch)
    });
    match (located, from_record) {
        (Some(l), Some((at, epoch))) if epoch > l.epoch => at,
        (Some(l), _) => Some(l.holder.clone()),
        (None, Some((at, _))) => at,
        (None, None) => registered_at(case_id),
    }
}

/// What this node knows that bears on one message from a child.
#[derive(Debug, Clone, Copy)]
pub struct Knowledge<'a> {
    /// Where each case the message names is believed to be (see [`holder`]), in the order of
    /// [`Message::case_ids`]; `None` when unknown.
    pub holders: &'a [Option<NodeCode>],
    /// The supervised copy held here of the message's case, by its owner.
    pub copy_owner: Option<&'a str>,
}

fn forbidden(reason: String) -> Refusal {
    Refusal::new(RefusalKind::Forbidden, reason)
}

fn within(child: &NodeCode, code: Option<&NodeCode>) -> bool {
    code.is_some_and(|c| route::in_subtree(child, c))
}

/// Checks a message that `child` sent this node (see the module doc). `Err` is the refusal.
pub fn check_from_child(
    child: &NodeCode,
    msg: &Message,
    known: &Knowledge<'_>,
) -> Result<(), Refusal> {
    if matches!(msg.body, Body::Order(_)) && planted(Fault::TrustForgedOrder) {
        return Ok(());
    }
    if !route::in_subtree(child, &msg.origin) {
        return Err(forbidden(format!("来源{}不在{child}辖区内", msg.origin)));
    }
    let case_id = msg.case_id();
    let first = known.holders.first().and_then(Option::as_ref);
    let in_subtree = |what: &str| {
        if within(child, first) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "{what}的案件{case_id}不在{child}辖区内（本节点所知位置：{}）",
                first.map_or("未知", NodeCode::as_str)
            )))
        }
    };
    let owner_is_origin = |owner: &str| {
        if owner == msg.origin.as_str() {
            Ok(())
        } else {
            Err(forbidden(format!(
                "消息来自{}，案件{case_id}却属于{owner}",
                msg.origin
            )))
        }
    };
    match &msg.body {
        Body::Transfer(t) => {
            owner_is_origin(&t.case.owner_node)?;
            in_subtree("移交")?;
            actors(child, &t.history)
        }
        Body::Refused(r) => {
            in_subtree("退回")?;
            actors(child, &r.history)
        }
        Body::Sync(c) => {
            owner_is_origin(&c.case.owner_node)?;
            in_subtree("督办副本")?;
            actors(child, &c.history)
        }
        Body::Close { .. } => match known.copy_owner {
            Some(owner) if !NodeCode::parse(owner).is_ok_and(|o| route::in_subtree(child, &o)) => {
                Err(forbidden(format!(
                    "解除督办的案件{case_id}由{owner}办理，不在{child}辖区内"
                )))
            }
            _ => Ok(()),
        },
        Body::Order(_) => Err(forbidden(format!(
            "指令只能由上级下达，{}不能向上发出关于{case_id}的指令",
            msg.origin
        ))),
        // Only the issuer can vouch for its orders (`apply`).
        Body::Redirect { .. } => Ok(()),
        Body::Alert(a) => {
            if a.node != msg.origin.as_str() {
                return Err(forbidden(format!(
                    "{}转发了由{}产生的预警",
                    msg.origin, a.node
                )));
            }
            about_subtree(child, &a.case_ids, known.holders)
        }
        Body::Sighting(s) => {
            if !route::in_subtree(child, &s.node) || !route::in_subtree(&msg.origin, &s.node) {
                return Err(forbidden(format!(
                    "{}报告的当事人所在案件{}由{}办理，不在其辖区内",
                    msg.origin, s.case_id, s.node
                )));
            }
            about_subtree(child, std::slice::from_ref(&s.case_id), known.holders)
        }
    }
}

/// Every case is in `child`'s subtree, or was registered there.
fn about_subtree(
    child: &NodeCode,
    case_ids: &[String],
    holders: &[Option<NodeCode>],
) -> Result<(), Refusal> {
    for (i, id) in case_ids.iter().enumerate() {
        let held = holders.get(i).and_then(Option::as_ref);
        if !within(child, held) && !within(child, registered_at(id).as_ref()) {
            return Err(forbidden(format!("案件{id}不在{child}辖区内")));
        }
    }
    Ok(())
}

/// Every event recorded at a node of `child`'s subtree names an operator or a node of that
/// subtree as its actor.
fn actors(child: &NodeCode, history: &[Event]) -> Result<(), Refusal> {
    for e in history {
        let Ok(node) = NodeCode::parse(&e.node) else {
            return Err(forbidden(format!("历史第{}条记录的中心编码无效", e.seq)));
        };
        if !route::in_subtree(child, &node) {
            continue;
        }
        // A move an ancestor ordered is recorded where the case was, under the order's actor.
        let ok = Identity::parse_uri(&e.actor).is_ok_and(|id| {
            route::in_subtree(child, id.code())
                || (e.kind == EventKind::TransferredOut && id.code().is_ancestor_of(&node))
        });
        if !ok {
            return Err(forbidden(format!(
                "历史第{}条记录（{}）的操作人不属于{child}辖区",
                e.seq, e.node
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
