//! `fengqiao.v1.UserService` and `ApiKeyService`: the node's console accounts and API keys, an adapter over `crate::app::users`
//! (only an admin operator of this node: the application layer checks).

use fengqiao_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::SharedState;
use crate::app::App;
use crate::app::users::{Account, Issued, role_named};
use crate::convert;
use crate::domain::Channel;
use crate::domain::apikeys::ApiKey;
use crate::domain::users::User;
use crate::tls::peer_identity;

pub struct UserApi {
    app: App,
}

impl UserApi {
    pub fn new(state: SharedState) -> Self {
        UserApi {
            app: App::new(state),
        }
    }
}

fn user_to_proto(u: &User) -> pb::User {
    pb::User {
        username: u.username.clone(),
        role: u.role.as_str().to_owned(),
        name: u.name.clone(),
        enabled: u.enabled,
        must_change_password: u.must_change,
        created_at: Some(convert::ts_to_proto(u.created_at)),
        updated_at: Some(convert::ts_to_proto(u.updated_at)),
        locked: false,
        second_factor: false,
        last_login: None,
    }
}

fn account_to_proto(a: &Account) -> pb::User {
    pb::User {
        locked: a.locked,
        second_factor: a.second_factor,
        last_login: a.last_login.map(convert::ts_to_proto),
        ..user_to_proto(&a.user)
    }
}

fn issued_to_proto(i: &Issued) -> pb::IssuedUser {
    pb::IssuedUser {
        user: Some(user_to_proto(&i.user)),
        one_time_password: i.one_time_password.clone().unwrap_or_default(),
    }
}

/// An empty password asks for a one-time one.
fn given(password: String) -> Option<String> {
    (!password.is_empty()).then_some(password)
}

#[tonic::async_trait]
impl pb::user_service_server::UserService for UserApi {
    async fn add_user(
        &self,
        req: Request<pb::AddUserRequest>,
    ) -> Result<Response<pb::IssuedUser>, Status> {
        let who = peer_identity(&req)?;
        let pb::AddUserRequest {
            username,
            role,
            name,
            password,
        } = req.into_inner();
        let role = role_named(&role)?;
        let issued = self
            .app
            .add_user(&who, &username, role, &name, given(password))
            .await?;
        Ok(Response::new(issued_to_proto(&issued)))
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::Users>, Status> {
        let who = peer_identity(&req)?;
        let users = self.app.list_users(&who)?;
        Ok(Response::new(pb::Users {
            users: users.iter().map(account_to_proto).collect(),
        }))
    }

    async fn set_user_enabled(
        &self,
        req: Request<pb::SetUserEnabledRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let who = peer_identity(&req)?;
        let pb::SetUserEnabledRequest { username, enabled } = req.into_inner();
        let user = self.app.set_user_enabled(&who, &username, enabled).await?;
        Ok(Response::new(user_to_proto(&user)))
    }

    async fn reset_password(
        &self,
        req: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::IssuedUser>, Status> {
        let who = peer_identity(&req)?;
        let pb::ResetPasswordRequest { username, password } = req.into_inner();
        let issued = self
            .app
            .reset_password(&who, &username, given(password))
            .await?;
        Ok(Response::new(issued_to_proto(&issued)))
    }
}

/// `fengqiao.v1.ApiKeyService`: the keys of the node's Open311 API, an adapter over
/// `crate::app::apikeys` (only an admin operator of this node).
pub struct ApiKeyApi {
    app: App,
}

impl ApiKeyApi {
    pub fn new(state: SharedState) -> Self {
        ApiKeyApi {
            app: App::new(state),
        }
    }
}

fn api_key_to_proto(k: &ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        name: k.name.clone(),
        channel: pb::Channel::from(k.channel) as i32,
        created_at: Some(convert::ts_to_proto(k.created_at)),
        created_by: k.created_by.clone(),
        revoked_at: k.revoked_at.map(convert::ts_to_proto),
    }
}

#[tonic::async_trait]
impl pb::api_key_service_server::ApiKeyService for ApiKeyApi {
    async fn add_api_key(
        &self,
        req: Request<pb::AddApiKeyRequest>,
    ) -> Result<Response<pb::IssuedApiKey>, Status> {
        let who = peer_identity(&req)?;
        let pb::AddApiKeyRequest { name, channel } = req.into_inner();
        let channel = convert::optional::<pb::Channel, Channel>("channel", channel)?
            .unwrap_or(Channel::Online);
        let issued = self.app.add_api_key(&who, &name, channel).await?;
        Ok(Response::new(pb::IssuedApiKey {
            api_key: Some(api_key_to_proto(&issued.key)),
            key: issued.secret,
        }))
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ApiKeys>, Status> {
        let who = peer_identity(&req)?;
        let keys = self.app.list_api_keys(&who)?;
        Ok(Response::new(pb::ApiKeys {
            api_keys: keys.iter().map(api_key_to_proto).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        req: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let who = peer_identity(&req)?;
        let name = req.into_inner().name;
        let key = self.app.revoke_api_key(&who, &name).await?;
        Ok(Response::new(api_key_to_proto(&key)))
    }
}
