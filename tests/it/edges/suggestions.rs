//! Validation errors suggest no names in production.

use cloudbase_server::config::Environment;
use serde_json::json;

use crate::support::{TestApp, error_code};

/// Misspelt names: a field, an argument and a type.
const MISSPELT: [&str; 3] = [
    "{ auditLgo { edges { cursor } } }",
    "{ users(fisrt: 1) { edges { cursor } } }",
    "query($f: AuditLogFiltr) { auditLog(filter: $f) { edges { cursor } } }",
];

async fn validation_messages(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let mut messages = Vec::new();
    for query in MISSPELT {
        let body = app.gql(token, query, json!({})).await;
        assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
        messages.extend(
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_owned()),
        );
    }
    messages
}

#[tokio::test(flavor = "multi_thread")]
async fn production_suggests_no_names_and_dev_still_does() {
    let prod = TestApp::spawn_with(|c| c.env = Environment::Prod).await;
    let admin = prod.admin_token().await;
    for token in [None, Some(admin.as_str())] {
        let messages = validation_messages(&prod, token).await;
        assert!(
            messages.iter().all(|m| !m.contains("Did you mean")),
            "{messages:?}"
        );
    }
    let dev = TestApp::spawn().await;
    // async-graphql suggests field names only.
    let messages = validation_messages(&dev, None).await;
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Did you mean \"auditLog\"")),
        "{messages:?}"
    );
}
