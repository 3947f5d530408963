//! Routing in the tree of division codes: where a message goes next. Pure.
//!
//! Every node knows only its parent (the link it opened) and, implicitly, its children (the
//! links they opened). A destination below this node goes to the child on the path (the
//! destination's ancestor one tier below this node); anything else goes up. At the top — a
//! node without a parent link — a destination outside its subtree is unroutable.

use crate::code::{NodeCode, Tier};

/// The next step of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// The message is for this node.
    Here,
    /// Down, over the link this child opened.
    Child(NodeCode),
    /// Up, over this node's link to its parent.
    Parent(NodeCode),
    /// Nowhere: not below this node, and no parent link.
    Unroutable,
}

impl Hop {
    /// The neighbour to queue for, if the message leaves this node.
    pub fn peer(&self) -> Option<&NodeCode> {
        match self {
            Hop::Child(c) | Hop::Parent(c) => Some(c),
            Hop::Here | Hop::Unroutable => None,
        }
    }
}

/// The tier directly below `tier`, if any.
pub fn child_tier(tier: Tier) -> Option<Tier> {
    Tier::ALL.into_iter().find(|t| t.parent() == Some(tier))
}

/// Where a message for `dest` goes from `me`, whose parent link leads to `uplink` (if any).
pub fn next_hop(me: &NodeCode, uplink: Option<&NodeCode>, dest: &NodeCode) -> Hop {
    if dest == me {
        return Hop::Here;
    }
    if me.is_ancestor_of(dest) {
        let child = child_tier(me.tier()).and_then(|t| dest.at_tier(t));
        return match child {
            Some(c) => Hop::Child(c),
            None => Hop::Unroutable,
        };
    }
    match uplink {
        Some(p) => Hop::Parent(p.clone()),
        None => Hop::Unroutable,
    }
}

/// `code` is `me` or below it: the only origins a node may send (or pass) upward, and the only
/// ones a parent accepts from it.
pub fn in_subtree(me: &NodeCode, code: &NodeCode) -> bool {
    code == me || me.is_ancestor_of(code)
}

/// The node where a case was registered, from its id (`CODE-YYYYMMDD-NNNNNN`).
pub fn origin_of_case(case_id: &str) -> Option<NodeCode> {
    let (code, _) = case_id.split_once('-')?;
    NodeCode::parse(code).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    #[test]
    fn down_to_the_child_on_the_path_else_up() {
        let county = c("610116");
        let city = c("6101");
        let up = Some(&city);
        assert_eq!(next_hop(&county, up, &county), Hop::Here);
        assert_eq!(
            next_hop(&county, up, &c("610116001002")),
            Hop::Child(c("610116001"))
        );
        assert_eq!(
            next_hop(&county, up, &c("610116002")),
            Hop::Child(c("610116002"))
        );
        assert_eq!(next_hop(&county, up, &city), Hop::Parent(city.clone()));
        assert_eq!(
            next_hop(&county, up, &c("610117001")),
            Hop::Parent(city.clone()),
            "a sibling subtree goes up first"
        );
        assert_eq!(next_hop(&county, None, &city), Hop::Unroutable);
        assert_eq!(
            next_hop(&city, None, &c("610116001001")),
            Hop::Child(c("610116"))
        );
        assert_eq!(next_hop(&c("61"), None, &c("6101")), Hop::Child(c("6101")));
        let village = c("610116001001");
        assert_eq!(
            next_hop(&village, Some(&c("610116001")), &c("610116001002")),
            Hop::Parent(c("610116001"))
        );
    }

    #[test]
    fn subtree_and_case_origin() {
        let t = c("610116001");
        assert!(in_subtree(&t, &t));
        assert!(in_subtree(&t, &c("610116001002")));
        assert!(!in_subtree(&t, &c("610116002001")));
        assert!(!in_subtree(&t, &c("610116")));
        assert_eq!(
            origin_of_case("610116001001-20250101-000001"),
            Some(c("610116001001"))
        );
        assert_eq!(origin_of_case("nonsense"), None);
        assert_eq!(origin_of_case("61011-20250101-1"), None);
    }
}
