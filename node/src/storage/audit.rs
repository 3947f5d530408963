//! Views of personal data, newest last by key (time, then a random tiebreak).

use rand::Rng;

use super::codec::ValueKind;
use super::keys::TreeId;
use super::{StorageError, Store, WriteError};
use crate::domain::audit::Access;

fn key(a: &Access) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&a.at.millis().to_be_bytes());
    k.extend_from_slice(&rand::rng().random::<u64>().to_be_bytes());
    k
}

impl Store {
    /// Records a view of personal data, durably (the view is answered only once it is).
    pub async fn record_access(&self, access: Access) -> Result<(), WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    tx.insert_encoded(TreeId::Access, ValueKind::Access, &key(&access), &access)
                })
            })
            .await
    }

    /// The newest `limit` views at or after `since` that `keep` accepts, newest first.
    pub fn access_newest(
        &self,
        limit: usize,
        since: Option<crate::domain::Timestamp>,
        keep: impl Fn(&Access) -> bool,
    ) -> Result<Vec<Access>, StorageError> {
        let mut out = Vec::new();
        for item in self.tree(TreeId::Access).iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let a: Access = super::codec::decode(ValueKind::Access, TreeId::Access, &k, &v)?;
            if since.is_some_and(|s| a.at < s) {
                break;
            }
            if keep(&a) {
                out.push(a);
            }
        }
        Ok(out)
    }
}
