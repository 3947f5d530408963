//! gRPC handlers. Each stays thin: authenticate and authorize the caller, decode the request
//! with `convert` (`TryFrom` for enums), call the domain through storage, encode the answer.
//! No domain rule lives here.

pub mod case;
mod moves;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::code::NodeCode;
use crate::domain::Deadlines;
use crate::federation::SharedFederation;
use crate::storage::Store;

/// What every handler of a node shares.
pub struct NodeState {
    pub code: NodeCode,
    pub store: Store,
    pub clock: SharedClock,
    pub deadlines: Deadlines,
    /// The federation: links, and moves of cases between nodes.
    pub federation: SharedFederation,
}

pub type SharedState = Arc<NodeState>;
