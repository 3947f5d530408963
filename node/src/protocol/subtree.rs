//! The repeat-person count over a subtree (Zhuanghe: the same person, by ID number, in
//! `repeat_person_cases` cases within `repeat_person_window` anywhere below a node). Pure.
//!
//! Each node compares its own cases by a per-node hash (see `sweep::early`). Across nodes the
//! federation's person key gives every node the same keyed hash of an ID number
//! (`storage::secret::PersonKey`). When a node with the key stores a case whose parties bring
//! a new ID number into its person index (registration, a case installed by a transfer, an
//! edited party), the same write stores a [`Sighting`] (hash, case id, registered at, holding
//! node: no number, no name) in its subtree person index and queues it to its parent. Every
//! ancestor does the same with a sighting it receives ([`receive`]): stores it, passes it on
//! to its own parent, and counts. The index is keyed by hash ‖ registered at ‖ case id, so a
//! repeat, or the same case reported again after it moved, is one entry (its holder updated).
//!
//! **Detection at an ancestor.** For the new sighting and every later one of the same person
//! within the window, the cases of that person registered in the window up to it are counted
//! over the whole subtree. If they reach the threshold *and* are not all in one branch (one
//! child's subtree, or this node itself) — a branch sees its own repeats and raises them
//! itself — a `repeat_person` alert is raised here, keyed by this node and the newest case
//! (so once), for this node and its parent. It names the cases and the nodes holding them;
//! it can show no ID number, as the ancestor has none.
//!
//! With the alert goes an order to the holder of the newest case to raise its risk one colour
//! ([`OrderKind::RaiseRisk`], routed like every order, following the case if it moved). The
//! owner carries it out through the same state-machine command as its own repeat-person rule,
//! gated by the case's own `repeat_person` alert: a case is raised once, by whichever comes
//! first.
//!
//! A case registered at a node with children is counted too, right after its registration
//! ([`check_own`], from `sweep::early`): its sightings join those from below, and when the
//! newest case counted is the node's own, the node raises its risk itself (the same command
//! and gate as the order).
//!
//! Not done: cases stored before the key was configured are not reported.

use crate::code::NodeCode;
use crate::domain::Timestamp;
use crate::domain::alert;

use super::apply::{Effects, Local, Node};
use super::message::{Body, Order, OrderKind, Outgoing, Sighting};
use crate::domain::moves;

/// Most stored sightings of one person read on each side of a new sighting's time: bounds the
/// work for a person with very many cases (an alert lists at most these).
pub const READ_AROUND: usize = 128;

/// A stored sighting of the person of an incoming one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub registered_at: Timestamp,
    pub case_id: String,
    /// The node holding the case.
    pub node: NodeCode,
}

/// The branch of `me`'s subtree `node` lies in: the child of `me` on the way to it, or `node`
/// itself (`me`, or a node outside the subtree).
pub fn branch(me: &NodeCode, node: &NodeCode) -> NodeCode {
    let mut b = node.clone();
    while let Some(p) = b.parent() {
        if &p == me {
            return b;
        }
        if !me.is_ancestor_of(&p) {
            break;
        }
        b = p;
    }
    node.clone()
}

/// A sighting from a child, at the node it is addressed to.
pub fn receive(node: &Node, s: &Sighting, local: &Local) -> Effects {
    let known = local
        .sightings
        .iter()
        .any(|x| x.case_id == s.case_id && x.registered_at == s.registered_at && x.node == s.node);
    if known {
        return Effects::default();
    }
    let mut seen: Vec<Seen> = local
        .sightings
        .iter()
        .filter(|x| !(x.case_id == s.case_id && x.registered_at == s.registered_at))
        .cloned()
        .collect();
    let moved = seen.len() < local.sightings.len();
    seen.push(Seen {
        registered_at: s.registered_at,
        case_id: s.case_id.clone(),
        node: s.node.clone(),
    });
    seen.sort_by(|a, b| (a.registered_at, &a.case_id).cmp(&(b.registered_at, &b.case_id)));
    let mut effects = Effects {
        sighting: Some(s.clone()),
        ..Effects::default()
    };
    if let Some(up) = node.uplink {
        effects
            .send
            .extend(node.originate(up.clone(), Body::Sighting(s.clone())));
    }
    // A case that only changed hands was counted when first seen.
    if !moved {
        for (alert, newest) in detect(node, s.registered_at, &seen) {
            effects
                .send
                .extend(raise_order(node, &newest, &alert.message));
            effects.alerts.push(alert);
        }
    }
    effects
}

