//! Conversations: the chat and history screens of a frontend.

use serde_json::json;

use crate::chat::chat_query;
use crate::support::{TestApp, error_code};

const MESSAGES: &str = "query($id: ID!) { conversation(id: $id) { id title messages { edges { node { role content aiCallId } } } } }";

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_keeps_its_turns() {
    let app = TestApp::spawn().await;
    let (token, _, _) = app.register("talker@example.com", "talker-password").await;
    let created = app
        .gql_ok(Some(&token), "mutation { createConversation(title: \"Trip plans\", provider: \"mock\", model: \"mock-echo\") { id title } }", json!({}))
        .await;
    let id = created["createConversation"]["id"].clone();
    for text in ["first question", "second question"] {
        app.gql_ok(
            Some(&token),
            &chat_query(),
            json!({"input": {"conversationId": id, "message": text}}),
        )
        .await;
    }
    let read = app.gql_ok(Some(&token), MESSAGES, json!({"id": id})).await;
    let messages: Vec<_> = read["conversation"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    let turns: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        vec![
            ("USER".to_owned(), "first question".to_owned()),
            (
                "ASSISTANT".to_owned(),
                "Mock reply: first question".to_owned()
            ),
            ("USER".to_owned(), "second question".to_owned()),
            (
                "ASSISTANT".to_owned(),
                "Mock reply: second question".to_owned()
            ),
        ]
    );
    assert!(
        messages.iter().all(|m| m["aiCallId"].is_string()),
        "each turn links its call"
    );
    // The second call saw the whole history: more prompt tokens than the first.
    let calls = app
        .gql_ok(
            Some(&token),
            "{ aiCalls { edges { node { promptTokens conversationId } } } }",
            json!({}),
        )
        .await;
    let edges = calls["aiCalls"]["edges"].as_array().unwrap();
    assert!(edges[0]["node"]["promptTokens"].as_i64() > edges[1]["node"]["promptTokens"].as_i64());
    assert_eq!(edges[0]["node"]["conversationId"], id);

    let renamed = app
        .gql_ok(
            Some(&token),
            "mutation($id: ID!) { renameConversation(id: $id, title: \"Japan\") { title } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(renamed["renameConversation"]["title"], "Japan");
    let list = app
        .gql_ok(
            Some(&token),
            "{ conversations { edges { node { id title } } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["conversations"]["edges"][0]["node"]["title"], "Japan");

    app.gql_ok(
        Some(&token),
        "mutation($id: ID!) { deleteConversation(id: $id) }",
        json!({"id": id}),
    )
    .await;
    let gone = app.gql(Some(&token), MESSAGES, json!({"id": id})).await;
    assert_eq!(error_code(&gone), "NOT_FOUND");
    let still = app
        .gql_ok(
            Some(&token),
            "{ aiCalls { edges { node { id conversationId } } } }",
            json!({}),
        )
        .await;
    let calls = still["aiCalls"]["edges"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "call records outlive the conversation");
    // The foreign key's `ON DELETE SET NULL` finds them through the index of calls that have a
    // conversation (migration 000020 keeps only those in it).
    for call in calls {
        assert_eq!(call["node"]["conversationId"], json!(null), "{call}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn conversations_are_private_but_admins_can_read_them() {
    let app = TestApp::spawn().await;
    let (owner, _, _) = app.register("owner@example.com", "owner-password").await;
    let (other, _, _) = app.register("other@example.com", "other-password").await;
    let id = app
        .gql_ok(
            Some(&owner),
            "mutation { createConversation { id } }",
            json!({}),
        )
        .await["createConversation"]["id"]
        .clone();
    app.gql_ok(
        Some(&owner),
        &chat_query(),
        json!({"input": {"conversationId": id, "message": "secret plans"}}),
    )
    .await;

    for q in [
        MESSAGES,
        "mutation($id: ID!) { renameConversation(id: $id, title: \"x\") { id } }",
        "mutation($id: ID!) { deleteConversation(id: $id) }",
    ] {
        let body = app.gql(Some(&other), q, json!({"id": id})).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{q}");
    }
    let hijack = app
        .gql(
            Some(&other),
            &chat_query(),
            json!({"input": {"conversationId": id, "message": "me too"}}),
        )
        .await;
    assert_eq!(error_code(&hijack), "NOT_FOUND");
    let list = app
        .gql_ok(
            Some(&other),
            "{ conversations { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(
        list["conversations"]["edges"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let admin = app.admin_token().await;
    let support = app.gql_ok(Some(&admin), MESSAGES, json!({"id": id})).await;
    assert_eq!(
        support["conversation"]["messages"]["edges"][0]["node"]["content"],
        "secret plans"
    );
    let bad = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { renameConversation(id: $id, title: \"   \") { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}
