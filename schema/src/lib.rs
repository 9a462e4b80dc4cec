//! The GraphQL schema of CloudBase AI, the services behind it, and the database layer.
//!
//! Requests flow one way: a resolver in [`graphql`] checks who is asking, calls one function in
//! [`services`], and that function talks to the database through [`db`].
//!
//! - [`error`]: the crate's one error enum and its stable `extensions.code`s.
//! - [`events`]: the event bus (in-process broadcast, and `pg_notify` across instances).
//! - [`clock`]: the injectable clock every service reads the time from.
//! - [`domain`]: the closed vocabularies (call status, message role, ...) and their stored names.
//! - [`db`]: the two-backend pool (SQLite or PostgreSQL), migrations, `schema.rs`, models and queries.
//! - [`metrics`]: the instance's metrics recorder and the metric names.
//! - [`ports`]: the plugin host as the services see it: the trait the server implements.
//! - [`recurring`]: a background task's failure that repeats every round, logged once a minute.
//! - [`services`]: every workflow with side effects, one domain a module: accounts and
//!   sessions, the AI-call flow, budgets, limits, conversations, usage, audit, logs, alerts.
//! - [`graphql`]: the async-graphql types and resolvers, split by domain, and the schema builder.

pub mod clock;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod metrics;
pub mod ports;
pub mod recurring;
pub mod services;

pub use error::Error;
pub use graphql::{AppSchema, Limits, build_schema, sdl};
pub use services::App;
