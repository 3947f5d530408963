//! Console accounts (账号管理), kept by the node's admin: add, list, disable, enable, reset
//! the password. Passwords are hashed with argon2id ([`hash_password`]) off the async
//! runtime; an account added or reset without a password gets a one-time password (12
//! readable symbols) that must be changed at the first sign-in.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;

use super::App;
use crate::domain::DomainError;
use crate::domain::users::{self, User};
use crate::error::Error;
use crate::identity::{Action, Identity, Role};
use crate::storage::WriteError;

/// A storage error of an account change: a missing account is [`Error::NoAccount`].
fn account_error(e: WriteError) -> Error {
    match e {
        WriteError::NotFound(username) => Error::NoAccount(username),
        other => other.into(),
    }
}

/// Symbols of one-time passwords: no 0/O, 1/I/l.
const ONE_TIME_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
const ONE_TIME_LEN: usize = 12;

/// A new account, or a reset password, with the one-time password to hand over (printed
/// once, never stored in clear).
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    pub user: User,
    pub one_time_password: Option<String>,
}

/// An account as its administrator lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub user: User,
    /// Locked by failed sign-ins.
    pub locked: bool,
    /// Signs in with a TOTP code.
    pub second_factor: bool,
    pub last_login: Option<crate::domain::Timestamp>,
}

/// A one-time password: letters and digits, at least one of each.
fn one_time_password() -> String {
    let mut rng = rand::rng();
    loop {
        let p: String = (0..ONE_TIME_LEN)
            .map(|_| char::from(ONE_TIME_ALPHABET[rng.random_range(0..ONE_TIME_ALPHABET.len())]))
            .collect();
        if users::validate_password(&p).is_ok() {
            return p;
        }
    }
}

/// The argon2id hash of `password` (PHC string), with a random salt.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| Error::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the stored `hash` (false for a hash that cannot be read).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Hashes off the runtime: argon2id takes tens of milliseconds by design.
async fn hashed(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

impl App {
    /// Adds account `username` with `role`: with `password` (checked), or a one-time one.
    pub async fn add_user(
        &self,
        who: &Identity,
        username: &str,
        role: Role,
        name: &str,
        password: Option<String>,
    ) -> Result<Issued, Error> {
        self.authorize(who, Action::ManageUsers)?;
        users::validate_username(username)?;
        users::validate_name(name)?;
        let (password, one_time) = match password {
            Some(p) => {
                users::validate_password(&p)?;
                (p, None)
            }
            None => {
                let p = one_time_password();
                (p.clone(), Some(p))
            }
        };
        let now = self.now();
        let user = User {
            username: username.to_owned(),
            role,
            name: name.trim().to_owned(),
            password_hash: hashed(password).await?,
            enabled: true,
            must_change: one_time.is_some(),
            created_at: now,
            updated_at: now,
        };
        let user = self.state.store.add_user(user).await?;
        self.audit(who, "", format!("AddUser {username} ({role})"))
            .await?;
        tracing::info!(actor = %who.uri(), username, role = %role, "console account added");
        Ok(Issued {
            user,
            one_time_password: one_time,
        })
    }

    /// Clears the failed sign-ins and the lock of `username` (and, `forget_totp`, its second
    /// factor: a password reset is also how a lost phone is replaced).
    async fn unlock(&self, username: &str, forget_totp: bool) -> Result<(), Error> {
        self.state
            .store
            .update_login_state(username.to_owned(), move |s| {
                crate::domain::users::LoginState {
                    failures: 0,
                    locked_at: None,
                    totp_secret: if forget_totp {
                        None
                    } else {
                        s.totp_secret.clone()
                    },
                    ..s
                }
            })
            .await?;
        Ok(())
    }

    /// Every account of this node, with how it signs in.
    pub fn list_users(&self, who: &Identity) -> Result<Vec<Account>, Error> {
        self.authorize(who, Action::ManageUsers)?;
        let now = self.now();
        let lockout = self.state.web.lockout;
        let mut out = Vec::new();
        for user in self.state.store.users()? {
            let login = self.state.store.login_state(&user.username)?;
            out.push(Account {
                locked: login.locked(now, lockout),
                second_factor: login.totp_secret.is_some(),
                last_login: login.last_login,
                user,
            });
        }
        Ok(out)
    }

    /// Disables (no sign-in) or enables account `username`.
    pub async fn set_user_enabled(
        &self,
        who: &Identity,
        username: &str,
        enabled: bool,
    ) -> Result<User, Error> {
        self.authorize(who, Action::ManageUsers)?;
        users::validate_username(username)?;
        let now = self.now();
        let user = self
            .state
            .store
            .update_user(username.to_owned(), move |u| User {
                enabled,
                updated_at: now,
                ..u.clone()
            })
            .await
            .map_err(account_error)?;
        if enabled {
            // Enabling is how an administrator unlocks an account locked by failed sign-ins.
            self.unlock(username, false).await?;
        }
        let what = if enabled { "EnableUser" } else { "DisableUser" };
        self.audit(who, "", format!("{what} {username}")).await?;
        tracing::info!(actor = %who.uri(), username, enabled, "console account changed");
        Ok(user)
    }

    /// Sets a new password for `username`: `password` (checked), or a one-time one that must
    /// be changed at the next sign-in.
    pub async fn reset_password(
        &self,
        who: &Identity,
        username: &str,
        password: Option<String>,
    ) -> Result<Issued, Error> {
        self.authorize(who, Action::ManageUsers)?;
        users::validate_username(username)?;
        let (password, one_time) = match password {
            Some(p) => {
                users::validate_password(&p)?;
                (p, None)
            }
            None => {
                let p = one_time_password();
                (p.clone(), Some(p))
            }
        };
        let hash = hashed(password).await?;
        let must_change = one_time.is_some();
        let now = self.now();
        let user = self
            .state
            .store
            .update_user(username.to_owned(), move |u| User {
                password_hash: hash.clone(),
                must_change,
                updated_at: now,
                ..u.clone()
            })
            .await
            .map_err(account_error)?;
        self.unlock(username, true).await?;
        self.audit(who, "", format!("ResetPassword {username}"))
            .await?;
        tracing::info!(actor = %who.uri(), username, "console password reset");
        Ok(Issued {
            user,
            one_time_password: one_time,
        })
    }
}

/// Refuses a role name that is not one of the operator roles.
pub fn role_named(name: &str) -> Result<Role, Error> {
    name.parse::<Role>()
        .map_err(|e| DomainError::invalid("role", e.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("zongzhi2026").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("zongzhi2026", &h));
        assert!(!verify_password("zongzhi2027", &h));
        assert!(!verify_password("zongzhi2026", "not a hash"));
        assert_ne!(h, hash_password("zongzhi2026").unwrap(), "salted");
    }

    #[test]
    fn one_time_passwords_are_valid_and_distinct() {
        let a = one_time_password();
        assert_eq!(a.chars().count(), ONE_TIME_LEN);
        assert!(users::validate_password(&a).is_ok(), "{a}");
        assert_ne!(a, one_time_password());
    }
}
