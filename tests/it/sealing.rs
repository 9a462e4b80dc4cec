//! Encryption at rest (issue 16, item 6): what the database holds of conversations, prompt
//! logs, TOTP secrets, signing keys and people's alert addresses is sealed; rows sealed under an
//! old master key still read, a rotation moves them online, and a wrong key stops the start.

use cloudbase_schema::services::sealing::MasterKey;
use cloudbase_server::config::Secret;
use serde_json::{Value, json};

use crate::chat::chat_query;
use crate::mfa::enrol_at;
use crate::receivers::HttpReceiver;
use crate::support::{TestApp, error_code, instance};

const MESSAGES: &str =
    "query($id: ID!) { conversation(id: $id) { messages { edges { node { role content } } } } }";
const PASSWORD: &str = "correct horse battery 1";

/// A user with a conversation of one turn saying `words`; returns their token and the
/// conversation id.
async fn talk(app: &TestApp, email: &str, words: &str) -> (String, Value) {
    let (token, _, _) = app.register(email, PASSWORD).await;
    let created = app
        .gql_ok(Some(&token), "mutation { createConversation(title: \"t\", provider: \"mock\", model: \"mock-echo\") { id } }", json!({}))
        .await;
    let id = created["createConversation"]["id"].clone();
    say(app, &token, &id, words).await;
    (token, id)
}

async fn say(app: &TestApp, token: &str, id: &Value, words: &str) {
    app.gql_ok(
        Some(token),
        &chat_query(),
        json!({"input": {"conversationId": id, "message": words}}),
    )
    .await;
}

async fn contents(app: &TestApp, token: &str, id: &Value) -> Vec<String> {
    let read = app.gql_ok(Some(token), MESSAGES, json!({ "id": id })).await;
    read["conversation"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["content"].as_str().unwrap().to_owned())
        .collect()
}

/// Every sealed value in the database, as text, with the column it is in.
async fn sealed_values(app: &TestApp) -> Vec<(&'static str, String)> {
    let prompt_log = if app.is_postgres() {
        "prompt_log::text"
    } else {
        "json(prompt_log)"
    };
    let mut out = Vec::new();
    for (column, query) in [
        (
            "messages.content",
            "SELECT content AS t FROM messages".to_owned(),
        ),
        (
            "messages.reasoning",
            "SELECT reasoning AS t FROM messages WHERE reasoning IS NOT NULL".into(),
        ),
        (
            "ai_calls.prompt_log",
            format!("SELECT {prompt_log} AS t FROM ai_calls WHERE prompt_log IS NOT NULL"),
        ),
        (
            "mfa_secrets.secret",
            "SELECT secret AS t FROM mfa_secrets".into(),
        ),
        (
            "signing_keys.private_key",
            "SELECT private_key AS t FROM signing_keys WHERE private_key IS NOT NULL".into(),
        ),
        (
            "alert_rules.targets",
            "SELECT targets AS t FROM alert_rules".into(),
        ),
        (
            "alert_deliveries.recipient",
            "SELECT recipient AS t FROM alert_deliveries WHERE recipient IS NOT NULL".into(),
        ),
    ] {
        for v in app.sql_texts(&query).await {
            out.push((column, v));
        }
    }
    out
}

fn key_of(config_keys: &str) -> String {
    MasterKey::parse_list(config_keys).unwrap()[0]
        .id()
        .to_owned()
}

