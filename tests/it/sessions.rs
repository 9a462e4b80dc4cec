//! A user's sessions: listed with where and when they were used, ended one by one, all but the
//! current one, or (admins) all of a user's; an ended session stops at once, on HTTP and on its
//! open sockets.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, error_code};
use crate::ws::GqlWs;

const PASSWORD: &str = "correct horse battery 1";
const SESSIONS: &str =
    "{ mySessions { id current userAgent clientIp lastUsedAt lastUsedIp revokedAt } }";

/// Signs in as `email` from a client calling itself `agent`; returns the access and refresh
/// tokens.
async fn sign_in(app: &TestApp, email: &str, agent: &str) -> (String, String) {
    let body: Value = app
        .client
        .post(app.url("/graphql"))
        .header("user-agent", agent)
        .json(&json!({
            "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }",
            "variables": { "i": { "email": email, "password": PASSWORD } },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login = &body["data"]["login"];
    (
        login["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned(),
        login["refreshToken"].as_str().unwrap().to_owned(),
    )
}

/// The session listed with user agent `agent`.
fn by_agent<'a>(sessions: &'a Value, agent: &str) -> &'a Value {
    sessions["mySessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["userAgent"] == agent)
        .unwrap_or_else(|| panic!("no session of {agent}: {sessions}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_sees_their_sessions_and_ends_one_or_every_other() {
    let app = TestApp::spawn().await;
    app.register("many@example.com", PASSWORD).await;
    let (laptop, _) = sign_in(&app, "many@example.com", "laptop-browser/1.0").await;
    let (phone, phone_refresh) = sign_in(&app, "many@example.com", "phone-app/2.0").await;
    let (script, _) = sign_in(&app, "many@example.com", "nightly-script/0.1").await;
    let mut phone_socket = GqlWs::connect(&app, Some(&phone)).await.unwrap();
    phone_socket
        .subscribe("calls", "subscription { aiCallUpdated { id } }", json!({}))
        .await;

    // Each sees four sessions (the registration's too), and exactly one is current: its own.
    let listed = app.gql_ok(Some(&laptop), SESSIONS, json!({})).await;
    let sessions = listed["mySessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 4, "{listed}");
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{listed}");
    assert_eq!(current[0]["userAgent"], "laptop-browser/1.0");
    assert_eq!(by_agent(&listed, "phone-app/2.0")["clientIp"], "127.0.0.1");

    // Using a session is noted (off the request path, so it may take a moment).
    let mut used = Value::Null;
    for _ in 0..50 {
        let listed = app.gql_ok(Some(&laptop), SESSIONS, json!({})).await;
        used = by_agent(&listed, "laptop-browser/1.0").clone();
        if !used["lastUsedAt"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(used["lastUsedIp"], "127.0.0.1", "{used}");

    // Ending the phone's session: its token, its refresh token and its socket stop at once.
    let phone_id = by_agent(&listed, "phone-app/2.0")["id"].clone();
    let ended = app
        .gql_ok(
            Some(&laptop),
            "mutation($id: ID!) { revokeSession(id: $id) { id revokedAt revokedReason } }",
            json!({ "id": phone_id }),
        )
        .await;
    assert_eq!(ended["revokeSession"]["revokedReason"], "revoked_by_user");
    assert!(!ended["revokeSession"]["revokedAt"].is_null());
    let me = app.gql(Some(&phone), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&me), "UNAUTHENTICATED", "{me}");
    let (code, reason) = phone_socket.closed().await;
    assert_eq!(code, Some(4401), "{reason}");
    let refreshed = app
        .gql(
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": phone_refresh }),
        )
        .await;
    assert_eq!(error_code(&refreshed), "UNAUTHENTICATED", "{refreshed}");
    // Ending it again changes nothing; an unknown id is not found, a malformed one bad input.
    let again = app
        .gql_ok(
            Some(&laptop),
            "mutation($id: ID!) { revokeSession(id: $id) { revokedAt } }",
            json!({ "id": phone_id }),
        )
        .await;
    assert_eq!(
        again["revokeSession"]["revokedAt"],
        ended["revokeSession"]["revokedAt"]
    );
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) { id } }";
    let unknown = app
        .gql(
            Some(&laptop),
            revoke,
            json!({ "id": uuid::Uuid::now_v7().to_string() }),
        )
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND", "{unknown}");
    let malformed = app
        .gql(Some(&laptop), revoke, json!({ "id": "x".repeat(5000) }))
        .await;
    assert_eq!(error_code(&malformed), "BAD_USER_INPUT", "{malformed}");

    // Every other session: the script's and the registration's end, the laptop's goes on.
    let others = app
        .gql_ok(Some(&laptop), "mutation { revokeOtherSessions }", json!({}))
        .await;
    assert_eq!(others["revokeOtherSessions"], 2, "{others}");
    let me = app.gql(Some(&script), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&me), "UNAUTHENTICATED", "{me}");
    let listed = app.gql_ok(Some(&laptop), SESSIONS, json!({})).await;
    let left = listed["mySessions"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{listed}");
    assert_eq!(left[0]["current"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_cannot_see_or_end_each_others_sessions_and_admins_can() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (alice, _, _) = app.register("alice@example.com", PASSWORD).await;
    let (bob, _, bob_id) = app.register("bob@example.com", PASSWORD).await;
    let (bob_phone, _) = sign_in(&app, "bob@example.com", "bob-phone").await;
    let bobs = app.gql_ok(Some(&bob), SESSIONS, json!({})).await;
    let bob_phone_id = by_agent(&bobs, "bob-phone")["id"].clone();

    // Alice can neither list nor end Bob's sessions, and learns nothing of them.
    let listed = app
        .gql(
            Some(&alice),
            "query($u: ID!) { userSessions(userId: $u) { id } }",
            json!({ "u": bob_id }),
        )
        .await;
    assert_eq!(error_code(&listed), "FORBIDDEN", "{listed}");
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) { id userId revokedReason } }";
    let ended = app
        .gql(Some(&alice), revoke, json!({ "id": bob_phone_id }))
        .await;
    assert_eq!(error_code(&ended), "NOT_FOUND", "{ended}");
    let all = app
        .gql(
            Some(&alice),
            "mutation($u: ID!) { revokeUserSessions(userId: $u) }",
            json!({ "u": bob_id }),
        )
        .await;
    assert_eq!(error_code(&all), "FORBIDDEN", "{all}");
    app.gql_ok(Some(&bob_phone), "{ me { id } }", json!({}))
        .await;

    // An admin lists them, ends one, then all.
    let listed = app
        .gql_ok(
            Some(&admin),
            "query($u: ID!) { userSessions(userId: $u) { id userAgent current } }",
            json!({ "u": bob_id }),
        )
        .await;
    let sessions = listed["userSessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    assert!(sessions.iter().all(|s| s["current"] == false), "{listed}");
    let ended = app
        .gql_ok(Some(&admin), revoke, json!({ "id": bob_phone_id }))
        .await;
    assert_eq!(ended["revokeSession"]["revokedReason"], "revoked_by_admin");
    assert_eq!(ended["revokeSession"]["userId"], bob_id);
    let me = app.gql(Some(&bob_phone), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&me), "UNAUTHENTICATED", "{me}");
    let all = app
        .gql_ok(
            Some(&admin),
            "mutation($u: ID!) { revokeUserSessions(userId: $u) }",
            json!({ "u": bob_id }),
        )
        .await;
    assert_eq!(all["revokeUserSessions"], 1, "{all}");
    let me = app.gql(Some(&bob), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&me), "UNAUTHENTICATED", "{me}");
    app.gql_ok(Some(&alice), "{ me { id } }", json!({})).await;

    // Each ending is in the audit log, with its outcome.
    let audited = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(first: 50) { edges { node { field outcome } } } }",
            json!({}),
        )
        .await;
    let fields: Vec<(String, String)> = audited["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["field"].as_str().unwrap().to_owned(),
                n["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("revokeSession", "NOT_FOUND"),
        ("revokeUserSessions", "FORBIDDEN"),
        ("revokeSession", "OK"),
        ("revokeUserSessions", "OK"),
    ] {
        assert!(
            fields.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {fields:?}"
        );
    }
}
