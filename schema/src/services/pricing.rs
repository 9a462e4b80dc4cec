//! Prices and costs. A call is priced by the row in force when it started; costs are computed in
//! i128 and rounded once, so the same tokens always cost the same, streamed or not.

use chrono::{DateTime, Utc};
use cloudbase_plugin_api::Usage;
use serde::Deserialize;

use super::{App, Viewer, call_reads};
use crate::Error;
use crate::db::models::Price;
use crate::db::{Lazy, prices};
use crate::events::Event;

/// The prices shipped with the server (`schema/data/prices.toml`).
pub const SEED: &str = include_str!("../../data/prices.toml");

/// The price of `provider`/`model` in force at `at`, from the model's price history (read once,
/// then kept until a price is added: [`call_reads`]), on the caller's connection (checked out
/// only to read it).
pub async fn in_force(
    app: &App,
    conn: &mut Lazy<'_>,
    provider: &str,
    model: &str,
    at: chrono::NaiveDateTime,
) -> Result<Option<Price>, Error> {
    let memo = &app.events.call_reads().prices;
    let key = (provider.to_owned(), model.to_owned());
    let history = call_reads::through(memo, key, async || {
        Ok::<_, Error>(std::sync::Arc::new(
            prices::history_of(conn.get().await?, provider, model).await?,
        ))
    })
    .await?;
    Ok(history.iter().find(|p| p.effective_from <= at).cloned())
}

/// The cost of `usage` at `price`, in micro-units, rounded half up once.
pub fn cost_micros(usage: &Usage, price: &Price) -> i64 {
    let prompt = i128::from(usage.prompt_tokens);
    let cached = i128::from(usage.cached_prompt_tokens).min(prompt);
    let completion = i128::from(usage.completion_tokens);
    let total = (prompt - cached) * i128::from(price.input_micros_per_mtok)
        + cached * i128::from(price.cached_input_micros_per_mtok)
        + completion * i128::from(price.output_micros_per_mtok);
    i64::try_from((total + 500_000) / 1_000_000).unwrap_or(i64::MAX)
}

/// Parses a non-negative decimal amount (`"4"`, `"4.25"`, up to 6 decimals) into micro-units.
pub fn parse_micros(field: &'static str, raw: &str) -> Result<i64, Error> {
    let bad = || {
        Error::bad_input(
            field,
            format!("expected a decimal amount with at most 6 decimals, got {raw:?}"),
        )
    };
    let raw = raw.trim();
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty()
        || frac.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

/// Formats micro-units as a decimal string (`4000000` → `"4.000000"`).
pub fn format_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

/// A new price, in decimal strings per 1M tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct NewPrice {
    /// Provider instance.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// Per 1M uncached input tokens.
    pub input: String,
    /// Per 1M cached input tokens.
    pub cached_input: String,
    /// Per 1M output tokens.
    pub output: String,
    /// ISO 4217 code.
    pub currency: String,
    /// In force from.
    pub effective_from: DateTime<Utc>,
    /// Source or reason.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Deserialize)]
struct SeedFile {
    #[serde(default)]
    price: Vec<NewPrice>,
}

fn to_row(app: &App, new: &NewPrice, created_by: Option<&str>) -> Result<Price, Error> {
    let name_ok = |s: &str| !s.trim().is_empty() && s.len() <= 128;
    if !name_ok(&new.provider) {
        return Err(Error::bad_input(
            "input.provider",
            "provider must be 1-128 characters",
        ));
    }
    if !name_ok(&new.model) {
        return Err(Error::bad_input(
            "input.model",
            "model must be 1-128 characters",
        ));
    }
    if new.currency.len() != 3 || !new.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::bad_input(
            "input.currency",
            "currency must be an ISO 4217 code such as CNY or USD",
        ));
    }
    Ok(Price {
        id: uuid::Uuid::now_v7().to_string(),
        provider: new.provider.trim().to_owned(),
        model: new.model.trim().to_owned(),
        input_micros_per_mtok: parse_micros("input.input", &new.input)?,
        cached_input_micros_per_mtok: parse_micros("input.cachedInput", &new.cached_input)?,
        output_micros_per_mtok: parse_micros("input.output", &new.output)?,
        currency: new.currency.clone(),
        effective_from: crate::clock::truncate_micros(new.effective_from).naive_utc(),
        created_at: app.now(),
        created_by: created_by.map(str::to_owned),
        note: new.note.clone(),
    })
}

/// Adds the rows of a seed file that are not there yet; returns how many it added.
pub async fn seed(app: &App, toml_text: &str) -> Result<usize, Error> {
    let file: SeedFile = toml::from_str(toml_text)
        .map_err(|e| Error::bad_input("prices_file", format!("invalid price file: {e}")))?;
    let rows = file
        .price
        .iter()
        .map(|new| to_row(app, new, None))
        .collect::<Result<Vec<_>, _>>()?;
    seed_rows(app, &rows).await
}

