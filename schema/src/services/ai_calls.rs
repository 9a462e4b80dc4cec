//! Call records: users read their own, admins read all.

use chrono::{DateTime, Utc};

use super::{App, Viewer, validate};
use crate::Error;
use crate::db::ai_calls::{self as queries, Filter};
use crate::db::models::AiCall;

/// What an `aiCalls` query may filter on.
#[derive(Debug, Default, Clone)]
pub struct CallFilter {
    /// Admins only: one user's calls.
    pub user_id: Option<String>,
    /// Provider instance.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// One API key's calls.
    pub api_key_id: Option<String>,
    /// `PENDING`, `SUCCEEDED`, `FAILED` or `CANCELLED`.
    pub status: Option<crate::domain::CallStatus>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
}

/// A page of calls, newest first. A user's filter is pinned to their own calls.
pub async fn list(
    app: &App,
    viewer: &Viewer,
    filter: CallFilter,
    first: Option<i32>,
    after: Option<&str>,
) -> Result<(Vec<AiCall>, bool), Error> {
    let limit = validate::page_size(first)?;
    if let Some(a) = after {
        validate::id("after", a)?;
    }
    let user_id = match (&filter.user_id, viewer.is_admin()) {
        (Some(u), true) => Some(u.clone()),
        (None, true) => None,
        (Some(u), false) if u != &viewer.user_id => {
            return Err(Error::Forbidden("you can only list your own calls".into()));
        }
        _ => Some(viewer.user_id.clone()),
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        return Err(Error::bad_input(
            "filter.from",
            "`from` must be before `to`",
        ));
    }
    let db_filter = Filter {
        user_id,
        provider: filter.provider,
        model: filter.model,
        api_key_id: filter.api_key_id,
        status: filter.status,
        from: filter.from.map(|t| t.naive_utc()),
        to: filter.to.map(|t| t.naive_utc()),
    };
    let mut conn = app.db.get().await?;
    let mut items = queries::page(&mut conn, &db_filter, after, limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    Ok((items, more))
}

/// One call, visible to its user and to admins.
pub async fn get(app: &App, viewer: &Viewer, id: &str) -> Result<AiCall, Error> {
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    let call = queries::find(&mut conn, id).await.map_err(|e| match e {
        diesel::result::Error::NotFound => Error::NotFound("AI call"),
        other => other.into(),
    })?;
    if call.user_id != viewer.user_id && !viewer.is_admin() {
        return Err(Error::NotFound("AI call"));
    }
    Ok(call)
}
