//! The floor: the least a gateway on this stack can do per call. Over GraphQL, `chat` forwards to
//! the upstream with reqwest and does one INSERT; `chatStream` forwards SSE deltas and INSERTs at
//! the end. Over REST, `POST /v1/chat/completions` does the same with OpenAI's body: it forwards
//! the request, passes the reply (or the SSE bytes) through, and INSERTs once. It uses CloudBase's
//! pool (same SQLite pragmas, same Postgres driver), so the comparison is about everything else.
//! Usage: `floor LISTEN UPSTREAM_URL DATABASE_URL`.

use std::time::{SystemTime, UNIX_EPOCH};

use async_graphql::futures_util::{Stream, StreamExt};

use async_graphql::{Context, Object, Schema, Subscription};
use async_graphql_axum::{GraphQL, GraphQLSubscription};
use axum::Router;
use axum::serve::ListenerExt as _;
use cloudbase_schema::db::{DbConfig, DbPool};
use cloudbase_schema::db_run;
use diesel::ExpressionMethods;
use serde_json::{Value, json};

diesel::table! {
    floor_calls (id) {
        id -> Text,
        tokens -> BigInt,
        created_at -> BigInt,
    }
}

struct Floor {
    http: reqwest::Client,
    upstream: String,
    db: DbPool,
}

impl Floor {
    async fn record(&self, tokens: i64) -> async_graphql::Result<()> {
        use diesel_async::RunQueryDsl as _;
        let mut conn = self.db.get().await?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default();
        db_run!(&mut conn, |c| {
            diesel::insert_into(floor_calls::table)
                .values((
                    floor_calls::id.eq(&id),
                    floor_calls::tokens.eq(tokens),
                    floor_calls::created_at.eq(now),
                ))
                .execute(c)
                .await
        })?;
        Ok(())
    }

    fn body(message: &str, stream: bool) -> Value {
        json!({"model": "bench-model", "messages": [{"role": "user", "content": message}], "stream": stream})
    }
}

struct Query;

#[Object]
impl Query {
    async fn ok(&self) -> bool {
        true
    }
}

struct Mutation;

#[Object]
impl Mutation {
    async fn chat(&self, ctx: &Context<'_>, message: String) -> async_graphql::Result<String> {
        let floor = ctx.data::<Floor>()?;
        let reply: Value = floor
            .http
            .post(&floor.upstream)
            .json(&Floor::body(&message, false))
            .send()
            .await?
            .json()
            .await?;
        let content = reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        floor
            .record(
                reply["usage"]["completion_tokens"]
                    .as_i64()
                    .unwrap_or_default(),
            )
            .await?;
        Ok(content)
    }
}

struct Subscriptions;

#[Subscription]
impl Subscriptions {
    async fn chat_stream(
        &self,
        ctx: &Context<'_>,
        message: String,
    ) -> async_graphql::Result<impl Stream<Item = String> + use<>> {
        let floor = ctx.data::<Floor>()?;
        let (db, http, upstream) = (floor.db.clone(), floor.http.clone(), floor.upstream.clone());
        let response = http
            .post(&upstream)
            .json(&Floor::body(&message, true))
            .send()
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<String>(32);
        tokio::spawn(async move {
            let mut bytes = response.bytes_stream();
            let mut buffer = String::new();
            let mut tokens = 0;
            while let Some(Ok(chunk)) = bytes.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    let data = event.trim().trim_start_matches("data: ");
                    let Ok(value) = serde_json::from_str::<Value>(data) else {
                        continue;
                    };
                    if let Some(delta) = value["choices"][0]["delta"]["content"].as_str() {
                        tokens += 1;
                        if tx.send(delta.to_owned()).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = Floor { http, upstream, db }.record(tokens).await;
        });
        Ok(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|v| (v, rx))
        }))
    }
}

/// `POST /v1/chat/completions`: forward, pass the answer through, one INSERT.
async fn rest(
    axum::extract::State(floor): axum::extract::State<std::sync::Arc<Floor>>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let stream = body["stream"].as_bool().unwrap_or(false);
    let response = match floor.http.post(&floor.upstream).json(&body).send().await {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    if !stream {
        let Ok(reply) = response.json::<Value>().await else {
            return axum::http::StatusCode::BAD_GATEWAY.into_response();
        };
        let tokens = reply["usage"]["completion_tokens"]
            .as_i64()
            .unwrap_or_default();
        if floor.record(tokens).await.is_err() {
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        return axum::Json(reply).into_response();
    }
    // Pass the bytes through as they come; INSERT once the upstream ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(32);
    tokio::spawn(async move {
        let mut bytes = response.bytes_stream();
        let mut chunks = 0;
        while let Some(Ok(chunk)) = bytes.next().await {
            chunks += 1;
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
        let _ = floor.record(chunks).await;
    });
    let body =
        axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|v| (v, rx))
        }));
    ([("content-type", "text/event-stream")], body).into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use diesel_async::RunQueryDsl as _;
    let mut args = std::env::args().skip(1);
    let (listen, upstream, url) = (
        args.next().unwrap_or_default(),
        args.next().unwrap_or_default(),
        args.next().unwrap_or_default(),
    );
    let db = DbPool::connect_and_migrate(&DbConfig {
        url,
        max_connections: 16,
        acquire_timeout: std::time::Duration::from_secs(5),
    })
    .await?;
    let mut conn = db.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    db_run!(&mut conn, |c| {
        diesel::sql_query("CREATE TABLE IF NOT EXISTS floor_calls (id TEXT PRIMARY KEY, tokens BIGINT NOT NULL, created_at BIGINT NOT NULL)").execute(c).await
    })?;
    drop(conn);
    let floor = Floor {
        http: reqwest::Client::new(),
        upstream: format!("{upstream}/chat/completions"),
        db,
    };
    let rest_floor = std::sync::Arc::new(Floor {
        http: floor.http.clone(),
        upstream: floor.upstream.clone(),
        db: floor.db.clone(),
    });
    let schema = Schema::build(Query, Mutation, Subscriptions)
        .data(floor)
        .finish();
    let app = Router::new()
        .route_service("/graphql", GraphQL::new(schema.clone()))
        .route_service("/graphql/ws", GraphQLSubscription::new(schema))
        .route(
            "/v1/chat/completions",
            axum::routing::post(rest).with_state(rest_floor),
        );
    let listener = tokio::net::TcpListener::bind(&listen).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
