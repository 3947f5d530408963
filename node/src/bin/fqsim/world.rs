//! The simulated federation: every node a real store and application layer on its own
//! folder and clock, its link to its parent carried by the simulation instead of a network.
//! A request or an answer is a packet in flight, encoded as on the wire; the scheduler
//! delivers, drops, duplicates or holds each one (holding some while later ones go through
//! reorders them), cuts and heals links, stops and restarts nodes, restores one from an
//! older copy of its folder, and moves clocks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fengqiao_node::app::App;
use fengqiao_node::clock::{Clock, ManualClock};
use fengqiao_node::code::NodeCode;
use fengqiao_node::domain::{Deadlines, Timestamp};
use fengqiao_node::federation::link::{ChildPull, ChildPush, PushOutcome, PushSent};
use fengqiao_node::federation::service::{pull_batch, pull_empty, pull_received, push_received};
use fengqiao_node::service::NodeState;
use fengqiao_node::storage::StoreOptions;
use fengqiao_proto::v1 as pb;
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::trace::Trace;

/// 2026-03-02 08:00 China time: a Monday morning.
pub const START: Timestamp = Timestamp(1_772_409_600_000);

/// The federation's shape: counties under the city, townships under each county, villages
/// under each township.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub counties: u32,
    pub townships: u32,
    pub villages: u32,
}

impl Shape {
    /// "2x3x3": counties x townships x villages (each 1–9).
    pub fn parse(s: &str) -> Result<Shape, String> {
        let parts: Vec<u32> = s
            .split('x')
            .map(|p| p.trim().parse::<u32>().map_err(|e| format!("{p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [c, t, v] if (1..=9).contains(&c) && (1..=9).contains(&t) && (1..=9).contains(&v) => {
                Ok(Shape {
                    counties: c,
                    townships: t,
                    villages: v,
                })
            }
            _ => Err(format!(
                "shape {s:?}: expected COUNTIESxTOWNSHIPSxVILLAGES, each 1 to 9"
            )),
        }
    }

    /// Every node's code, parents before children.
    pub fn codes(&self) -> Vec<NodeCode> {
        let city = "6101".to_owned();
        let mut out = vec![city.clone()];
        for c in 1..=self.counties {
            let county = format!("{city}{:02}", 10 + c);
            out.push(county.clone());
            for t in 1..=self.townships {
                let township = format!("{county}{t:03}");
                out.push(township.clone());
                for v in 1..=self.villages {
                    out.push(format!("{township}{v:03}"));
                }
            }
        }
        out.into_iter()
            .map(|c| NodeCode::parse(&c).unwrap_or_else(|e| panic!("shape code {c}: {e}")))
            .collect()
    }
}

/// How often each fault strikes (per step, out of 1000), and other knobs of a run.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub steps: u64,
    pub drop: u32,
    pub duplicate: u32,
    pub timeout: u32,
    pub partition: u32,
    pub kill: u32,
    pub restore: u32,
    pub clock: u32,
    pub forge: u32,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            steps: 400,
            drop: 60,
            duplicate: 60,
            timeout: 20,
            partition: 8,
            kill: 6,
            restore: 3,
            clock: 10,
            forge: 15,
        }
    }
}

/// A request or an answer on its way, encoded.
#[derive(Debug, Clone)]
pub enum Packet {
    Push {
        child: NodeCode,
        token: u64,
        bytes: Vec<u8>,
    },
    Pull {
        child: NodeCode,
        token: u64,
        bytes: Vec<u8>,
    },
    PushAnswer {
        child: NodeCode,
        token: u64,
        bytes: Vec<u8>,
    },
    PullAnswer {
        child: NodeCode,
        token: u64,
        bytes: Vec<u8>,
    },
}

impl Packet {
    pub fn child(&self) -> &NodeCode {
        match self {
            Packet::Push { child, .. }
            | Packet::Pull { child, .. }
            | Packet::PushAnswer { child, .. }
            | Packet::PullAnswer { child, .. } => child,
        }
    }

