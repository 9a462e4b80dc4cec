//! Plugins as users and admins see them: the plugin list, the callable models, test
//! notifications, and reloads (an admin's `reloadPlugins`, `SIGHUP`, the folder watch).

use cloudbase_plugin_api::{DeliveryReport, Notification, Severity};

use super::audit::{self, Entry};
use super::{App, Viewer};
use crate::Error;
use crate::events::Event;
use crate::ports::{
    Destination, ModelRow, PluginChangeKind, PluginReload, PluginRow, PluginStatus,
};

/// Every plugin library and instance (admin only).
pub fn list(app: &App, viewer: &Viewer) -> Result<Vec<PluginRow>, Error> {
    viewer.require_admin()?;
    Ok(app.plugins.plugins())
}

/// The provider and model pairs the viewer can call.
pub fn models(app: &App, viewer: &Viewer) -> Result<Vec<ModelRow>, Error> {
    let mut models = app.plugins.models();
    if let Some(key) = viewer.key.as_deref() {
        models.retain(|m| key.allows(&m.provider, &m.info.id));
    }
    Ok(models)
}

/// Sends `message` through notifier instance `channel` (admin only) and reports the delivery.
pub async fn test_notification(
    app: &App,
    viewer: &Viewer,
    channel: &str,
    message: &str,
) -> Result<DeliveryReport, Error> {
    viewer.require_admin()?;
    let message = message.trim();
    if message.is_empty() || message.chars().count() > 2000 {
        return Err(Error::bad_input(
            "message",
            "message must be 1-2000 characters",
        ));
    }
    let notification = Notification {
        title: "Test notification".into(),
        body: message.to_owned(),
        severity: Severity::Info,
        timestamp_ms: app.clock.now().timestamp_millis(),
        fields: vec![("sent by".into(), viewer.user_id.clone())],
        link: None,
        recipient: None,
    };
    let report = app
        .plugins
        .notify(channel, notification, Destination::Operator)
        .await
        .inspect_err(|e| count_call_error(app, channel, e))?;
    tracing::info!(channel, ok = report.ok, admin.id = %viewer.user_id, "test notification sent");
    Ok(report)
}

/// Counts a failed call into plugin instance `instance` (`cloudbase_plugin_call_errors_total`),
/// when the failure is the plugin's or its upstream's, not the request's.
pub fn count_call_error(app: &App, instance: &str, error: &Error) {
    if error.is_provider_fault() {
        let labels = [
            ("instance", instance.to_owned()),
            ("error", error.code().as_str().to_owned()),
        ];
        app.metrics.record(|| {
            metrics::counter!("cloudbase_plugin_call_errors_total", &labels).increment(1)
        });
    }
}

/// Reloads the plugins for an admin (`reloadPlugins`; the audit extension records it).
pub async fn reload(app: &App, viewer: &Viewer) -> Result<PluginReload, Error> {
    viewer.require_admin()?;
    tracing::info!(admin.id = %viewer.user_id, "plugin reload asked for");
    run_reload(app, "reloadPlugins").await
}

/// What started a reload nobody asked for over the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// The process received `SIGHUP`.
    Signal,
    /// `plugins_watch_secs` saw the plugins folder change.
    Watch,
}

impl ReloadTrigger {
    /// How the audit row and the logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Signal => "SIGHUP",
            ReloadTrigger::Watch => "plugins_watch",
        }
    }
}

/// Reloads the plugins on a signal or the folder watch, and audits it as a `reloadPlugins` with
/// no user: the trigger is the operation name and the `trigger` argument.
pub async fn reload_unattended(app: &App, trigger: ReloadTrigger) -> Result<PluginReload, Error> {
    let result = run_reload(app, trigger.as_str()).await;
    let entry = Entry {
        actor: None,
        operation_name: Some(trigger.as_str().to_owned()),
        field: "reloadPlugins".into(),
        arguments: serde_json::json!({ "trigger": trigger.as_str() }),
        outcome: match &result {
            Ok(_) => "OK".to_owned(),
            Err(e) => e.code().as_str().to_owned(),
        },
        client_ip: None,
        user_agent: None,
        request_id: uuid::Uuid::now_v7().to_string(),
    };
    if let Err(e) = audit::record(app, entry).await {
        tracing::error!(error = %e, "writing the audit row of a plugin reload failed");
    }
    result
}

/// Runs the reload, then publishes `pluginStatusChanged` for every change and logs each failure
/// once (as a business event, like a plugin that failed at start).
async fn run_reload(app: &App, trigger: &str) -> Result<PluginReload, Error> {
    let reload = app.plugins.reload().await.inspect_err(|e| {
        tracing::warn!(
            target: "cloudbase::event::plugin",
            trigger, error = %e, "plugin reload failed; the plugins in place keep serving"
        );
    })?;
    for change in &reload.changes {
        if change.change == PluginChangeKind::Failed {
            tracing::warn!(
                target: "cloudbase::event::plugin",
                trigger, plugin = %change.name, instance = ?change.instance,
                reason = change.reason.as_deref().unwrap_or(""), "plugin reload failed"
            );
        }
        app.events.publish(Event::PluginStatusChanged {
            name: change.name.clone(),
            instance: change.instance.clone(),
            status: match change.change {
                PluginChangeKind::Removed => PluginStatus::Disabled,
                _ => change.status,
            },
            version: match change.change {
                PluginChangeKind::Removed => None,
                _ => change.version.clone(),
            },
            breaker: None,
            node: Some(app.node.clone()),
            reason: change.reason.clone(),
        });
    }
    let count = |kind| reload.changes.iter().filter(|c| c.change == kind).count();
    tracing::info!(
        target: "cloudbase::event::plugin",
        trigger,
        loaded = count(PluginChangeKind::Loaded),
        replaced = count(PluginChangeKind::Replaced),
        failed = count(PluginChangeKind::Failed),
        disabled = count(PluginChangeKind::Disabled),
        removed = count(PluginChangeKind::Removed),
        "plugins reloaded"
    );
    // A new instance, or a new version with new models, brings its list prices: seeded as at
    // start (rows already there are left alone). The reload itself stands if this fails.
    if !reload.changes.is_empty()
        && let Err(e) = super::pricing::seed_from_plugins(app).await
    {
        tracing::warn!(trigger, error = %e, "seeding the list prices of reloaded plugins failed");
    }
    Ok(reload)
}
