//! Usage, cost and the spend ledger.
//!
//! - [`Summary`] and [`Settlement`]: what is known about a response once
//!   it ends, produced once by a meter around the body and read by every
//!   layer that settles (see [`summary`]).
//! - [`Nanos`]: money, as integer nano-dollars.
//! - [`Price`] and [`PriceTable`]: what a request costs.
//! - [`Estimate`]: what a request will use, guessed from its body before
//!   it is sent; one per request, shared by every layer that needs it.
//! - [`UsageLayer`]: the tower layer that prices, meters and records
//!   every answer.
//! - [`Gate`]: what the layers that reserve before a request and settle
//!   after it (budgets, rate limits) share.
//! - [`Ledger`]: one durable row per request, and [`api`], the routes
//!   that read it (`/v1/generation`, `/v1/report`).

pub mod api;
mod estimate;
mod fallback;
pub mod gate;
pub mod layer;
pub mod ledger;
mod meter;
mod money;
mod price;
mod scan;
mod sent;
pub(crate) mod splice;
mod sse;
pub mod summary;
mod wire;

pub(crate) use estimate::OUTPUT_CAPS;
pub use estimate::{estimate_input_tokens, requested_max_output_tokens, Estimate};
pub use gate::{Admit, Gate, Ticket};
#[cfg(test)]
mod layer_tests;
#[cfg(test)]
mod testing;

pub use layer::{UsageLayer, UsageService};
pub use ledger::{Ledger, LedgerRow, DEFAULT_DURABLE_TIMEOUT};
pub use meter::{attach, complete_summary, Meter};
pub use money::{Nanos, NANOS_PER_USD};
pub use price::{Price, PriceTable, PriceTier};
pub use sent::Sent;
pub use summary::{costs, Durable, MeterContext, Outcome, SettleHook, Settlement, Summary};
pub(crate) use wire::{chat_usage, read_complete};

/// What the usage layer needs from the gateway's setup: the price table
/// and, when there is one, the ledger to write to. The default knows no
/// price and writes nowhere.
#[derive(Debug, Clone, Default)]
pub struct Metering {
    /// Prices by provider and model.
    pub prices: std::sync::Arc<PriceTable>,
    /// Where each request's row goes (`None`: nowhere).
    pub ledger: Option<Ledger>,
}

impl Metering {
    /// The config's prices (the shipped table under its overrides), and no
    /// ledger.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Metering {
            prices: std::sync::Arc::new(PriceTable::from_config(config)),
            ledger: None,
        }
    }

    /// The [`UsageLayer`] for this setup.
    pub fn layer(&self) -> UsageLayer {
        UsageLayer::new(self.prices.clone(), self.ledger.clone())
    }
}
