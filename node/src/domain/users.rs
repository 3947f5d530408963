//! Console accounts of one node (账号): who may sign in to its web console, with which role.
//!
//! An account is local to its node, like its cases. The role is one of the operator roles
//! (`crate::identity::Role`), with the same permission table as certificates. The password is
//! kept only as an argon2id hash (PHC string); an account created or reset without a password
//! gets a one-time password that must be changed at the first sign-in (`must_change`).
//!
//! Limits (refused with INVALID_ARGUMENT, nothing written): usernames 3–32 characters of
//! `a–z 0–9 . _ -`, starting with a letter; names (姓名) up to 32 characters, one line;
//! passwords 10–128 characters with at least one letter and one digit (等保 level 3 asks for
//! complexity).

use serde::{Deserialize, Serialize};

use super::{DomainError, Timestamp};
use crate::identity::Role;

/// Shortest and longest username.
pub const USERNAME_MIN_CHARS: usize = 3;
pub const USERNAME_MAX_CHARS: usize = 32;
/// Longest name (姓名).
pub const NAME_MAX_CHARS: usize = 32;
/// Shortest and longest password.
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// A console account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// 姓名, shown in the console; may be empty.
    pub name: String,
    /// argon2id, PHC string format.
    pub password_hash: String,
    pub enabled: bool,
    /// The password was set by an administrator (one-time): it must be changed at sign-in.
    pub must_change: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Checks a username.
pub fn validate_username(username: &str) -> Result<(), DomainError> {
    let n = username.chars().count();
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    let starts = username
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase());
    if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&n) || !ok_chars || !starts {
        return Err(DomainError::invalid(
            "username",
            format!(
                "must be {USERNAME_MIN_CHARS}–{USERNAME_MAX_CHARS} characters of a–z, 0–9, '.', '_', '-', starting with a letter"
            ),
        ));
    }
    Ok(())
}

/// Checks a name (姓名).
pub fn validate_name(name: &str) -> Result<(), DomainError> {
    if name.chars().count() > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            format!("must be one line of at most {NAME_MAX_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Checks a password chosen by a person.
pub fn validate_password(password: &str) -> Result<(), DomainError> {
    let n = password.chars().count();
    let letter = password.chars().any(char::is_alphabetic);
    let digit = password.chars().any(|c| c.is_ascii_digit());
    if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&n) || !letter || !digit {
        return Err(DomainError::invalid(
            "password",
            format!(
                "must be {PASSWORD_MIN_CHARS}–{PASSWORD_MAX_CHARS} characters with at least one letter and one digit"
            ),
        ));
    }
    Ok(())
}

/// Failed sign-ins in a row that lock an account (等保: lockout after repeated failures).
pub const MAX_FAILED_LOGINS: u32 = 5;

/// How an account signs in, apart from the account itself: failures in a row, the lock, the
/// last sign-in. Kept beside the account so that signing in never rewrites it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// Failed sign-ins since the last success (or unlock).
    pub failures: u32,
    /// When the account was locked ([`MAX_FAILED_LOGINS`] failures); `None`: not locked.
    pub locked_at: Option<Timestamp>,
    pub last_login: Option<Timestamp>,
    /// The TOTP secret of a second factor, if the account has one (RFC 6238, SHA-1, 6
    /// digits, 30 s).
    pub totp_secret: Option<Vec<u8>>,
}

impl LoginState {
    /// Whether the account is locked at `now`: locked and not yet released by `lockout`
    /// (`None`: until an administrator unlocks it).
    pub fn locked(&self, now: Timestamp, lockout: Option<std::time::Duration>) -> bool {
        match (self.locked_at, lockout) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(at), Some(d)) => now.0 < at.0.saturating_add(d.as_millis() as i64),
        }
    }
}

/// A console session: who signed in, when, and the token every form of the session carries
/// (CSRF). Stored under the SHA-256 of the cookie's random id, so a copy of the store opens
/// no session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
    /// The anti-forgery token of the session's forms.
    pub csrf: String,
    /// The password must be changed before anything else (one-time password).
    pub must_change: bool,
    /// A second factor must be set up before anything else (`web.require_totp`).
    pub must_enroll: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_holds_until_unlocked_or_for_the_configured_time() {
        let open = LoginState::default();
        assert!(!open.locked(Timestamp(0), None));
        let locked = LoginState {
            failures: MAX_FAILED_LOGINS,
            locked_at: Some(Timestamp(1_000)),
            ..LoginState::default()
        };
        assert!(
            locked.locked(Timestamp(i64::MAX), None),
            "until an admin unlocks"
        );
        let half_hour = std::time::Duration::from_secs(1800);
        assert!(locked.locked(Timestamp(1_000 + 1_799_999), Some(half_hour)));
        assert!(!locked.locked(Timestamp(1_000 + 1_800_000), Some(half_hour)));
    }

    #[test]
    fn usernames_names_and_passwords_are_checked() {
        for ok in ["li.ming", "wang_2", "abc"] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Li", "2li", "li ming", "张三", &"a".repeat(33)] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(validate_name("李明").is_ok());
        assert!(validate_name("").is_ok());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name(&"李".repeat(33)).is_err());
        assert!(validate_password("zongzhi2026").is_ok());
        for bad in ["short1", "onlyletters", "1234567890", &"a1".repeat(65)] {
            assert!(validate_password(bad).is_err(), "{bad}");
        }
    }
}
