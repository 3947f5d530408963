//! The node's console accounts, one value per username.

use super::change::abort;
use super::codec::ValueKind;
use super::keys::TreeId;
use super::{StorageError, Store, WriteError};
use crate::domain::DomainError;
use crate::domain::users::User;

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
