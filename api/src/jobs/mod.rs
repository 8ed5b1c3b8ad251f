//! Background jobs that run inside every replica, and what runs them: the [`supervisor`]
//! (restarts, readiness, shutdown), the [`every`] loop of the periodic ones, and the
//! [`shutdown`] plan that bounds how long they may take to stop.

pub mod every;
pub mod shutdown;
pub mod supervisor;
pub mod sweeper;

pub use every::{Every, First, Pace};
pub use supervisor::{Supervisor, TaskCtx};

use crate::error::{ApiError, ApiResult};

/// Background jobs report errors as `anyhow::Error`: nobody is waiting for a client-facing
/// code, and the log wants the whole cause. This takes one out of the service layer's
/// `ApiError`.
pub fn job_error(err: ApiError) -> anyhow::Error {
    match err {
        ApiError::Internal(cause) | ApiError::Unavailable(cause) => {
            std::sync::Arc::try_unwrap(cause).unwrap_or_else(|shared| anyhow::anyhow!("{shared:#}"))
        }
        other => anyhow::anyhow!("{}: {}", other.code(), other.client_message()),
    }
}

/// `?` for service-layer results inside a background job.
pub trait JobResult<T> {
    fn job(self) -> anyhow::Result<T>;
}

impl<T> JobResult<T> for ApiResult<T> {
    fn job(self) -> anyhow::Result<T> {
        self.map_err(job_error)
    }
}
