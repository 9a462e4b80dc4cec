//! `/.well-known/jwks.json`: the public keys that verify CloudBase access tokens, for other
//! services. Public, cacheable for a minute (a new key is published at least a minute before it
//! signs), readable from any origin.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::HttpState;

/// The JSON Web Key Set: each Ed25519 key that verifies now or will sign soon.
pub async fn handler(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        Json(state.app.tokens.jwks(state.app.clock.now())),
    )
}
