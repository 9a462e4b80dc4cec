//! The one integration-test binary: the real server over HTTP against a real database.
//!
//! - [`support`]: `TestApp` and request helpers.
//! - [`accounts`]: register, login, refresh rotation, logout, password change, profiles.
//! - [`admin`]: user management and data isolation.
//! - [`http`]: the GraphQL-over-HTTP surface, limits, and the `graphql-http` audit.
//! - [`schema`]: the SDL snapshot, migrations, and `schema.rs` against both databases.
//! - [`pages`]: the playground and health probes.
//! - [`config`]: configuration loading and its errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on broken expectations"
)]
#![allow(
    clippy::result_large_err,
    reason = "figment::Jail's closures return figment's own (large) error type"
)]

mod accounts;
mod admin;
mod config;
mod http;
mod pages;
mod schema;
mod support;
