//! Bounded retries on the same target for transient failures.
//!
//! [`RetryTransient`] is a `tower::retry::Policy`: a connect error, a 502
//! or a 503 without `Retry-After` is tried again on the same target after
//! a jittered exponential backoff, at most `retries` times, and only while
//! the shared retry budget (`tower::retry::budget::TpsBudget`) allows, so
//! that retries never multiply the load on a provider that is down.
//! Everything else goes up to the routing layers at once.
//!
//! ```
//! use tollgate::routing::RetryTransient;
//! use tower::retry::RetryLayer;
//!
//! // Up to 2 retries, within 20% of recent requests.
//! let layer = RetryLayer::new(RetryTransient::new(2, 20));
//! # let _ = layer;
//! ```

use std::sync::Arc;
use std::time::Duration;

use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget, TpsBudget};
use tower::util::rng::HasherRng;

use super::attempts::{Attempt, AttemptLog, Outcome};
use super::credential::{Credential, CredentialKind};
use super::order::Deployment;
use crate::error::{ErrorKind, GatewayError};
use crate::request::{GatewayRequest, Target};
use crate::response::GatewayResponse;

/// Retries transient failures on the same target; see the [module
/// docs](self). Clones share the budget.
#[derive(Clone)]
pub struct RetryTransient {
    retries: u32,
    left: u32,
    first: bool,
    budget: Arc<TpsBudget>,
    backoff: ExponentialBackoff,
}

impl std::fmt::Debug for RetryTransient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryTransient")
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl RetryTransient {
    /// At most `retries` retries of a request, and retries in all at most
    /// `budget_percent`% of recent requests (plus one a second).
    pub fn new(retries: u32, budget_percent: u32) -> Self {
        let backoff = ExponentialBackoffMaker::new(
            Duration::from_millis(25),
            Duration::from_secs(1),
            0.5,
            HasherRng::default(),
        )
        .expect("constant backoff bounds are valid")
        .make_backoff();
        RetryTransient {
            retries,
            left: retries,
            first: true,
            budget: Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                1,
                budget_percent as f32 / 100.0,
            )),
            backoff,
        }
    }
}

impl RetryTransient {
    /// From `[routing]` of the config (`retries`, `retry_budget_percent`).
    pub fn from_config(c: &crate::config::RoutingConfig) -> Self {
        Self::new(c.retries, c.retry_budget_percent)
    }
}

/// A failure that the same target may not repeat a moment later.
fn transient(err: &GatewayError) -> bool {
    match err.kind() {
        ErrorKind::Connect => true,
        ErrorKind::UpstreamServer | ErrorKind::Overloaded => {
            matches!(err.status().as_u16(), 502 | 503) && err.retry_after().is_none()
        }
        _ => false,
    }
}

impl tower::retry::Policy<GatewayRequest, GatewayResponse, GatewayError> for RetryTransient {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut GatewayRequest,
        result: &mut Result<GatewayResponse, GatewayError>,
    ) -> Option<Self::Future> {
        if std::mem::take(&mut self.first) {
            self.budget.deposit();
        }
        let err = result.as_ref().err()?;
        if self.left == 0 || !transient(err) || !self.budget.withdraw() {
            return None;
        }
        self.left -= 1;
        // This attempt ends here: the layers above only see the last one.
        if let (Some(log), Some(target)) = (
            req.extensions.get::<AttemptLog>(),
            req.extensions.get::<Target>(),
        ) {
            log.push(Attempt {
                target: target.clone(),
                deployment: req.extensions.get::<Deployment>().map(|d| d.0),
                credential: CredentialKind::of(req.extensions.get::<Credential>()),
                outcome: Outcome::of_error(err),
            });
        }
        tracing::debug!(error = %err.message(), "retrying on the same target");
        Some(self.backoff.next_backoff())
    }

    fn clone_request(&mut self, req: &GatewayRequest) -> Option<GatewayRequest> {
        (self.left > 0).then(|| req.clone())
    }
}
