//! The GraphiQL playground, built in `playground/` and embedded in the binary (no CDN, no Node at
//! build time), under the strict policy of [`super::embedded`]. Served only when
//! `[http] playground` is on (by default in `dev`, not in `prod`); otherwise `/playground` is a
//! 404. GraphiQL's dialogs add one inline style, admitted by the page's nonce.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use rust_embed::Embed;

use super::embedded;
use super::error::{MediaType, json_error};

#[derive(Embed)]
#[folder = "../playground/dist"]
struct Assets;

/// `GET /playground`
pub async fn index(headers: HeaderMap, uri: Uri) -> Response {
    embedded::index(
        embedded::embedded::<Assets>("index.html"),
        &headers,
        &uri,
        true,
    )
}

/// `GET /playground/assets/{file}`
pub async fn asset(Path(name): Path<String>, headers: HeaderMap, uri: Uri) -> Response {
    match embedded::asset_path(&name) {
        Some(path) => embedded::asset(&path, embedded::embedded::<Assets>(&path), &headers, &uri),
        None => embedded::missing(&headers, &uri),
    }
}

/// `/playground` when `[http] playground` is off.
pub async fn turned_off() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        MediaType::Json,
        "NOT_FOUND",
        "the playground is not served here ([http] playground = false)",
    )
}
