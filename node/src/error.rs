//! The node's error type for the API layer and its one exhaustive mapping to `tonic::Status`.

use tonic::{Code, Status};

use crate::domain::DomainError;
use crate::storage::{StorageError, WriteError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("case {0} not found")]
    NotFound(String),
    /// No console account of that username.
    #[error("account {0} not found")]
    NoAccount(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// No client certificate, or one that carries no fengqiao identity.
    #[error("{0}")]
    Unauthenticated(String),
    /// A statistics scope deeper than this node's retention: its figures exist here only
    /// inside those of `ancestor`.
    #[error(
        "{scope} lies deeper than this node's retention depth ({depth} levels): its figures \
         are folded into {ancestor}; query {ancestor}, or a node nearer to {scope}"
    )]
    Folded {
        scope: String,
        ancestor: String,
        depth: u8,
    },
    /// A descendant from which no figures have been received.
    #[error("no figures have been received from node {0}")]
    NoFigures(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Something that cannot happen did (a hash that cannot be computed): INTERNAL.
    #[error("{0}")]
    Internal(String),
    /// A task the request ran off the runtime (a report) failed.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The node is at a limit (one backup at a time, a caller over its share): RESOURCE_EXHAUSTED.
    #[error("{0}")]
    Overloaded(String),
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotFound(id) => Error::NotFound(id),
            WriteError::Domain(d) => Error::Domain(d),
            WriteError::Storage(s) => Error::Storage(s),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = match &e {
            Error::Domain(DomainError::InvalidArgument { .. }) => Code::InvalidArgument,
            Error::Domain(DomainError::IllegalTransition { .. }) => Code::FailedPrecondition,
            Error::Domain(DomainError::Refused { .. }) => Code::FailedPrecondition,
            Error::Domain(DomainError::Precondition(_)) => Code::FailedPrecondition,
            Error::Domain(DomainError::Forbidden(_)) => Code::PermissionDenied,
            Error::NotFound(_) | Error::NoAccount(_) => Code::NotFound,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::Folded { .. } => Code::FailedPrecondition,
            Error::NoFigures(_) => Code::NotFound,
            Error::Storage(StorageError::BadPageToken(_)) => Code::InvalidArgument,
            // Resources were short (EMFILE, ...): nothing acknowledged, try again.
            Error::Storage(s) if s.is_transient() => Code::Unavailable,
            Error::Storage(_) => Code::Internal,
            Error::Task(_) | Error::Internal(_) => Code::Internal,
            Error::Overloaded(_) => Code::ResourceExhausted,
        };
        if code == Code::Internal {
            // Details of internal failures stay in the node's log, not in the caller's hands.
            tracing::error!(error = %e, "internal failure");
            return Status::new(code, "internal error; see the node's log");
        }
        if code == Code::Unavailable {
            tracing::warn!(error = %e, "write not made durable; the caller may retry");
            return Status::new(code, "存储暂时无法完成写入（资源不足），请稍后重试");
        }
        Status::new(code, e.to_string())
    }
}

impl From<DomainError> for Status {
    fn from(e: DomainError) -> Status {
        Error::from(e).into()
    }
}

impl From<WriteError> for Status {
    fn from(e: WriteError) -> Status {
        Error::from(e).into()
    }
}

impl From<StorageError> for Status {
    fn from(e: StorageError) -> Status {
        Error::from(e).into()
    }
}
