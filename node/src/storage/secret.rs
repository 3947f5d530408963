//! The store's index secret: the key of the hashes under which the early-warning indexes file
//! ID numbers and respondent names, so that neither appears in clear in an index key.
//!
//! The secret is 32 random bytes made when the store is first opened and kept in the meta tree
//! (in the versioned envelope, like every value). The hash is HMAC-SHA-256 (ring, which rustls
//! already builds on) over a domain tag and the normalised value, cut to [`HASH_LEN`] bytes:
//! at a node's scale (thousands to hundreds of thousands of people) a collision is negligible,
//! and a collision would only put two people in one repeat count.
//!
//! What this protects: index keys, their page tokens, logs of keys and any copy of an index
//! reveal neither ID numbers nor names, and cannot be reversed by hashing every possible ID
//! number without the secret. It does not protect against someone holding the whole database,
//! which contains the cases (and the secret) anyway. Hashes of different stores never match:
//! comparing people across nodes (a subtree-wide repeat count) needs a secret shared by the
//! subtree, which the federation would have to distribute.

use ring::hmac;

use super::StorageError;
use super::codec::{self, ValueKind};
use super::keys::{self, TreeId, Trees};
use crate::domain::rules::{normalize_id_number, normalize_respondent};

/// Bytes of a hash kept in an index key.
pub(crate) const HASH_LEN: usize = 16;
const SECRET_LEN: usize = 32;

/// The opened secret.
#[derive(Clone)]
pub(crate) struct Secret {
    key: hmac::Key,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    fn from_bytes(bytes: &[u8]) -> Secret {
        Secret {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    fn hash(&self, tag: &str, value: &str) -> [u8; HASH_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(tag.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        let tag = ctx.sign();
        let mut out = [0; HASH_LEN];
        out.copy_from_slice(&tag.as_ref()[..HASH_LEN]);
        out
    }

    /// The index hash of a person's ID number.
    pub(crate) fn person(&self, id_number: &str) -> [u8; HASH_LEN] {
        self.hash("id", &normalize_id_number(id_number))
    }

    /// The index hash of a respondent's name.
    pub(crate) fn respondent(&self, name: &str) -> [u8; HASH_LEN] {
        self.hash("respondent", &normalize_respondent(name))
    }

    /// Reads the store's secret, making and storing one in a store that has none. Called once
    /// at open, before the writer thread starts.
    pub(crate) fn load_or_create(trees: &Trees) -> Result<Secret, StorageError> {
        let meta = trees.get(TreeId::Meta);
        if let Some(bytes) = meta.get(keys::META_SECRET)? {
            let secret: Vec<u8> =
                codec::decode(ValueKind::Bytes, TreeId::Meta, keys::META_SECRET, &bytes)?;
            if secret.len() != SECRET_LEN {
                return Err(StorageError::Corrupt {
                    tree: TreeId::Meta.name(),
                    key: keys::display(keys::META_SECRET),
                    reason: format!("secret of {} bytes, {SECRET_LEN} expected", secret.len()),
                });
            }
            return Ok(Secret::from_bytes(&secret));
        }
        let secret: [u8; SECRET_LEN] = rand::random();
        let bytes = codec::encode(ValueKind::Bytes, secret.as_slice())?;
        // Only the first opener of a new store gets here; sled's compare-and-swap keeps a
        // secret another handle wrote meanwhile.
        match meta.compare_and_swap(keys::META_SECRET, None::<&[u8]>, Some(bytes))? {
            Ok(()) => Ok(Secret::from_bytes(&secret)),
            Err(_) => Secret::load_or_create(trees),
        }
    }

    /// A fixed secret for tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Secret {
        Secret::from_bytes(&[7; SECRET_LEN])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_normalised_and_separated_by_kind() {
        let s = Secret::for_tests();
        assert_eq!(
            s.person("61010219900101123x"),
            s.person(" 61010219900101123X")
        );
        assert_ne!(
            s.person("610102199001011234"),
            s.person("610102199001011235")
        );
        assert_eq!(
            s.respondent("某建筑 有限公司（西安）"),
            s.respondent("某建筑有限公司(西安)")
        );
        assert_ne!(s.person("x"), s.respondent("x"));
        let other = Secret::from_bytes(&[8; SECRET_LEN]);
        assert_ne!(
            s.person("610102199001011234"),
            other.person("610102199001011234")
        );
    }
}
