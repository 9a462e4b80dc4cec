//! The GraphQL schema: roots merged from one file per domain, typed accessors for context data,
//! and the schema builder with its limits.
//!
//! - [`users`]: `User`, `me`, `user`, `users`, profile and admin mutations.
//! - [`auth`]: `register`, `login`, `completeMfaLogin`, `refreshSession`, `logout`,
//!   `changePassword`, `requestPasswordReset`, `resetPassword`, `wechatLogin`, `linkWechat`,
//!   `unlinkWechat`.
//! - [`mfa`]: `startMfaEnrolment`, `confirmMfaEnrolment`, `regenerateMfaRecoveryCodes`,
//!   `disableMfa`, `resetUserMfa`.
//! - [`keys`]: `signingKeys`, `rotateSigningKey`, `retireSigningKey`.
//! - [`sessions`]: `mySessions`, `userSessions`, `revokeSession`, `revokeOtherSessions`,
//!   `revokeUserSessions`.
//! - [`registration`]: the public `registration` query, and the admin's `invites`,
//!   `createInvite`, `revokeInvite`.
//! - [`plugins`]: `plugins`, `models`, `testNotification`.
//! - [`chat`]: `chat` and `chatStream`; [`conversations`], [`ai_calls`], [`prices`].
//! - [`api_keys`]: `apiKeys`, and creating, changing, revoking and rotating keys.
//! - [`budgets`]: `budgets`, `createBudget`, `updateBudget`, `deleteBudget`.
//! - [`limits`]: `rateLimits`, `setRateLimits`.
//! - [`usage`]: `usage`, `myUsage`, `statement`.
//! - [`events`]: `aiCallUpdated`, `usageUpdated`, `budgetAlert`, `pluginStatusChanged`.
//! - [`audit`]: the audit extension, `auditLog` and `auditChain`; [`logs`]: `logs` and `logAppended`.
//! - [`metrics`]: the extension counting operations and live subscriptions.
//! - [`stats`]: the `systemStats` query.
//! - [`socket_auth`]: every operation on a WebSocket authorised again, as over HTTP.
//! - [`one_connection`]: each operation counted as one request by the pool's guard.
//! - [`alerts`]: `alertRules`, `alerts`, rule mutations, `createMyBudgetAlert`, `alertFired`.
//! - [`money`]: the string-backed `Micros` scalar.
//! - [`depth`]: the depth limit, with its own bound for introspection (GraphiQL's full query).
//! - [`nesting`]: the bound on a document's nesting, checked on its text before parsing.
//! - [`view`]: the one way an output type wraps a domain value (`view!`).
//! - [`parsed`]: parsed documents kept by text, so a repeated operation is not parsed again.
//! - [`errors`]: the one place errors become GraphQL errors with `extensions.code`, plus the alias limit.

pub mod ai_calls;
pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod budgets;
pub mod chat;
pub mod conversations;
pub mod depth;
pub mod errors;
pub mod events;
pub mod keys;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod mfa;
pub mod money;
pub mod nesting;
pub mod one_connection;
pub mod parsed;
pub mod plugins;
pub mod prices;
pub mod registration;
pub mod sessions;
pub mod socket_auth;
pub mod stats;
pub mod usage;
pub mod users;
mod view;

use std::sync::Arc;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::{Context, MergedObject, MergedSubscription, Schema};

use crate::Error;
use crate::services::{App, Auth, RequestMeta, Viewer};

/// The root query: every domain's queries merged.
#[derive(MergedObject, Default)]
pub struct Query(
    users::UsersQuery,
    plugins::PluginsQuery,
    conversations::ConversationsQuery,
    ai_calls::AiCallsQuery,
    prices::PricesQuery,
    budgets::BudgetsQuery,
    limits::LimitsQuery,
    usage::UsageQuery,
    audit::AuditQuery,
    logs::LogsQuery,
    stats::StatsQuery,
    alerts::AlertsQuery,
    registration::RegistrationQuery,
    api_keys::ApiKeysQuery,
    sessions::SessionsQuery,
    keys::KeysQuery,
);

/// The root mutation: every domain's mutations merged.
#[derive(MergedObject, Default)]
pub struct Mutation(
    auth::AuthMutation,
    mfa::MfaMutation,
    users::UsersMutation,
    plugins::PluginsMutation,
    chat::ChatMutation,
    conversations::ConversationsMutation,
    prices::PricesMutation,
    budgets::BudgetsMutation,
    limits::LimitsMutation,
    alerts::AlertsMutation,
    registration::RegistrationMutation,
    api_keys::ApiKeysMutation,
    sessions::SessionsMutation,
    keys::KeysMutation,
);

