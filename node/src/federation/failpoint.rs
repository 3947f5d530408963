//! Crash points for tests: `FENGQIAO_FAILPOINTS=name,name` makes the process abort (as if
//! killed with -9: no unwinding, no flush, no shutdown) the first time it reaches a named point.
//!
//! The variable is read once, at the first check; without it every check is a load of an empty
//! list. This is a test hook: production nodes never set it. The points:
//!
//! | name | where |
//! |---|---|
//! | `move-committed` | the old owner has durably written a move (tombstone + queued transfer), before answering the operator |
//! | `push-sent` | a child sent a batch to its parent, before reading the answer |
//! | `push-applied` | a parent durably applied a child's batch, before answering |
//! | `push-acked` | a child got its parent's answer, before deleting the acknowledged messages |
//! | `pull-applied` | a child durably applied a batch from its parent, before acknowledging it |
//! | `forward-queued` | a node between origin and destination durably queued a message to pass on, before anyone fetched it |

use std::sync::OnceLock;

/// Name of the environment variable listing the points to crash at.
pub const ENV: &str = "FENGQIAO_FAILPOINTS";

fn points() -> &'static [String] {
    static POINTS: OnceLock<Vec<String>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(ENV)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// Aborts the process if `name` is listed in [`ENV`].
pub fn hit(name: &str) {
    if points().iter().any(|p| p == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Whether any failpoint is set (the node logs it at start, so a stray one is noticed).
pub fn any() -> bool {
    !points().is_empty()
}