/// Asserts every sealed value is an envelope of `key_id`.
async fn all_sealed_under(app: &TestApp, key_id: &str) -> usize {
    let values = sealed_values(app).await;
    for (column, v) in &values {
        let v = v.trim_start_matches('"');
        assert!(
            v.starts_with(&format!("cbx1:{key_id}:")),
            "{column} holds {v:.60}, not an envelope of {key_id}"
        );
    }
    values.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_database_holds_of_people_is_sealed() {
    let hook = HttpReceiver::start(200, "ok").await;
    let app = TestApp::spawn_with(|c| {
        c.chat.log_prompts = true;
        c.plugins.insert(
            "ops-hook".into(),
            instance("webhook", json!({"url": hook.url("/alerts")}), &[]),
        );
        c.alerts.allow_private_targets = true;
    })
    .await;
    let words = "banana-secret-42 for the board";
    let (token, id) = talk(&app, "sealed@example.com", words).await;
    let (secret, _) = enrol_at(&app, &token, &cloudbase_schema::clock::SystemClock).await;
    let address = hook.url("/my-private-hook-path");
    let rule = app
        .gql_ok(
            Some(&token),
            "mutation($a: String!) { createMyBudgetAlert(thresholdPercent: 50, channel: WEBHOOK, address: $a) { targets { to } } }",
            json!({ "a": address }),
        )
        .await;
    assert_eq!(
        rule["createMyBudgetAlert"]["targets"][0]["to"],
        address.as_str()
    );

    let key = key_of(app.config.master_key.as_ref().unwrap().expose());
    let values = sealed_values(&app).await;
    let columns: std::collections::BTreeSet<&str> = values.iter().map(|(c, _)| *c).collect();
    for expected in [
        "messages.content",
        "ai_calls.prompt_log",
        "mfa_secrets.secret",
        "signing_keys.private_key",
        "alert_rules.targets",
    ] {
        assert!(columns.contains(expected), "nothing stored in {expected}");
    }
    for (column, v) in &values {
        for plain in ["banana-secret-42", secret.as_str(), "my-private-hook-path"] {
            assert!(!v.contains(plain), "{column} holds {plain} in clear: {v}");
        }
    }
    all_sealed_under(&app, &key).await;
    // Read back through the API as written.
    assert_eq!(
        contents(&app, &token, &id).await,
        [words.to_owned(), format!("Mock reply: {words}")]
    );
    let mine = app
        .gql_ok(Some(&token), "{ alertRules { targets { to } } }", json!({}))
        .await;
    assert_eq!(mine["alertRules"][0]["targets"][0]["to"], address.as_str());

    // An envelope moved to another row does not open: an error, never another row's text.
    let (other, other_id) = talk(&app, "other-sealed@example.com", "mine only").await;
    app.sql(&format!(
        "UPDATE messages SET content = (SELECT content FROM messages WHERE conversation_id = '{}' \
         ORDER BY id LIMIT 1) WHERE conversation_id = '{}'",
        id.as_str().unwrap(),
        other_id.as_str().unwrap()
    ))
    .await;
    let moved = app
        .gql(Some(&other), MESSAGES, json!({ "id": other_id }))
        .await;
    assert_eq!(error_code(&moved), "INTERNAL", "{moved}");
    assert!(!moved.to_string().contains("banana"), "{moved}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_key_rotation_moves_every_value_online_and_a_wrong_key_stops_the_start() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let mut app = TestApp::spawn_with(|c| c.master_key = Some(Secret::new(old.to_base64()))).await;
    let (token, id) = talk(&app, "rotate@example.com", "before the rotation").await;
    let (secret, _) = enrol_at(&app, &token, &cloudbase_schema::clock::SystemClock).await;
    assert!(all_sealed_under(&app, old.id()).await >= 3);

    // Every instance gets the new key first (newest first); the old one still seals.
    let both = format!("{},{}", new.to_base64(), old.to_base64());
    app.restart_with(|c| c.master_key = Some(Secret::new(both.clone())))
        .await;
    let login = app
        .gql_ok(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { mfaChallenge { challenge } } }",
            json!({ "i": { "email": "rotate@example.com", "password": PASSWORD } }),
        )
        .await;
    let challenge = login["login"]["mfaChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = crate::mfa::next_code(&secret);
    let done = app
        .gql_ok(
            None,
            "mutation($c: String!, $code: String!) { completeMfaLogin(challenge: $c, code: $code) { accessToken } }",
            json!({ "c": challenge, "code": code }),
        )
        .await;
    let token = done["completeMfaLogin"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    all_sealed_under(&app, old.id()).await;
    assert_eq!(
        contents(&app, &token, &id).await,
        ["before the rotation", "Mock reply: before the rotation"],
        "rows sealed under the old key read with the new configuration"
    );

    // The rotation runs while the server serves.
    cloudbase_server::keys::rotate_master(&app.config, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(all_sealed_under(&app, new.id()).await >= 3);
    assert_eq!(
        contents(&app, &token, &id).await,
        ["before the rotation", "Mock reply: before the rotation"]
    );
    // Running it again with nothing newer is refused, and changes nothing.
    let again = cloudbase_server::keys::rotate_master(&app.config, std::time::Duration::ZERO).await;
    assert!(
        again.unwrap_err().to_string().contains("already seals"),
        "a second rotation to the same key"
    );

    // The old key can go: the database needs only the new one.
    app.restart_with(|c| c.master_key = Some(Secret::new(new.to_base64())))
        .await;
    let token =
        crate::support::access_token(&app.login("admin@cloudbase.test", "admin-password-1").await);
    let (user, id2) = talk(&app, "after@example.com", "after the rotation").await;
    assert_eq!(
        contents(&app, &user, &id2).await,
        ["after the rotation", "Mock reply: after the rotation"]
    );
    all_sealed_under(&app, new.id()).await;
    assert!(app.gql(Some(&token), "{ me { id } }", json!({})).await["data"]["me"].is_object());

    // A wrong key: the start stops, loudly, and nothing is written.
    app.stop().await;
    let mut wrong = app.config.clone();
    wrong.master_key = Some(Secret::new(MasterKey::generate().to_base64()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        cloudbase_server::run(wrong, listener, std::future::pending()),
    )
    .await
    .expect("the start stops instead of serving");
    let message = format!("{:#}", outcome.unwrap_err());
    assert!(
        message.contains(new.id()) && message.contains("Refusing to start"),
        "{message}"
    );
    all_sealed_under(&app, new.id()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_makes_its_master_key_once_in_the_data_folder_and_rotates_it_there() {
    let mut app = TestApp::spawn_with(|c| c.master_key = None).await;
    let path = app.config.data_dir.join("master-key");
    let first = std::fs::read_to_string(&path).expect("a generated key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
    }
    let (_, id) = talk(&app, "dev@example.com", "kept across restarts").await;
    let key = key_of(&first);
    all_sealed_under(&app, &key).await;
    app.restart_with(|_| {}).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first, "made once");
    let token = crate::support::access_token(&app.login("dev@example.com", PASSWORD).await);
    assert_eq!(contents(&app, &token, &id).await.len(), 2);

    app.stop().await;
    cloudbase_server::keys::rotate_master(&app.config, std::time::Duration::ZERO)
        .await
        .unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    let keys = MasterKey::parse_list(&after).unwrap();
    assert_eq!(keys.len(), 2, "the new key first, the old kept: {after}");
    assert_eq!(keys[1].id(), key);
    app.restart_with(|_| {}).await;
    all_sealed_under(&app, keys[0].id()).await;
    let token2 = crate::support::access_token(&app.login("dev@example.com", PASSWORD).await);
    assert_eq!(
        contents(&app, &token2, &id).await,
        ["kept across restarts", "Mock reply: kept across restarts"]
    );
}
