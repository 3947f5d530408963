//! gRPC handlers, adapters over `crate::app`: take the caller from its certificate, decode the
//! request with `convert` (`TryFrom` for enums), call the application layer, encode the answer.
//! No rule lives here.

pub mod backup;
pub mod case;
pub mod exchange;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
mod moves;
pub mod stats;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::code::NodeCode;
use crate::domain::{Deadlines, Policy};
use crate::federation::SharedFederation;
use crate::report::Cadence;
use crate::stats::node::StatsNode;
use crate::storage::Store;

/// What every handler of a node shares.
pub struct NodeState {
    pub code: NodeCode,
    pub store: Store,
    pub clock: SharedClock,
    pub deadlines: Deadlines,
    /// The federation: links, and moves of cases between nodes.
    pub federation: SharedFederation,
    /// Early-warning thresholds.
    pub policy: Policy,
    /// How often the sweep runs (see `crate::sweep`).
    pub sweep_every: Duration,
    /// Scheduled reports: the cadence (`None`: none) and their folder.
    pub report_cadence: Option<Cadence>,
    pub reports_dir: PathBuf,
    /// Figures for higher tiers: contributions received, liveness, queries.
    pub stats: Arc<StatsNode>,
    /// The center's name (`name` in the config; may be empty).
    pub name: String,
    /// Console sessions and sign-ins.
    pub web: crate::config::WebConfig,
    /// Where a backup is written before it is streamed to the admin (`data_dir/backup-tmp`).
    pub backup_dir: PathBuf,
    /// A backup is running (one at a time).
    pub backing_up: std::sync::atomic::AtomicBool,
}

impl NodeState {
    /// The identity URI the node acts under when its rules change a case.
    pub fn rule_actor(&self) -> String {
        crate::identity::Identity::node(self.code.clone()).uri()
    }

    /// A node's state over a real store in `dir` (`dir/data`, reports in `dir/reports`), with
    /// default deadlines and federation settings, for tests in process.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn for_tests(
        dir: &std::path::Path,
        code: &str,
        clock: Arc<crate::clock::ManualClock>,
        policy: Policy,
        report_cadence: Option<Cadence>,
    ) -> NodeState {
        use crate::clock::Clock;
        let code = NodeCode::parse(code).expect("a division code");
        let opts = crate::storage::StoreOptions::new(code.clone(), clock.now());
        let mut state =
            NodeState::in_process(dir, opts, code.parent(), clock, Deadlines::default())
                .expect("a store");
        state.policy = policy;
        state.report_cadence = report_cadence;
        state
    }

    /// A node's state over a real store in `dir` (`dir/data`, reports in `dir/reports`)
    /// opened with `opts`, linked to `parent`, with `deadlines` and default federation and
    /// statistics settings, without certificates or listeners: for tests in process and the
    /// simulation (`fqsim`), which carry messages between such nodes themselves.
    pub fn in_process(
        dir: &std::path::Path,
        opts: crate::storage::StoreOptions,
        parent: Option<NodeCode>,
        clock: SharedClock,
        deadlines: Deadlines,
    ) -> Result<NodeState, crate::storage::StorageError> {
        let code = opts.node.clone();
        let store = Store::open_again(&dir.join("data"), &opts)?;
        let stats = Arc::new(StatsNode::new(
            code.clone(),
            store.clone(),
            clock.clone(),
            crate::stats::StatsConfig::default(),
        ));
        let federation = Arc::new(crate::federation::Federation::new(
            code.clone(),
            parent,
            crate::config::FederationConfig::default(),
            store.clone(),
            clock.clone(),
            deadlines.clone(),
            1 << 20,
        ));
        Ok(NodeState {
            code,
            store,
            clock,
            deadlines,
            federation,
            policy: Policy::default(),
            sweep_every: Duration::from_secs(30),
            report_cadence: None,
            reports_dir: dir.join("reports"),
            stats,
            name: String::new(),
            web: crate::config::WebConfig::default(),
            backup_dir: dir.join("data").join("backup-tmp"),
            backing_up: Default::default(),
        })
    }

    /// The cadence of a report asked for without a period: the scheduled one, else the tier's
    /// (villages daily, townships weekly, counties and above monthly).
    pub fn default_cadence(&self) -> Cadence {
        self.report_cadence
            .unwrap_or_else(|| Cadence::of_tier(self.code.tier()))
    }
}

pub type SharedState = Arc<NodeState>;
