//! `fengqiao.v1.StatsExchange`: a child pushes its contributions, on `federation_listen`.
//!
//! Only a node certificate whose code's parent is this node may push (PERMISSION_DENIED
//! otherwise, before anything is decoded); a push about any node outside the pusher's subtree
//! is INVALID_ARGUMENT and stores nothing. See `crate::stats::node` for what is kept.

use fengqiao_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::Span;

use super::SharedState;
use crate::convert::stats as conv;
use crate::identity::Identity;
use crate::tls::peer_identity;

pub struct ExchangeApi {
    state: SharedState,
}

impl ExchangeApi {
    pub fn new(state: SharedState) -> Self {
        ExchangeApi { state }
    }
}

#[tonic::async_trait]
impl pb::stats_exchange_server::StatsExchange for ExchangeApi {
    #[tracing::instrument(name = "PushContributions", skip_all, fields(caller))]
    async fn push_contributions(
        &self,
        req: Request<pb::PushContributionsRequest>,
    ) -> Result<Response<pb::PushContributionsResponse>, Status> {
        let caller = peer_identity(&req)?;
        Span::current().record("caller", caller.uri().as_str());
        let child = match caller {
            Identity::Node { code } if code.parent().as_ref() == Some(&self.state.code) => code,
            other => {
                tracing::warn!(caller = %other.uri(), "push refused: not a child node");
                return Err(crate::error::Error::PermissionDenied(format!(
                    "only a child node of {} may push contributions; {} may not",
                    self.state.code,
                    other.uri()
                ))
                .into());
            }
        };
        let push = conv::push_from_proto(req.into_inner())?;
        let reply = self.state.stats.receive(&child, push).await?;
        Ok(Response::new(conv::push_reply_to_proto(reply)))
    }
}
