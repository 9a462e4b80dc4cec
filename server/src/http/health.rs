//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::HttpState;

/// The process is up; `instance` names this server instance (its id in logs and leases).
pub async fn healthz(State(state): State<HttpState>) -> Json<Value> {
    Json(json!({ "status": "ok", "instance": state.app.events.origin() }))
}

/// The process can serve: the database answers, and it is not shutting down.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    if state.app.admission.is_closed() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "shutting down" })),
        );
    }
    match state.app.db.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
            )
        }
    }
}
