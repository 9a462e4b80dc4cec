//! Live subscriptions: call records, spend against budgets, budget alerts and plugin status,
//! filtered on the server by who is subscribed (a user only ever receives their own). Each
//! stream ends, with `UNAUTHENTICATED`, when the access token it was opened with expires.

use std::sync::Arc;

use async_graphql::futures_util::FutureExt as _;
use async_graphql::futures_util::future;
use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::{Context, ID, SimpleObject, Subscription};
use tokio::sync::broadcast::error::RecvError;

use super::ContextExt;
use super::ai_calls::AiCall;
use super::budgets::Budget;
use super::view::views;
use crate::Error;
use crate::db::ai_calls;
use crate::events::Event;
use crate::services::{App, Viewer, budgets};

/// A budget crossed one of its thresholds.
#[derive(SimpleObject, Clone)]
pub struct BudgetAlertEvent {
    /// The budget.
    pub budget_id: ID,
    /// Its user (null for a global budget).
    pub user_id: Option<ID>,
    /// The threshold crossed, in percent.
    pub threshold: i64,
    /// How much of the limit is used now, in percent.
    pub percent_used: i64,
}

/// A plugin library or instance changed status.
#[derive(SimpleObject, Clone)]
pub struct PluginStatusEvent {
    /// Plugin name.
    pub name: String,
    /// Instance, if any.
    pub instance: Option<String>,
    /// Where it stands now. A library or instance that a reload removed is `DISABLED`.
    pub status: crate::domain::PluginStatus,
    /// For a provider instance whose circuit breaker changed: where the breaker stands now.
    pub breaker: Option<crate::domain::BreakerState>,
    /// The server instance (`host:port`) it happened on, when the change is that instance's own
    /// (breakers and reloads are per instance).
    pub node: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
    /// The version it is on now (null when removed, or when its library could not be read).
    pub version: Option<String>,
}

pub(crate) fn app_of(ctx: &Context<'_>) -> Result<Arc<App>, Error> {
    ctx.data::<Arc<App>>()
        .cloned()
        .map_err(|_| Error::Internal("schema built without App".into()))
}

/// Every event from now on; a subscriber that fell behind gets a `LAGGED` error and goes on.
pub(crate) fn events(app: &Arc<App>) -> BoxStream<'static, Result<Arc<Event>, Error>> {
    let state = (app.events.subscribe(), app.clone());
    stream::unfold(state, |(mut rx, app)| async move {
        match rx.recv().await {
            Ok(event) => Some((Ok(event), (rx, app))),
            Err(RecvError::Lagged(missed)) => {
                app.metrics.record(|| {
                    metrics::counter!("cloudbase_event_bus_lagged_events_total").increment(missed);
                });
                Some((Err(Error::Lagged(missed)), (rx, app)))
            }
            Err(RecvError::Closed) => None,
        }
    })
    .boxed()
}

/// Ends `items` when the viewer's access token expires, with a last `UNAUTHENTICATED` error.
pub(crate) fn until_expiry<T: Send + 'static>(
    viewer: &Viewer,
    items: BoxStream<'static, Result<T, Error>>,
) -> BoxStream<'static, async_graphql::Result<T>> {
    let left = viewer
        .expires_at
        .map(|at| (at - chrono::Utc::now()).to_std().unwrap_or_default());
    let items = items.map(|item| item.map_err(async_graphql::Error::from));
    let Some(left) = left else {
        return items.boxed();
    };
    let deadline = Box::pin(tokio::time::sleep(left));
    stream::unfold(Some((items, deadline)), |state| async move {
        let (mut items, mut deadline) = state?;
        tokio::select! {
            item = items.next() => item.map(|i| (i, Some((items, deadline)))),
            () = &mut deadline => Some((
                Err(async_graphql::Error::from(Error::Unauthenticated(
                    "access token expired; subscribe again with a new one".into(),
                ))),
                None,
            )),
        }
    })
    .boxed()
}

/// Whose calls a subscriber may watch: a user their own; an admin anyone's (or everyone's).
fn scope(viewer: &Viewer, asked: Option<ID>) -> Result<Option<String>, Error> {
    match (asked, viewer.is_admin()) {
        (Some(user), true) => Ok(Some(user.0)),
        (None, true) => Ok(None),
        (Some(user), false) if user.0 != viewer.user_id => {
            Err(Error::Forbidden("you can only watch your own calls".into()))
        }
        _ => Ok(Some(viewer.user_id.clone())),
    }
}

/// Live subscriptions.
#[derive(Default)]
pub struct EventsSubscription;

