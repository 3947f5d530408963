//! The handle every part of storage works through: the store's one engine tree, read tree by
//! tree (the key spaces of `keys`) through [`Space`]s, and what travels with it.

use std::sync::Arc;

use super::db::{self, Db};
use super::keys::TreeId;
use super::overlay::Pending;
use super::secret::Secret;
use super::signals::Signals;
use super::space::{STORE_TREE, Space};
use crate::code::NodeCode;

/// The store's engine tree, read tree by tree through [`Space`]s, and the signals the writer
/// raises about it. Cheap to clone (the engine tree is a handle).
///
/// Also carries the code of the node the store belongs to, which derived data (statistics)
/// depends on, and, in the writer thread's copy only, the writes of the batch in progress
/// that are not in the engine yet, with its unsettled statistics deltas (see `overlay`).
#[derive(Clone)]
pub(crate) struct Trees {
    tree: db::Tree,
    pub(crate) signals: Arc<Signals>,
    node: NodeCode,
    pub(crate) pending: Option<Arc<Pending>>,
    /// The parent this node links to (see `StoreOptions::uplink`).
    pub(crate) uplink: Option<NodeCode>,
}

impl Trees {
    /// The trees of the store's engine tree ([`STORE_TREE`]) in `db`.
    pub(crate) fn open(db: &Db, node: NodeCode) -> db::Result<Trees> {
        Ok(Trees {
            tree: db.open_tree(STORE_TREE)?,
            signals: Default::default(),
            node,
            pending: None,
            uplink: None,
        })
    }

    /// The writer thread's copy: transactions collect their writes in the batch in progress
    /// instead of writing to the engine at once. `secret` is the store's, for settling
    /// statistics.
    pub(crate) fn for_writer(&self, secret: &Secret) -> Trees {
        Trees {
            pending: Some(Arc::new(Pending::new(secret.clone()))),
            ..self.clone()
        }
    }

    /// The node this store belongs to.
    pub(crate) fn node(&self) -> &NodeCode {
        &self.node
    }

    /// One tree, for direct reads (range scans). On the writer thread this first settles and
    /// writes out the batch in progress, so that the scan sees every write before it.
    pub(crate) fn get(&self, id: TreeId) -> Space<'_> {
        if let Some(pending) = &self.pending {
            pending.write_out_quietly(&self.tree, &|batch| self.settle_for_write_out(batch));
        }
        Space::new(&self.tree, id)
    }

    /// One tree, without writing out the batch in progress.
    pub(crate) fn space(&self, id: TreeId) -> Space<'_> {
        Space::new(&self.tree, id)
    }

    /// The store's engine tree, holding every tree under its prefix byte.
    pub(crate) fn store_tree(&self) -> &db::Tree {
        &self.tree
    }
}
