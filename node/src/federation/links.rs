//! The health of this node's links, for GetLinks and for the silence alert.
//!
//! In memory only: what was heard from whom and when, the state of the link to the parent, and
//! the queue depths peers reported. Queue sizes here come from the outbox itself. A link is
//! *silent* when nothing was heard on it for longer than `federation.link_silence_alert`
//! (for the parent link, or a child with messages waiting, counting from the node's start when
//! nothing was ever heard): [`LinkTable::check_silence`] logs each link going silent as a
//! warning, and its recovery, so a dead link never goes unnoticed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::code::NodeCode;
use crate::domain::Timestamp;
use crate::storage::Store;

/// Which side of the link this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This node opened the link to its parent.
    Parent,
    /// A child opened the link to this node.
    Child,
}

/// Connection state as shown by GetLinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The last call succeeded (parent), or the child was heard within the silence time.
    Connected,
    /// The last call failed and is being retried (parent), or the child went silent.
    BackingOff,
    /// Nothing ever heard since this node started.
    NeverConnected,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    /// Parent link only: whether the last call succeeded.
    ok: Option<bool>,
    last_heard: Option<Timestamp>,
    peer_queue: u64,
    last_error: String,
    silent: bool,
}

/// One link as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub peer: NodeCode,
    pub role: Role,
    pub state: State,
    pub queue_out: u64,
    pub queue_in: u64,
    pub oldest_undelivered: Option<Timestamp>,
    pub last_heard: Option<Timestamp>,
    pub silent: bool,
    pub last_error: String,
}

pub struct LinkTable {
    started: Timestamp,
    alert: Duration,
    parent: Option<NodeCode>,
    entries: Mutex<BTreeMap<NodeCode, Entry>>,
}

/// Whether a link last heard at `last_heard` (or, if never, expected since `since`) is silent
/// at `now`.
pub fn is_silent(
    now: Timestamp,
    last_heard: Option<Timestamp>,
    since: Timestamp,
    alert: Duration,
) -> bool {
    now > last_heard.unwrap_or(since).plus(alert)
}