#[Subscription]
impl EventsSubscription {
    /// Your calls as they start and finish; an admin may watch one user (`userId`) or everyone,
    /// and narrow by provider or model.
    async fn ai_call_updated(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        provider: Option<String>,
        model: Option<String>,
    ) -> Result<BoxStream<'static, async_graphql::Result<AiCall>>, Error> {
        let (app, viewer) = (app_of(ctx)?, ctx.viewer()?.clone());
        let who = scope(&viewer, user_id)?;
        // The cheap test runs in place for every event; only a wanted one gets a (boxed) future
        // for its read, so an idle subscription holds no room for that read's state.
        let wanted = move |item: &Result<Arc<Event>, Error>| {
            let Ok(event) = item else { return true };
            let Event::AiCallUpdated {
                user_id,
                provider: p,
                model: m,
                ..
            } = &**event
            else {
                return false;
            };
            who.as_ref().is_none_or(|w| w == user_id)
                && provider.as_ref().is_none_or(|x| x == p)
                && model.as_ref().is_none_or(|x| x == m)
        };
        let filtered = events(&app)
            .filter(move |item| future::ready(wanted(item)))
            .filter_map(move |item| {
                let app = app.clone();
                async move {
                    let event = match item {
                        Ok(event) => event,
                        Err(e) => return Some(Err(e)),
                    };
                    let Event::AiCallUpdated { call_id, .. } = &*event else {
                        return None;
                    };
                    // One read for every subscriber of this event (a socket's worth of
                    // subscriptions, or thousands of them, cost one query).
                    let cell = app.events.shared_reads().cell(&event);
                    let record = cell
                        .get_or_init(async || {
                            app.metrics.record(|| {
                                metrics::counter!("cloudbase_subscription_record_reads_total")
                                    .increment(1);
                            });
                            let mut conn = app.db.get().await.ok()?;
                            ai_calls::find(&mut conn, call_id).await.ok().map(Arc::new)
                        })
                        .await;
                    record.clone().map(|r| Ok(r.into()))
                }
                .boxed()
            });
        Ok(until_expiry(&viewer, filtered.boxed()))
    }

    /// Your budgets (spent, reserved, remaining) after each of your calls settles.
    async fn usage_updated(
        &self,
        ctx: &Context<'_>,
    ) -> Result<BoxStream<'static, async_graphql::Result<Vec<Budget>>>, Error> {
        let (app, viewer) = (app_of(ctx)?, ctx.viewer()?.clone());
        let me = viewer.clone();
        let mine = viewer.user_id.clone();
        let filtered = events(&app)
            .filter(move |item| {
                future::ready(match item {
                    Err(_) => true,
                    Ok(event) => {
                        matches!(&**event, Event::UsageUpdated { user_id } if *user_id == mine)
                    }
                })
            })
            .filter_map(move |item| {
                let (app, me) = (app.clone(), me.clone());
                async move {
                    match item {
                        Err(e) => Some(Err(e)),
                        Ok(_) => Some(budgets::list(&app, &me, Some(&me.user_id)).await.map(views)),
                    }
                }
                .boxed()
            })
            .boxed();
        Ok(until_expiry(&viewer, filtered))
    }

    /// A budget crossed a threshold: yours, or any (global ones included) for an admin.
    async fn budget_alert(
        &self,
        ctx: &Context<'_>,
    ) -> Result<BoxStream<'static, async_graphql::Result<BudgetAlertEvent>>, Error> {
        let (app, viewer) = (app_of(ctx)?, ctx.viewer()?.clone());
        let me = viewer.clone();
        let filtered = events(&app)
            .filter_map(move |item| {
                let me = me.clone();
                async move {
                    match item {
                        Err(e) => Some(Err(e)),
                        Ok(event) => match &*event {
                            Event::BudgetAlert {
                                budget_id,
                                user_id,
                                threshold,
                                percent_used,
                            } if me.is_admin()
                                || user_id.as_deref() == Some(me.user_id.as_str()) =>
                            {
                                Some(Ok(BudgetAlertEvent {
                                    budget_id: ID(budget_id.clone()),
                                    user_id: user_id.clone().map(ID),
                                    threshold: *threshold,
                                    percent_used: *percent_used,
                                }))
                            }
                            _ => None,
                        },
                    }
                }
            })
            .boxed();
        Ok(until_expiry(&viewer, filtered))
    }

    /// Plugin libraries and instances changing status or version, as a reload changes them
    /// (admin only).
    async fn plugin_status_changed(
        &self,
        ctx: &Context<'_>,
    ) -> Result<BoxStream<'static, async_graphql::Result<PluginStatusEvent>>, Error> {
        let (app, viewer) = (app_of(ctx)?, ctx.viewer()?.clone());
        viewer.require_admin()?;
        let filtered = events(&app)
            .filter_map(|item| async move {
                match item {
                    Err(e) => Some(Err(e)),
                    Ok(event) => match &*event {
                        Event::PluginStatusChanged {
                            name,
                            instance,
                            status,
                            breaker,
                            node,
                            reason,
                            version,
                        } => Some(Ok(PluginStatusEvent {
                            name: name.clone(),
                            instance: instance.clone(),
                            status: *status,
                            breaker: *breaker,
                            node: node.clone(),
                            reason: reason.clone(),
                            version: version.clone(),
                        })),
                        _ => None,
                    },
                }
            })
            .boxed();
        Ok(until_expiry(&viewer, filtered))
    }
}
