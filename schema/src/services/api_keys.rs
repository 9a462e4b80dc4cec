//! API keys: long-lived credentials for the OpenAI-compatible `/v1` door and, with scope `FULL`,
//! the GraphQL API. A user makes keys for themselves; an admin for anyone.
//!
//! A key is `cb-` and 256 random bits, shown once when it is made; only its SHA-256 is stored,
//! with a short prefix to recognise it by. A key may name the models it may call, carry its own
//! budget (reserved and settled with the owner's, in the same transactions) and its own rate
//! limits. Rotating makes a new key with the same settings and revokes the old one, at once or
//! after a grace period; the new key joins the old one's *family*, which owns the budget and the
//! rate-limit counters, so a rotation keeps them. Every change publishes `AccessChanged` for the
//! owner, so a cached grant is dropped at once (as for sessions), and every mutation is audited
//! (the secret is a result, never an argument).

use chrono::{DateTime, NaiveDateTime, Utc};

use super::auth::change_access;
use super::budgets::{self, Period};
use super::{App, Viewer, tokens, validate};
use crate::Error;
use crate::db::models::{ApiKey, Budget};
use crate::db::{api_keys as queries, budgets as budget_queries};
use crate::events::Event;

/// Longest key name, in characters.
pub const NAME_MAX: usize = 100;
/// Most models one key may list.
pub const MODELS_MAX: usize = 100;
/// Longest grace period of a rotation.
pub const GRACE_MAX_SECS: i64 = 7 * 24 * 3600;
/// Most keys listed at once.
pub const LIST_MAX: i64 = 500;

/// What a key may reach.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "ApiKeyScope")]
pub enum KeyScope {
    /// The `/v1` endpoints, and over GraphQL `chat`, `chatStream` and `models` only.
    Chat,
    /// Also the whole GraphQL API, with the owner's role.
    Full,
}

impl KeyScope {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Chat => "CHAT",
            KeyScope::Full => "FULL",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CHAT" => Some(KeyScope::Chat),
            "FULL" => Some(KeyScope::Full),
            _ => None,
        }
    }
}

/// What an authenticated key grants, as [`super::Viewer::key`] carries it.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    /// The key.
    pub id: String,
    /// Its rotation family: owner of its budget and rate-limit counters.
    pub family_id: String,
    /// What it may reach.
    pub scope: KeyScope,
    /// `provider/model` names it may call; `None`: every model.
    pub allowed_models: Option<Vec<String>>,
    /// Its own requests per minute.
    pub requests_per_minute: Option<i64>,
    /// Its own tokens per minute.
    pub tokens_per_minute: Option<i64>,
    /// When it expires.
    pub expires_at: Option<NaiveDateTime>,
    /// When it is (or will be, after a rotation's grace) revoked.
    pub revoked_at: Option<NaiveDateTime>,
}

impl KeyGrant {
    /// The grant of a stored key.
    pub fn of(key: &ApiKey) -> Result<Self, Error> {
        Ok(Self {
            id: key.id.clone(),
            family_id: key.family_id.clone(),
            scope: KeyScope::parse(&key.scope).ok_or_else(|| {
                Error::Internal(format!("key {} has scope {}", key.id, key.scope))
            })?,
            allowed_models: allowed_models(key)?,
            requests_per_minute: key.requests_per_minute,
            tokens_per_minute: key.tokens_per_minute,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
        })
    }

    /// Whether the key may call `provider`/`model`.
    pub fn allows(&self, provider: &str, model: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|list| {
            list.iter()
                .any(|m| m.split_once('/') == Some((provider, model)))
        })
    }

    /// Why the key is refused at `now`, if it is.
    pub fn refusal(&self, now: NaiveDateTime) -> Option<&'static str> {
        if self.revoked_at.is_some_and(|at| at <= now) {
            Some("this API key has been revoked")
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some("this API key has expired")
        } else {
            None
        }
    }
}

fn allowed_models(key: &ApiKey) -> Result<Option<Vec<String>>, Error> {
    key.allowed_models
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| Error::Internal(format!("key {} has bad allowed_models: {e}", key.id)))
}

