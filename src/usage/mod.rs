//! Usage, cost and the spend ledger.
//!
//! - [`Summary`] and [`Settlement`]: what is known about a response once
//!   it ends, produced once by a meter around the body and read by every
//!   layer that settles (see [`summary`]).
//! - [`Nanos`]: money, as integer nano-dollars.
//! - [`Price`] and [`PriceTable`]: what a request costs.
//! - [`Ledger`]: one durable row per request.

mod ledger;
mod money;
mod price;
pub mod summary;

pub use ledger::{Ledger, LedgerRow};
pub use money::{Nanos, NANOS_PER_USD};
pub use price::{estimate_input_tokens, requested_max_output_tokens, Price, PriceTable, PriceTier};
pub use summary::{Durable, MeterContext, Outcome, SettleHook, Settlement, Summary};