/// The root subscription: every domain's subscriptions merged.
#[derive(MergedSubscription, Default)]
pub struct Subscription(
    chat::ChatSubscription,
    events::EventsSubscription,
    logs::LogsSubscription,
    alerts::AlertsSubscription,
);

/// The operation of `document` that a request asking for `requested` runs (the only one, or the
/// one named), with its name: the requested one, or that of the document's one named operation.
pub fn running_operation<'d>(
    document: &'d ExecutableDocument,
    requested: Option<&str>,
) -> Option<(Option<String>, &'d OperationDefinition)> {
    match (&document.operations, requested) {
        (DocumentOperations::Single(op), name) => Some((name.map(str::to_owned), &op.node)),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(n, op)| (Some(n.to_string()), &op.node)),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .iter()
            .next()
            .map(|(n, op)| (Some(n.to_string()), &op.node)),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The executable schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Query-shape limits, from config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Highest complexity score (each field counts 1 unless it says otherwise).
    pub max_complexity: usize,
    /// Most aliased fields in one document.
    pub max_aliases: usize,
    /// Deepest nesting of brackets in a document's text, checked before it is parsed.
    pub max_nesting: usize,
    /// Validation errors may suggest names ("Did you mean …?"). They reveal the schema, so they
    /// are off wherever introspection is restricted (`prod`), for every caller.
    pub suggestions: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 1000,
            max_aliases: 30,
            max_nesting: 64,
            suggestions: true,
        }
    }
}

/// Builds the schema with the process-wide state attached.
pub fn build_schema(app: Arc<App>, limits: Limits) -> AppSchema {
    let builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .data(app)
    .limit_complexity(limits.max_complexity)
    .extension(errors::ErrorPolicy {
        max_aliases: limits.max_aliases,
        max_nesting: limits.max_nesting,
        max_depth: limits.max_depth,
    })
    .extension(socket_auth::Reauthorize)
    .extension(one_connection::OneConnection)
    .extension(audit::Audit)
    .extension(metrics::OperationMetrics)
    // Innermost, so every other `parse_query` hook still runs on a cached document.
    .extension(parsed::ParsedDocuments::default());
    match limits.suggestions {
        true => builder.finish(),
        false => builder.disable_suggestions().finish(),
    }
}

/// The schema's SDL, without any state (for snapshots and `cloudbase-ai schema`).
pub fn sdl() -> String {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .finish()
    .sdl()
}

/// Typed access to context data; resolvers never use `data_unchecked`.
pub trait ContextExt {
    /// The process-wide services.
    fn app(&self) -> Result<&App, Error>;
    /// The app, shared: for work that outlives the request.
    fn shared_app(&self) -> Result<Arc<App>, Error>;
    /// Who is asking, or `UNAUTHENTICATED`; `FORBIDDEN` for an API key of scope `CHAT`.
    fn viewer(&self) -> Result<&Viewer, Error>;
    /// Who is asking, API keys of scope `CHAT` included: for chatting and listing models only.
    fn chat_viewer(&self) -> Result<&Viewer, Error>;
    /// Who is asking, even an admin who must enrol in two-step sign-in before anything else: for
    /// enrolling, reading one's own account and signing out. `FORBIDDEN` for a `CHAT` key.
    fn limited_viewer(&self) -> Result<&Viewer, Error>;
    /// The request's id, address and user agent.
    fn request_meta(&self) -> RequestMeta;
}

impl ContextExt for Context<'_> {
    fn app(&self) -> Result<&App, Error> {
        self.data::<Arc<App>>()
            .map(Arc::as_ref)
            .map_err(|_| Error::Internal("schema built without App".into()))
    }

    fn shared_app(&self) -> Result<Arc<App>, Error> {
        self.data::<Arc<App>>()
            .map(Arc::clone)
            .map_err(|_| Error::Internal("schema built without App".into()))
    }

    fn viewer(&self) -> Result<&Viewer, Error> {
        self.chat_viewer()?.require_full_access()
    }

    fn chat_viewer(&self) -> Result<&Viewer, Error> {
        match self.data_opt::<Auth>() {
            Some(auth) => auth.viewer(),
            None => Err(Error::unauthenticated()),
        }
    }

    fn limited_viewer(&self) -> Result<&Viewer, Error> {
        match self.data_opt::<Auth>() {
            Some(auth) => auth.limited_viewer()?.require_full_access(),
            None => Err(Error::unauthenticated()),
        }
    }

    fn request_meta(&self) -> RequestMeta {
        self.data_opt::<RequestMeta>().cloned().unwrap_or_default()
    }
}
