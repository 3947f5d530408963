//! What a store holds, record by record, for tests that check what a request wrote: every key
//! of the store's engine tree with a hash of its value ([`Store::fingerprint`]), and the records
//! added, removed or changed between two fingerprints ([`Fingerprint::changes`]), named by tree.
//! A refused request must leave the fingerprint as it was (see `crate::service::fuzz`).

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::Store;
use super::keys::{self, TreeId};

/// Every record of a store: full key (tree prefix included) → hash of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<Vec<u8>, u64>);

/// How a record differs between two fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// One record that differs between two fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The tree's name ([`TreeId::name`]), or `?xx` for a prefix no tree has.
    pub tree: String,
    /// The key within the tree, printable.
    pub key: String,
    pub change: Change,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}[{}]", self.change, self.tree, self.key)
    }
}

fn hash(value: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn written(key: &[u8], change: Change) -> Written {
    let (tree, rest) = match key.split_first() {
        Some((&p, rest)) => {
            let tree = TreeId::ALL
                .iter()
                .find(|t| t.prefix() == p)
                .map_or_else(|| format!("?{p:02x}"), |t| t.name().to_owned());
            (tree, rest)
        }
        None => ("?".to_owned(), key),
    };
    Written {
        tree,
        key: keys::display(rest),
        change,
    }
}

impl Fingerprint {
    /// How many records the store held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the store held no record at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The records that differ in `later`, in key order.
    pub fn changes(&self, later: &Fingerprint) -> Vec<Written> {
        let mut out = Vec::new();
        for (key, value) in &self.0 {
            match later.0.get(key) {
                None => out.push(written(key, Change::Removed)),
                Some(v) if v != value => out.push(written(key, Change::Changed)),
                Some(_) => {}
            }
        }
        for key in later.0.keys().filter(|k| !self.0.contains_key(*k)) {
            out.push(written(key, Change::Added));
        }
        out.sort_by(|a, b| (&a.tree, &a.key).cmp(&(&b.tree, &b.key)));
        out
    }
}

impl Store {
    /// Every record of the store (each tree of `keys`, read from the engine directly). Take it
    /// when no write is in flight: a write that has returned is there, one still queued is not.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut map = BTreeMap::new();
        for item in self.inner.trees.store_tree().iter() {
            // A read error is itself a record of the fingerprint: it differs from any value.
            match item {
                Ok((k, v)) => map.insert(k.to_vec(), hash(&v)),
                Err(e) => map.insert(format!("!{e}").into_bytes(), 0),
            };
        }
        Fingerprint(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_shows_as_added_records_of_its_trees() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::storage::StoreOptions::default()).unwrap();
        let before = store.fingerprint();
        assert!(!before.is_empty(), "the store's metadata");
        assert_eq!(before.changes(&store.fingerprint()), Vec::new());
        store
            .record_access(crate::domain::audit::Access {
                at: crate::domain::Timestamp(1),
                actor: "a".into(),
                case_id: String::new(),
                what: "GetCase".into(),
            })
            .await
            .unwrap();
        let after = store.fingerprint();
        let changes = before.changes(&after);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].tree, TreeId::Access.name());
        assert_eq!(changes[0].change, Change::Added);
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(after.changes(&before)[0].change, Change::Removed);
        store.shutdown().await;
    }
}
