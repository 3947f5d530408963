//! The health of this node's links, for GetLinks and for the silence alert.
//!
//! What was heard from whom and when, the state of the link to the parent, and the queue
//! depths peers reported. Queue sizes here come from the outbox itself. A link is *silent*
//! when nothing was heard on it for longer than `federation.link_silence_alert`, counting, when
//! nothing was ever heard, from when the link was first expected (the parent link) or from
//! this node's start (a child with messages waiting): [`LinkTable::check_silence`] logs each
//! link going silent as a warning (`ALERT: link to … silent for … s`, field
//! `alert = "link_silent"`), and its recovery, so a dead link never goes unnoticed.
//!
//! # What survives a restart
//!
//! For every link, a [`LinkRecord`] is kept in the store: when the peer was last heard, and
//! since when the link is expected (the parent link: since this node first ran with it; a
//! child's: since it was first heard). A node restarted after its parent or a child has been
//! dead for hours therefore flags that link at once — in GetLinks and with an alert — instead
//! of counting the silence from its own start. This includes silence while this node itself
//! was down: the alert then says how long nothing was heard, and is followed by "heard again"
//! as soon as the peer answers. Only links that still are links are loaded: the configured
//! parent and children (one tier below). Connection state, queue depths and errors are not
//! kept. Known limit: a child that was retired for good stays listed as silent, and is alerted
//! once after every start, since nothing yet removes its record.
//!
//! The last word is not written on every call: a record is written when the stored last word
//! is older than a tenth of the silence time ([`STORE_FRACTION`]), before the call's word
//! counts in memory, and at a clean shutdown. After a crash the stored word is thus at most
//! a tenth of `link_silence_alert` older than the real one, so a restarted node may flag a
//! link that much early; it never misses one. At most one durable write per link per tenth of
//! the silence time, whatever the traffic.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::code::NodeCode;
use crate::domain::Timestamp;
use crate::storage::{LinkRecord, Store};

/// The stored last word of a link is renewed once it is older than the silence time divided by
/// this.
pub const STORE_FRACTION: u32 = 10;

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
    /// The last call succeeded (parent), or the peer was heard within the silence time.
    Connected,
    /// The last call failed and is being retried (parent), or the link is silent.
    BackingOff,
    /// Nothing ever heard from the peer (in this run, or as stored before it).
    NeverConnected,
    /// The parent refuses this node's calls for a reason retrying will not mend (see
    /// [`permanent`]): nothing is delivered until an operator acts.
    Blocked,
}

/// Whether a failed call's code says that retrying the same call will not help: the peer
/// refuses it (permission, a malformed or oversized request, a method it does not know) rather
/// than failing to answer. Such a link is shown `Blocked` and alerted at both ends.
pub fn permanent(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::InvalidArgument
            | tonic::Code::ResourceExhausted
            | tonic::Code::Unimplemented
            | tonic::Code::FailedPrecondition
            | tonic::Code::OutOfRange
    )
}

#[derive(Debug, Clone, Default)]
struct Entry {
    /// Parent link only: whether the last call succeeded.
    ok: Option<bool>,
    last_heard: Option<Timestamp>,
    /// Since when the link is expected; `None` for a child never heard.
    since: Option<Timestamp>,
    /// The record as stored (or being stored).
    stored: Option<LinkRecord>,
    peer_queue: u64,
    last_error: String,
    silent: bool,
    /// When the current run of failed calls began (parent link).
    failing_since: Option<Timestamp>,
    /// The last failure says retrying will not help.
    blocked: bool,
    refused_in: u64,
    refused_out: u64,
    resyncs: u64,
    last_resync: Option<Timestamp>,
}

