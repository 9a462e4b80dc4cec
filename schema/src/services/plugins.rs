//! Plugins as users and admins see them: the plugin list, the callable models, and test
//! notifications.

use cloudbase_plugin_api::{DeliveryReport, Notification, Severity};

use super::{App, Viewer};
use crate::Error;
use crate::ports::{Destination, ModelRow, PluginRow};

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
