//! The sender task: pushes this node's changed statistics entries to its parent.
//!
//! One task per node with a `parent`. It remembers (in memory) the highest local seq whose
//! entries the parent has acknowledged, and pushes every entry written since, as its latest
//! state with its version, to `StatsExchange.PushContributions` on the parent's
//! `federation_listen`, over the federation's channel to the parent (mutual TLS with this
//! node's certificate; the parent's certificate must name the parent):
//!
//! * `stats.push_delay` after the store signals a durable write (a burst of writes becomes one
//!   push; a write that changed no figure sends nothing);
//! * at least every `stats.heartbeat`, even with nothing to send, so the parent knows this
//!   node is alive and gets its liveness view;
//! * after a failure, again after a backoff that doubles from `push_delay` up to `heartbeat`.
//!
//! Because pushes carry states, not deltas, none of this needs exactly-once delivery: a push
//! that failed after the parent stored it is simply sent again and ignored there. A push
//! carries only durable states: after reading its entries the task waits until the store has
//! synced everything it read ([`crate::storage::Store::wait_durable`]). Otherwise a crash
//! right after a push could leave the parent holding a version this node never made durable,
//! and reuse that version number for another state the parent would then ignore. On start
//! the task resends everything (`full`), and does so again whenever the parent answers
//! `resync` (it restarted and holds nothing it can vouch for from this node). Entries the
//! parent would not keep (beyond its retention depth, as it reports in every answer) are not
//! sent. A push stays under [`BATCH_BYTES`]; more go in further pushes right away.
//!
//! The same task refreshes this node's overdue figures every `stats.overdue_refresh`, so the
//! overdue counts a parent sees are at most that old (plus the push delays up the tree).

use std::sync::Arc;
use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::stats_exchange_client::StatsExchangeClient;
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::depth_below;
use super::node::{StatsNode, keeps};
use crate::convert::{self, stats as conv};

/// Upper bound on the encoded size of one push (the parent's default limit is 1 MiB).
pub const BATCH_BYTES: usize = 256 * 1024;
/// Longest a push may take before it counts as failed.
const PUSH_TIMEOUT: Duration = Duration::from_secs(15);
/// Entries read from storage at a time while building a push.
const READ_CHUNK: usize = 256;

/// What the task knows about its parent.
struct Link {
    client: StatsExchangeClient<Channel>,
    /// Every entry with a local seq up to this has been acknowledged.
    acked: u64,
    /// The next push starts a full resend.
    full: bool,
    /// The parent's retention depth, once it has said.
    retention: Option<u8>,
}

/// Starts the sender task on `channel`, a mutual-TLS channel to the parent's
/// `federation_listen` (https only, its certificate checked to name the parent).
pub fn spawn(
    stats: Arc<StatsNode>,
    channel: Channel,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let link = Link {
        client: StatsExchangeClient::new(channel),
        acked: 0,
        full: true,
        retention: None,
    };
    let parent = stats
        .code()
        .parent()
        .map_or_else(String::new, |p| p.to_string());
    tokio::spawn(run(stats, link, parent, shutdown))
}

async fn run(
    stats: Arc<StatsNode>,
    mut link: Link,
    parent: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = stats.config().clone();
    let mut changes = stats.store().changes();
    let start = Instant::now();
    let mut push_at = Some(start);
    let mut next_heartbeat = start + cfg.heartbeat;
    let mut next_refresh = start;
    let mut backoff = cfg.push_delay;
    let mut failing = false;
    loop {
        let now = Instant::now();
        if now >= next_refresh {
            if let Err(e) = stats.store().refresh_overdue(stats.now()).await {
                tracing::warn!(error = %e, "overdue figures not refreshed");
            }
            next_refresh = now + cfg.overdue_refresh;
        }
        let heartbeat_due = now >= next_heartbeat;
        if push_at.is_some_and(|t| now >= t) || heartbeat_due {
            // A heartbeat, or a retry after a failure, is sent even with nothing in it.
            match push_all(&stats, &mut link, heartbeat_due || failing).await {
                Ok(None) => push_at = None,
                Ok(Some(sent)) => {
                    if failing {
                        tracing::info!(%parent, "statistics pushes to the parent resumed");
                    }
                    tracing::debug!(sent, "statistics pushed");
                    failing = false;
                    backoff = cfg.push_delay;
                    push_at = None;
                    next_heartbeat = Instant::now() + cfg.heartbeat;
                }
                Err(status) => {
                    if !failing {
                        tracing::warn!(%parent, error = %status, "statistics push failed; retrying");
                    }
                    failing = true;
                    push_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(cfg.heartbeat);
                }
            }
        }
        let wake = [Some(next_heartbeat), Some(next_refresh), push_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_heartbeat);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    return; // the store has shut down
                }
                let at = Instant::now() + cfg.push_delay;
                push_at = Some(push_at.map_or(at, |p| p.min(at)));
            }
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Pushes everything not yet acknowledged; returns the number of entries sent, or `None`
/// when nothing was sent: with no entry to send, a push goes out only if `force` (a
/// heartbeat; every write of the store wakes the task, and most change no figures).
async fn push_all(
    stats: &StatsNode,
    link: &mut Link,
    force: bool,
) -> Result<Option<usize>, tonic::Status> {
    let mut sent = 0;
    loop {
        if link.full {
            link.acked = 0;
        }
        let (contributions, last_seq, more) = batch(stats, link)?;
        if contributions.is_empty() && !force && !link.full && sent == 0 {
            link.acked = link.acked.max(last_seq);
            return Ok(None);
        }
        let liveness = stats
            .report_for_parent(link.retention)
            .map_err(tonic::Status::from)?
            .iter()
            .map(conv::liveness_to_proto)
            .collect();
        let n = contributions.len();
        stats.store().wait_durable().await?;
        let mut req = tonic::Request::new(pb::PushContributionsRequest {
            full: link.full,
            contributions,
            liveness,
            sent_at: Some(convert::ts_to_proto(stats.now())),
        });
        req.set_timeout(PUSH_TIMEOUT);
        let reply = link.client.push_contributions(req).await?.into_inner();
        link.retention = u8::try_from(reply.retention_depth).ok().filter(|r| *r >= 1);
        sent += n;
        if reply.resync {
            link.full = true;
            continue;
        }
        link.full = false;
        link.acked = link.acked.max(last_seq);
        if !more {
            return Ok(Some(sent));
        }
    }
}

/// The next push's contributions: entries written after `link.acked` that the parent keeps,
/// up to [`BATCH_BYTES`]. Returns them, the last seq they cover and whether more remain.
fn batch(
    stats: &StatsNode,
    link: &Link,
) -> Result<(Vec<pb::Contribution>, u64, bool), tonic::Status> {
    let me = stats.code();
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut last = link.acked;
    loop {
        let rows = stats
            .store()
            .stats_changed_since(last, READ_CHUNK)
            .map_err(tonic::Status::from)?;
        let exhausted = rows.len() < READ_CHUNK;
        for row in rows {
            let wanted = link.retention.is_none_or(|r| {
                depth_below(me, &row.node).is_some_and(|d| keeps(d.saturating_add(1), row.kind, r))
            });
            if wanted {
                let c = conv::contribution_to_proto(
                    row.kind,
                    &row.node,
                    row.bucket,
                    row.version,
                    &row.cells,
                );
                let len = c.encoded_len();
                if !out.is_empty() && bytes + len > BATCH_BYTES {
                    return Ok((out, last, true));
                }
                bytes += len;
                out.push(c);
            }
            last = row.seq;
        }
        if exhausted {
            return Ok((out, last, false));
        }
    }
}
