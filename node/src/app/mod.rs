//! The application layer: every operation of a node, whoever asks for it — a gRPC handler (a
//! principal from a client certificate), the web console (a principal from a session), the
//! CLI through the API. Each operation runs the same steps in one place: authorize the caller
//! for the action ([`App::authorize`], the permission table of `crate::identity`), validate,
//! apply the domain rules, write through storage; it returns domain values and the one error
//! type ([`Error`], mapped once to gRPC codes in `crate::error`). Adapters decode requests and
//! encode answers, nothing else: no rule lives in them.

pub mod apikeys;
pub mod backup;
pub mod cases;
pub mod console;
pub mod console_views;
pub mod import;
pub mod moves;
pub mod public;
pub mod search;
pub mod stats;
pub mod users;

use crate::domain::{Case, Timestamp};
use crate::error::Error;
use crate::identity::{self, Action, Identity};
use crate::service::SharedState;

/// The operations of one node.
#[derive(Clone)]
pub struct App {
    pub(crate) state: SharedState,
}

/// A case as one caller may see it: `reveal` says whether its parties' personal data may be
/// shown unmasked (a supervised copy never: the owner keeps it).
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub case: Case,
    pub reveal: bool,
}

impl App {
    pub fn new(state: SharedState) -> App {
        App { state }
    }

    /// The node's state (its store, clock, federation), for what drives a node from outside
    /// the handlers: the server's tasks, tests, the simulation.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// The node's time.
    pub fn now(&self) -> Timestamp {
        self.state.clock.now()
    }

    /// Refuses `who` unless it is an operator of this node whose role may do `action`.
    pub fn authorize(&self, who: &Identity, action: Action) -> Result<(), Error> {
        identity::authorize(who, &self.state.code, action).map_err(|e| {
            tracing::warn!(caller = %who.uri(), ?action, "permission denied: {e}");
            Error::PermissionDenied(e.to_string())
        })
    }

    /// Whether `who` may see the parties' personal data unmasked.
    pub fn reveals_personal(who: &Identity) -> bool {
        match who {
            Identity::Operator { role, .. } => identity::allowed(*role, Action::ReadPersonalData),
            Identity::Node { .. } => false,
        }
    }

    /// Writes an entry of the audit log (who, now, about which case if any, what), durably:
    /// the operation is answered only once it is recorded.
    pub(crate) async fn audit(
        &self,
        who: &Identity,
        case_id: &str,
        what: String,
    ) -> Result<(), Error> {
        self.state
            .store
            .record_access(crate::domain::audit::Access {
                at: self.now(),
                actor: who.uri(),
                case_id: case_id.to_owned(),
                what,
            })
            .await?;
        Ok(())
    }

    /// Runs the read `f` off the async workers (store reads may wait for the disk), so that a
    /// slow read never holds up the calls being answered meanwhile.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&App) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let app = self.clone();
        tokio::task::spawn_blocking(move || f(&app)).await?
    }

    fn shown(&self, who: &Identity, case: Case) -> Shown {
        Shown {
            case,
            reveal: Self::reveals_personal(who),
        }
    }
}
