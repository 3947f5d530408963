//! Encoding of what the federation RPCs of CaseService answer (EscalateCase, TransferCase,
//! SuperviseCase, GetLinks); the operations themselves are `crate::app::moves`.

use fengqiao_proto::v1 as pb;

use crate::convert;
use crate::federation::links::{LinkView, Role as LinkRole, State};

pub(crate) fn link_to_proto(v: &LinkView) -> pb::Link {
    let LinkView {
        peer,
        role,
        state,
        queue_out,
        queue_in,
        oldest_undelivered,
        last_heard,
        silent,
        last_error,
        failing_since,
        refused_in,
        refused_out,
        resyncs,
        last_resync,
    } = v;
    pb::Link {
        peer: peer.to_string(),
        role: match role {
            LinkRole::Parent => pb::LinkRole::Parent,
            LinkRole::Child => pb::LinkRole::Child,
        } as i32,
        state: match state {
            State::Connected => pb::LinkState::Connected,
            State::BackingOff => pb::LinkState::BackingOff,
            State::NeverConnected => pb::LinkState::NeverConnected,
            State::Blocked => pb::LinkState::Blocked,
        } as i32,
        queue_out: *queue_out,
        queue_in: *queue_in,
        oldest_undelivered_at: oldest_undelivered.map(convert::ts_to_proto),
        last_heard: last_heard.map(convert::ts_to_proto),
        silent: *silent,
        last_error: last_error.clone(),
        failing_since: failing_since.map(convert::ts_to_proto),
        refused_in: *refused_in,
        refused_out: *refused_out,
        resyncs: *resyncs,
        last_resync: last_resync.map(convert::ts_to_proto),
    }
}