    fn describe(&self) -> String {
        let (what, child, token, bytes) = match self {
            Packet::Push {
                child,
                token,
                bytes,
            } => ("push", child, token, bytes),
            Packet::Pull {
                child,
                token,
                bytes,
            } => ("pull", child, token, bytes),
            Packet::PushAnswer {
                child,
                token,
                bytes,
            } => ("push-answer", child, token, bytes),
            Packet::PullAnswer {
                child,
                token,
                bytes,
            } => ("pull-answer", child, token, bytes),
        };
        format!("{what} {child} #{token} ({} bytes)", bytes.len())
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Packet::Push { bytes, .. }
            | Packet::Pull { bytes, .. }
            | Packet::PushAnswer { bytes, .. }
            | Packet::PullAnswer { bytes, .. } => bytes,
        }
    }
}

/// One node of the simulation.
pub struct Node {
    pub parent: Option<NodeCode>,
    /// The folder of its current store (a restore moves it to a new one).
    pub dir: PathBuf,
    generation: u32,
    pub clock: Arc<ManualClock>,
    /// Its application layer over its store (`None` only while it restarts).
    app: Option<App>,
    /// The child side of its link to the parent, as its link workers hold it (lost at a stop).
    push: ChildPush,
    pull: ChildPull,
    /// The push and the poll it awaits an answer to (a timed-out call awaits nothing).
    push_waiting: Option<(u64, PushSent)>,
    pull_waiting: Option<(u64, u64)>,
    /// Copies of its folder taken along the way, newest last: (file, when).
    pub backups: Vec<(PathBuf, Timestamp)>,
}

impl Node {
    /// False only when a restart failed (the run has a violation then).
    pub fn running(&self) -> bool {
        self.app.is_some()
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().expect("a running node")
    }

    pub fn state(&self) -> &Arc<NodeState> {
        self.app().state()
    }
}

/// The whole simulated federation of one seed.
pub struct World {
    pub seed: u64,
    pub rng: StdRng,
    pub knobs: Knobs,
    _root: tempfile::TempDir,
    root: PathBuf,
    pub nodes: BTreeMap<NodeCode, Node>,
    /// Codes, parents before children.
    pub order: Vec<NodeCode>,
    pub net: Vec<Packet>,
    next_token: u64,
    /// Children whose link to the parent is cut.
    pub cut: BTreeSet<NodeCode>,
    pub step: u64,
    /// Simulated time of the step (each node's clock is this plus its own offset).
    pub now: Timestamp,
    pub offsets: BTreeMap<NodeCode, i64>,
    pub trace: Trace,
    /// How often each kind of step ran (for the run's summary).
    pub counts: BTreeMap<&'static str, u64>,
}

fn open_state(
    code: &NodeCode,
    parent: Option<NodeCode>,
    dir: &std::path::Path,
    clock: Arc<ManualClock>,
) -> Result<Arc<NodeState>, String> {
    let opts = StoreOptions {
        node: code.clone(),
        cache_capacity_bytes: 4 << 20,
        opened_at: clock.now(),
        uplink: parent.clone(),
        person_key: None,
    };
    let state = NodeState::in_process(dir, opts, parent, clock, Deadlines::default())
        .map_err(|e| format!("opening node {code}: {e}"))?;
    Ok(Arc::new(state))
}