/// Adds the list prices provider plugins publish on their models ([`ModelInfo::price`]), each
/// for the provider instance that serves the model, with the same rule as [`seed`]. An instance
/// publishes prices in its own currency (Kimi's `global` region in USD, `cn` in CNY), so an
/// instance of any name gets the right rows. A price that does not parse is logged and skipped:
/// a plugin's bad data never stops the server. Returns how many rows it added.
///
/// [`ModelInfo::price`]: cloudbase_plugin_api::ModelInfo::price
pub async fn seed_from_plugins(app: &App) -> Result<usize, Error> {
    let mut rows = Vec::new();
    for model in app.plugins.models() {
        let Some(price) = model.info.price else {
            continue;
        };
        let row = DateTime::parse_from_rfc3339(&price.effective_from)
            .map_err(|e| Error::bad_input("effective_from", e.to_string()))
            .and_then(|from| {
                let new = NewPrice {
                    provider: model.provider.clone(),
                    model: model.info.id.clone(),
                    input: price.input,
                    cached_input: price.cached_input,
                    output: price.output,
                    currency: price.currency,
                    effective_from: from.with_timezone(&Utc),
                    note: price.note,
                };
                to_row(app, &new, None)
            });
        match row {
            Ok(row) => rows.push(row),
            Err(e) => tracing::warn!(
                provider = %model.provider, model = %model.info.id, error = %e,
                "a plugin published an invalid list price; skipped"
            ),
        }
    }
    seed_rows(app, &rows).await
}

/// Adds each of `rows` unless a row exists for its provider, model and `effective_from`: the one
/// seeding path of [`seed`] and [`seed_from_plugins`]. Returns how many it added.
async fn seed_rows(app: &App, rows: &[Price]) -> Result<usize, Error> {
    let mut conn = app.db.get().await?;
    let mut added = 0;
    for row in rows {
        if prices::insert_if_absent(&mut conn, row).await? {
            added += 1;
        }
    }
    drop(conn);
    if added > 0 {
        app.events.publish(Event::PricesChanged);
    }
    Ok(added)
}

/// Adds a price (admin only). Rows are never edited: a change is a new row from a later time.
pub async fn add(app: &App, viewer: &Viewer, new: NewPrice) -> Result<Price, Error> {
    viewer.require_admin()?;
    let row = to_row(app, &new, Some(&viewer.user_id))?;
    let mut conn = app.db.get().await?;
    if !prices::insert_if_absent(&mut conn, &row).await? {
        return Err(Error::Conflict(format!(
            "a price for {}/{} starting at that time already exists",
            row.provider, row.model
        )));
    }
    drop(conn);
    app.events.publish(Event::PricesChanged);
    tracing::info!(price.id = %row.id, provider = %row.provider, model = %row.model, admin.id = %viewer.user_id, "price added");
    Ok(row)
}

/// Price history, newest start first.
pub async fn history(
    app: &App,
    provider: Option<&str>,
    model: Option<&str>,
) -> Result<Vec<Price>, Error> {
    let mut conn = app.db.get().await?;
    Ok(prices::history(&mut conn, provider, model).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: i64, cached: i64, output: i64) -> Price {
        Price {
            id: String::new(),
            provider: "p".into(),
            model: "m".into(),
            input_micros_per_mtok: input,
            cached_input_micros_per_mtok: cached,
            output_micros_per_mtok: output,
            currency: "CNY".into(),
            effective_from: chrono::NaiveDateTime::default(),
            created_at: chrono::NaiveDateTime::default(),
            created_by: None,
            note: None,
        }
    }

    #[test]
    fn cost_is_exact_and_rounded_once() {
        // 1000 uncached at 4.00/M, 500 cached at 1.00/M, 250 out at 16.00/M:
        // 1000*4_000_000 + 500*1_000_000 + 250*16_000_000 = 8_500_000_000 → 8500 micros.
        let usage = Usage {
            prompt_tokens: 1500,
            cached_prompt_tokens: 500,
            completion_tokens: 250,
        };
        assert_eq!(
            cost_micros(&usage, &price(4_000_000, 1_000_000, 16_000_000)),
            8500
        );
        // 1 token at 0.4 micros rounds to 0; 2 tokens at 0.75 micros = 1.5 → 2 (half up, once).
        let one = Usage {
            prompt_tokens: 1,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
        };
        assert_eq!(cost_micros(&one, &price(400_000, 0, 0)), 0);
        let two = Usage {
            prompt_tokens: 2,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
        };
        assert_eq!(cost_micros(&two, &price(750_000, 0, 0)), 2);
        // Cached tokens above the prompt count are clamped.
        let odd = Usage {
            prompt_tokens: 10,
            cached_prompt_tokens: 50,
            completion_tokens: 0,
        };
        assert_eq!(cost_micros(&odd, &price(1_000_000, 0, 0)), 0);
    }

    #[test]
    fn decimal_amounts_parse_exactly() {
        assert_eq!(parse_micros("x", "4").unwrap(), 4_000_000);
        assert_eq!(parse_micros("x", "0.000001").unwrap(), 1);
        assert_eq!(parse_micros("x", "16.25").unwrap(), 16_250_000);
        for bad in ["", "-1", "1.2345678", "1e3", "abc", ".5"] {
            assert!(parse_micros("x", bad).is_err(), "{bad}");
        }
        assert_eq!(format_micros(8500), "0.008500");
        assert_eq!(format_micros(16_250_000), "16.250000");
    }

    #[test]
    fn the_seed_file_parses() {
        let file: SeedFile = toml::from_str(SEED).unwrap();
        assert!(file.price.iter().any(|p| p.provider == "mock"));
        for p in &file.price {
            for amount in [&p.input, &p.cached_input, &p.output] {
                parse_micros("x", amount).unwrap();
            }
        }
    }
}
