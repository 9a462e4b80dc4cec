//! Plugins: the admin's list, the models users can call, test notifications, and reloads.

use async_graphql::{Context, Json, Object, SimpleObject};

use super::ContextExt;
use super::view::{view, views};
use crate::Error;
use crate::domain::BreakerState;
use crate::ports::{
    ModelRow as CallableModel, PluginChange as Change, PluginChangeKind, PluginKind,
    PluginRow as PluginInfo, PluginStatus,
};
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

view!(
    /// PluginChange as the API shows it.
    PluginChange(Change)
);

/// One plugin library or instance that a reload changed.
#[Object]
impl PluginChange {
    /// The plugin's name.
    async fn name(&self) -> &str {
        &self.name
    }

    /// The instance; null for a library.
    async fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// What happened to it.
    async fn change(&self) -> PluginChangeKind {
        self.change
    }

    /// Where it stands now: an instance whose new version failed is `LOADED` on its old one.
    async fn status(&self) -> PluginStatus {
        self.status
    }

    /// Its version before the reload.
    async fn previous_version(&self) -> Option<&str> {
        self.previous_version.as_deref()
    }

    /// The version serving (or listed) now.
    async fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Why it failed or is disabled.
    async fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

/// What `reloadPlugins` did.
#[derive(SimpleObject)]
pub struct PluginReloadResult {
    /// Every library and instance that changed; an empty list when nothing did.
    pub changes: Vec<PluginChange>,
    /// The plugin list after the reload.
    pub plugins: Vec<Plugin>,
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

    /// Loads new and changed plugin libraries beside the running ones and reads the instance
    /// settings again (from the config file the server started with), then swaps them in: new
    /// calls go to the new versions while calls in flight finish on the old ones. A library or
    /// instance that fails keeps its old version serving, and the result says why (admin only;
    /// `SIGHUP` does the same).
    async fn reload_plugins(&self, ctx: &Context<'_>) -> Result<PluginReloadResult, Error> {
        let reload = plugins::reload(ctx.app()?, ctx.viewer()?).await?;
        Ok(PluginReloadResult {
            changes: views(reload.changes),
            plugins: views(reload.plugins),
        })
    }
}
