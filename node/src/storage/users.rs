//! The node's console accounts, one value per username, their sign-in state and sessions,
//! and the keys of the Open311 API.

use super::change::abort;
use super::codec::ValueKind;
use super::keys::TreeId;
use super::{StorageError, Store, WriteError};
use crate::domain::apikeys::ApiKey;
use crate::domain::users::{LoginState, Session, User};
use crate::domain::{DomainError, Timestamp};

impl Store {
    /// The account `username`, if any.
    pub fn user(&self, username: &str) -> Result<Option<User>, StorageError> {
        self.tree(TreeId::Users)
            .get(username.as_bytes())?
            .map(|v| super::codec::decode(ValueKind::User, TreeId::Users, username.as_bytes(), &v))
            .transpose()
    }

    /// Every account, by username.
    pub fn users(&self) -> Result<Vec<User>, StorageError> {
        let mut out = Vec::new();
        for item in self.tree(TreeId::Users).iter() {
            let (key, value) = item?;
            out.push(super::codec::decode(
                ValueKind::User,
                TreeId::Users,
                &key,
                &value,
            )?);
        }
        Ok(out)
    }

    /// Stores a new account; an existing username is refused (ALREADY_EXISTS is not in the
    /// API's codes: FAILED_PRECONDITION naming it).
    pub async fn add_user(&self, user: User) -> Result<User, WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    let key = user.username.as_bytes();
                    if tx.get(TreeId::Users, key)?.is_some() {
                        return Err(abort(WriteError::Domain(DomainError::Precondition(
                            format!("account {} exists already", user.username),
                        ))));
                    }
                    tx.insert_encoded(TreeId::Users, ValueKind::User, key, &user)?;
                    Ok(user.clone())
                })
            })
            .await
    }

    /// Changes account `username` with `f` (which sees the stored account);
    /// [`WriteError::NotFound`] (with the username) if none.
    pub async fn update_user<F>(&self, username: String, f: F) -> Result<User, WriteError>
    where
        F: Fn(&User) -> User + Send + 'static,
    {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    let key = username.as_bytes();
                    let Some(before): Option<User> =
                        tx.get_decoded(TreeId::Users, ValueKind::User, key)?
                    else {
                        return Err(abort(WriteError::NotFound(username.clone())));
                    };
                    let after = f(&before);
                    tx.insert_encoded(TreeId::Users, ValueKind::User, key, &after)?;
                    Ok(after)
                })
            })
            .await
    }
}

/// Sign-in state and console sessions.
impl Store {
    /// How account `username` signs in (the default for one that never tried).
    pub fn login_state(&self, username: &str) -> Result<LoginState, StorageError> {
        Ok(self
            .tree(TreeId::Logins)
            .get(username.as_bytes())?
            .map(|v| {
                super::codec::decode(
                    ValueKind::LoginState,
                    TreeId::Logins,
                    username.as_bytes(),
                    &v,
                )
            })
            .transpose()?
            .unwrap_or_default())
    }

    /// Changes the sign-in state of `username` with `f`, durably; returns the new state.
    pub async fn update_login_state<F>(
        &self,
        username: String,
        f: F,
    ) -> Result<LoginState, WriteError>
    where
        F: Fn(LoginState) -> LoginState + Send + 'static,
    {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    let key = username.as_bytes();
                    let before: LoginState = tx
                        .get_decoded(TreeId::Logins, ValueKind::LoginState, key)?
                        .unwrap_or_default();
                    let after = f(before);
                    tx.insert_encoded(TreeId::Logins, ValueKind::LoginState, key, &after)?;
                    Ok(after)
                })
            })
            .await
    }

    /// The session stored under `key` (the SHA-256 of its id), if any.
    pub fn session(&self, key: &[u8]) -> Result<Option<Session>, StorageError> {
        self.tree(TreeId::Sessions)
            .get(key)?
            .map(|v| super::codec::decode(ValueKind::Session, TreeId::Sessions, key, &v))
            .transpose()
    }

    /// Stores `session` under `key` (a new session, or one seen again), durably.
    pub async fn put_session(&self, key: Vec<u8>, session: Session) -> Result<(), WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    tx.insert_encoded(TreeId::Sessions, ValueKind::Session, &key, &session)?;
                    Ok(())
                })
            })
            .await
    }

    /// Removes the session under `key` (signing out), and every session for which `expired`
    /// holds (each sign-in sweeps them, so the tree stays as small as the sessions in use).
    pub async fn remove_sessions<F>(
        &self,
        key: Option<Vec<u8>>,
        expired: F,
    ) -> Result<usize, WriteError>
    where
        F: Fn(&Session) -> bool + Send + 'static,
    {
        let mut gone: Vec<Vec<u8>> = key.into_iter().collect();
        for item in self.tree(TreeId::Sessions).iter() {
            let (k, v) = item.map_err(StorageError::from)?;
            let s: Session = super::codec::decode(ValueKind::Session, TreeId::Sessions, &k, &v)?;
            if expired(&s) {
                gone.push(k.to_vec());
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    for k in &gone {
                        tx.remove(TreeId::Sessions, k)?;
                    }
                    Ok(gone.len())
                })
            })
            .await
    }
}

/// The keys of the Open311 API.
impl Store {
    /// The key named `name`, if any (revoked ones too).
    pub fn api_key(&self, name: &str) -> Result<Option<ApiKey>, StorageError> {
        self.tree(TreeId::ApiKeys)
            .get(name.as_bytes())?
            .map(|v| super::codec::decode(ValueKind::ApiKey, TreeId::ApiKeys, name.as_bytes(), &v))
            .transpose()
    }

    /// Every key, by name.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>, StorageError> {
        let mut out = Vec::new();
        for item in self.tree(TreeId::ApiKeys).iter() {
            let (key, value) = item?;
            out.push(super::codec::decode(
                ValueKind::ApiKey,
                TreeId::ApiKeys,
                &key,
                &value,
            )?);
        }
        Ok(out)
    }

    /// Stores a new key; a name in use (revoked keys included: the cases they submitted name
    /// them) is FAILED_PRECONDITION.
    pub async fn add_api_key(&self, key: ApiKey) -> Result<ApiKey, WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    let name = key.name.as_bytes();
                    if tx.get(TreeId::ApiKeys, name)?.is_some() {
                        return Err(abort(WriteError::Domain(DomainError::Precondition(
                            format!("an API key named {} exists already", key.name),
                        ))));
                    }
                    tx.insert_encoded(TreeId::ApiKeys, ValueKind::ApiKey, name, &key)?;
                    Ok(key.clone())
                })
            })
            .await
    }

    /// Marks key `name` revoked at `at` (a key revoked already keeps its first revocation);
    /// [`WriteError::NotFound`] if none.
    pub async fn revoke_api_key(&self, name: String, at: Timestamp) -> Result<ApiKey, WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    let key = name.as_bytes();
                    let Some(mut stored): Option<ApiKey> =
                        tx.get_decoded(TreeId::ApiKeys, ValueKind::ApiKey, key)?
                    else {
                        return Err(abort(WriteError::NotFound(name.clone())));
                    };
                    stored.revoked_at.get_or_insert(at);
                    tx.insert_encoded(TreeId::ApiKeys, ValueKind::ApiKey, key, &stored)?;
                    Ok(stored)
                })
            })
            .await
    }
}
