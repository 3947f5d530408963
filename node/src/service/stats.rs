//! `fengqiao.v1.StatsService`: the figures of this node's subtree, for operators of this node.
//!
//! Any operator role of this node may read figures (`Action::ReadStats`); node certificates
//! and operators of other nodes are refused before anything is decoded. The scope is this node
//! or a descendant: anything else is PERMISSION_DENIED, a scope deeper than the retention depth
//! FAILED_PRECONDITION, a descendant never heard of NOT_FOUND, a malformed request
//! INVALID_ARGUMENT. Answers come from stored entries only (see `crate::stats`).

use fengqiao_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::Span;

use super::SharedState;
use crate::app::App;
use crate::convert::stats as conv;
use crate::identity::Action;
use crate::stats::query::Period;
use crate::tls::peer_identity;

pub struct StatsApi {
    app: App,
}

impl StatsApi {
    pub fn new(state: SharedState) -> Self {
        StatsApi {
            app: App::new(state),
        }
    }
}

#[tonic::async_trait]
impl pb::stats_service_server::StatsService for StatsApi {
    #[tracing::instrument(name = "GetAggregates", skip_all, fields(caller, scope))]
    async fn get_aggregates(
        &self,
        req: Request<pb::GetAggregatesRequest>,
    ) -> Result<Response<pb::Aggregates>, Status> {
        let caller = peer_identity(&req)?;
        Span::current().record("caller", caller.uri().as_str());
        // Refused before anything is decoded.
        self.app.authorize(&caller, Action::ReadStats)?;
        let pb::GetAggregatesRequest {
            scope_node,
            from,
            to,
            group_by,
        } = req.into_inner();
        Span::current().record("scope", scope_node.as_str());
        let scope = conv::scope_from_proto(&scope_node)?;
        let (from, to) = conv::bounds_from_proto(from, to)?;
        let period = Period::new(from, to)?;
        let group_by = conv::group_by_from_proto(&group_by)?;
        let answer = self
            .app
            .read(move |app| app.aggregates(&caller, scope, period, &group_by))
            .await?;
        Ok(Response::new(conv::answer_to_proto(&answer)))
    }
}
