//! The one error type of this crate, and the stable codes clients see in `extensions.code`.
//!
//! Resolvers return `Result<T, Error>` and use `?`; async-graphql keeps the value as the error's
//! source, and [`crate::graphql::errors`] turns it into a GraphQL error in exactly one place.

use std::fmt;

/// Everything that can go wrong in a service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No valid credentials came with the request.
    #[error("{0}")]
    Unauthenticated(String),
    /// The viewer is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The account must turn on two-step sign-in before it may do anything else
    /// (`[auth] require_mfa_for_admins`).
    #[error("{0}")]
    MfaRequired(String),
    /// The account must change its password before it may do anything else (an admin required
    /// it).
    #[error("{0}")]
    PasswordChangeRequired(String),
    /// The thing asked for does not exist (or is not visible to the viewer).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is out of range or malformed; `field` names the argument when there is one.
    #[error("{message}")]
    BadInput {
        /// The input field at fault, in GraphQL spelling (`email`, `input.password`).
        field: Option<&'static str>,
        /// What was expected.
        message: String,
    },
    /// The change collides with existing data (for example an email already registered).
    #[error("{0}")]
    Conflict(String),
    /// A budget has no room for this call; nothing was sent upstream.
    #[error("{message}")]
    BudgetExceeded {
        /// Which budget, in words.
        message: String,
        /// What is left in the budget's currency (micro-units), after calls in flight.
        remaining_micros: i64,
        /// When the budget's period starts over, if it does.
        reset_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Too many requests (or tokens, or failed logins) in the current window.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// When to try again.
        retry_after_ms: i64,
    },
    /// The AI provider or channel failed or refused (auth, rate limit, outage, bad answer).
    #[error("{0}")]
    Upstream(String),
    /// The AI provider refused because of its account's billing (balance exhausted, account
    /// suspended). Never retried: it does not clear by waiting, an operator must act.
    #[error("{0}")]
    UpstreamBilling(String),
    /// A plugin misbehaved (panicked, returned garbage); the server kept serving.
    #[error("{0}")]
    Plugin(String),
    /// Something took longer than its deadline.
    #[error("{0}")]
    Timeout(String),
    /// A subscriber fell behind and missed events; it should refetch.
    #[error("missed {0} events; refetch the current state")]
    Lagged(u64),
    /// This instance has as many AI calls in flight as it takes; nothing was sent upstream.
    #[error("{message}")]
    Overloaded {
        /// What is full.
        message: String,
        /// When to try again.
        retry_after_ms: i64,
    },
    /// A dependency is temporarily unavailable (the pool is exhausted, the database is down).
    #[error("service temporarily unavailable: {0}")]
    Unavailable(String),
    /// A database error nobody expected.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// Any other bug or broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The stable `extensions.code` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Missing, invalid or expired credentials.
    Unauthenticated,
    /// Authenticated, but not allowed.
    Forbidden,
    /// Authenticated, but the account must turn on two-step sign-in first.
    MfaRequired,
    /// Authenticated, but the account must change its password first.
    PasswordChangeRequired,
    /// No such object for this viewer.
    NotFound,
    /// Input out of range or malformed.
    BadUserInput,
    /// Collides with existing data.
    Conflict,
    /// A budget has no room.
    BudgetExceeded,
    /// Too many requests.
    RateLimited,
    /// The provider or channel failed.
    UpstreamFailed,
    /// The provider's account cannot pay for the call (balance or quota used up).
    UpstreamBilling,
    /// A plugin misbehaved.
    PluginFailed,
    /// A deadline passed.
    Timeout,
    /// Events were missed.
    Lagged,
    /// Try again later.
    Unavailable,
    /// A bug on our side; the message is opaque and carries a request id.
    Internal,
}

impl Code {
    /// The string clients match on.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::MfaRequired => "MFA_REQUIRED",
            Code::PasswordChangeRequired => "PASSWORD_CHANGE_REQUIRED",
            Code::NotFound => "NOT_FOUND",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::Conflict => "CONFLICT",
            Code::BudgetExceeded => "BUDGET_EXCEEDED",
            Code::RateLimited => "RATE_LIMITED",
            Code::UpstreamFailed => "UPSTREAM_FAILED",
            Code::UpstreamBilling => "UPSTREAM_BILLING",
            Code::PluginFailed => "PLUGIN_FAILED",
            Code::Timeout => "TIMEOUT",
            Code::Lagged => "LAGGED",
            Code::Unavailable => "UNAVAILABLE",
            Code::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The provider, its plugin or the network failed (not the request itself): such a call may
    /// go to a fallback model, and counts as a plugin call error.
    pub fn is_provider_fault(&self) -> bool {
        matches!(
            self,
            Error::Upstream(_)
                | Error::UpstreamBilling(_)
                | Error::Timeout(_)
                | Error::Unavailable(_)
                | Error::Plugin(_)
        )
    }

    /// A `BAD_USER_INPUT` error about one field.
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Error::BadInput {
            field: Some(field),
            message: message.into(),
        }
    }

    /// `UNAUTHENTICATED` with the standard message.
    pub fn unauthenticated() -> Self {
        Error::Unauthenticated("authentication required".into())
    }

    /// The code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::Forbidden(_) => Code::Forbidden,
            Error::MfaRequired(_) => Code::MfaRequired,
            Error::PasswordChangeRequired(_) => Code::PasswordChangeRequired,
            Error::NotFound(_) => Code::NotFound,
            Error::BadInput { .. } => Code::BadUserInput,
            Error::Conflict(_) => Code::Conflict,
            Error::BudgetExceeded { .. } => Code::BudgetExceeded,
            Error::RateLimited { .. } => Code::RateLimited,
            Error::Upstream(_) => Code::UpstreamFailed,
            Error::UpstreamBilling(_) => Code::UpstreamBilling,
            Error::Plugin(_) => Code::PluginFailed,
            Error::Timeout(_) => Code::Timeout,
            Error::Lagged(_) => Code::Lagged,
            Error::Unavailable(_) | Error::Overloaded { .. } => Code::Unavailable,
            Error::Database(_) | Error::Internal(_) => Code::Internal,
        }
    }
}

/// Whether a Diesel error is a unique-constraint violation (an expected conflict, not a bug).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}