/// A case registered at this node brought the sighting `s` (already stored, so possibly in
/// `held`): the alerts it completes over the subtree, each with the order for the holder of
/// the newest case it counts (`None` when this node holds that case: then this node raises
/// it itself) and that newest case.
pub fn check_own(
    node: &Node,
    s: &Sighting,
    held: &[Seen],
) -> Vec<(alert::Alert, Option<Outgoing>, Seen)> {
    let mut seen: Vec<Seen> = held
        .iter()
        .filter(|x| !(x.case_id == s.case_id && x.registered_at == s.registered_at))
        .cloned()
        .collect();
    seen.push(Seen {
        registered_at: s.registered_at,
        case_id: s.case_id.clone(),
        node: s.node.clone(),
    });
    seen.sort_by(|a, b| (a.registered_at, &a.case_id).cmp(&(b.registered_at, &b.case_id)));
    detect(node, s.registered_at, &seen)
        .into_iter()
        .map(|(alert, newest)| {
            let order = raise_order(node, &newest, &alert.message);
            (alert, order, newest)
        })
        .collect()
}

/// The order to the holder of `newest` to raise its risk one colour, with `reason`. None when
/// this node holds the case itself (nothing to route; its own rule counts its own cases).
fn raise_order(node: &Node, newest: &Seen, reason: &str) -> Option<Outgoing> {
    let order = Order {
        id: 0,
        case_id: newest.case_id.clone(),
        actor: moves::node_actor(node.me.as_str()),
        redirects: 0,
        kind: OrderKind::RaiseRisk {
            reason: reason.to_owned(),
        },
    };
    node.originate(newest.node.clone(), Body::Order(order))
}

