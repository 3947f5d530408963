//! The keys of the node's Open311 API (`crate::domain::apikeys`): made, listed and revoked by
//! the node's administrator; checked on every submission through the API.

use rand::Rng;

use super::App;
use crate::domain::Channel;
use crate::domain::apikeys::{self, ApiKey};
use crate::error::Error;
use crate::identity::{Action, Identity};

/// A key just made: the stored record and the whole key, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub key: ApiKey,
    /// `NAME.SECRET`: hand it to the system's operator; it is not kept.
    pub secret: String,
}

/// Why a presented key is refused (all three answer the same to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefused {
    Malformed,
    Unknown,
    Revoked,
}

impl App {
    /// Makes key `name` for cases coming by `channel`; audited.
    pub async fn add_api_key(
        &self,
        who: &Identity,
        name: &str,
        channel: Channel,
    ) -> Result<NewKey, Error> {
        self.authorize(who, Action::ManageUsers)?;
        apikeys::validate_name(name)?;
        let bytes: [u8; 32] = rand::rng().random();
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let key = ApiKey {
            name: name.to_owned(),
            channel,
            secret_hash: apikeys::secret_hash(&secret),
            created_at: self.now(),
            created_by: who.uri(),
            revoked_at: None,
        };
        let key = self.state.store.add_api_key(key).await?;
        self.audit(
            who,
            "",
            format!("AddApiKey {name} ({})", channel.label_en()),
        )
        .await?;
        tracing::info!(actor = %who.uri(), name, "API key added");
        Ok(NewKey {
            key,
            secret: format!("{name}.{secret}"),
        })
    }

    /// Every key, revoked ones too.
    pub fn list_api_keys(&self, who: &Identity) -> Result<Vec<ApiKey>, Error> {
        self.authorize(who, Action::ManageUsers)?;
        Ok(self.state.store.api_keys()?)
    }

    /// Revokes key `name` (refused from now on); audited.
    pub async fn revoke_api_key(&self, who: &Identity, name: &str) -> Result<ApiKey, Error> {
        self.authorize(who, Action::ManageUsers)?;
        let key = self
            .state
            .store
            .revoke_api_key(name.to_owned(), self.now())
            .await?;
        self.audit(who, "", format!("RevokeApiKey {name}")).await?;
        tracing::info!(actor = %who.uri(), name, "API key revoked");
        Ok(key)
    }

    /// The live key `presented` is, or why not.
    pub fn check_api_key(&self, presented: &str) -> Result<Result<ApiKey, KeyRefused>, Error> {
        let Some((name, secret)) = apikeys::split(presented) else {
            return Ok(Err(KeyRefused::Malformed));
        };
        let Some(key) = self.state.store.api_key(name)? else {
            return Ok(Err(KeyRefused::Unknown));
        };
        // Hashes compare: how long a comparison of SHA-256 outputs takes tells nothing usable
        // about the secret.
        if apikeys::secret_hash(secret) != key.secret_hash {
            return Ok(Err(KeyRefused::Unknown));
        }
        if key.is_revoked() {
            return Ok(Err(KeyRefused::Revoked));
        }
        Ok(Ok(key))
    }
}
