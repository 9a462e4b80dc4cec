//! Plugins as users and admins see them: the plugin list, the callable models, and test
//! notifications.

use cloudbase_plugin_api::{DeliveryReport, Notification, Severity};

use super::{App, Viewer};
use crate::Error;
use crate::plugins::{ModelRow, PluginRow};

/// Every plugin library and instance (admin only).
pub fn list(app: &App, viewer: &Viewer) -> Result<Vec<PluginRow>, Error> {
    viewer.require_admin()?;
    Ok(app.plugins.plugins())
}

/// The provider and model pairs the viewer can call.
pub fn models(app: &App, viewer: &Viewer) -> Result<Vec<ModelRow>, Error> {
    let _ = viewer;
    Ok(app.plugins.models())
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
    };
    let report = app.plugins.notify(channel, notification).await?;
    tracing::info!(channel, ok = report.ok, admin.id = %viewer.user_id, "test notification sent");
    Ok(report)
}
