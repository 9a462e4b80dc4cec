//! Every Diesel row of the database in one place: row structs (`User`) and insert structs
//! (`NewUser<'a>`), named the crates.io way, by domain. The queries live beside them in `db/`.
//!
//! - [`accounts`]: users, sessions, refresh tokens, invites.
//! - [`calls`]: prices, conversations and messages, call records, budgets and reservations, the
//!   daily rollup.
//! - [`alerts`]: alert rules, alerts and their deliveries.
//! - [`audit`]: the audit trail.
//! - [`logs`]: stored system log entries.

mod accounts;
mod alerts;
mod audit;
mod calls;
mod logs;

pub use accounts::*;
pub use alerts::*;
pub use audit::*;
pub use calls::*;
pub use logs::*;