/// A key's own budget, as its owner sets it.
#[derive(Debug, Clone)]
pub struct KeyBudget {
    /// How often it starts over.
    pub period: Period,
    /// ISO 4217.
    pub currency: String,
    /// The spend limit, in micro-units.
    pub limit_micros: i64,
}

/// The settings of a key, as made or changed (`None`: unchanged, or none when made; the inner
/// `None` of a double option clears).
#[derive(Debug, Clone, Default)]
pub struct KeySettings {
    /// What the owner calls it.
    pub name: Option<String>,
    /// What it may reach (`CHAT` when made without).
    pub scope: Option<KeyScope>,
    /// `provider/model` names it may call.
    pub allowed_models: Option<Option<Vec<String>>>,
    /// Its own requests per minute.
    pub requests_per_minute: Option<Option<i64>>,
    /// Its own tokens per minute.
    pub tokens_per_minute: Option<Option<i64>>,
    /// When it stops working.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Its own budget.
    pub budget: Option<Option<KeyBudget>>,
}

/// A key just made: the secret (shown once), the row and its budget.
#[derive(Debug)]
pub struct CreatedKey {
    /// `cb-…`: never stored, never shown again.
    pub secret: String,
    /// The stored key.
    pub key: ApiKey,
}

fn not_found(e: diesel::result::Error) -> Error {
    match e {
        diesel::result::Error::NotFound => Error::NotFound("API key"),
        other => other.into(),
    }
}

/// The key `id`, if the viewer owns it or is an admin (others get `NOT_FOUND`, which does not say
/// whether it exists).
pub async fn owned(app: &App, viewer: &Viewer, id: &str) -> Result<ApiKey, Error> {
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    let key = queries::find(&mut conn, id).await.map_err(not_found)?;
    if key.user_id != viewer.user_id && !viewer.is_admin() {
        return Err(Error::NotFound("API key"));
    }
    Ok(key)
}

/// Checks the settings that are given; returns the stored form of the allowed models.
fn check(app: &App, s: &KeySettings) -> Result<Option<Option<String>>, Error> {
    if let Some(name) = &s.name {
        let n = name.trim().chars().count();
        if n == 0 || n > NAME_MAX {
            return Err(Error::bad_input(
                "input.name",
                format!("name must be 1-{NAME_MAX} characters"),
            ));
        }
    }
    for (field, limit) in [
        ("input.requestsPerMinute", s.requests_per_minute),
        ("input.tokensPerMinute", s.tokens_per_minute),
    ] {
        if limit.flatten().is_some_and(|l| l < 1) {
            return Err(Error::bad_input(field, "a limit must be at least 1"));
        }
    }
    if let Some(Some(at)) = s.expires_at
        && at <= app.clock.now()
    {
        return Err(Error::bad_input(
            "input.expiresAt",
            "expiresAt must be in the future",
        ));
    }
    let Some(models) = &s.allowed_models else {
        return Ok(None);
    };
    let Some(list) = models else {
        return Ok(Some(None));
    };
    if list.is_empty() || list.len() > MODELS_MAX {
        return Err(Error::bad_input(
            "input.allowedModels",
            format!("list 1-{MODELS_MAX} models, or null for every model"),
        ));
    }
    let callable = app.plugins.models();
    for name in list {
        let known = name.split_once('/').is_some_and(|(p, m)| {
            callable
                .iter()
                .any(|row| row.provider == p && row.info.id == m)
        });
        if !known {
            return Err(Error::bad_input(
                "input.allowedModels",
                format!("`{name}` is not a callable `provider/model`; see `models`"),
            ));
        }
    }
    let json = serde_json::to_string(list).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Some(Some(json)))
}

