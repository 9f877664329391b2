//! The subcommands of the `tollgate` binary that are more than a few
//! lines: each in its own module, so that `main.rs` stays an index.

pub mod budgets;
mod duration;
pub mod keys;
mod table;
pub mod usage;
