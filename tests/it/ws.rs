//! A `graphql-transport-ws` client, as a frontend would speak it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::TestApp;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct GqlWs {
    socket: Socket,
}

/// How the server ended a connection attempt.
#[derive(Debug)]
pub struct Closed {
    pub code: Option<u16>,
    pub reason: String,
}

impl GqlWs {
    /// Connects and completes `connection_init` with `payload`.
    pub async fn connect_with(app: &TestApp, payload: Value) -> Result<Self, Closed> {
        Self::connect_sending(
            app,
            json!({ "type": "connection_init", "payload": payload }),
        )
        .await
    }

    /// Connects, sends `first` and waits for the ack or the close.
    pub async fn connect_sending(app: &TestApp, first: Value) -> Result<Self, Closed> {
        Self::connect_to(app.addr, first).await
    }

    /// Connects to the server at `addr`, sends `first` and waits for the ack or the close.
    pub async fn connect_to(addr: std::net::SocketAddr, first: Value) -> Result<Self, Closed> {
        let url = format!("ws://{addr}/graphql/ws");
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut client = GqlWs { socket };
        client.send(first).await;
        loop {
            match client.raw_next().await {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "connection_ack" {
                        return Ok(client);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(Closed {
                        code: None,
                        reason: e.to_string(),
                    });
                }
                None => {
                    return Err(Closed {
                        code: None,
                        reason: "closed".into(),
                    });
                }
            }
        }
    }

    /// Connects with an access token (or none).
    pub async fn connect(app: &TestApp, token: Option<&str>) -> Result<Self, Closed> {
        let payload = match token {
            Some(t) => json!({ "Authorization": format!("Bearer {t}") }),
            None => json!({}),
        };
        Self::connect_with(app, payload).await
    }

    /// Sends one protocol message.
    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    async fn raw_next(&mut self) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
        tokio::time::timeout(Duration::from_secs(20), self.socket.next())
            .await
            .expect("no WebSocket message within 20 s")
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })).await;
    }

    /// The next protocol message (pings are answered and skipped).
    pub async fn next(&mut self) -> Value {
        loop {
            match self.raw_next().await {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return message;
                }
                Some(Ok(Message::Close(frame))) => {
                    return json!({
                        "type": "closed",
                        "code": frame.as_ref().map(|f| u16::from(f.code)),
                        "reason": frame.map(|f| f.reason.to_string()),
                    });
                }
                Some(Ok(_)) => {}
                // A connection dropped without a close frame.
                Some(Err(_)) | None => return json!({ "type": "closed", "code": null }),
            }
        }
    }

    /// The next protocol message if one arrives within `ms` milliseconds.
    pub async fn next_within(&mut self, ms: u64) -> Option<Value> {
        match tokio::time::timeout(std::time::Duration::from_millis(ms), self.socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str(&text).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => Some(json!({ "type": "closed" })),
            _ => None,
        }
    }

    /// The next `next` payload of subscription `id` (skipping others), failing after 20 s.
    pub async fn next_item(&mut self, id: &str) -> Value {
        loop {
            let message = self.next().await;
            assert_ne!(message["type"], "closed", "closed while waiting for {id}");
            if message["id"] == id {
                return message;
            }
        }
    }

    /// Every `next` payload of subscription `id` until `complete` (or an `error`).
    pub async fn collect(&mut self, id: &str) -> (Vec<Value>, Option<Value>) {
        let mut items = Vec::new();
        loop {
            let message = self.next().await;
            assert_ne!(message["type"], "closed", "closed while collecting {id}");
            if message["id"] != id {
                continue;
            }
            match message["type"].as_str() {
                Some("next") => items.push(message["payload"].clone()),
                Some("complete") => return (items, None),
                Some("error") => return (items, Some(message["payload"].clone())),
                _ => {}
            }
        }
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// Reads until the server closes the connection; returns its close code and reason (skipping
    /// other messages). Fails after 20 s.
    pub async fn closed(&mut self) -> (Option<u16>, String) {
        loop {
            match self.raw_next().await {
                Some(Ok(Message::Close(frame))) => {
                    return (
                        frame.as_ref().map(|f| u16::from(f.code)),
                        frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (None, String::new()),
            }
        }
    }

    /// Connects with `protocol` (`graphql-transport-ws` or the legacy `graphql-ws`) and sends
    /// nothing.
    pub async fn open(app: &TestApp, protocol: &str) -> Self {
        let url = format!("ws://{}/graphql/ws", app.addr);
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        GqlWs { socket }
    }

    /// Drops the connection abruptly (a killed client).
    pub async fn drop_connection(self) {
        let mut socket = self.socket;
        let _ = socket.get_mut();
        drop(socket);
    }
}
