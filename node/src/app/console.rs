//! Signing in to the web console: passwords, lockout, sessions.
//!
//! * A sign-in checks the password against the account's argon2id hash (off the runtime). An
//!   unknown or disabled account costs the same hash, and gets the same answer as a wrong
//!   password. [`MAX_FAILED_LOGINS`] failures in a row lock the account: until an
//!   administrator unlocks it (`fqctl user enable`, or a password reset), or for
//!   `web.lockout` when that is set. Every sign-in, failure, lockout and sign-out is written
//!   to the audit log before it is answered.
//! * A session is a random 256-bit id in an HttpOnly cookie. The store keeps only its SHA-256,
//!   with the account, the role, the times and the session's anti-forgery token. It ends after
//!   `web.idle_timeout` without use, `web.max_session` after sign-in, at sign-out, or as soon
//!   as the account is disabled, its role changed or its password reset.
//! * A one-time password (an account added or reset without one) opens a session that may
//!   only change it.
//! * A second factor (TOTP, RFC 6238: 6 digits every 30 s, SHA-1, one step of clock skew
//!   either way, as phone authenticator apps do) is set up by the person from the console and
//!   asked at every sign-in from then on; a wrong or missing code is a failed sign-in. With
//!   `web.require_totp` an account without one must set it up before anything else. A reset
//!   password (`fqctl user reset-password`) also removes it (a lost phone).

use std::sync::OnceLock;

use rand::Rng;

use super::App;
use super::users::{hash_password, verify_password};
use crate::domain::users::{self, LoginState, MAX_FAILED_LOGINS, Session, User};
use crate::domain::{DomainError, Timestamp};
use crate::error::Error;
use crate::identity::Identity;

/// A session is seen again (its last use written) at most this often: a page view does not
/// cost a durable write each time.
const TOUCH_EVERY_MS: i64 = 60_000;

/// What a sign-in ends with.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: the cookie's value and the session.
    Opened { token: String, session: Session },
    /// Wrong username or password (or a disabled account: the same answer).
    Wrong,
    /// Locked after too many failures.
    Locked,
}

/// A live session and who it is.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Identity,
    pub session: Session,
    /// The key of the session in the store (SHA-256 of the cookie's value).
    pub key: Vec<u8>,
    /// The account's name (姓名), for the page header.
    pub name: String,
}

