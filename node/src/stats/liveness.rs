//! Who was heard from when: the basis of "last heard" and of the stale list in an answer.
//!
//! A node knows first-hand only when each child last pushed to it (on its own clock). Every
//! push also carries the child's view of *its* descendants, so a node's view of its whole
//! subtree is: its children, judged here against `stats.stale_after`, plus, for everything
//! below a child, what that child last reported (judged by the descendant's own parent, on
//! that parent's clock). A report older than one already held (by the sender's `sent_at`) is
//! ignored, so a late delivery cannot bring back an old view.
//!
//! Kept in memory: after a restart no child has been heard from yet; a child never heard from
//! counts as stale once `stale_after` has passed since the start. A stale node's report is kept
//! but its subtree is listed only by the stale node itself ([`stale_roots`]), since nothing
//! below it can be vouched for.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::code::NodeCode;
use crate::domain::Timestamp;

/// What is known of one node's link to its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    pub node: NodeCode,
    /// When its parent last heard from it (the parent's clock); `None` if never.
    pub last_heard: Option<Timestamp>,
    pub stale: bool,
}

#[derive(Debug, Clone)]
struct Child {
    last_heard: Timestamp,
    /// A full resend has started since this node started.
    synced: bool,
    report: Vec<LinkStatus>,
    report_sent_at: Timestamp,
}

/// The children heard from since this node started, with their reports.
#[derive(Debug)]
pub struct Liveness {
    started: Timestamp,
    children: BTreeMap<NodeCode, Child>,
}

fn is_stale(last: Option<Timestamp>, since: Timestamp, now: Timestamp, after: Duration) -> bool {
    let limit = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    now.millis().saturating_sub(last.unwrap_or(since).millis()) > limit
}

impl Liveness {
    pub fn new(started: Timestamp) -> Liveness {
        Liveness {
            started,
            children: BTreeMap::new(),
        }
    }

    /// Records a push from `child` received at `now`. `full`: the push starts a full resend.
    /// Returns true when the child must resend everything (this node holds no full state
    /// from it since it started).
    pub fn heard(
        &mut self,
        child: &NodeCode,
        now: Timestamp,
        full: bool,
        sent_at: Timestamp,
        report: Vec<LinkStatus>,
    ) -> bool {
        let entry = self.children.entry(child.clone()).or_insert_with(|| Child {
            last_heard: now,
            synced: false,
            report: Vec::new(),
            report_sent_at: Timestamp(i64::MIN),
        });
        entry.last_heard = entry.last_heard.max(now);
        entry.synced |= full;
        if sent_at >= entry.report_sent_at {
            entry.report = report;
            entry.report_sent_at = sent_at;
        }
        !entry.synced
    }

    /// Every descendant known here with its status at `now`: the children in `known` and those
    /// heard from, judged here, and what each child reported about its own descendants.
    pub fn view(
        &self,
        now: Timestamp,
        stale_after: Duration,
        known: impl IntoIterator<Item = NodeCode>,
    ) -> BTreeMap<NodeCode, LinkStatus> {
        let mut out = BTreeMap::new();
        for code in known {
            out.insert(
                code.clone(),
                LinkStatus {
                    node: code,
                    last_heard: None,
                    stale: is_stale(None, self.started, now, stale_after),
                },
            );
        }
        for (code, child) in &self.children {
            for s in &child.report {
                if code.is_ancestor_of(&s.node) {
                    out.insert(s.node.clone(), s.clone());
                }
            }
            let last = Some(child.last_heard);
            out.insert(
                code.clone(),
                LinkStatus {
                    node: code.clone(),
                    last_heard: last,
                    stale: is_stale(last, self.started, now, stale_after),
                },
            );
        }
        out
    }
}

/// The scope's children in `view`, in code order.
pub fn children_of(view: &BTreeMap<NodeCode, LinkStatus>, scope: &NodeCode) -> Vec<LinkStatus> {
    view.values()
        .filter(|s| s.node.parent().as_ref() == Some(scope))
        .cloned()
        .collect()
}

/// The stale strict descendants of `scope` that have no stale ancestor below `scope`: the
/// roots of the stale subtrees.
pub fn stale_roots(view: &BTreeMap<NodeCode, LinkStatus>, scope: &NodeCode) -> Vec<LinkStatus> {
    view.values()
        .filter(|s| s.stale && scope.is_ancestor_of(&s.node))
        .filter(|s| {
            !s.node
                .ancestors()
                .iter()
                .take_while(|a| *a != scope)
                .any(|a| view.get(a).is_some_and(|x| x.stale))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    const T: Duration = Duration::from_secs(10);

    fn status(node: &str, heard: i64, stale: bool) -> LinkStatus {
        LinkStatus {
            node: c(node),
            last_heard: Some(Timestamp(heard)),
            stale,
        }
    }

    #[test]
    fn children_go_stale_and_reports_nest() {
        let mut l = Liveness::new(Timestamp(0));
        let county = c("610116");
        // Known but never heard: stale only once stale_after has passed since the start.
        let v = l.view(Timestamp(5_000), T, [c("610116001")]);
        assert!(!v[&c("610116001")].stale);
        assert_eq!(v[&c("610116001")].last_heard, None);
        let v = l.view(Timestamp(11_000), T, [c("610116001")]);
        assert!(v[&c("610116001")].stale);

        let resync = l.heard(
            &c("610116001"),
            Timestamp(12_000),
            false,
            Timestamp(100),
            vec![
                status("610116001001", 11_000, false),
                status("610116001002", 1_000, true),
            ],
        );
        assert!(resync, "nothing full received yet");
        assert!(!l.heard(
            &c("610116001"),
            Timestamp(12_500),
            true,
            Timestamp(200),
            vec![
                status("610116001001", 11_000, false),
                status("610116001002", 1_000, true),
                // Not below the sender: ignored.
                status("610116002", 1, true),
            ]
        ));
        // A late, older report does not replace the newer one.
        l.heard(
            &c("610116001"),
            Timestamp(13_000),
            false,
            Timestamp(150),
            vec![],
        );
        let v = l.view(Timestamp(14_000), T, []);
        assert_eq!(v.len(), 3);
        assert_eq!(v[&c("610116001")].last_heard, Some(Timestamp(13_000)));
        assert!(!v[&c("610116001")].stale);
        let roots = stale_roots(&v, &county);
        assert_eq!(roots, vec![status("610116001002", 1_000, true)]);
        assert_eq!(children_of(&v, &county).len(), 1);
        assert_eq!(children_of(&v, &c("610116001")).len(), 2);

        // The township falls silent: it is the root, its villages are not listed again.
        let v = l.view(Timestamp(30_000), T, []);
        let roots = stale_roots(&v, &county);
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].node, c("610116001"));
        // Drilling down to the township still shows what it last said about its villages.
        assert_eq!(stale_roots(&v, &c("610116001")).len(), 1);
    }
}