/// The alerts due once `seen` (one person's sightings, time-ordered) holds one at `from`, each
/// with the newest case it counts.
fn detect(node: &Node, from: Timestamp, seen: &[Seen]) -> Vec<(alert::Alert, Seen)> {
    let threshold = node.policy.repeat_person_cases as usize;
    if threshold == 0 {
        return Vec::new();
    }
    let window = i64::try_from(node.policy.repeat_person_window.as_millis()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for newest in seen
        .iter()
        .filter(|c| c.registered_at >= from && c.registered_at.0 <= from.0.saturating_add(window))
    {
        let since = newest.registered_at.0.saturating_sub(window);
        let within: Vec<&Seen> = seen
            .iter()
            .filter(|c| c.registered_at.0 >= since && c.registered_at <= newest.registered_at)
            .collect();
        if within.len() < threshold {
            continue;
        }
        let mut branches: Vec<NodeCode> = within.iter().map(|c| branch(node.me, &c.node)).collect();
        branches.sort();
        branches.dedup();
        if branches.len() < 2 {
            continue;
        }
        let mut holders: Vec<String> = within.iter().map(|c| c.node.to_string()).collect();
        holders.sort();
        holders.dedup();
        let ids: Vec<String> = within.iter().map(|c| c.case_id.clone()).collect();
        let raised = alert::repeat_person_subtree(
            node.me.as_str(),
            &newest.case_id,
            newest.node.as_str(),
            &ids,
            &holders,
            node.policy,
            node.now,
        );
        out.push((raised, newest.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Deadlines, Policy};
    use crate::protocol::apply::incoming;
    use crate::protocol::message::Message;

    const DAY: i64 = 86_400_000;

    fn c(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    fn sighting(case: &str, day: i64, node: &str) -> Sighting {
        Sighting {
            person: [1; 16],
            case_id: case.into(),
            registered_at: Timestamp(day * DAY),
            node: c(node),
        }
    }

    fn seen(case: &str, day: i64, node: &str) -> Seen {
        Seen {
            registered_at: Timestamp(day * DAY),
            case_id: case.into(),
            node: c(node),
        }
    }

    fn run(me: &str, up: Option<&str>, s: Sighting, held: Vec<Seen>) -> Effects {
        let deadlines = Deadlines::default();
        let policy = Policy::default();
        let me = c(me);
        let up = up.map(c);
        let node = Node {
            me: &me,
            uplink: up.as_ref(),
            now: Timestamp(1_000 * DAY),
            deadlines: &deadlines,
            refuse_transfers: None,
            policy: &policy,
            children: None,
        };
        let msg = Message {
            origin: s.node.clone(),
            origin_seq: 1,
            destination: me.clone(),
            sent_at: Timestamp(0),
            body: Body::Sighting(s.clone()),
        };
        let from = s.node.clone();
        // The case is where the sighting says it is held (the store would know it so).
        let holder = Some(s.node.clone());
        let msg = Message {
            origin: from.clone(),
            ..msg
        };
        let mut from = from;
        while from.parent().as_ref() != Some(&me) {
            from = from.parent().unwrap();
        }
        incoming(
            &node,
            &from,
            &msg,
            &Local {
                sightings: held,
                holders: vec![holder],
                ..Local::default()
            },
        )
    }

    const V1: &str = "610116001001";
    const V2: &str = "610116001002";
    const TOWN: &str = "610116001";

    #[test]
    fn branches_are_the_children_on_the_way() {
        assert_eq!(branch(&c("610116"), &c(V1)), c(TOWN));
        assert_eq!(branch(&c(TOWN), &c(V1)), c(V1));
        assert_eq!(branch(&c(TOWN), &c(TOWN)), c(TOWN));
        assert_eq!(branch(&c(TOWN), &c("610116002001")), c("610116002001"));
    }

    #[test]
    fn the_threshold_across_two_children_raises_once_at_the_parent() {
        let held = vec![seen("a", 10, V1), seen("b", 20, V1)];
        let e = run(TOWN, Some("610116"), sighting("c", 30, V2), held.clone());
        assert_eq!(e.sighting, Some(sighting("c", 30, V2)));
        assert_eq!(e.alerts.len(), 1);
        let a = &e.alerts[0];
        assert_eq!(a.key, format!("repeat_person_subtree/{TOWN}/c"));
        assert_eq!(a.case_ids, ["a", "b", "c"]);
        assert_eq!(a.node, TOWN);
        assert_eq!(a.forward_to, ["610116"]);
        // Passed on to the parent, as is; and the holder of the newest case is told to raise
        // its risk (routed down to village 2).
        assert_eq!(e.send.len(), 2);
        assert_eq!(e.send[0].message.destination, c("610116"));
        assert!(matches!(&e.send[0].message.body, Body::Sighting(x) if x.case_id == "c"));
        let order = &e.send[1];
        assert_eq!(order.message.destination, c(V2));
        assert_eq!(order.next_hop, c(V2));
        assert!(matches!(
            &order.message.body,
            Body::Order(Order { case_id, kind: OrderKind::RaiseRisk { reason }, .. })
                if case_id == "c" && reason == &a.message
        ));
        // The same sighting again: nothing at all.
        let mut again = held;
        again.push(seen("c", 30, V2));
        let e = run(TOWN, Some("610116"), sighting("c", 30, V2), again);
        assert!(e.sighting.is_none() && e.alerts.is_empty() && e.send.is_empty());
    }

    #[test]
    fn a_case_registered_at_the_node_counts_with_those_from_below() {
        let deadlines = Deadlines::default();
        let policy = Policy::default();
        let town = c(TOWN);
        let up = c("610116");
        let node = Node {
            me: &town,
            uplink: Some(&up),
            now: Timestamp(1_000 * DAY),
            deadlines: &deadlines,
            refuse_transfers: None,
            policy: &policy,
            children: None,
        };
        // Two cases at village 1, then one registered at the township itself (already stored).
        let own = sighting("t", 30, TOWN);
        let held = vec![seen("a", 10, V1), seen("b", 20, V1), seen("t", 30, TOWN)];
        let due = check_own(&node, &own, &held);
        assert_eq!(due.len(), 1);
        let (alert, order, newest) = &due[0];
        assert_eq!(alert.case_ids, ["a", "b", "t"]);
        assert_eq!(newest.node, town, "the newest case is the township's own");
        assert!(order.is_none(), "raised here, not ordered");
        // The newest case at a child: ordered there.
        let late = vec![seen("a", 10, V1), seen("t", 20, TOWN), seen("c", 25, V2)];
        let due = check_own(&node, &sighting("t", 20, TOWN), &late);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].2.case_id, "c");
        let order = due[0].1.as_ref().expect("an order to village 2");
        assert_eq!(order.message.destination, c(V2));
        // Too few: nothing.
        assert!(check_own(&node, &own, &held[1..]).is_empty());
    }

    #[test]
    fn below_the_threshold_or_outside_the_window_nothing_is_raised() {
        let e = run(TOWN, None, sighting("b", 20, V2), vec![seen("a", 10, V1)]);
        assert!(e.alerts.is_empty());
        assert!(e.sighting.is_some() && e.send.is_empty());
        let old = vec![seen("a", 10, V1), seen("b", 20, V1)];
        let e = run(TOWN, None, sighting("c", 10 + 181, V2), old);
        assert!(e.alerts.is_empty());
    }

    #[test]
    fn cases_all_at_one_child_are_left_to_that_child() {
        let held = vec![seen("a", 10, V1), seen("b", 20, V1)];
        let e = run(TOWN, None, sighting("c", 30, V1), held);
        assert!(e.alerts.is_empty());
        // At the county the two villages are one branch (their township).
        let held = vec![seen("a", 10, V1), seen("b", 20, V2)];
        let e = run("610116", None, sighting("c", 30, V1), held);
        assert!(e.alerts.is_empty());
    }

    #[test]
    fn a_late_sighting_raises_for_the_newer_cases_it_completes() {
        let held = vec![seen("b", 20, V1), seen("c", 30, V1)];
        let e = run(TOWN, None, sighting("a", 10, V2), held);
        let keys: Vec<&str> = e.alerts.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, [format!("repeat_person_subtree/{TOWN}/c")]);
    }

    #[test]
    fn a_case_that_moved_updates_its_holder_without_a_new_alert() {
        let held = vec![seen("a", 10, V1), seen("b", 20, V1), seen("c", 30, V1)];
        let e = run(TOWN, None, sighting("c", 30, V2), held);
        assert_eq!(e.sighting.map(|s| s.node), Some(c(V2)));
        assert!(e.alerts.is_empty());
    }
}
