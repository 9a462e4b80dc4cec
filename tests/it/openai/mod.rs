//! The OpenAI-compatible door and the API keys behind it, through the real server.
//!
//! - [`sdk`]: the official `openai` packages (npm and PyPI) and LangChain as clients, the
//!   documented examples, and the records their calls leave.
//! - [`door`]: `/v1` shapes, errors, model names, limits, and what an attacker would send.
//! - [`keys`]: the key lifecycle: scopes, revocation, expiry, disabled owners, rotation, audit,
//!   isolation, and a key budget under concurrent calls (on PostgreSQL across two processes).

mod door;
mod keys;
mod sdk;

use serde_json::{Value, json};

use crate::support::TestApp;

/// The fields of a created key.
pub const KEY_FIELDS: &str = "id prefix scope state allowedModels familyId lastUsedAt lastUsedIp revokedAt expiresAt budget { scope limitMicros spentMicros reservedMicros }";

/// Creates a key with `input` (a `CreateApiKeyInput`); returns its secret and record.
pub async fn create_key(app: &TestApp, token: &str, input: Value) -> (String, Value) {
    let data = app
        .gql_ok(
            Some(token),
            &format!("mutation($i: CreateApiKeyInput!) {{ createApiKey(input: $i) {{ secret apiKey {{ {KEY_FIELDS} }} }} }}"),
            json!({ "i": input }),
        )
        .await;
    let created = &data["createApiKey"];
    (
        created["secret"].as_str().unwrap().to_owned(),
        created["apiKey"].clone(),
    )
}

/// `POST /v1/chat/completions` with `key`.
pub async fn complete(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("POST /v1/chat/completions")
}

/// A one-message request for `model`.
pub fn ask(model: &str, message: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": message }] })
}

/// The `error` object of an OpenAI-shaped error response, checking its status.
pub async fn refused(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let body: Value = response.json().await.expect("a JSON error body");
    let error = body["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "`{field}` in {body}");
    }
    error
}
