//! Plugins: the admin's list, the models users can call, and test notifications.

use async_graphql::{Context, Json, Object, SimpleObject};

use super::ContextExt;
use super::view::{view, views};
use crate::Error;
use crate::domain::BreakerState;
use crate::ports::{ModelRow as CallableModel, PluginKind, PluginRow as PluginInfo, PluginStatus};
use crate::services::plugins;

view!(
    /// Plugin as the API shows it.
    Plugin(PluginInfo)
);

/// A plugin library, or one configured instance of it.
#[Object]
impl Plugin {
    /// The plugin's name (the file name if the library could not be read).
    async fn name(&self) -> &str {
        &self.name
    }

    /// The instance name; null for a library with no instance, or one that failed to load.
    async fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Provider or notifier; null if the library could not be read.
    async fn kind(&self) -> Option<PluginKind> {
        self.kind
    }

    /// The plugin's version.
    async fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// What it does.
    async fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// A mock or test double: never a real model or channel.
    async fn mock(&self) -> bool {
        self.mock
    }

    /// `LOADED`, `FAILED` or `DISABLED`.
    async fn status(&self) -> PluginStatus {
        self.status
    }

    /// Why it failed or is disabled.
    async fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// JSON Schema of the instance settings (`[plugins.<instance>.settings]`).
    async fn config_schema(&self) -> Option<Json<&serde_json::Value>> {
        self.config_schema.as_ref().map(Json)
    }

    /// Names of the secrets it reads from the environment (never their values).
    async fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The library file name.
    async fn file(&self) -> &str {
        &self.file
    }

    /// For a loaded provider instance: its circuit breaker on the server instance that answered
    /// (`CLOSED` until it has failed enough; each server instance has its own).
    async fn breaker(&self, ctx: &Context<'_>) -> Result<Option<BreakerState>, Error> {
        let provider = match (&self.instance, self.kind, self.status) {
            (Some(instance), Some(PluginKind::AiProvider), PluginStatus::Loaded) => instance,
            _ => return Ok(None),
        };
        let app = ctx.app()?;
        Ok(Some(app.breakers.view(provider, app.clock.now()).state))
    }
}

view!(
    /// Model as the API shows it.
    Model(CallableModel)
);

/// A model you can call.
#[Object]
impl Model {
    /// The provider instance to name in a chat.
    async fn provider(&self) -> &str {
        &self.provider
    }

    /// The plugin behind the provider.
    async fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The model id.
    async fn id(&self) -> &str {
        &self.info.id
    }

    /// A name for people.
    async fn display_name(&self) -> &str {
        self.info.display_name.as_deref().unwrap_or(&self.info.id)
    }

    /// Context window in tokens, if known.
    async fn context_window(&self) -> Option<u32> {
        self.info.context_window
    }

    /// Largest completion in tokens, if known.
    async fn max_output_tokens(&self) -> Option<u32> {
        self.info.max_output_tokens
    }

    /// Served by a mock provider (deterministic, not a real model).
    async fn mock(&self) -> bool {
        self.mock
    }
}

/// What happened to a test notification.
#[derive(SimpleObject)]
pub struct DeliveryResult {
    /// The notifier instance used.
    pub channel: String,
    /// Whether the channel accepted it.
    pub ok: bool,
    /// The channel's own words (status, error message).
    pub detail: String,
}

/// Plugin queries.
#[derive(Default)]
pub struct PluginsQuery;

#[Object]
impl PluginsQuery {
    /// Every plugin library and instance, with its status (admin only).
    async fn plugins(&self, ctx: &Context<'_>) -> Result<Vec<Plugin>, Error> {
        plugins::list(ctx.app()?, ctx.viewer()?).map(views)
    }

    /// The provider and model pairs you can call.
    async fn models(&self, ctx: &Context<'_>) -> Result<Vec<Model>, Error> {
        plugins::models(ctx.app()?, ctx.chat_viewer()?).map(views)
    }
}

/// Plugin mutations.
#[derive(Default)]
pub struct PluginsMutation;

#[Object]
impl PluginsMutation {
    /// Sends a test message through a notifier instance and reports the delivery (admin only).
    async fn test_notification(
        &self,
        ctx: &Context<'_>,
        channel: String,
        message: String,
    ) -> Result<DeliveryResult, Error> {
        let report =
            plugins::test_notification(ctx.app()?, ctx.viewer()?, &channel, &message).await?;
        Ok(DeliveryResult {
            channel,
            ok: report.ok,
            detail: report.detail,
        })
    }
}
