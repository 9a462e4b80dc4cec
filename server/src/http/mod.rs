//! The axum router and the middleware every request passes through.
//!
//! - [`graphql`]: `GET`/`POST /graphql`, per the GraphQL-over-HTTP spec.
//! - [`client_addr`]: the client's address: the peer, or the hop a trusted proxy added.
//! - [`ws`]: `/graphql/ws`, subscriptions over WebSocket.
//! - [`sockets`]: the open WebSockets, closed when their user's access changes.
//! - [`console`]: the web console at `/console` (admin and cost dashboards, the user's chat).
//! - [`playground`]: the offline GraphiQL page (off by default in `prod`).
//! - [`embedded`]: how both are served from the binary, under a strict CSP.
//! - [`openai`]: the OpenAI-compatible `/v1` door (chat completions and models) for API keys.
//! - [`statements`]: monthly statements as CSV.
//! - [`metrics`]: `/metrics`, Prometheus text, for loopback or a bearer token.
//! - [`health`]: `/healthz` (alive) and `/readyz` (database reachable).
//! - [`jwks`]: `/.well-known/jwks.json`, the public keys of access tokens.
//! - [`error`]: JSON error responses outside GraphQL execution.
//! - [`listen`]: the accept loop, with the header-read timeout and graceful shutdown.

pub mod client_addr;
pub mod console;
pub mod embedded;
pub mod error;
pub mod graphql;
pub mod health;
pub mod jwks;
pub mod listen;
pub mod metrics;
pub mod openai;
pub mod playground;
pub mod sockets;
pub mod statements;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use cloudbase_schema::{App, AppSchema, build_schema};
use tracing::Instrument as _;

use self::client_addr::ClientAddress;
use crate::config::{Config, ConfigError, Environment};

/// What handlers share: one pointer, since axum clones the state for every extractor and layer
/// of every request (a clone of the fields was a reference count each).
#[derive(Clone)]
pub struct HttpState(Arc<Shared>);

impl std::ops::Deref for HttpState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`HttpState`].
pub struct Shared {
    /// The executable schema (holds the `App`).
    pub schema: AppSchema,
    /// The services.
    pub app: Arc<App>,
    /// Introspection for everyone in `dev`, admins only in `prod`.
    pub env: Environment,
    /// Longest a GraphQL request may run.
    pub request_timeout: Duration,
    /// Finds the client's address (the peer, or behind trusted proxies `X-Forwarded-For`).
    pub client_address: Arc<ClientAddress>,
    /// Deepest bracket nesting of a document (checked before anything parses it).
    pub max_nesting: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request body.
    pub body_read_timeout: Duration,
    /// `/metrics`, unless turned off.
    pub metrics: Option<metrics::MetricsEndpoint>,
    /// WebSocket limits.
    pub ws: WsLimits,
    /// The open WebSockets.
    pub sockets: Arc<sockets::Sockets>,
    /// `[http] console_dir`: serve the console from this folder (dev only).
    pub console_dir: Option<Arc<std::path::Path>>,
}

/// Limits on one WebSocket.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    /// Longest wait for `connection_init`.
    pub init_timeout: Duration,
    /// Most operations running at once.
    pub max_operations: usize,
    /// Largest message.
    pub max_message_bytes: usize,
}