impl World {
    pub async fn new(seed: u64, shape: Shape, knobs: Knobs) -> Result<World, String> {
        let root = tempfile::Builder::new()
            .prefix("fqsim-")
            .tempdir_in(crate::scratch())
            .map_err(|e| format!("scratch folder: {e}"))?;
        let path = root.path().to_owned();
        let mut world = World {
            seed,
            rng: StdRng::seed_from_u64(seed),
            knobs,
            _root: root,
            root: path,
            nodes: BTreeMap::new(),
            order: Vec::new(),
            net: Vec::new(),
            next_token: 1,
            cut: BTreeSet::new(),
            step: 0,
            now: START,
            offsets: BTreeMap::new(),
            trace: Trace::new(seed),
            counts: BTreeMap::new(),
        };
        let codes = shape.codes();
        for code in &codes {
            let code = code.clone();
            // The top of the simulated federation links to nothing.
            let parent = code.parent().filter(|p| codes.contains(p));
            let clock = Arc::new(ManualClock::new(START));
            let dir = world.root.join(format!("{code}-0"));
            let state = open_state(&code, parent.clone(), &dir, clock.clone())?;
            state.federation.save_links().await;
            let push = ChildPush::new(&state.federation, &parent.clone().unwrap_or(code.clone()));
            world.offsets.insert(code.clone(), 0);
            world.order.push(code.clone());
            world.nodes.insert(
                code.clone(),
                Node {
                    parent,
                    dir,
                    generation: 0,
                    clock,
                    app: Some(App::new(state)),
                    push,
                    pull: ChildPull::default(),
                    push_waiting: None,
                    pull_waiting: None,
                    backups: Vec::new(),
                },
            );
        }
        Ok(world)
    }

    pub fn node(&self, code: &NodeCode) -> &Node {
        &self.nodes[code]
    }

