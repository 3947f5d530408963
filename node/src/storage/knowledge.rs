//! What this node knows of cases beyond its own records, for checking what children say
//! (`federation::trust`): where it last sent each case, and the orders it issued.
//!
//! Both are written in the transaction that queues the message concerned ([`note_outgoing`],
//! called by `change::enqueue`): a transfer or refusal records where the case went and at
//! which epoch (an older epoch never replaces a newer one); an order created here gets its id
//! (random, never 0) and is kept under it. Issued orders are small and rare (a person's 督办
//! or an ordered move, a repeat-person risk raise) and are kept for good; where a case went
//! is one small value per case that ever crossed this node.

use super::change::{Tx, TxResult};
use super::codec::ValueKind;
use super::keys::TreeId;
use crate::code::NodeCode;
use crate::domain::Case;
use crate::protocol::message::{Body, Message, Order};
use crate::protocol::trust::{self, Located};

/// Records what queueing `message` tells this node (see the module doc); gives an order created
/// here its id.
pub(crate) fn note_outgoing(tx: &Tx<'_>, message: &mut Message) -> TxResult<()> {
    let me = tx.node.clone();
    match &mut message.body {
        Body::Transfer(t) => locate(tx, &t.case.id, &message.destination, t.epoch),
        Body::Refused(r) => locate(tx, &r.case.id, &message.destination, r.epoch),
        Body::Order(order) if message.origin == me => {
            if order.id == 0 {
                order.id = crate::random::nonzero_u64();
            }
            tx.insert_encoded(
                TreeId::IssuedOrders,
                ValueKind::IssuedOrder,
                &order.id.to_be_bytes(),
                &*order,
            )
        }
        _ => Ok(()),
    }
}

fn locate(tx: &Tx<'_>, case_id: &str, holder: &NodeCode, epoch: u64) -> TxResult<()> {
    let key = case_id.as_bytes();
    let held: Option<Located> = tx.get_decoded(TreeId::Located, ValueKind::Located, key)?;
    if held.is_some_and(|h| h.epoch > epoch) {
        return Ok(());
    }
    let located = Located {
        holder: holder.clone(),
        epoch,
    };
    tx.insert_encoded(TreeId::Located, ValueKind::Located, key, &located)
}

/// Where this node believes each case `message` names is ([`trust::holder`]); `record` is
/// this node's record of the message's (first) case, already read.
pub(crate) fn holders(
    tx: &Tx<'_>,
    message: &Message,
    record: Option<&Case>,
) -> TxResult<Vec<Option<NodeCode>>> {
    let first = message.case_id();
    message
        .case_ids()
        .into_iter()
        .map(|id| {
            let located: Option<Located> =
                tx.get_decoded(TreeId::Located, ValueKind::Located, id.as_bytes())?;
            let owned;
            let record = if id == first {
                record
            } else {
                owned = tx.get_case(id)?;
                owned.as_ref()
            };
            Ok(trust::holder(tx.node, id, located.as_ref(), record))
        })
        .collect()
}

/// The order this node issued under `id`, if any.
pub(crate) fn issued(tx: &Tx<'_>, id: u64) -> TxResult<Option<Order>> {
    if id == 0 {
        return Ok(None);
    }
    tx.get_decoded(
        TreeId::IssuedOrders,
        ValueKind::IssuedOrder,
        &id.to_be_bytes(),
    )
}