/// The id of one HTTP request, also sent back as `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Builds the router; `metrics` renders the instance's recorder at `/metrics` (none: metrics
/// are off), and `sockets` holds the open WebSockets (its watcher runs beside the server).
/// Fails on a setting that does not parse (`[http] proxy_networks`).
pub fn router(
    app: Arc<App>,
    config: &Config,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    sockets: Arc<sockets::Sockets>,
) -> Result<Router, ConfigError> {
    let metrics = metrics.map(|handle| metrics::MetricsEndpoint {
        handle,
        loopback: config.metrics.loopback,
        token: config.metrics.token.as_ref().map(|t| Arc::from(t.expose())),
    });
    let state = HttpState(Arc::new(Shared {
        schema: build_schema(app.clone(), config.limits()),
        app,
        env: config.env,
        request_timeout: config.http.request_timeout(),
        client_address: Arc::new(ClientAddress::new(
            config.http.proxy_hops(),
            config.http.proxy_networks()?,
        )),
        max_nesting: config.graphql.max_nesting,
        max_body_bytes: config.http.max_body_bytes,
        body_read_timeout: config.http.body_read_timeout(),
        metrics,
        ws: WsLimits {
            init_timeout: config.http.ws_init_timeout(),
            max_operations: config.http.ws_max_operations,
            max_message_bytes: config.http.max_body_bytes,
        },
        sockets,
        console_dir: config.http.console_dir.as_deref().map(Arc::from),
    }));
    // What pages of other origins may call from the browser, when `[http] cors_origins` lets them.
    let api = Router::new()
        .route(
            "/graphql",
            get(graphql::get_handler).post(graphql::post_handler),
        )
        .route("/statements/{file}", get(statements::csv))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*name}", get(openai::model));
    let cors = config.http.cors_origins()?;
    let api = match cors.is_empty() {
        true => api,
        false => api.layer(cors_layer(cors)),
    };
    let routes = api
        .route("/graphql/ws", get(ws::handler))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/.well-known/jwks.json", get(jwks::handler))
        .route("/metrics", get(metrics::handler))
        .route("/console", get(console::index))
        .route("/console/", get(console::index))
        .route("/console/assets/{*file}", get(console::asset))
        .route("/", get(|| async { Redirect::temporary("/console") }));
    let routes = match config.playground() {
        true => routes
            .route("/playground", get(playground::index))
            .route("/playground/", get(playground::index))
            .route("/playground/assets/{*file}", get(playground::asset)),
        false => routes
            .route("/playground", get(playground::turned_off))
            .route("/playground/", get(playground::turned_off))
            .route("/playground/{*rest}", get(playground::turned_off)),
    };
    Ok(routes
        .layer(DefaultBodyLimit::max(config.http.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), request_id))
        .with_state(state))
}

/// CORS for the listed origins only: the methods and headers the API uses, the response headers a
/// client reads (its request id, and when to retry), and preflights cached for ten minutes. No
/// credentials: the API takes bearer tokens, never cookies. WebSockets are not subject to CORS;
/// their operations are authorised by the token in `connection_init`.
fn cors_layer(origins: Vec<axum::http::HeaderValue>) -> tower_http::cors::CorsLayer {
    use axum::http::{Method, header};
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// The request's id, client address and user agent, for sessions, logs and records.
pub fn request_meta(
    state: &HttpState,
    headers: &axum::http::HeaderMap,
    peer: std::net::SocketAddr,
    request_id: &RequestId,
) -> cloudbase_schema::services::RequestMeta {
    cloudbase_schema::services::RequestMeta {
        request_id: request_id.0.clone(),
        client_ip: Some(state.client_address.of(headers, peer).to_string()),
        user_agent: headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    }
}

/// Gives every request an id (the caller's `x-request-id` if it is sane, else a UUIDv7), runs it
/// in a span naming the instance and the id (so its log entries carry both), and logs one line
/// per request.
async fn request_id(State(state): State<HttpState>, mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = request.method().clone();
    let uri = request.uri().clone();
    request.extensions_mut().insert(RequestId(id.clone()));
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = std::time::Instant::now();
    let span =
        tracing::info_span!("request", instance = %state.app.events.origin(), request.id = %id);
    // One request: at most one pooled connection at a time (`db::held`).
    let mut response = cloudbase_schema::db::held::scope(next.run(request).instrument(span)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    let status = response.status();
    // Only the standard methods get a label of their own: clients may send any token.
    let method_label = match method.as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "OTHER",
    };
    state.app.metrics.request(
        (
            "cloudbase_http_requests_total",
            "cloudbase_http_request_duration_seconds",
        ),
        [
            ("method", method_label),
            (
                "route",
                route.as_ref().map_or("unmatched", MatchedPath::as_str),
            ),
        ],
        ("status", status.as_str()),
        elapsed,
    );
    tracing::debug!(request.id = %id, %method, path = %uri.path(), status = status.as_u16(), latency_ms, "request");
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
