//! Row structs (`User`) and insert structs (`NewUser<'a>`), named the crates.io way.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::domain::{CallStatus, MessageRole, UsageSource};

use super::schema::{invites, refresh_tokens, sessions, users};

/// A row of `users`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    /// UUIDv7.
    pub id: String,
    /// Lower-cased and trimmed.
    pub email: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    /// Shown in the UI.
    pub display_name: String,
    /// An http(s) URL, if set.
    pub avatar_url: Option<String>,
    /// Free-form client settings (a JSON object).
    pub settings: serde_json::Value,
    /// `USER` or `ADMIN`.
    pub role: String,
    /// Set while the account is disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// UTC.
    pub updated_at: NaiveDateTime,
}

/// An insert into `users`.
#[derive(Debug, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub struct NewUser<'a> {
    /// UUIDv7.
    pub id: &'a str,
    /// Already normalised.
    pub email: &'a str,
    /// An argon2id PHC string.
    pub password_hash: &'a str,
    /// Already validated.
    pub display_name: &'a str,
    /// An empty object for a new user.
    pub settings: &'a serde_json::Value,
    /// `USER` or `ADMIN`.
    pub role: &'a str,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// UTC.
    pub updated_at: NaiveDateTime,
}

/// A row of `sessions`: one login, and the family of refresh tokens it rotates through.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
pub struct Session {
    /// UUIDv7; the `sid` claim of access tokens.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// When the last refresh happened.
    pub last_refreshed_at: NaiveDateTime,
    /// After this the session cannot be refreshed.
    pub expires_at: NaiveDateTime,
    /// Set by logout, password change, disabling the user, or refresh-token reuse.
    pub revoked_at: Option<NaiveDateTime>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// The client's `User-Agent` at login.
    pub user_agent: Option<String>,
    /// The client's address at login.
    pub client_ip: Option<String>,
}

/// An insert into `sessions`.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions, treat_none_as_default_value = false)]
pub struct NewSession<'a> {
    /// UUIDv7.
    pub id: &'a str,
    /// The owner.
    pub user_id: &'a str,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// Same as `created_at` at first.
    pub last_refreshed_at: NaiveDateTime,
    /// UTC.
    pub expires_at: NaiveDateTime,
    /// Truncated to 512 characters.
    pub user_agent: Option<&'a str>,
    /// The client's address.
    pub client_ip: Option<&'a str>,
}

/// An insert into `refresh_tokens`. Only the SHA-256 of the token is stored.
#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens, treat_none_as_default_value = false)]
pub struct NewRefreshToken<'a> {
    /// UUIDv7.
    pub id: &'a str,
    /// The family.
    pub session_id: &'a str,
    /// Hex SHA-256 of the token.
    pub token_hash: &'a str,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// UTC.
    pub expires_at: NaiveDateTime,
}

/// A row of `prices`: what one provider's model costs from `effective_from` on.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::prices, treat_none_as_default_value = false)]
pub struct Price {
    /// UUIDv7.
    pub id: String,
    /// Provider instance, e.g. `kimi`.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// Micro-units of `currency` per 1M uncached input tokens.
    pub input_micros_per_mtok: i64,
    /// Micro-units per 1M input tokens served from the provider's cache.
    pub cached_input_micros_per_mtok: i64,
    /// Micro-units per 1M output tokens.
    pub output_micros_per_mtok: i64,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
    /// In force from this time (UTC) until a later row.
    pub effective_from: NaiveDateTime,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// The admin who added it (`None` for seeded rows).
    pub created_by: Option<String>,
    /// Free text (source of the price, reason for a change).
    pub note: Option<String>,
}

/// A row of `conversations`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::conversations, treat_none_as_default_value = false)]
pub struct Conversation {
    /// UUIDv7.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// Shown in the history list.
    pub title: String,
    /// Default provider for new turns.
    pub provider: Option<String>,
    /// Default model for new turns.
    pub model: Option<String>,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// Last turn or rename (UTC); lists sort on it.
    pub updated_at: NaiveDateTime,
}

/// A row of `messages`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::messages, treat_none_as_default_value = false)]
pub struct Message {
    /// UUIDv7 (sorts in conversation order).
    pub id: String,
    /// The conversation.
    pub conversation_id: String,
    /// Who wrote it.
    pub role: MessageRole,
    /// The text.
    pub content: String,
    /// The model's reasoning, for assistant messages of reasoning models.
    pub reasoning: Option<String>,
    /// The call that produced (or answered) this message.
    pub ai_call_id: Option<String>,
    /// UTC.
    pub created_at: NaiveDateTime,
}

impl AiCall {
    /// A new record of a call being admitted now: `PENDING`, nothing used or spent yet.
    pub fn pending(
        user_id: String,
        conversation_id: Option<String>,
        request_id: Option<String>,
        (provider, model): (String, String),
        stream: bool,
        started_at: NaiveDateTime,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            user_id,
            conversation_id,
            request_id,
            provider,
            model,
            stream,
            status: CallStatus::Pending,
            error_code: None,
            error_message: None,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
            usage_source: None,
            started_at,
            finished_at: None,
            latency_ms: None,
            ttft_ms: None,
            upstream_ms: None,
            price_id: None,
            cost_micros: 0,
            currency: None,
            priced: false,
            cached: false,
            attempts: serde_json::json!([]),
            prompt_log: None,
        }
    }
}

