//! `GET /statements/{YYYY-MM}.csv?userId=…`: a monthly statement as CSV, for the same bearer
//! token as GraphQL (yours, or any user's for an admin).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudbase_schema::error::Code;
use cloudbase_schema::services::{Auth, auth, usage};
use serde::Deserialize;

use super::HttpState;
use super::error::{MediaType, json_error};

/// The query string.
#[derive(Deserialize)]
pub struct Params {
    /// Whose statement (admins); the caller's own when absent.
    #[serde(rename = "userId")]
    user_id: Option<String>,
}

fn status_of(code: Code) -> StatusCode {
    match code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden | Code::MfaRequired | Code::PasswordChangeRequired => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::BadUserInput => StatusCode::BAD_REQUEST,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Serves one statement.
pub async fn csv(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(file): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let Some(month) = file.strip_suffix(".csv") else {
        return json_error(
            StatusCode::NOT_FOUND,
            MediaType::Json,
            "NOT_FOUND",
            "statements are served as /statements/YYYY-MM.csv",
        );
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let viewer = match auth::authenticate(&state.app, authorization, None).await {
        Ok(Auth::User(viewer)) => viewer,
        Ok(Auth::Anonymous) => {
            return json_error(
                StatusCode::UNAUTHORIZED,
                MediaType::Json,
                "UNAUTHENTICATED",
                "authentication required",
            );
        }
        Ok(Auth::Rejected(why)) => {
            return json_error(
                StatusCode::UNAUTHORIZED,
                MediaType::Json,
                "UNAUTHENTICATED",
                &why,
            );
        }
        Err(e) => {
            return json_error(
                status_of(e.code()),
                MediaType::Json,
                e.code().as_str(),
                "authentication is unavailable",
            );
        }
    };
    let statement = match viewer.require_nothing_due() {
        Ok(viewer) => usage::statement(&state.app, viewer, params.user_id.as_deref(), month).await,
        Err(e) => Err(e),
    };
    match statement {
        Ok(statement) => {
            let disposition = format!(
                "attachment; filename=\"statement-{}-{}.csv\"",
                statement.user_id, statement.month
            );
            let mut response = (StatusCode::OK, usage::statement_csv(&statement)).into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Err(e) => {
            let code = e.code();
            let message = if code == Code::Internal {
                tracing::error!(error = %e, "statement failed");
                "internal error".to_owned()
            } else {
                e.to_string()
            };
            json_error(status_of(code), MediaType::Json, code.as_str(), &message)
        }
    }
}