/// The store key of a session id.
fn session_key(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash that no password matches, verified for unknown accounts so that they take as long
/// as known ones.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

impl App {
    fn console_identity(&self, user: &User) -> Result<Identity, Error> {
        Identity::operator(self.state.code.clone(), user.role, &user.username)
            .map_err(|e| Error::Internal(format!("account {}: {e}", user.username)))
    }

    /// The audit actor of a sign-in attempt for `username` (an account that may not exist).
    fn attempt_actor(&self, username: &str) -> String {
        format!("console:{}/{}", self.state.code, username)
    }

    /// Signs `username` in with `password` and, for an account with a second factor, the
    /// current `totp_code`.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        totp_code: &str,
    ) -> Result<SignIn, Error> {
        let now = self.now();
        let lockout = self.state.web.lockout;
        let user = if users::validate_username(username).is_ok() {
            self.state.store.user(username)?
        } else {
            None
        };
        let state = match &user {
            Some(_) => self.state.store.login_state(username)?,
            None => LoginState::default(),
        };
        if user.is_some() && state.locked(now, lockout) {
            self.record(username, "LoginRefused locked").await?;
            return Ok(SignIn::Locked);
        }
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| decoy_hash().to_owned());
        let given = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_password(&given, &hash)).await?;
        let second_ok = match &state.totp_secret {
            Some(secret) => totp_ok(secret, totp_code, now),
            None => true,
        };
        let Some(user) = user.filter(|u| u.enabled && matches && second_ok) else {
            self.failed(username, now, lockout).await?;
            return Ok(SignIn::Wrong);
        };
        self.state
            .store
            .update_login_state(username.to_owned(), move |s| LoginState {
                failures: 0,
                locked_at: None,
                last_login: Some(now),
                ..s
            })
            .await?;
        let token = random_token();
        let session = Session {
            username: user.username.clone(),
            role: user.role,
            created_at: now,
            last_seen: now,
            csrf: random_token(),
            must_change: user.must_change,
            must_enroll: self.state.web.require_totp && state.totp_secret.is_none(),
        };
        let (idle, max) = self.session_limits();
        // Each sign-in also clears the sessions that ended, so the tree stays small.
        self.state
            .store
            .remove_sessions(None, move |s| expired(s, now, idle, max))
            .await?;
        self.state
            .store
            .put_session(session_key(&token), session.clone())
            .await?;
        let who = self.console_identity(&user)?;
        self.audit(&who, "", "Login".into()).await?;
        tracing::info!(username, role = %user.role, "console sign-in");
        Ok(SignIn::Opened { token, session })
    }

    /// Counts a failed sign-in of `username`, locking the account at the limit.
    async fn failed(
        &self,
        username: &str,
        now: Timestamp,
        lockout: Option<std::time::Duration>,
    ) -> Result<(), Error> {
        let exists = users::validate_username(username).is_ok()
            && self.state.store.user(username)?.is_some();
        if !exists {
            return self.record(username, "LoginFailed").await;
        }
        let state = self
            .state
            .store
            .update_login_state(username.to_owned(), move |s| {
                // A lock that ran out (web.lockout) starts a new count.
                let failures = if s.locked_at.is_some() && !s.locked(now, lockout) {
                    1
                } else {
                    s.failures.saturating_add(1)
                };
                LoginState {
                    failures,
                    locked_at: if failures >= MAX_FAILED_LOGINS {
                        Some(now)
                    } else {
                        None
                    },
                    ..s
                }
            })
            .await?;
        self.record(username, "LoginFailed").await?;
        if state.failures == MAX_FAILED_LOGINS {
            tracing::warn!(username, "console account locked after failed sign-ins");
            self.record(username, "Lockout").await?;
        }
        Ok(())
    }

    /// An audit entry about a sign-in attempt (no session yet).
    async fn record(&self, username: &str, what: &str) -> Result<(), Error> {
        self.state
            .store
            .record_access(crate::domain::audit::Access {
                at: self.now(),
                actor: self.attempt_actor(username),
                case_id: String::new(),
                what: what.to_owned(),
            })
            .await?;
        Ok(())
    }

    fn session_limits(&self) -> (i64, i64) {
        (
            self.state.web.idle_timeout.as_millis() as i64,
            self.state.web.max_session.as_millis() as i64,
        )
    }

    /// The live session of cookie value `token`, if any: ended sessions, and sessions of an
    /// account since disabled, reset or given another role, are none.
    pub async fn session(&self, token: &str) -> Result<Option<Caller>, Error> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let key = session_key(token);
        let Some(session) = self.state.store.session(&key)? else {
            return Ok(None);
        };
        let now = self.now();
        let (idle, max) = self.session_limits();
        let user = self.state.store.user(&session.username)?;
        // Disabling, enabling, a reset or changed password, a new role: each moves
        // `updated_at` past the session's last use and so ends it.
        let valid = user.as_ref().is_some_and(|u| {
            u.enabled && u.role == session.role && u.updated_at <= session.last_seen
        });
        if expired(&session, now, idle, max) || !valid {
            self.state
                .store
                .remove_sessions(Some(key), |_| false)
                .await?;
            return Ok(None);
        }
        let Some(user) = user else { return Ok(None) };
        let mut session = session;
        if now.0 - session.last_seen.0 >= TOUCH_EVERY_MS {
            session.last_seen = now;
            self.state
                .store
                .put_session(key.clone(), session.clone())
                .await?;
        }
        Ok(Some(Caller {
            who: self.console_identity(&user)?,
            session,
            key,
            name: user.name,
        }))
    }

    /// Ends the session of `caller`.
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), Error> {
        self.state
            .store
            .remove_sessions(Some(caller.key.clone()), |_| false)
            .await?;
        self.audit(&caller.who, "", "Logout".into()).await?;
        Ok(())
    }

    /// Changes the password of the signed-in account: `current` must match, `new` is checked.
    /// The session stays open (and may now do its work); other sessions of the account end.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
    ) -> Result<(), Error> {
        users::validate_password(new)?;
        if current == new {
            return Err(crate::domain::DomainError::invalid(
                "password",
                "the new password must differ from the current one",
            )
            .into());
        }
        let username = caller.session.username.clone();
        let user = self
            .state
            .store
            .user(&username)?
            .ok_or_else(|| Error::NoAccount(username.clone()))?;
        let (given, hash) = (current.to_owned(), user.password_hash.clone());
        if !tokio::task::spawn_blocking(move || verify_password(&given, &hash)).await? {
            return Err(Error::Unauthenticated(
                "the current password is wrong".into(),
            ));
        }
        let new_hash = {
            let new = new.to_owned();
            tokio::task::spawn_blocking(move || hash_password(&new)).await??
        };
        let now = self.now();
        self.state
            .store
            .update_user(username.clone(), move |u| User {
                password_hash: new_hash.clone(),
                must_change: false,
                updated_at: now,
                ..u.clone()
            })
            .await
            .map_err(|e| match e {
                crate::storage::WriteError::NotFound(u) => Error::NoAccount(u),
                other => other.into(),
            })?;
        // This session goes on, seen now (after the change); the others end.
        let key = caller.key.clone();
        self.state
            .store
            .remove_sessions(None, {
                let username = username.clone();
                move |s| s.username == username
            })
            .await?;
        let session = Session {
            last_seen: now,
            must_change: false,
            ..caller.session.clone()
        };
        self.state.store.put_session(key, session).await?;
        self.audit(&caller.who, "", "ChangePassword".into()).await?;
        Ok(())
    }

    /// Whether the signed-in account has a second factor.
    pub fn has_totp(&self, caller: &Caller) -> Result<bool, Error> {
        Ok(self
            .state
            .store
            .login_state(&caller.session.username)?
            .totp_secret
            .is_some())
    }

    /// Sets up the second factor of the signed-in account: `secret` (as the console showed
    /// it, base32) is kept once `code` proves the person's app holds it. An account that has
    /// one keeps it (an administrator's password reset removes it).
    pub async fn enroll_totp(
        &self,
        caller: &Caller,
        secret: &str,
        code: &str,
    ) -> Result<(), Error> {
        let bytes = totp_rs::Secret::Encoded(secret.trim().to_owned())
            .to_bytes()
            .ok()
            .filter(|b| b.len() == TOTP_SECRET_BYTES)
            .ok_or_else(|| {
                DomainError::invalid("totp_secret", "not the secret this page showed")
            })?;
        if !totp_ok(&bytes, code, self.now()) {
            return Err(DomainError::invalid(
                "totp_code",
                "the code does not match: check the phone's time and type the current code",
            )
            .into());
        }
        let username = caller.session.username.clone();
        self.state
            .store
            .update_login_state(username, move |s| LoginState {
                totp_secret: s.totp_secret.clone().or_else(|| Some(bytes.clone())),
                ..s
            })
            .await?;
        let session = Session {
            must_enroll: false,
            ..caller.session.clone()
        };
        self.state
            .store
            .put_session(caller.key.clone(), session)
            .await?;
        self.audit(&caller.who, "", "EnrollTotp".into()).await?;
        Ok(())
    }
}