/// A row of `ai_calls`: one attempt to call a provider, whatever its outcome.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::ai_calls, treat_none_as_default_value = false)]
pub struct AiCall {
    /// UUIDv7.
    pub id: String,
    /// Who asked.
    pub user_id: String,
    /// The conversation, if the call was a turn of one.
    pub conversation_id: Option<String>,
    /// The HTTP request id.
    pub request_id: Option<String>,
    /// Provider instance.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// Streamed or not.
    pub stream: bool,
    /// Where it stands.
    pub status: CallStatus,
    /// The `extensions.code` of the failure.
    pub error_code: Option<String>,
    /// The failure, as told to the client.
    pub error_message: Option<String>,
    /// Input tokens, cached included.
    pub prompt_tokens: i64,
    /// Input tokens billed at the cached rate.
    pub cached_prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Reported by the provider or estimated by the gateway.
    pub usage_source: Option<UsageSource>,
    /// When the call was admitted (UTC); prices are looked up at this time.
    pub started_at: NaiveDateTime,
    /// When it ended.
    pub finished_at: Option<NaiveDateTime>,
    /// Start to end, in milliseconds.
    pub latency_ms: Option<i64>,
    /// Start to the first streamed token, in milliseconds.
    pub ttft_ms: Option<i64>,
    /// Time spent waiting on the provider, in milliseconds.
    pub upstream_ms: Option<i64>,
    /// The price row used.
    pub price_id: Option<String>,
    /// Cost in micro-units of `currency`.
    pub cost_micros: i64,
    /// Currency of `cost_micros`.
    pub currency: Option<String>,
    /// Whether a price was in force (otherwise the cost is 0).
    pub priced: bool,
    /// Answered from the response cache (cost 0).
    pub cached: bool,
    /// The attempt chain: `[{provider, model, outcome, ms}]`.
    pub attempts: serde_json::Value,
    /// The prompt and reply, only with prompt logging on.
    pub prompt_log: Option<serde_json::Value>,
}

/// A row of `budgets`: a limit on spend (and optionally tokens and requests) for one user or
/// for everyone, per period.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::budgets, treat_none_as_default_value = false)]
pub struct Budget {
    /// UUIDv7.
    pub id: String,
    /// `USER` or `GLOBAL`.
    pub scope: String,
    /// The user, for `USER` budgets.
    pub user_id: Option<String>,
    /// `DAY`, `WEEK`, `MONTH` or `TOTAL`.
    pub period: String,
    /// Costs in other currencies do not count against it.
    pub currency: String,
    /// Spend limit in micro-units.
    pub limit_micros: i64,
    /// Optional token limit.
    pub limit_tokens: Option<i64>,
    /// Optional request limit.
    pub limit_requests: Option<i64>,
    /// Settled spend this period.
    pub spent_micros: i64,
    /// Held by calls in flight.
    pub reserved_micros: i64,
    /// Settled tokens this period.
    pub spent_tokens: i64,
    /// Tokens held by calls in flight.
    pub reserved_tokens: i64,
    /// Settled requests this period.
    pub spent_requests: i64,
    /// Requests in flight.
    pub reserved_requests: i64,
    /// Start of the current period (UTC).
    pub period_start: NaiveDateTime,
    /// End of the current period (UTC); `None` for `TOTAL`.
    pub period_end: Option<NaiveDateTime>,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// UTC.
    pub updated_at: NaiveDateTime,
    /// Percentages of the spend limit that raise a budget event, comma-separated (`50,80,100`).
    pub thresholds: String,
    /// The highest threshold raised in the current period (0: none).
    pub alerted_percent: i64,
}

impl Budget {
    /// The thresholds as numbers.
    pub fn threshold_list(&self) -> Vec<i64> {
        self.thresholds
            .split(',')
            .filter_map(|t| t.trim().parse().ok())
            .collect()
    }
}

/// A row of `budget_reservations`: what one call holds against one budget until it settles.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::budget_reservations, treat_none_as_default_value = false)]
pub struct Reservation {
    /// The call.
    pub ai_call_id: String,
    /// The budget.
    pub budget_id: String,
    /// Worst-case cost held.
    pub amount_micros: i64,
    /// Worst-case tokens held.
    pub tokens: i64,
    /// Requests held (1).
    pub requests: i64,
    /// After this the sweeper releases it.
    pub expires_at: NaiveDateTime,
}

/// A row of `invites`: a single-use code that lets someone register in `invite` mode. Only the
/// code's SHA-256 is stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invites, treat_none_as_default_value = false)]
pub struct Invite {
    /// UUIDv7.
    pub id: String,
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    /// Free text from the admin (whom it is for).
    pub note: Option<String>,
    /// The admin who created it.
    pub created_by: Option<String>,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// After this it no longer works; `None` never expires.
    pub expires_at: Option<NaiveDateTime>,
    /// The account registered with it.
    pub used_by: Option<String>,
    /// When it was used (it works once).
    pub used_at: Option<NaiveDateTime>,
    /// When an admin revoked it.
    pub revoked_at: Option<NaiveDateTime>,
}
