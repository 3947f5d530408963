//! gRPC handlers. Each stays thin: authenticate and authorize the caller, decode the request
//! with `convert` (`TryFrom` for enums), call the domain through storage, encode the answer.
//! No domain rule lives here.

pub mod case;
pub mod exchange;
pub mod stats;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::code::NodeCode;
use crate::domain::Deadlines;
use crate::stats::node::StatsNode;
use crate::storage::Store;

/// What every handler of a node shares.
pub struct NodeState {
    pub code: NodeCode,
    pub store: Store,
    pub clock: SharedClock,
    pub deadlines: Deadlines,
    /// Figures for higher tiers: contributions received, liveness, queries.
    pub stats: Arc<StatsNode>,
}

pub type SharedState = Arc<NodeState>;
