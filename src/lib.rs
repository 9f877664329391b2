//! # tollgate
//!
//! An LLM gateway built as a stack of tower layers. One endpoint speaks the
//! wire formats clients already use (OpenAI Chat Completions, OpenAI
//! Responses, Anthropic Messages) and routes each request to one of many
//! providers (OpenAI, Anthropic, Google Gemini, any OpenAI-compatible server).
//!
//! The pieces:
//!
//! - [`auth`]: who a request is from (gateway keys, OIDC tokens), as a
//!   layer in front of the edge; [`store`] keeps the keys.
//! - [`budget`]: spend caps per key, user, team, tag or globally, with
//!   reservations that hold under concurrency.
//! - [`edge`]: the HTTP edge. Decodes the client's wire format once into a
//!   [`GatewayRequest`], calls the inner service, and encodes the
//!   [`GatewayResponse`] (or error) back in the same format.
//! - [`provider`]: the provider clients, the innermost tower `Service`.
//! - [`format`](mod@format) and [`canonical`]: the translations between wire formats.
//! - [`routing`]: model fallback, provider order, retries, timeouts.
//! - [`usage`]: the response summary, prices and cost, the spend ledger.
//! - [`mock`]: a mock upstream that speaks every provider format.
//! - [`config`] and [`server`]: what the `tollgate` binary assembles.

#![warn(missing_docs)]

pub mod auth;
pub mod budget;
pub mod canonical;
pub mod config;
pub mod edge;
pub mod error;
pub mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod mock;
pub mod provider;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod routing;
pub mod server;
pub mod sse;
pub mod store;
pub mod usage;

pub use error::{ErrorKind, GatewayError};
pub use format::WireFormat;
pub use request::{GatewayRequest, Operation, Target};
pub use response::{GatewayResponse, ResponseBody, ResponseMeta};
