//! The one integration-test binary: the real server over HTTP against a real database.
//!
//! - [`support`]: `TestApp` and request helpers.
//! - [`accounts`]: register, login, refresh rotation, logout, password change, profiles, password
//!   strength and lookalike emails.
//! - [`registration`]: open, invite-only and closed registration, invites, the per-address limit,
//!   and a new user's budget.
//! - [`admin`]: user management and data isolation.
//! - [`sessions`]: a user's sessions, listed and ended.
//! - [`mfa`]: two-step sign-in: enrolment, the login's second step, codes that work once.
//! - [`recovery`]: a password reset link by email, and an admin's requirement of a new password.
//! - [`wechat`]: WeChat mini-program sign-in against a local stand-in for `code2Session`.
//! - [`keys`]: signing keys that rotate, the JWKS, HS256 tokens running out.
//! - [`sealing`]: sensitive columns sealed under a master key that rotates; a wrong key refused.
//! - [`crash`]: a server process killed mid-call leaves no call `PENDING`, and the money adds up.
//! - [`shutdown`]: a server process sent SIGTERM drains its calls, closes its sockets with 1001,
//!   records the calls it cut off as interrupted, and exits in time.
//! - [`limits`]: rate limits and the login throttle.
//! - [`http`]: the GraphQL-over-HTTP surface, limits, and the `graphql-http` audit.
//! - [`schema`]: the SDL snapshot, migrations, and `schema.rs` against both databases.
//! - [`audit`]: the audit trail, its hash chain, and the chainer that links it.
//! - [`backup`]: backups taken under load that restore, `verify`, SQLite's schedule, and bad
//!   or tampered copies.
//! - [`pages`]: the playground and health probes.
//! - [`config`]: configuration loading and its errors.
//! - [`edges`]: the hardened edges: client addresses behind proxies, users' webhooks that
//!   redirect, no schema hints in production, the playground's and the console's policy.
//! - [`plugins`]: loading, robustness, notifications, and Kimi against a local upstream.
//! - [`reload`]: hot reload of plugins: two versions of one plugin, calls in flight, failures
//!   that keep the old version, `SIGHUP` and the folder watch.
//! - [`kimi`]: Kimi as Moonshot documents it: list prices per region, billing failures never retried.
//! - [`chat`], [`conversations`]: AI calls plain and streamed, records, prices, history.
//! - [`budgets`], [`reports`]: budgets that cannot be overspent, rollups, reports, statements.
//! - [`events`]: live subscriptions, across instances.
//! - [`monitoring`], [`alerting`]: logs, metrics, `systemStats`, alert rules and deliveries.
//! - [`resilience`]: retries, fallbacks and the response cache.
//! - [`breakers`]: circuit breakers that cut a failing provider off and probe it back.
//! - [`isolation`]: plugins in runner processes: a segfault, an abort or a hang takes only the
//!   runner, which is restarted.
//! - [`openai`]: the OpenAI-compatible `/v1` door, with the official SDKs as clients, and the API
//!   keys behind it.
//! - [`hardening`]: what an attacker sends: deep documents, sockets that outlive their
//!   credentials or break the protocol's limits, slow clients.
//! - [`capacity`]: overload refused fast, and consistency under concurrent load.
//! - [`map`]: the map stays true: module headers and the README's Layout.
//! - [`upstream`], [`receivers`], [`ws`]: a local OpenAI-compatible upstream, notification
//!   receivers, and a `graphql-transport-ws` client.
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
mod alerting;
mod audit;
mod backup;
mod breakers;
mod budgets;
mod capacity;
mod chat;
mod config;
mod conversations;
mod crash;
mod edges;
mod events;
mod hardening;
mod http;
mod isolation;
mod keys;
mod kimi;
mod limits;
mod map;
mod mfa;
mod monitoring;
mod openai;
mod pages;
mod plugins;
mod receivers;
mod recovery;
mod registration;
mod reload;
mod reports;
mod resilience;
mod schema;
mod sealing;
mod sessions;
mod shutdown;
mod support;
mod upstream;
mod wechat;
mod ws;