/// Makes a key for `user_id` (the viewer's own unless an admin names another user).
pub async fn create(
    app: &App,
    viewer: &Viewer,
    user_id: Option<&str>,
    settings: KeySettings,
) -> Result<CreatedKey, Error> {
    let owner = match user_id {
        Some(u) if u != viewer.user_id => {
            viewer.require_admin()?;
            validate::id("input.userId", u)?;
            u.to_owned()
        }
        _ => viewer.user_id.clone(),
    };
    if settings.name.is_none() {
        return Err(Error::bad_input("input.name", "a key needs a name"));
    }
    let models = check(app, &settings)?;
    let (secret, hash) = tokens::new_api_key();
    let id = uuid::Uuid::now_v7().to_string();
    let key = ApiKey {
        id: id.clone(),
        user_id: owner,
        name: settings.name.clone().unwrap_or_default().trim().to_owned(),
        prefix: secret.chars().take(11).collect(),
        secret_hash: hash,
        scope: settings.scope.unwrap_or(KeyScope::Chat).as_str().into(),
        allowed_models: models.flatten(),
        requests_per_minute: settings.requests_per_minute.flatten(),
        tokens_per_minute: settings.tokens_per_minute.flatten(),
        created_at: app.now(),
        expires_at: settings.expires_at.flatten().map(|t| t.naive_utc()),
        revoked_at: None,
        last_used_at: None,
        last_used_ip: None,
        family_id: id,
    };
    let budget = match settings.budget.flatten() {
        Some(b) => Some(budgets::key_budget(
            app,
            &key.user_id,
            &key.family_id,
            b.period,
            b.currency,
            b.limit_micros,
        )?),
        None => None,
    };
    insert(app, &key, budget.as_ref()).await?;
    tracing::info!(api_key.id = %key.id, user.id = %key.user_id, by = %viewer.user_id, "API key created");
    Ok(CreatedKey { secret, key })
}

/// Inserts a key and its budget in one transaction.
async fn insert(app: &App, key: &ApiKey, budget: Option<&Budget>) -> Result<(), Error> {
    let mut conn = app.db.get().await?;
    conn.transaction(async |tx| {
        queries::insert(tx, key).await.map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ) => Error::bad_input("input.userId", "no such user"),
            other => other.into(),
        })?;
        if let Some(b) = budget {
            budget_queries::insert(tx, b).await?;
        }
        Ok(())
    })
    .await
}

/// Changes a live key's settings (its owner or an admin).
pub async fn update(
    app: &App,
    viewer: &Viewer,
    id: &str,
    settings: KeySettings,
) -> Result<ApiKey, Error> {
    let key = owned(app, viewer, id).await?;
    let models = check(app, &settings)?;
    let changes = queries::KeyChanges {
        name: settings.name.as_ref().map(|n| n.trim().to_owned()),
        scope: settings.scope.map(|s| s.as_str().to_owned()),
        allowed_models: models,
        requests_per_minute: settings.requests_per_minute,
        tokens_per_minute: settings.tokens_per_minute,
        expires_at: settings.expires_at.map(|e| e.map(|t| t.naive_utc())),
    };
    let budget = settings.budget.clone();
    let updated = change(app, &key, async |tx| {
        let updated = if changes_anything(&changes) {
            queries::update(tx, id, &changes).await?
        } else {
            Some(key.clone()).filter(|k| k.revoked_at.is_none())
        };
        let Some(updated) = updated else {
            return Err(Error::Conflict("this API key has been revoked".into()));
        };
        if let Some(budget) = budget {
            set_budget(tx, app, &updated, budget).await?;
        }
        Ok(updated)
    })
    .await?;
    Ok(updated)
}

fn changes_anything(c: &queries::KeyChanges) -> bool {
    c.name.is_some()
        || c.scope.is_some()
        || c.allowed_models.is_some()
        || c.requests_per_minute.is_some()
        || c.tokens_per_minute.is_some()
        || c.expires_at.is_some()
}

/// Sets, changes or removes a key family's budget. A budget keeps its period and currency: to
/// change those, remove it and set a new one.
async fn set_budget(
    tx: &mut crate::db::DbConn,
    app: &App,
    key: &ApiKey,
    budget: Option<KeyBudget>,
) -> Result<(), Error> {
    let existing = budget_queries::of_key(tx, &key.family_id).await?;
    match (existing, budget) {
        (None, None) => Ok(()),
        (Some(old), None) => {
            budget_queries::delete(tx, &old.id).await?;
            Ok(())
        }
        (None, Some(b)) => {
            let row = budgets::key_budget(
                app,
                &key.user_id,
                &key.family_id,
                b.period,
                b.currency,
                b.limit_micros,
            )?;
            budget_queries::insert(tx, &row).await?;
            Ok(())
        }
        (Some(old), Some(b)) => {
            if old.period != b.period.as_str() || old.currency != b.currency {
                return Err(Error::bad_input(
                    "input.budget",
                    "a key's budget keeps its period and currency; remove it (budget: null) and set a new one",
                ));
            }
            if b.limit_micros < 0 {
                return Err(Error::bad_input(
                    "input.budget",
                    "limits must not be negative",
                ));
            }
            budget_queries::set_limits(
                tx,
                &old.id,
                (b.limit_micros, old.limit_tokens, old.limit_requests),
                app.now(),
            )
            .await?;
            Ok(())
        }
    }
}

