//! The web console, built in `console/` and embedded in the binary: the admin and cost
//! dashboards and the user's chat, at `/console` (and `/` leads there). It uses only the public
//! GraphQL API, the statements' CSV and `/graphql/ws`, under the strict policy of
//! [`super::embedded`] with no inline style at all.
//!
//! In `dev`, `[http] console_dir` serves a folder instead (a `console/dist` being worked on),
//! read again on every request, so a rebuilt bundle shows on reload without rebuilding the server.

use std::path::Path as FsPath;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use rust_embed::Embed;

use super::{HttpState, embedded};

#[derive(Embed)]
#[folder = "../console/dist"]
struct Assets;

/// A file of the console: from `[http] console_dir` when set, else from the binary.
async fn read(state: &HttpState, path: &str) -> Option<Vec<u8>> {
    match state.console_dir.as_deref() {
        Some(dir) => tokio::fs::read(FsPath::new(dir).join(path)).await.ok(),
        None => embedded::embedded::<Assets>(path),
    }
}

/// `GET /console`
pub async fn index(State(state): State<HttpState>, headers: HeaderMap, uri: Uri) -> Response {
    embedded::index(read(&state, "index.html").await, &headers, &uri, false)
}

/// `GET /console/assets/{file}`
pub async fn asset(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    match embedded::asset_path(&name) {
        Some(path) => embedded::asset(&path, read(&state, &path).await, &headers, &uri),
        None => embedded::missing(&headers, &uri),
    }
}
