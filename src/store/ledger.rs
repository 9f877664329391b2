//! Where the spend ledger's rows are kept, and the questions asked of
//! them: one request by id (`/v1/generation`), spend and tokens grouped
//! over a period (`/v1/report`, `tollgate usage`), and what a key, user,
//! team or tag has spent since a time (what budgets read at startup).
//!
//! Writing goes through a [`LedgerWriter`], a session of its own that the
//! ledger's background thread holds, so that batched inserts never wait
//! behind the reads the rest of the gateway makes.

use std::fmt;
use std::str::FromStr;

use super::{StoreError, StoreFuture};
use crate::usage::{LedgerRow, Nanos};

/// A backend for the spend ledger (the embedded [`SqliteStore`](super::SqliteStore);
/// a shared one, such as PostgreSQL, would implement the same).
pub trait LedgerStore: Send + Sync + 'static {
    /// A writer with its own connection, for the ledger's background
    /// thread ([`Ledger::open`](crate::usage::Ledger::open)).
    fn writer(&self) -> Result<Box<dyn LedgerWriter>, StoreError>;

    /// The row of request `id`, if there is one.
    fn generation<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<LedgerRow>>;

    /// Spend and tokens grouped as `query` asks, computed by the store
    /// (never by loading the rows).
    fn report(&self, query: ReportQuery) -> StoreFuture<'_, Vec<ReportRow>>;

    /// What the requests of `scope` cost the gateway since `since_ms`
    /// (Unix milliseconds, inclusive); rows of unknown cost count as zero.
    fn spend(&self, scope: SpendScope, since_ms: i64) -> StoreFuture<'_, Nanos>;
}

/// Appends rows; used by one thread at a time, which may block in it.
pub trait LedgerWriter: Send + 'static {
    /// Inserts `rows` in one transaction. A row whose id is already
    /// there is skipped, so that a batch retried after a failure whose
    /// commit did in fact happen is not counted twice.
    fn append(&mut self, rows: &[LedgerRow]) -> Result<(), StoreError>;
}

/// What a report's rows are grouped by (`group_by` of `/v1/report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// The UTC calendar day, `YYYY-MM-DD`.
    Day,
    /// The model that served (the one asked for when none did).
    Model,
    /// The provider that served.
    Provider,
    /// The principal's user.
    User,
    /// The principal's team.
    Team,
    /// Each of the principal's tags (a request with two tags counts in
    /// both groups).
    Tag,
    /// The kind of credential that served: `gateway`, `byok`, `subscription`.
    CredentialType,
}

impl GroupBy {
    /// Every grouping, in the order error messages list them.
    pub const ALL: [GroupBy; 7] = [
        GroupBy::Day,
        GroupBy::Model,
        GroupBy::Provider,
        GroupBy::User,
        GroupBy::Team,
        GroupBy::Tag,
        GroupBy::CredentialType,
    ];

    /// Its name in `group_by=` and in the report's rows.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::User => "user",
            GroupBy::Team => "team",
            GroupBy::Tag => "tag",
            GroupBy::CredentialType => "credential_type",
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = GroupBy::ALL.iter().map(|g| g.as_str()).collect();
                format!("`{s}` is not a grouping: use one of {}", names.join(", "))
            })
    }
}

/// A report's question: which rows, grouped how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// From this time (Unix milliseconds, inclusive).
    pub start_ms: i64,
    /// To this time (Unix milliseconds, exclusive).
    pub end_ms: i64,
    /// How rows are grouped.
    pub group_by: GroupBy,
    /// Only the rows of this principal (`Principal::id`); `None`: every row.
    pub key_id: Option<String>,
    /// With `key_id`: only the rows of principals that authenticated this
    /// way (`AuthMethod::as_str`), so that a JWT subject spelled like a
    /// static key's name does not read that key's rows.
    pub key_method: Option<String>,
}

/// One group of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportRow {
    /// The group's value (a day, a model, ...); `None` for the requests
    /// that have none (no user, no tag, not served).
    pub group: Option<String>,
    /// What the group's requests cost the gateway.
    pub total_cost: Nanos,
    /// What their tokens cost at list price, whoever paid.
    pub market_cost: Nanos,
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Input tokens read from a prompt cache.
    pub cached_input_tokens: u64,
    /// Input tokens written to a prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// How many requests.
    pub request_count: u64,
}

/// Whose spend [`LedgerStore::spend`] sums: what a budget applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendScope {
    /// One principal (`Principal::id`: a key's `key_…`, a static key's
    /// name, a JWT subject).
    Key(String),
    /// One user.
    User(String),
    /// One team.
    Team(String),
    /// The requests carrying one tag.
    Tag(String),
    /// Every request.
    Global,
}