/// Bytes of a new TOTP secret (160 bits, as RFC 4226 recommends).
pub const TOTP_SECRET_BYTES: usize = 20;

fn totp(secret: &[u8]) -> Option<totp_rs::TOTP> {
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec()).ok()
}

/// Whether `code` is the TOTP of `secret` at `now` (one step of skew either way).
fn totp_ok(secret: &[u8], code: &str, now: Timestamp) -> bool {
    let code = code.trim();
    code.len() == 6
        && code.bytes().all(|b| b.is_ascii_digit())
        && totp(secret).is_some_and(|t| t.check(code, (now.0.max(0) / 1000) as u64))
}

/// A new TOTP secret, base32 (what an authenticator app takes), and its `otpauth://` URI for
/// `username` at `node`.
pub fn new_totp_secret(node: &str, username: &str) -> (String, String) {
    let bytes: [u8; TOTP_SECRET_BYTES] = rand::rng().random();
    let base32 = totp_rs::Secret::Raw(bytes.to_vec())
        .to_encoded()
        .to_string();
    let uri = format!(
        "otpauth://totp/fengqiao:{node}-{username}?secret={base32}&issuer=fengqiao&algorithm=SHA1&digits=6&period=30"
    );
    (base32, uri)
}

/// Whether `s` has ended at `now` (idle or too old).
fn expired(s: &Session, now: Timestamp, idle_ms: i64, max_ms: i64) -> bool {
    now.0.saturating_sub(s.last_seen.0) >= idle_ms || now.0.saturating_sub(s.created_at.0) >= max_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_old() {
        let s = Session {
            username: "li.ming".into(),
            role: crate::identity::Role::Intake,
            created_at: Timestamp(0),
            last_seen: Timestamp(1_000),
            csrf: "x".into(),
            must_change: false,
            must_enroll: false,
        };
        assert!(!expired(&s, Timestamp(1_000 + 59_999), 60_000, 120_000));
        assert!(expired(&s, Timestamp(1_000 + 60_000), 60_000, 120_000));
        let busy = Session {
            last_seen: Timestamp(119_000),
            ..s
        };
        assert!(!expired(&busy, Timestamp(119_999), 60_000, 120_000));
        assert!(expired(&busy, Timestamp(120_000), 60_000, 120_000));
    }

    #[test]
    fn totp_codes_follow_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, the last 6 of its 8 digits.
        let secret = b"12345678901234567890";
        assert!(totp_ok(secret, "287082", Timestamp(59_000)));
        assert!(totp_ok(secret, "081804", Timestamp(1_111_111_109_000)));
        assert!(!totp_ok(secret, "081805", Timestamp(1_111_111_109_000)));
        assert!(!totp_ok(secret, "", Timestamp(59_000)));
        let (base32, uri) = new_totp_secret("610116", "li.ming");
        assert_eq!(base32.len(), 32);
        assert!(uri.contains(&base32));
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(session_key(&a).len(), 32);
    }
}
