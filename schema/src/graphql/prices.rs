//! Prices: the effective-dated price table and the admin's `addPrice`.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::money::Micros;
use super::view::{view, views};
use crate::Error;
use crate::db::models::Price as PriceRow;
use crate::services::pricing::{self, NewPrice};

view!(
    /// Price as the API shows it.
    Price(PriceRow)
);

/// What a provider's model costs from `effectiveFrom` until a later price.
#[Object]
impl Price {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    /// Provider instance.
    async fn provider(&self) -> &str {
        &self.provider
    }
    /// Model.
    async fn model(&self) -> &str {
        &self.model
    }
    /// Micro-units per 1M uncached input tokens.
    async fn input_per_mtok(&self) -> Micros {
        Micros(self.input_micros_per_mtok)
    }
    /// Micro-units per 1M cached input tokens.
    async fn cached_input_per_mtok(&self) -> Micros {
        Micros(self.cached_input_micros_per_mtok)
    }
    /// Micro-units per 1M output tokens.
    async fn output_per_mtok(&self) -> Micros {
        Micros(self.output_micros_per_mtok)
    }
    /// ISO 4217 code.
    async fn currency(&self) -> &str {
        &self.currency
    }
    /// In force from.
    async fn effective_from(&self) -> DateTime<Utc> {
        self.effective_from.and_utc()
    }
    /// When the row was added.
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at.and_utc()
    }
    /// Source or reason.
    async fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }
}

/// A new price. Amounts are decimal strings per 1M tokens (`"4.00"`), exact to 6 decimals.
#[derive(InputObject)]
pub struct AddPriceInput {
    /// Provider instance.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Per 1M uncached input tokens.
    pub input: String,
    /// Per 1M cached input tokens.
    pub cached_input: String,
    /// Per 1M output tokens.
    pub output: String,
    /// ISO 4217 code.
    pub currency: String,
    /// In force from (may be in the future).
    pub effective_from: DateTime<Utc>,
    /// Source or reason.
    pub note: Option<String>,
}

/// Price queries.
#[derive(Default)]
pub struct PricesQuery;

#[Object]
impl PricesQuery {
    /// Price history, newest first per model, optionally for one provider and model.
    async fn prices(
        &self,
        ctx: &Context<'_>,
        provider: Option<String>,
        model: Option<String>,
    ) -> Result<Vec<Price>, Error> {
        ctx.viewer()?;
        pricing::history(ctx.app()?, provider.as_deref(), model.as_deref())
            .await
            .map(views)
    }
}

/// Price mutations.
#[derive(Default)]
pub struct PricesMutation;

#[Object]
impl PricesMutation {
    /// Adds a price in force from `effectiveFrom` (admin only). Past calls keep their price.
    async fn add_price(&self, ctx: &Context<'_>, input: AddPriceInput) -> Result<Price, Error> {
        let new = NewPrice {
            provider: input.provider,
            model: input.model,
            input: input.input,
            cached_input: input.cached_input,
            output: input.output,
            currency: input.currency,
            effective_from: input.effective_from,
            note: input.note,
        };
        pricing::add(ctx.app()?, ctx.viewer()?, new)
            .await
            .map(Into::into)
    }
}