/// Revokes a key at once (its owner or an admin). Revoking a revoked key changes nothing.
pub async fn revoke(app: &App, viewer: &Viewer, id: &str) -> Result<ApiKey, Error> {
    let key = owned(app, viewer, id).await?;
    change(app, &key, async |tx| {
        queries::revoke(tx, id, app.now()).await?;
        Ok(queries::find(tx, &key.id).await?)
    })
    .await
}

/// Makes a new key with the same settings in the same family, and revokes the old one at once or
/// after `grace_secs`. Returns the new key's secret and row.
pub async fn rotate(
    app: &App,
    viewer: &Viewer,
    id: &str,
    grace_secs: Option<i64>,
) -> Result<CreatedKey, Error> {
    let old = owned(app, viewer, id).await?;
    let grace = grace_secs.unwrap_or(0);
    if !(0..=GRACE_MAX_SECS).contains(&grace) {
        return Err(Error::bad_input(
            "gracePeriodSeconds",
            format!("gracePeriodSeconds must be 0-{GRACE_MAX_SECS}"),
        ));
    }
    let now = app.now();
    if KeyGrant::of(&old)?.refusal(now).is_some() {
        return Err(Error::Conflict(
            "this API key is revoked or expired; create a new one".into(),
        ));
    }
    let (secret, hash) = tokens::new_api_key();
    let new = ApiKey {
        id: uuid::Uuid::now_v7().to_string(),
        prefix: secret.chars().take(11).collect(),
        secret_hash: hash,
        created_at: now,
        revoked_at: None,
        last_used_at: None,
        last_used_ip: None,
        ..old.clone()
    };
    let revoke_at = now + chrono::Duration::seconds(grace);
    change(app, &old, async |tx| {
        if !queries::revoke(tx, &old.id, revoke_at).await? {
            return Err(Error::Conflict("this API key was revoked meanwhile".into()));
        }
        queries::insert(tx, &new).await?;
        Ok(())
    })
    .await?;
    tracing::info!(api_key.id = %new.id, rotated_from = %old.id, grace_secs = grace, "API key rotated");
    Ok(CreatedKey { secret, key: new })
}

/// Keys newest first: the viewer's own; an admin may ask for one user's or everyone's.
pub async fn list(app: &App, viewer: &Viewer, user_id: Option<&str>) -> Result<Vec<ApiKey>, Error> {
    let target = match (user_id, viewer.is_admin()) {
        (Some(u), true) => Some(u),
        (None, true) => None,
        (Some(u), false) if u != viewer.user_id => {
            return Err(Error::Forbidden(
                "you can only list your own API keys".into(),
            ));
        }
        _ => Some(viewer.user_id.as_str()),
    };
    let mut conn = app.db.get().await?;
    Ok(queries::list(&mut conn, target, LIST_MAX).await?)
}

/// The budget of a key's family, if it has one.
pub async fn budget_of(app: &App, key: &ApiKey) -> Result<Option<Budget>, Error> {
    let mut conn = app.db.get().await?;
    Ok(budget_queries::of_key(&mut conn, &key.family_id).await?)
}

/// Changes `key` in a transaction that tells every instance its owner's access changed
/// ([`change_access`]: cached grants of the key go at once), then that the budgets that apply to
/// calls may have (the key's own).
async fn change<T>(
    app: &App,
    key: &ApiKey,
    body: impl AsyncFnOnce(&mut crate::db::DbConn) -> Result<T, Error>,
) -> Result<T, Error> {
    let out = change_access(app, &key.user_id, body).await?;
    app.events.publish(Event::BudgetsChanged);
    Ok(out)
}
