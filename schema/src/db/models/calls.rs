//! AI calls and what they touch: prices, conversations and messages, call records, budgets
//! with their reservations, and the daily rollup.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::usage_daily;
use crate::domain::{CallStatus, MessageRole, UsageSource};

/// A row of `prices`: what one provider's model costs from `effective_from` on.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::prices, treat_none_as_default_value = false)]
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
#[diesel(table_name = crate::db::schema::conversations, treat_none_as_default_value = false)]
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
#[diesel(table_name = crate::db::schema::messages, treat_none_as_default_value = false)]
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
            api_key_id: None,
        }
    }

    /// The columns of this `PENDING` record that a new call's insert writes: the rest are the
    /// table's defaults, which are what [`AiCall::pending`] sets (nothing used or spent yet). One
    /// insert serves every place a call is opened, with 10 values to bind where a whole record
    /// has 27 (on PostgreSQL a value is encoded, copied and decoded again on each side).
    pub fn pending_row(&self) -> PendingRow<'_> {
        debug_assert!(self.is_new(), "not a new call's PENDING record: {self:?}");
        PendingRow {
            id: &self.id,
            user_id: &self.user_id,
            conversation_id: self.conversation_id.as_deref(),
            request_id: self.request_id.as_deref(),
            provider: &self.provider,
            model: &self.model,
            stream: self.stream,
            status: self.status,
            started_at: self.started_at,
            api_key_id: self.api_key_id.as_deref(),
        }
    }

    /// Whether this is the record [`AiCall::pending`] makes from this one's own columns (those of
    /// [`PendingRow`]): every other column holds what a new call's does.
    fn is_new(&self) -> bool {
        let made = AiCall {
            id: self.id.clone(),
            api_key_id: self.api_key_id.clone(),
            ..AiCall::pending(
                self.user_id.clone(),
                self.conversation_id.clone(),
                self.request_id.clone(),
                (self.provider.clone(), self.model.clone()),
                self.stream,
                self.started_at,
            )
        };
        *self == made
    }
}

/// What the insert of a new call's `PENDING` record writes ([`AiCall::pending_row`]): the
/// fields of [`AiCall`] of the same names.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = crate::db::schema::ai_calls, treat_none_as_default_value = false)]
pub struct PendingRow<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub conversation_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub provider: &'a str,
    pub model: &'a str,
    pub stream: bool,
    pub status: CallStatus,
    pub started_at: NaiveDateTime,
    pub api_key_id: Option<&'a str>,
}

/// A row of `ai_calls`: one attempt to call a provider, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::ai_calls, treat_none_as_default_value = false)]
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
    /// The API key that made the call (`None`: a session).
    pub api_key_id: Option<String>,
}

/// A row of `budgets`: a limit on spend (and optionally tokens and requests) for one user or
/// for everyone, per period.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::budgets, treat_none_as_default_value = false)]
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
    /// For a key's own budget (a `USER` row of the key's owner): the key, whose calls alone
    /// count against it.
    pub api_key_id: Option<String>,
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
#[diesel(table_name = crate::db::schema::budget_reservations, treat_none_as_default_value = false)]
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

/// One day's usage of one user with one model, added to `usage_daily`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = usage_daily, treat_none_as_default_value = false)]
pub struct DailyUsage<'a> {
    /// `YYYY-MM-DD` in the configured time zone.
    pub day: &'a str,
    /// The user.
    pub user_id: &'a str,
    /// The API key (empty for a session's calls).
    pub api_key_id: &'a str,
    /// Provider instance.
    pub provider: &'a str,
    /// Model.
    pub model: &'a str,
    /// Currency of the cost (empty when unpriced).
    pub currency: &'a str,
    /// Calls.
    pub requests: i64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Cached input tokens.
    pub cached_prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Cost.
    pub cost_micros: i64,
    /// Which of the day's rows for the same key it is added to (see [`crate::db::budgets::shard`]).
    pub shard: i16,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record is a new call's only as `AiCall::pending` makes it: any column that
    /// `PendingRow` leaves to the table's defaults, set otherwise, makes it not one.
    #[test]
    fn only_a_record_as_pending_makes_it_is_a_new_calls() {
        let new = || {
            AiCall::pending(
                "u".into(),
                Some("c".into()),
                Some("r".into()),
                ("p".into(), "m".into()),
                true,
                NaiveDateTime::default(),
            )
        };
        let made = AiCall {
            api_key_id: Some("k".into()),
            ..new()
        };
        assert!(made.is_new(), "its own columns are the call's to set");
        let changes: [fn(&mut AiCall); 17] = [
            |c| c.status = CallStatus::Succeeded,
            |c| c.error_code = Some("E".into()),
            |c| c.error_message = Some("e".into()),
            |c| c.prompt_tokens = 1,
            |c| c.cached_prompt_tokens = 1,
            |c| c.completion_tokens = 1,
            |c| c.usage_source = Some(UsageSource::Reported),
            |c| c.finished_at = Some(NaiveDateTime::default()),
            |c| c.latency_ms = Some(0),
            |c| c.ttft_ms = Some(0),
            |c| c.upstream_ms = Some(0),
            |c| c.price_id = Some("p".into()),
            |c| c.cost_micros = 1,
            |c| c.currency = Some("CNY".into()),
            |c| c.priced = true,
            |c| c.cached = true,
            |c| c.attempts = serde_json::json!([{}]),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut call = new();
            change(&mut call);
            assert!(!call.is_new(), "change {i}");
        }
        let mut logged = new();
        logged.prompt_log = Some(serde_json::json!({}));
        assert!(!logged.is_new(), "a prompt log");
    }
}
