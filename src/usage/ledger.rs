//! The spend ledger: one row per request that reached a provider, written
//! durably in batches off the hot path.
//!
//! SKELETON (session 5): the row is fixed; the writer is being built.

use std::sync::Arc;

use crate::canonical::Usage;

use super::money::Nanos;
use super::summary::Durable;

/// One request, as the ledger keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerRow {
    /// The request's id (`x-tollgate-request-id`).
    pub id: Arc<str>,
    /// When it started, in Unix milliseconds.
    pub created_at_ms: i64,
    /// The principal's id (a key's `key_…`, a static key's name, a JWT subject).
    pub key_id: Option<Arc<str>>,
    /// The key's name.
    pub key_name: Option<Arc<str>>,
    /// The principal's user.
    pub user: Option<Arc<str>>,
    /// The principal's team.
    pub team: Option<Arc<str>>,
    /// The principal's tags.
    pub tags: Vec<Arc<str>>,
    /// The client's wire format (`openai-chat`, `openai-responses`, `anthropic`).
    pub format: &'static str,
    /// The model the client asked for.
    pub requested_model: String,
    /// The provider that served (configured name).
    pub provider: Option<Arc<str>>,
    /// The model that served, as the provider knows it.
    pub model: Option<Arc<str>>,
    /// `gateway`, `byok` or `subscription`.
    pub credential: Option<&'static str>,
    /// Token counts.
    pub usage: Usage,
    /// What it cost the gateway; `None`: the price is unknown.
    pub cost: Option<Nanos>,
    /// What its tokens cost at list price; `None`: unknown.
    pub list_cost: Option<Nanos>,
    /// Time to first token, in milliseconds.
    pub ttft_ms: Option<u64>,
    /// Duration, in milliseconds.
    pub duration_ms: u64,
    /// The HTTP status the client got (for a stream that failed after its
    /// first byte, the status its in-band error carries).
    pub status: u16,
    /// The error's type, when it failed.
    pub error: Option<Arc<str>>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, ...).
    pub finish_reason: Option<String>,
    /// Whether it was streamed.
    pub streamed: bool,
    /// Whether the client went away before the end.
    pub disconnected: bool,
    /// Whether some token counts are estimates.
    pub estimated: bool,
    /// Every attempt, `provider/model=outcome`, the serving one last.
    pub attempts: Vec<String>,
}

/// Where rows go: a handle on the background writer.
#[derive(Debug, Clone)]
pub struct Ledger {
    _private: (),
}

impl Ledger {
    /// Queues `row`; the returned future completes when it is durable.
    pub fn record(&self, row: LedgerRow) -> Durable {
        let _ = row;
        Durable(Box::pin(async {}))
    }
}