impl Entry {
    fn record(&self) -> Option<LinkRecord> {
        Some(LinkRecord {
            last_heard: self.last_heard,
            expected_since: self.since?,
        })
    }
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
    pub failing_since: Option<Timestamp>,
    /// Messages from the peer refused here, and messages to it that it refused (this run).
    pub refused_in: u64,
    pub refused_out: u64,
    /// Times the link resynchronised (this run), and the last.
    pub resyncs: u64,
    pub last_resync: Option<Timestamp>,
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
    /// The table of node `me`, started at `started`, with the link records read from its store.
    /// Records of peers that are no longer links (neither the parent nor a child) are ignored.
    pub fn new(
        me: &NodeCode,
        started: Timestamp,
        alert: Duration,
        parent: Option<NodeCode>,
        records: Vec<(NodeCode, LinkRecord)>,
    ) -> LinkTable {
        let mut entries = BTreeMap::new();
        for (peer, rec) in records {
            if parent.as_ref() == Some(&peer) || peer.parent().as_ref() == Some(me) {
                entries.insert(
                    peer,
                    Entry {
                        last_heard: rec.last_heard,
                        since: Some(rec.expected_since),
                        stored: Some(rec),
                        ..Entry::default()
                    },
                );
            }
        }
        if let Some(p) = &parent {
            let e = entries.entry(p.clone()).or_default();
            e.since.get_or_insert(started);
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

    /// The children this node has a link record of (heard from since it started, or stored).
    pub fn children(&self) -> std::collections::BTreeSet<NodeCode> {
        self.with(|m| {
            m.keys()
                .filter(|p| self.parent.as_ref() != Some(*p))
                .cloned()
                .collect()
        })
    }

    fn role_of(&self, peer: &NodeCode) -> Role {
        if self.parent.as_ref() == Some(peer) {
            Role::Parent
        } else {
            Role::Child
        }
    }

    /// The record to store before `peer`'s word at `now` counts, if the stored last word is
    /// missing or older than a tenth of the silence time (see the module documentation); it is
    /// taken as stored from now on. Pair with [`LinkTable::heard`] once it is written.
    pub fn to_store(&self, peer: &NodeCode, now: Timestamp) -> Option<LinkRecord> {
        let renew = self.alert / STORE_FRACTION;
        self.with(|m| {
            let e = m.entry(peer.clone()).or_default();
            let fresh = e
                .stored
                .and_then(|r| r.last_heard)
                .is_some_and(|t| now >= t && now <= t.plus(renew));
            if fresh {
                return None;
            }
            let rec = LinkRecord {
                last_heard: Some(now),
                expected_since: e.since.unwrap_or(now),
            };
            e.stored = Some(rec);
            Some(rec)
        })
    }

    /// Storing what [`LinkTable::to_store`] returned failed: try again on the next word.
    pub fn store_failed(&self, peer: &NodeCode) {
        self.with(|m| {
            if let Some(e) = m.get_mut(peer) {
                e.stored = None;
            }
        });
    }

    /// Every record that differs from what is stored (the parent link's first record, the last
    /// words since the last write), taken as stored from now on: written at start and at a
    /// clean shutdown.
    pub fn unsaved(&self) -> Vec<(NodeCode, LinkRecord)> {
        self.with(|m| {
            m.iter_mut()
                .filter_map(|(peer, e)| {
                    let rec = e.record()?;
                    (e.stored != Some(rec)).then(|| {
                        e.stored = Some(rec);
                        (peer.clone(), rec)
                    })
                })
                .collect()
        })
    }

    /// Something was heard from `peer` at `now`; it reports `peer_queue` messages for us.
    pub fn heard(&self, peer: &NodeCode, now: Timestamp, peer_queue: u64) {
        let role = self.role_of(peer);
        self.with(|m| {
            let e = m.entry(peer.clone()).or_default();
            e.last_heard = Some(now);
            e.since.get_or_insert(now);
            e.peer_queue = peer_queue;
            if role == Role::Parent {
                e.ok = Some(true);
                e.last_error.clear();
                e.failing_since = None;
                e.blocked = false;
            }
        });
    }

    /// A call to the parent failed at `now`; `blocked` when retrying will not mend it
    /// ([`permanent`]). Returns true when the link just became blocked (alert once).
    pub fn failed(&self, peer: &NodeCode, now: Timestamp, error: String, blocked: bool) -> bool {
        self.with(|m| {
            let e = m.entry(peer.clone()).or_default();
            e.ok = Some(false);
            e.last_error = error;
            e.failing_since.get_or_insert(now);
            let newly = blocked && !e.blocked;
            e.blocked = blocked;
            newly
        })
    }

    /// `count` messages from `peer` were refused here.
    pub fn refused_in(&self, peer: &NodeCode, count: u64) {
        self.with(|m| m.entry(peer.clone()).or_default().refused_in += count);
    }

    /// `peer` refused `count` messages this node sent it.
    /// The link to `peer` resynchronised at `now` (a `link_resync` alert was raised).
    pub fn resynced(&self, peer: &NodeCode, now: Timestamp) {
        self.with(|m| {
            let e = m.entry(peer.clone()).or_default();
            e.resyncs += 1;
            e.last_resync = Some(now);
        });
    }

    pub fn refused_out(&self, peer: &NodeCode, count: u64) {
        self.with(|m| m.entry(peer.clone()).or_default().refused_out += count);
    }

    /// Every link: the parent, children heard from (in this run or as stored) or ever applied
    /// from, and neighbours with messages waiting.
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
            let since = e.since.unwrap_or(self.started);
            let silent = is_silent(now, e.last_heard, since, self.alert);
            let state = match (role, e.ok) {
                (Role::Parent, Some(false)) if e.blocked => State::Blocked,
                (Role::Parent, Some(false)) => State::BackingOff,
                _ if e.last_heard.is_none() => State::NeverConnected,
                _ if silent => State::BackingOff,
                _ => State::Connected,
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
                failing_since: e.failing_since,
                refused_in: e.refused_in,
                refused_out: e.refused_out,
                resyncs: e.resyncs,
                last_resync: e.last_resync,
            });
        }
        Ok(out)
    }

    /// Since when `peer`'s silence counts if nothing was heard.
    fn since(&self, peer: &NodeCode) -> Timestamp {
        self.with(|m| m.get(peer).and_then(|e| e.since))
            .unwrap_or(self.started)
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
            let from = v.last_heard.unwrap_or_else(|| self.since(&v.peer));
            let secs = now.millis().saturating_sub(from.millis()) / 1000;
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

    fn new_table(clock: &ManualClock, records: Vec<(NodeCode, LinkRecord)>) -> LinkTable {
        LinkTable::new(
            &c("610116001"),
            clock.now(),
            Duration::from_secs(60),
            Some(c("610116")),
            records,
        )
    }

    #[test]
    fn a_parent_that_refuses_for_good_blocks_the_link_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let clock = ManualClock::new(Timestamp(1_000_000));
        let table = new_table(&clock, Vec::new());
        let parent = c("610116");
        assert!(!permanent(tonic::Code::Unavailable));
        assert!(permanent(tonic::Code::PermissionDenied));
        let since = clock.now();
        assert!(!table.failed(&parent, since, "UNAVAILABLE".into(), false));
        clock.advance(Duration::from_secs(5));
        // Newly blocked once: the caller alerts then, not on every retry.
        assert!(table.failed(&parent, clock.now(), "INVALID_ARGUMENT: x".into(), true));
        assert!(!table.failed(&parent, clock.now(), "INVALID_ARGUMENT: x".into(), true));
        let v = &table.report(&store, clock.now()).unwrap()[0];
        assert_eq!(v.state, State::Blocked);
        assert_eq!(
            v.failing_since,
            Some(since),
            "since the first failure of the run"
        );
        table.refused_out(&parent, 2);
        table.heard(&parent, clock.now(), 0);
        let v = &table.report(&store, clock.now()).unwrap()[0];
        assert_eq!(v.state, State::Connected);
        assert_eq!(v.failing_since, None);
        assert_eq!(v.refused_out, 2);
    }

    #[test]
    fn parent_and_child_links_report_their_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let clock = ManualClock::new(Timestamp(1_000_000));
        let table = new_table(&clock, Vec::new());
        let views = table.report(&store, clock.now()).unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].state, State::NeverConnected);
        assert!(!views[0].silent);

        table.failed(
            &c("610116"),
            clock.now(),
            "connection refused".into(),
            false,
        );
        let v = &table.report(&store, clock.now()).unwrap()[0];
        assert_eq!(v.state, State::BackingOff);
        assert_eq!(v.last_error, "connection refused");

        clock.advance(Duration::from_secs(61));
        assert!(table.report(&store, clock.now()).unwrap()[0].silent);
        table.check_silence(&store, clock.now());
        table.heard(&c("610116"), clock.now(), 3);
        table.heard(&c("610116001001"), clock.now(), 0);
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
        let views = table.report(&store, clock.now()).unwrap();
        let child = views.iter().find(|v| v.role == Role::Child).unwrap();
        assert!(child.silent);
        assert_eq!(child.state, State::BackingOff);
        // A parent silent this long is not shown connected, even before its next call fails.
        let parent = views.iter().find(|v| v.role == Role::Parent).unwrap();
        assert!(parent.silent);
        assert_eq!(parent.state, State::BackingOff);
    }

    #[test]
    fn the_last_word_is_stored_once_per_tenth_of_the_silence_time() {
        let clock = ManualClock::new(Timestamp(1_000_000));
        let table = new_table(&clock, Vec::new());
        let child = c("610116001001");
        // At start, the parent link's first record: expected since now.
        let start = clock.now();
        assert_eq!(
            table.unsaved(),
            vec![(
                c("610116"),
                LinkRecord {
                    last_heard: None,
                    expected_since: start
                }
            )]
        );
        assert!(table.unsaved().is_empty());
        // A child's first word is stored; more words within 6 s (60 s / 10) are not.
        clock.advance(Duration::from_secs(1));
        let first = table.to_store(&child, clock.now()).unwrap();
        assert_eq!(first.last_heard, Some(clock.now()));
        assert_eq!(first.expected_since, clock.now());
        table.heard(&child, clock.now(), 0);
        for _ in 0..6 {
            clock.advance(Duration::from_secs(1));
            assert_eq!(table.to_store(&child, clock.now()), None);
            table.heard(&child, clock.now(), 0);
        }
        clock.advance(Duration::from_millis(1));
        let next = table.to_store(&child, clock.now()).unwrap();
        assert_eq!(next.expected_since, first.expected_since);
        // A failed write is tried again on the next word.
        table.store_failed(&child);
        assert!(table.to_store(&child, clock.now()).is_some());
        table.heard(&child, clock.now(), 0);
        // At a clean shutdown, the exact last word.
        clock.advance(Duration::from_secs(2));
        table.heard(&child, clock.now(), 0);
        let saved = table.unsaved();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].1.last_heard, Some(clock.now()));
    }

    #[test]
    fn a_restart_after_hours_of_silence_flags_the_links_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let t0 = Timestamp(1_000_000);
        let heard = |at: Timestamp| LinkRecord {
            last_heard: Some(at),
            expected_since: t0,
        };
        let records = vec![
            (c("610116"), heard(t0)),
            (c("610116001001"), heard(t0)),
            // Neither the parent nor a child of 610116001: not a link any more.
            (c("610116002"), heard(t0)),
            (c("610116002001"), heard(t0)),
        ];
        let clock = ManualClock::new(t0.plus(Duration::from_secs(3 * 3600)));
        let table = new_table(&clock, records);
        let views = table.report(&store, clock.now()).unwrap();
        let peers: Vec<&str> = views.iter().map(|v| v.peer.as_str()).collect();
        assert_eq!(peers, vec!["610116", "610116001001"]);
        for v in &views {
            assert!(v.silent, "{v:?}");
            assert_eq!(v.state, State::BackingOff, "{v:?}");
            assert_eq!(v.last_heard, Some(t0));
        }
        assert!(table.unsaved().is_empty(), "nothing new to store");

        // A parent never heard counts from when it was first expected, not from this start.
        let never = LinkRecord {
            last_heard: None,
            expected_since: t0,
        };
        let table = new_table(&clock, vec![(c("610116"), never)]);
        let parent = &table.report(&store, clock.now()).unwrap()[0];
        assert!(parent.silent);
        assert_eq!(parent.state, State::NeverConnected);
    }
}
