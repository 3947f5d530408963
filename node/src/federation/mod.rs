//! The federation: nodes at every tier linked into one tree (design essay filled in below).

pub mod apply;
pub mod connect;
pub mod failpoint;
pub mod link;
pub mod links;
pub mod message;
pub mod node;
pub mod route;
pub mod service;
pub mod supervision;
pub mod wire;

pub use node::{Federation, SharedFederation};

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Checks the links for silence every so often (a quarter of the alert time, at most 5 s).
pub fn spawn_silence_check(
    fed: SharedFederation,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let every = (fed.config.link_silence_alert / 4).min(Duration::from_secs(5));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => fed.links.check_silence(&fed.store, fed.clock.now()),
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
    })
}
