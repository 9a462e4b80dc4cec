//! The web console, built in `console/` and embedded in the binary: the admin and cost
//! dashboards and the user's chat, at `/console` (and `/` leads there). It uses only the public
//! GraphQL API, the statements' CSV and `/graphql/ws`, under the strict policy of
//! [`super::embedded`] with no inline style at all.

use axum::extract::Path;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use rust_embed::Embed;

use super::embedded;

#[derive(Embed)]
#[folder = "../console/dist"]
struct Assets;

/// `GET /console`
pub async fn index(headers: HeaderMap, uri: Uri) -> Response {
    embedded::index::<Assets>(&headers, &uri, false)
}

/// `GET /console/assets/{file}`
pub async fn asset(Path(name): Path<String>, headers: HeaderMap, uri: Uri) -> Response {
    embedded::asset::<Assets>(&name, &headers, &uri)
}
