//! [`Sent`]: whether a request reached a provider, for the usage layer to
//! know that a request dropped before its answer still has a cost.

use std::sync::{Arc, Mutex};

use crate::request::Target;
use crate::routing::CredentialKind;

/// Where the request was last handed to a provider, set by the provider
/// service ([`Providers`](crate::provider::Providers)) as it sends it.
///
/// The [`UsageLayer`](super::UsageLayer) puts one in each request's
/// extensions (clones, such as a retry's, share it). A request whose
/// future is dropped before its answer (the client left, the shutdown's
/// grace ended) is written to the ledger when this was set: the provider
/// counts what it was sent, whether the answer arrives or not. Attempts
/// already ended are in the [`AttemptLog`](crate::routing::AttemptLog);
/// this one tells of the attempt in flight.
#[derive(Debug, Clone, Default)]
pub struct Sent(Arc<Mutex<Option<(Target, CredentialKind)>>>);

impl Sent {
    /// Records that the request goes to `target` with a `credential`
    /// kind of credential.
    pub fn mark(&self, target: &Target, credential: CredentialKind) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some((target.clone(), credential));
    }

    /// Where the request was last sent, if it was.
    pub fn get(&self) -> Option<(Target, CredentialKind)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