impl LinkTable {
    pub fn new(started: Timestamp, alert: Duration, parent: Option<NodeCode>) -> LinkTable {
        let mut entries = BTreeMap::new();
        if let Some(p) = &parent {
            entries.insert(p.clone(), Entry::default());
        }
        LinkTable {
            started,
            alert,
            parent,
            entries: Mutex::new(entries),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<NodeCode, Entry>) -> R) -> R {
        let mut guard = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    fn role_of(&self, peer: &NodeCode) -> Role {
        if self.parent.as_ref() == Some(peer) {
            Role::Parent
        } else {
            Role::Child
        }
    }

    /// Something was heard from `peer` at `now`; it reports `peer_queue` messages for us.
    pub fn heard(&self, peer: &NodeCode, now: Timestamp, peer_queue: u64) {
        let role = self.role_of(peer);
        self.with(|m| {
            let e = m.entry(peer.clone()).or_default();
            e.last_heard = Some(now);
            e.peer_queue = peer_queue;
            if role == Role::Parent {
                e.ok = Some(true);
                e.last_error.clear();
            }
        });
    }

    /// A call to the parent failed.
    pub fn failed(&self, peer: &NodeCode, error: String) {
        self.with(|m| {
            let e = m.entry(peer.clone()).or_default();
            e.ok = Some(false);
            e.last_error = error;
        });
    }

    /// Every link: the parent, children heard from or ever applied from, and neighbours with
    /// messages waiting.
    pub fn report(
        &self,
        store: &Store,
        now: Timestamp,
    ) -> Result<Vec<LinkView>, crate::storage::StorageError> {
        let mut peers: Vec<NodeCode> = self.with(|m| m.keys().cloned().collect());
        peers.extend(store.outbox_peers()?);
        peers.extend(store.inbox_peers()?.into_iter().map(|(p, _)| p));
        peers.sort();
        peers.dedup();
        let mut out = Vec::with_capacity(peers.len());
        for peer in peers {
            let queue = store.outbox_stats(&peer)?;
            let role = self.role_of(&peer);
            let e = self.with(|m| m.get(&peer).cloned()).unwrap_or_default();
            let silent = is_silent(now, e.last_heard, self.started, self.alert);
            let state = match (role, e.ok, e.last_heard) {
                (_, _, None) if e.ok != Some(false) => State::NeverConnected,
                (Role::Parent, Some(false), _) => State::BackingOff,
                (Role::Parent, _, Some(_)) => State::Connected,
                (Role::Child, _, Some(_)) if !silent => State::Connected,
                _ => State::BackingOff,
            };
            out.push(LinkView {
                peer,
                role,
                state,
                queue_out: queue.len,
                queue_in: e.peer_queue,
                oldest_undelivered: queue.oldest,
                last_heard: e.last_heard,
                silent,
                last_error: e.last_error.clone(),
            });
        }
        Ok(out)
    }

    /// Logs links that went silent since the last check (and those that recovered).
    pub fn check_silence(&self, store: &Store, now: Timestamp) {
        let views = match self.report(store, now) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot read link state");
                return;
            }
        };
        for v in views {
            // A child never heard of with nothing queued for it is not a link at all.
            let expected = v.role == Role::Parent || v.last_heard.is_some() || v.queue_out > 0;
            let silent = v.silent && expected;
            let was = self.with(|m| {
                let e = m.entry(v.peer.clone()).or_default();
                std::mem::replace(&mut e.silent, silent)
            });
            let secs = v
                .last_heard
                .map_or(now.millis() - self.started.millis(), |t| {
                    now.millis() - t.millis()
                })
                / 1000;
            if silent && !was {
                tracing::warn!(
                    alert = "link_silent",
                    peer = %v.peer,
                    role = ?v.role,
                    silent_for_s = secs,
                    queue_out = v.queue_out,
                    last_error = %v.last_error,
                    "ALERT: link to {} silent for {secs} s",
                    v.peer
                );
            } else if !silent && was {
                tracing::info!(peer = %v.peer, "link to {} heard again", v.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::storage::StoreOptions;

    fn c(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    #[test]
    fn silence_counts_from_the_last_word_or_the_start() {
        let alert = Duration::from_secs(120);
        let t0 = Timestamp(1_000_000);
        assert!(!is_silent(t0.plus(alert), None, t0, alert));
        assert!(is_silent(
            t0.plus(alert).plus(Duration::from_millis(1)),
            None,
            t0,
            alert
        ));
        let heard = t0.plus(Duration::from_secs(100));
        assert!(!is_silent(
            t0.plus(Duration::from_secs(200)),
            Some(heard),
            t0,
            alert
        ));
        assert!(is_silent(
            t0.plus(Duration::from_secs(221)),
            Some(heard),
            t0,
            alert
        ));
    }

    #[test]
    fn parent_and_child_links_report_their_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let clock = ManualClock::new(Timestamp(1_000_000));
        let table = LinkTable::new(clock.now(), Duration::from_secs(60), Some(c("610116")));
        let views = table.report(&store, clock.now()).unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].state, State::NeverConnected);
        assert!(!views[0].silent);

        table.failed(&c("610116"), "connection refused".into());
        let v = &table.report(&store, clock.now()).unwrap()[0];
        assert_eq!(v.state, State::BackingOff);
        assert_eq!(v.last_error, "connection refused");

        clock.advance(Duration::from_secs(61));
        assert!(table.report(&store, clock.now()).unwrap()[0].silent);
        table.check_silence(&store, clock.now());
        table.heard(&c("610116"), clock.now(), 3);
        table.heard(&c("610116001"), clock.now(), 0);
        let views = table.report(&store, clock.now()).unwrap();
        assert_eq!(views.len(), 2);
        let parent = views.iter().find(|v| v.role == Role::Parent).unwrap();
        assert_eq!(parent.state, State::Connected);
        assert_eq!(parent.queue_in, 3);
        assert!(!parent.silent);
        assert!(parent.last_error.is_empty());
        let child = views.iter().find(|v| v.role == Role::Child).unwrap();
        assert_eq!(child.state, State::Connected);

        clock.advance(Duration::from_secs(61));
        let child = table
            .report(&store, clock.now())
            .unwrap()
            .into_iter()
            .find(|v| v.role == Role::Child)
            .unwrap();
        assert!(child.silent);
        assert_eq!(child.state, State::BackingOff);
    }
}
