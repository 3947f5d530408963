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
//! which contains the cases (and the secret) anyway. Hashes of different stores never match.
//!
//! Comparing people across nodes (the subtree-wide repeat count, `subtree`) uses a second,
//! federation-wide key, the [`PersonKey`]: 32 bytes in a file made by `fqctl pki init` next
//! to the CA (`person.key`) and named by `early_warning.person_key_file`. Every node of a
//! federation holds the same file, so they all hash one ID number alike
//! ([`Secret::subtree_person`], under a domain tag of its own), and only those hashes, never
//! ID numbers, travel between nodes. Without the key a node does no subtree matching.

use ring::hmac;

use super::StorageError;
use super::codec::{self, ValueKind};
use super::keys::{self, TreeId};
use super::trees::Trees;
use crate::domain::rules::{normalize_id_number, normalize_respondent};

/// Bytes of a hash kept in an index key.
pub(crate) const HASH_LEN: usize = 16;
const SECRET_LEN: usize = 32;

/// The federation-wide key of the person hashes compared across nodes (see the module doc).
/// Its `Debug` shows nothing of the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonKey([u8; SECRET_LEN]);

impl std::fmt::Debug for PersonKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonKey(..)")
    }
}

impl PersonKey {
    /// A new random key.
    pub fn generate() -> PersonKey {
        PersonKey(rand::random())
    }

    /// The key from its file form: 64 hex digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> Result<PersonKey, String> {
        let text = text.trim();
        if text.len() != 2 * SECRET_LEN || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("must hold {} hex digits", 2 * SECRET_LEN));
        }
        let mut out = [0; SECRET_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| "not hexadecimal".to_owned())?;
        }
        Ok(PersonKey(out))
    }

    /// The file form: 64 lower-case hex digits and a newline.
    pub fn to_hex(&self) -> String {
        let mut s: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        s.push('\n');
        s
    }

    /// Reads a key file.
    pub fn read(path: &std::path::Path) -> Result<PersonKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        PersonKey::from_hex(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A fixed key for tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> PersonKey {
        PersonKey([9; SECRET_LEN])
    }
}

/// The opened secret, with the federation's person key if the node has one.
#[derive(Clone)]
pub(crate) struct Secret {
    key: hmac::Key,
    federation: Option<hmac::Key>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn hash_with(key: &hmac::Key, tag: &str, value: &str) -> [u8; HASH_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(tag.as_bytes());
    ctx.update(&[0]);
    ctx.update(value.as_bytes());
    let tag = ctx.sign();
    let mut out = [0; HASH_LEN];
    out.copy_from_slice(&tag.as_ref()[..HASH_LEN]);
    out
}

impl Secret {
    fn from_bytes(bytes: &[u8]) -> Secret {
        Secret {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            federation: None,
        }
    }

    /// This secret, with the federation's person key (`None`: no subtree matching).
    pub(crate) fn with_person_key(mut self, key: Option<&PersonKey>) -> Secret {
        self.federation = key.map(|k| hmac::Key::new(hmac::HMAC_SHA256, &k.0));
        self
    }

    /// Whether this node compares people across the federation.
    pub(crate) fn has_person_key(&self) -> bool {
        self.federation.is_some()
    }

    /// The federation-wide hash of a person's ID number: equal at every node holding the same
    /// [`PersonKey`]; `None` without one.
    pub(crate) fn subtree_person(&self, id_number: &str) -> Option<[u8; HASH_LEN]> {
        let key = self.federation.as_ref()?;
        Some(hash_with(
            key,
            "subtree-id",
            &normalize_id_number(id_number),
        ))
    }

    fn hash(&self, tag: &str, value: &str) -> [u8; HASH_LEN] {
        hash_with(&self.key, tag, value)
    }

    /// The index hash of a person's ID number.
    pub(crate) fn person(&self, id_number: &str) -> [u8; HASH_LEN] {
        self.hash("id", &normalize_id_number(id_number))
    }

    /// The index hash of a party's phone number (digits only, see
    /// `domain::rules::normalize_phone`).
    pub(crate) fn phone(&self, phone: &str) -> [u8; HASH_LEN] {
        self.hash("phone", &crate::domain::rules::normalize_phone(phone))
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
        if meta.insert_new(keys::META_SECRET, bytes)? {
            Ok(Secret::from_bytes(&secret))
        } else {
            Secret::load_or_create(trees)
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

    #[test]
    fn the_person_key_matches_people_across_stores_and_only_with_it() {
        let key = PersonKey::for_tests();
        let a = Secret::from_bytes(&[1; SECRET_LEN]).with_person_key(Some(&key));
        let b = Secret::from_bytes(&[2; SECRET_LEN]).with_person_key(Some(&key));
        let id = "61010219900101123x";
        // Per-store hashes differ, federation hashes agree (normalised).
        assert_ne!(a.person(id), b.person(id));
        assert_eq!(
            a.subtree_person(id),
            b.subtree_person(" 61010219900101123X")
        );
        assert!(a.subtree_person(id).is_some());
        // Not the per-store hash under another name, and keyed.
        assert_ne!(a.subtree_person(id), Some(a.person(id)));
        let other = Secret::from_bytes(&[1; SECRET_LEN]).with_person_key(Some(&PersonKey([3; 32])));
        assert_ne!(a.subtree_person(id), other.subtree_person(id));
        assert_eq!(
            Secret::from_bytes(&[1; SECRET_LEN]).subtree_person(id),
            None
        );
        // The file form round-trips; Debug shows nothing.
        assert_eq!(PersonKey::from_hex(&key.to_hex()).unwrap(), key);
        assert!(PersonKey::from_hex("abc").is_err());
        assert!(PersonKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{key:?}"), "PersonKey(..)");
    }
}