    pub fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.rng.random_range(0..items.len())])
        }
    }

    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.rng.random_range(0..1000) < per_mille
    }

    /// Moves simulated time on by up to `max`, and every node's clock with it.
    pub fn advance(&mut self, max: Duration) {
        let ms = self.rng.random_range(0..=max.as_millis() as i64);
        self.now = Timestamp(self.now.0 + ms);
        self.set_clocks();
    }

    fn set_clocks(&self) {
        for (code, node) in &self.nodes {
            let offset = self.offsets.get(code).copied().unwrap_or(0);
            node.clock.set(Timestamp(self.now.0 + offset));
        }
    }

    /// A node's clock jumps: back by up to an hour, or forward by up to two days.
    pub fn skew_clock(&mut self, code: &NodeCode) {
        let jump = if self.rng.random_bool(0.5) {
            -self.rng.random_range(1..=3_600_000)
        } else {
            self.rng.random_range(1..=2 * 86_400_000)
        };
        let offset = self.offsets.entry(code.clone()).or_default();
        *offset = (*offset + jump).clamp(-3_600_000, 4 * 86_400_000);
        let offset = *offset;
        self.trace.note(&format!("clock {code} offset {offset} ms"));
        self.set_clocks();
    }

    /// Puts every clock back in line (at quiescence).
    pub fn align_clocks(&mut self) {
        let ahead = self.offsets.values().copied().max().unwrap_or(0).max(0);
        self.now = Timestamp(self.now.0 + ahead);
        for o in self.offsets.values_mut() {
            *o = 0;
        }
        self.set_clocks();
    }

    /// The applied batch a node may hold back (only with the planted fault
    /// `ack-before-durable`) is applied at its next step.
    pub async fn settle(&self, code: &NodeCode) {
        self.nodes[code].state().federation.apply_deferred().await;
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    /// `child` pushes the next batch of its outbox to its parent, unless a push awaits its
    /// answer. Returns whether anything was sent.
    pub async fn send_push(&mut self, child: &NodeCode) -> Result<bool, String> {
        let Some(parent) = self.nodes[child].parent.clone() else {
            return Ok(false);
        };
        let token = self.token();
        let node = self.nodes.get_mut(child).expect("a node");
        if node.push_waiting.is_some() {
            return Ok(false);
        }
        let fed = node.state().federation.clone();
        node.push.take_rewind(&fed, &parent);
        let Some(batch) = node
            .push
            .batch(&fed, &parent)
            .map_err(|e| format!("{child}: reading the outbox: {e}"))?
        else {
            return Ok(false);
        };
        fed.store
            .wait_durable()
            .await
            .map_err(|e| format!("{child}: {e}"))?;
        let (req, sent) = node.push.request(&fed, &parent, batch);
        node.push_waiting = Some((token, sent));
        let packet = Packet::Push {
            child: child.clone(),
            token,
            bytes: req.encode_to_vec(),
        };
        self.trace
            .packet("send", &packet.describe(), packet.bytes());
        self.net.push(packet);
        Ok(true)
    }

    /// `child` polls its parent, unless a poll awaits its answer.
    pub async fn send_pull(&mut self, child: &NodeCode) -> Result<bool, String> {
        let Some(parent) = self.nodes[child].parent.clone() else {
            return Ok(false);
        };
        let token = self.token();
        let node = self.nodes.get_mut(child).expect("a node");
        if node.pull_waiting.is_some() {
            return Ok(false);
        }
        let fed = node.state().federation.clone();
        let (req, through) = node
            .pull
            .request(&fed, &parent, 0)
            .map_err(|e| format!("{child}: {e}"))?;
        node.pull_waiting = Some((token, through));
        let packet = Packet::Pull {
            child: child.clone(),
            token,
            bytes: req.encode_to_vec(),
        };
        self.trace
            .packet("send", &packet.describe(), packet.bytes());
        self.net.push(packet);
        Ok(true)
    }

    /// A call of `child` times out: it no longer awaits the answer (which is ignored if it
    /// comes).
    pub fn time_out(&mut self, child: &NodeCode) {
        let node = self.nodes.get_mut(child).expect("a node");
        if self.rng.random_bool(0.5) {
            node.push_waiting = None;
        } else {
            node.pull_waiting = None;
        }
        self.trace.note(&format!("timeout {child}"));
    }

    /// Delivers packet `i` (taken out of the network unless `keep`: a duplicate stays).
    pub async fn deliver(&mut self, i: usize, keep: bool) -> Result<(), String> {
        let packet = if keep {
            self.net[i].clone()
        } else {
            self.net.remove(i)
        };
        self.trace.packet(
            if keep { "deliver-dup" } else { "deliver" },
            &packet.describe(),
            packet.bytes(),
        );
        match packet {
            Packet::Push {
                child,
                token,
                bytes,
            } => {
                let parent = self.parent_of(&child)?;
                self.settle(&parent).await;
                let req = pb::PushRequest::decode(&bytes[..]).map_err(|e| e.to_string())?;
                let fed = self.nodes[&parent].state().federation.clone();
                let answer = push_received(&fed, &child, req).await;
                drop(fed);
                match answer {
                    Ok(resp) => {
                        let packet = Packet::PushAnswer {
                            child,
                            token,
                            bytes: resp.encode_to_vec(),
                        };
                        self.trace
                            .packet("answer", &packet.describe(), packet.bytes());
                        self.net.push(packet);
                        // The worst moment to stop: just after answering.
                        if self.chance(self.knobs.kill) {
                            self.trace.note(&format!("crash {parent} after answering"));
                            self.restart(&parent).await?;
                        }
                    }
                    Err(status) => self.trace.note(&format!(
                        "push refused: {:?} {}",
                        status.code(),
                        status.message()
                    )),
                }
            }
            Packet::Pull {
                child,
                token,
                bytes,
            } => {
                let parent = self.parent_of(&child)?;
                self.settle(&parent).await;
                let req = pb::PullRequest::decode(&bytes[..]).map_err(|e| e.to_string())?;
                let fed = self.nodes[&parent].state().federation.clone();
                let prep = match pull_received(&fed, &child, req).await {
                    Ok(p) => p,
                    Err(status) => {
                        self.trace.note(&format!(
                            "pull refused: {:?} {}",
                            status.code(),
                            status.message()
                        ));
                        return Ok(());
                    }
                };
                // The handler records the acknowledgement beside the answer; here in turn.
                if !prep.acknowledge {
                    self.trace.note(&format!("stale poll of {child}"));
                }
                if prep.acknowledge {
                    fed.store
                        .ack(&child, prep.applied_through)
                        .await
                        .map_err(|e| format!("{parent}: acknowledging: {e}"))?;
                }
                let resp = match pull_batch(&fed, &child, &prep).await {
                    Ok(Some(r)) => r,
                    Ok(None) => pull_empty(&fed, &child, prep).map_err(|e| e.to_string())?,
                    Err(status) => {
                        self.trace
                            .note(&format!("pull failed: {}", status.message()));
                        return Ok(());
                    }
                };
                let packet = Packet::PullAnswer {
                    child,
                    token,
                    bytes: resp.encode_to_vec(),
                };
                self.trace
                    .packet("answer", &packet.describe(), packet.bytes());
                self.net.push(packet);
            }
            Packet::PushAnswer {
                child,
                token,
                bytes,
            } => {
                let parent = self.parent_of(&child)?;
                let resp = pb::PushResponse::decode(&bytes[..]).map_err(|e| e.to_string())?;
                let node = self.nodes.get_mut(&child).expect("a node");
                let Some((waiting, _)) = &node.push_waiting else {
                    return Ok(());
                };
                if *waiting != token {
                    return Ok(());
                }
                let (_, sent) = node.push_waiting.take().expect("awaited");
                let fed = node.state().federation.clone();
                let outcome = node.push.answered(&fed, &parent, sent, resp).await;
                if let PushOutcome::Taken { delete_through, .. } = outcome {
                    fed.store
                        .ack(&parent, delete_through)
                        .await
                        .map_err(|e| format!("{child}: deleting acknowledged: {e}"))?;
                }
                self.trace
                    .note(&format!("push outcome {child} {outcome:?}"));
            }
            Packet::PullAnswer {
                child,
                token,
                bytes,
            } => {
                let parent = self.parent_of(&child)?;
                let resp = pb::PullResponse::decode(&bytes[..]).map_err(|e| e.to_string())?;
                let node = self.nodes.get_mut(&child).expect("a node");
                let Some((waiting, through)) = node.pull_waiting else {
                    return Ok(());
                };
                if waiting != token {
                    return Ok(());
                }
                node.pull_waiting = None;
                let fed = node.state().federation.clone();
                let result = node.pull.answered(&fed, &parent, through, resp).await;
                self.trace.note(&format!("pull outcome {child} {result:?}"));
            }
        }
        Ok(())
    }

    fn parent_of(&self, child: &NodeCode) -> Result<NodeCode, String> {
        self.nodes[child]
            .parent
            .clone()
            .ok_or_else(|| format!("{child} has no parent"))
    }

    /// Stops `code` (everything not durable is lost: its link workers' state, calls awaited,
    /// a batch held back by a planted fault) and starts it again on its folder.
    pub async fn restart(&mut self, code: &NodeCode) -> Result<(), String> {
        let dir = self.nodes[code].dir.clone();
        self.reopen(code, dir).await
    }

    async fn reopen(&mut self, code: &NodeCode, dir: PathBuf) -> Result<(), String> {
        let node = self.nodes.get_mut(code).expect("a node");
        let clock = node.clock.clone();
        let parent = node.parent.clone();
        // Every handle goes before the store opens again (its lock is freed with the last).
        node.dir = dir.clone();
        node.app = None;
        let state = open_state(code, parent.clone(), &dir, clock)?;
        state.federation.save_links().await;
        let node = self.nodes.get_mut(code).expect("a node");
        node.push = ChildPush::new(&state.federation, &parent.clone().unwrap_or(code.clone()));
        node.pull = ChildPull::default();
        node.push_waiting = None;
        node.pull_waiting = None;
        node.app = Some(App::new(state));
        Ok(())
    }

    /// Takes a copy of `code`'s folder, as the nightly backup does.
    pub async fn backup(&mut self, code: &NodeCode) -> Result<(), String> {
        let node = &self.nodes[code];
        let file = self
            .root
            .join(format!("{code}-backup-{}.fqbak", node.backups.len()));
        let at = node.clock.now();
        node.state()
            .store
            .backup(file.clone(), at)
            .await
            .map_err(|e| format!("{code}: backup: {e}"))?;
        self.nodes
            .get_mut(code)
            .expect("a node")
            .backups
            .push((file, at));
        Ok(())
    }

    /// Stops `code` and starts it on a new folder restored from one of its older copies
    /// (`fqnode restore`). Returns when that copy was taken.
    pub async fn restore(&mut self, code: &NodeCode) -> Result<Option<Timestamp>, String> {
        // Neighbours keep what this node acknowledged for `federation.keep_delivered` (7
        // days) so that it gets them again: the federation's promises hold for a copy younger
        // than that (a nightly backup), with a day to spare for clocks that disagree. An older
        // copy loses what was relayed through the node since, and says so (`link_resync`).
        let now = self.nodes[code].clock.now();
        let window = fengqiao_node::config::FederationConfig::default().keep_delivered;
        let youngest = Timestamp(now.0 - window.as_millis() as i64 + 86_400_000);
        let backups: Vec<(PathBuf, Timestamp)> = self.nodes[code]
            .backups
            .iter()
            .filter(|(_, at)| *at >= youngest)
            .cloned()
            .collect();
        let Some((file, at)) = self.pick(&backups).cloned() else {
            return Ok(None);
        };
        let node = self.nodes.get_mut(code).expect("a node");
        node.generation += 1;
        let dir = self.root.join(format!("{code}-{}", node.generation));
        fengqiao_node::storage::backup::restore(&file, &dir.join("data"))
            .map_err(|e| format!("{code}: restore: {e}"))?;
        self.reopen(code, dir).await?;
        Ok(Some(at))
    }

    /// Calls whose packets are gone (dropped) will never be answered: they time out.
    pub fn forget_unanswered(&mut self) {
        let live: BTreeSet<u64> = self
            .net
            .iter()
            .map(|p| match p {
                Packet::Push { token, .. }
                | Packet::Pull { token, .. }
                | Packet::PushAnswer { token, .. }
                | Packet::PullAnswer { token, .. } => *token,
            })
            .collect();
        for node in self.nodes.values_mut() {
            if node
                .push_waiting
                .as_ref()
                .is_some_and(|(t, _)| !live.contains(t))
            {
                node.push_waiting = None;
            }
            if node.pull_waiting.is_some_and(|(t, _)| !live.contains(&t)) {
                node.pull_waiting = None;
            }
        }
    }

    /// How many messages all outboxes hold.
    pub fn queued(&self) -> Result<usize, String> {
        let mut n = 0;
        for (code, node) in &self.nodes {
            let store = &node.state().store;
            for peer in store.outbox_peers().map_err(|e| format!("{code}: {e}"))? {
                n += store
                    .outbox_stats(&peer)
                    .map_err(|e| format!("{code}: {e}"))?
                    .len as usize;
            }
        }
        Ok(n)
    }

    /// The outboxes that hold messages: "FROM→TO: N".
    pub fn queues(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for (code, node) in &self.nodes {
            let store = &node.state().store;
            for peer in store.outbox_peers().map_err(|e| format!("{code}: {e}"))? {
                let q = store
                    .outbox_stats(&peer)
                    .map_err(|e| format!("{code}: {e}"))?;
                if q.len > 0 {
                    let kinds: Vec<String> = store
                        .outbox_after(
                            &peer,
                            store.outbox_acked(&peer).map_err(|e| e.to_string())?,
                            5,
                            usize::MAX,
                        )
                        .map_err(|e| format!("{code}: {e}"))?
                        .iter()
                        .map(|(seq, e)| {
                            format!(
                                "{seq} {} {} → {}",
                                e.message.kind(),
                                e.message.case_id(),
                                e.message.destination
                            )
                        })
                        .collect();
                    let acked = store.outbox_acked(&peer).map_err(|e| e.to_string())?;
                    let applied = self
                        .nodes
                        .get(&peer)
                        .map(|n| n.state().store.applied_through(code))
                        .transpose()
                        .map_err(|e| e.to_string())?;
                    out.push(format!(
                        "{code}→{peer}: {} (acknowledged through {acked}, applied there through {applied:?}) [{}]",
                        q.len,
                        kinds.join("; ")
                    ));
                }
            }
        }
        Ok(out)
    }
}
