//! Keys of the systems that submit cases through the node's Open311 API (the 12348 hotline's
//! system, a WeChat mini-program's backend, a court's referral system).
//!
//! A key is `NAME.SECRET`: the name says which system (and which [`Channel`] its cases come
//! by), the secret is 32 random bytes in hex. Only the SHA-256 of the secret is stored; the
//! key itself is printed once, when it is made (`fqctl apikey add`). A revoked key stays in
//! the store (so the cases it submitted keep naming it) and is refused from then on.
//!
//! Limits (INVALID_ARGUMENT, nothing written): names 3–32 characters of `a–z 0–9 _ -`,
//! starting with a letter (no `.`: it separates the name from the secret).

use serde::{Deserialize, Serialize};

use super::{Channel, DomainError, Timestamp};

/// Shortest and longest key name.
pub const NAME_MIN_CHARS: usize = 3;
pub const NAME_MAX_CHARS: usize = 32;
/// Length of a key's secret part (hex of 32 bytes).
pub const SECRET_CHARS: usize = 64;

/// An API key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub name: String,
    /// The channel every case submitted with this key records.
    pub channel: Channel,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
    pub created_at: Timestamp,
    /// Who made it (identity URI).
    pub created_by: String,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// Checks a key name.
pub fn validate_name(name: &str) -> Result<(), DomainError> {
    let n = name.chars().count();
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    let starts = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if !(NAME_MIN_CHARS..=NAME_MAX_CHARS).contains(&n) || !ok_chars || !starts {
        return Err(DomainError::invalid(
            "name",
            format!(
                "must be {NAME_MIN_CHARS}–{NAME_MAX_CHARS} characters of a–z, 0–9, '_', '-', starting with a letter"
            ),
        ));
    }
    Ok(())
}

/// A presented key split into its name and secret, if it has the shape of one.
pub fn split(key: &str) -> Option<(&str, &str)> {
    let (name, secret) = key.trim().rsplit_once('.')?;
    let ok = validate_name(name).is_ok()
        && secret.len() == SECRET_CHARS
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some((name, secret))
}

/// The stored hash of a secret.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_have_one_shape() {
        for good in ["hotline12348", "wx-mini", "court_ref"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ab",
            "12348",
            "Hotline",
            "a.b",
            "名字系统",
            &"a".repeat(33),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let secret = "ab".repeat(32);
        assert_eq!(
            split(&format!("wx-mini.{secret}")),
            Some(("wx-mini", secret.as_str()))
        );
        assert_eq!(split(&format!("wx-mini.{}", &secret[1..])), None);
        assert_eq!(split(&format!("wx.mini.{secret}")), None);
        assert_eq!(split(&format!("wx-mini.{}zz", &secret[2..])), None);
        assert_eq!(split("nothing"), None);
    }
}
