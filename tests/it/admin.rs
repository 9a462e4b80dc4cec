//! User management by admins, and data isolation between users.

use std::sync::Arc;

use cloudbase_schema::clock::ManualClock;
use serde_json::json;

use crate::limits::{PASSWORD, login_from, register_from, retry_after_ms};
use crate::support::{TestApp, error_code};

const USERS: &str = "query($first: Int, $after: String, $search: String) {
  users(first: $first, after: $after, search: $search) {
    edges { cursor node { id email role disabled } }
    pageInfo { hasNextPage endCursor }
  }
}";

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_admin_exists_once() {
    let mut app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let me = app
        .gql_ok(Some(&token), "{ me { role email } }", json!({}))
        .await;
    assert_eq!(me["me"]["role"], "ADMIN");
    // A second start with users present creates nobody new, and the data survives the restart.
    app.restart_with(|c| {
        c.bootstrap_admin_email = Some("second-admin@cloudbase.test".into());
    })
    .await;
    let second = app
        .login(
            "second-admin@cloudbase.test",
            crate::support::ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(error_code(&second), "UNAUTHENTICATED");
    let again = app.admin_token().await;
    let still = app.gql_ok(Some(&again), "{ me { role } }", json!({})).await;
    assert_eq!(still["me"]["role"], "ADMIN");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_is_paginated_and_searchable() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.register(&format!("member{i}@example.com"), "member-password")
            .await;
    }
    app.register("other@corp.example", "member-password").await;
    let admin = app.admin_token().await;

    let page1 = app.gql_ok(Some(&admin), USERS, json!({"first": 4})).await;
    let edges = page1["users"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 4);
    assert_eq!(page1["users"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        edges[0]["node"]["email"], "other@corp.example",
        "newest first"
    );
    let after = page1["users"]["pageInfo"]["endCursor"].clone();
    let page2 = app
        .gql_ok(Some(&admin), USERS, json!({"first": 4, "after": after}))
        .await;
    let edges2 = page2["users"]["edges"].as_array().unwrap();
    assert_eq!(edges2.len(), 3, "5 members + 1 other + the admin = 7 users");
    assert_eq!(page2["users"]["pageInfo"]["hasNextPage"], false);
    let mut seen: Vec<_> = edges
        .iter()
        .chain(edges2)
        .map(|e| e["node"]["id"].clone())
        .collect();
    seen.dedup();
    assert_eq!(seen.len(), 7, "no user on two pages");

    let found = app
        .gql_ok(Some(&admin), USERS, json!({"search": "MEMBER3"}))
        .await;
    let emails: Vec<_> = found["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["email"].clone())
        .collect();
    assert_eq!(emails, vec![json!("member3@example.com")]);
    let none = app
        .gql_ok(Some(&admin), USERS, json!({"search": "%"}))
        .await;
    assert_eq!(
        none["users"]["edges"].as_array().unwrap().len(),
        0,
        "% is a literal, not a wildcard"
    );

    for bad in [
        json!({"first": 0}),
        json!({"first": 101}),
        json!({"after": "junk"}),
    ] {
        let body = app.gql(Some(&admin), USERS, bad).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_cannot_see_or_change_each_other() {
    let app = TestApp::spawn().await;
    let (alice, _, alice_id) = app.register("alice@example.com", "alice-password").await;
    let (_, _, bob_id) = app.register("bob@example.com", "bob-password").await;

    let own = app
        .gql_ok(
            Some(&alice),
            "query($id: ID!) { user(id: $id) { email } }",
            json!({"id": alice_id}),
        )
        .await;
    assert_eq!(own["user"]["email"], "alice@example.com");
    let other = app
        .gql(
            Some(&alice),
            "query($id: ID!) { user(id: $id) { email } }",
            json!({"id": bob_id}),
        )
        .await;
    assert_eq!(error_code(&other), "FORBIDDEN");
    assert_eq!(
        other["data"],
        serde_json::Value::Null,
        "nothing of bob leaks"
    );

    let list = app.gql(Some(&alice), USERS, json!({})).await;
    assert_eq!(error_code(&list), "FORBIDDEN");
    for q in [
        "mutation($u: ID!) { disableUser(userId: $u) { id } }",
        "mutation($u: ID!) { enableUser(userId: $u) { id } }",
        "mutation($u: ID!) { setUserRole(userId: $u, role: ADMIN) { id } }",
    ] {
        let body = app.gql(Some(&alice), q, json!({"u": bob_id})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{q}");
    }
    let anon = app.gql(None, "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&anon), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_a_user_stops_their_tokens_at_once() {
    let app = TestApp::spawn().await;
    let (token, refresh, id) = app
        .register("mallory@example.com", "mallory-password")
        .await;
    let admin = app.admin_token().await;

    let disabled = app
        .gql_ok(
            Some(&admin),
            "mutation($u: ID!) { disableUser(userId: $u) { disabled disabledAt } }",
            json!({"u": id}),
        )
        .await;
    assert_eq!(disabled["disableUser"]["disabled"], true);

    let me = app.gql(Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&me), "UNAUTHENTICATED");
    let r = app
        .gql(
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({"t": refresh}),
        )
        .await;
    assert_eq!(error_code(&r), "UNAUTHENTICATED");
    let login = app.login("mallory@example.com", "mallory-password").await;
    assert_eq!(
        error_code(&login),
        "UNAUTHENTICATED",
        "the right password on a disabled account confirms nothing"
    );

    app.gql_ok(
        Some(&admin),
        "mutation($u: ID!) { enableUser(userId: $u) { disabled } }",
        json!({"u": id}),
    )
    .await;
    let again = app.login("mallory@example.com", "mallory-password").await;
    assert!(again.get("errors").is_none(), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_change_and_apply_immediately() {
    let app = TestApp::spawn().await;
    let (token, _, id) = app.register("promoted@example.com", "rising-star-pw").await;
    let admin = app.admin_token().await;
    assert_eq!(
        error_code(&app.gql(Some(&token), USERS, json!({})).await),
        "FORBIDDEN"
    );

    let set = app
        .gql_ok(
            Some(&admin),
            "mutation($u: ID!) { setUserRole(userId: $u, role: ADMIN) { role } }",
            json!({"u": id}),
        )
        .await;
    assert_eq!(set["setUserRole"]["role"], "ADMIN");
    // The same access token now carries the new role: roles are read per request, not from the JWT.
    app.gql_ok(Some(&token), USERS, json!({})).await;

    let admin_id = app.gql_ok(Some(&admin), "{ me { id } }", json!({})).await["me"]["id"].clone();
    for q in [
        "mutation($u: ID!) { setUserRole(userId: $u, role: USER) { id } }",
        "mutation($u: ID!) { disableUser(userId: $u) { id } }",
    ] {
        let body = app.gql(Some(&admin), q, json!({"u": admin_id})).await;
        assert_eq!(
            error_code(&body),
            "BAD_USER_INPUT",
            "admins cannot lock themselves out: {body}"
        );
    }
    let missing = app
        .gql(
            Some(&admin),
            "mutation($u: ID!) { disableUser(userId: $u) { id } }",
            json!({"u": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
}

/// The right password of a disabled account gets exactly what a wrong password gets, and counts
/// as a failure in the throttle just the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_account_does_not_confirm_its_password() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = TestApp::spawn_with_clock(clock, |c| c.http.trust_forwarded_for = true).await;
    let admin = app.admin_token().await;
    register_from(&app, "198.51.100.40", "off@example.com", PASSWORD).await;
    register_from(&app, "198.51.100.41", "on@example.com", PASSWORD).await;
    let off_id = app
        .gql_ok(Some(&admin), USERS, json!({"search": "off@"}))
        .await["users"]["edges"][0]["node"]["id"]
        .clone();
    app.gql_ok(
        Some(&admin),
        "mutation($u: ID!) { disableUser(userId: $u) { id } }",
        json!({"u": off_id}),
    )
    .await;

    let mut answers = Vec::new();
    for _ in 0..3 {
        let right = login_from(&app, "192.0.2.40", "off@example.com", PASSWORD).await;
        let wrong = login_from(&app, "192.0.2.41", "on@example.com", "tidal-ferry-quarts").await;
        assert_eq!(right["errors"][0]["message"], wrong["errors"][0]["message"]);
        assert_eq!(
            right["errors"][0]["extensions"],
            wrong["errors"][0]["extensions"]
        );
        assert_eq!(right["data"], wrong["data"]);
        answers.push(right);
    }
    assert!(answers.iter().all(|a| error_code(a) == "UNAUTHENTICATED"));
    // Both pairs have failed three times: both back off alike.
    let right = login_from(&app, "192.0.2.40", "off@example.com", PASSWORD).await;
    let wrong = login_from(&app, "192.0.2.41", "on@example.com", "tidal-ferry-quarts").await;
    assert_eq!(retry_after_ms(&right), retry_after_ms(&wrong));
}

/// Three instances start at once on one fresh PostgreSQL database: migrations run once under the
/// advisory lock, exactly one bootstrap admin exists, and a session ended on one instance is
/// ended on all of them.
#[tokio::test(flavor = "multi_thread")]
async fn instances_start_together_on_postgres() {
    if crate::support::skip_without_postgres("instances_start_together_on_postgres") {
        return;
    }
    let (app, peers) = TestApp::spawn_cluster(3).await;
    let token = app.admin_token().await;
    let list = |url: String, token: String| {
        let client = app.client.clone();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": "{ users { edges { node { email role } } } }" }))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    for peer in &peers {
        let body = list(peer.url("/graphql"), token.clone()).await;
        let edges = body["data"]["users"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(
            edges.len(),
            1,
            "one bootstrap admin, whoever won the race: {body}"
        );
    }
    let out: serde_json::Value = app
        .client
        .post(peers[0].url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(out["data"]["logout"], true);
    let after = list(peers[1].url("/graphql"), token.clone()).await;
    assert_eq!(
        error_code(&after),
        "UNAUTHENTICATED",
        "logout on one instance holds on all"
    );
}

/// `n` requests as `token`, spread over the GraphQL endpoints `urls`, in flight while the caller
/// goes on; each ends with its HTTP status.
fn racing(
    app: &TestApp,
    urls: &[String],
    token: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::StatusCode>>> {
    (0..n)
        .map(|i| {
            let (client, url) = (app.client.clone(), urls[i % urls.len()].clone());
            let token = token.to_owned();
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "query": "{ me { id } }" }))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect()
}

/// One request as `token` to the GraphQL endpoint at `url`.
async fn gql_at(app: &TestApp, url: &str, token: &str, query: &str) -> serde_json::Value {
    app.client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Uses `token` (a session's or an API key's) on every instance until each answers it from its
/// access cache. What shows it: with its user disabled behind the servers' back (an edit no
/// event tells them of), every instance still accepts the token. Then the edit is undone.
async fn cached_everywhere(app: &TestApp, urls: &[String], token: &str, user_id: &str) {
    let revoke = |at: &str| format!("UPDATE users SET disabled_at = {at} WHERE id = '{user_id}'");
    for _ in 0..100 {
        app.sql(&revoke("NULL")).await;
        for url in urls {
            let me = gql_at(app, url, token, "{ me { id } }").await;
            assert!(me.get("errors").is_none(), "{me}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        app.sql(&revoke("now()")).await;
        let mut cached = true;
        for url in urls {
            let me = gql_at(app, url, token, "{ me { id } }").await;
            cached &= me.get("errors").is_none();
        }
        if cached {
            app.sql(&revoke("NULL")).await;
            return;
        }
    }
    panic!("the token was never answered from every instance's cache");
}

/// On PostgreSQL every instance caches live sessions and API keys (the default), and the cache
/// is exact across instances: a logout, a disable, a role change, a password change or a key's
/// revocation made on one instance holds on every other the moment it returns, with the token
/// cached everywhere and requests racing the change.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_of_access_holds_on_every_instance_when_it_returns() {
    if crate::support::skip_without_postgres(
        "a_change_of_access_holds_on_every_instance_when_it_returns",
    ) {
        return;
    }
    let (app, peers) = TestApp::spawn_cluster(3).await;
    let admin = app.admin_token().await;
    let urls: Vec<String> = std::iter::once(app.url("/graphql"))
        .chain(peers.iter().map(|p| p.url("/graphql")))
        .collect();
    let (here, others) = (&urls[0], &urls[1..]);
    let refused_everywhere = |token: String, query: &'static str, code: &'static str, what| {
        let app = &app;
        async move {
            for url in others {
                let body = gql_at(app, url, &token, query).await;
                assert_eq!(error_code(&body), code, "{what} at {url}: {body}");
            }
        }
    };

    // Logout, with requests on the token racing it on every instance.
    let (token, _, id) = app.register("leaving@example.com", PASSWORD).await;
    cached_everywhere(&app, &urls, &token, &id).await;
    let racing = racing(&app, &urls, &token, 24);
    let out = gql_at(&app, here, &token, "mutation { logout }").await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    refused_everywhere(token, "{ me { id } }", "UNAUTHENTICATED", "after logout").await;
    for r in racing {
        assert!(r.await.unwrap().is_ok(), "racing requests are answered");
    }

    // Disable.
    let (token, _, id) = app.register("disabled@example.com", PASSWORD).await;
    cached_everywhere(&app, &urls, &token, &id).await;
    app.gql_ok(
        Some(&admin),
        "mutation($u: ID!) { disableUser(userId: $u) { id } }",
        json!({"u": id}),
    )
    .await;
    refused_everywhere(token, "{ me { id } }", "UNAUTHENTICATED", "after disable").await;

    // A role taken away.
    let (token, _, id) = app.register("demoted@example.com", PASSWORD).await;
    let set_role = "mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id } }";
    app.gql_ok(Some(&admin), set_role, json!({"u": id, "r": "ADMIN"}))
        .await;
    cached_everywhere(&app, &urls, &token, &id).await;
    let users = "{ users { edges { node { id } } } }";
    for url in others {
        let body = gql_at(&app, url, &token, users).await;
        assert!(body.get("errors").is_none(), "an admin still: {body}");
    }
    app.gql_ok(Some(&admin), set_role, json!({"u": id, "r": "USER"}))
        .await;
    refused_everywhere(token, users, "FORBIDDEN", "after the demotion").await;

    // A password change ends the other sessions.
    let (token, _, id) = app.register("rotating@example.com", PASSWORD).await;
    let login = app.login("rotating@example.com", PASSWORD).await;
    let other = login["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    cached_everywhere(&app, &urls, &other, &id).await;
    app.gql_ok(
        Some(&token),
        "mutation($o: String!, $n: String!) { changePassword(currentPassword: $o, newPassword: $n) }",
        json!({"o": PASSWORD, "n": "a brand new passphrase 42"}),
    )
    .await;
    refused_everywhere(
        other,
        "{ me { id } }",
        "UNAUTHENTICATED",
        "after a password change",
    )
    .await;

    // An API key revoked.
    let (token, _, id) = app.register("keyed@example.com", PASSWORD).await;
    let made = app
        .gql_ok(
            Some(&token),
            "mutation { createApiKey(input: {name: \"cluster\", scope: FULL}) { secret apiKey { id } } }",
            json!({}),
        )
        .await;
    let secret = made["createApiKey"]["secret"].as_str().unwrap().to_owned();
    let key_id = made["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cached_everywhere(&app, &urls, &secret, &id).await;
    app.gql_ok(
        Some(&token),
        "mutation($id: ID!) { revokeApiKey(id: $id) { state } }",
        json!({"id": key_id}),
    )
    .await;
    refused_everywhere(
        secret,
        "{ me { id } }",
        "UNAUTHENTICATED",
        "after revoking the key",
    )
    .await;

    // With every instance's LISTEN connection cut (the event bus down for a moment), a logout
    // still holds everywhere when it returns: the others stop trusting their caches.
    let (token, _, id) = app.register("cut@example.com", PASSWORD).await;
    cached_everywhere(&app, &urls, &token, &id).await;
    app.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'cloudbase-listener' AND datname = current_database()",
    )
    .await;
    let out = gql_at(&app, here, &token, "mutation { logout }").await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    refused_everywhere(
        token,
        "{ me { id } }",
        "UNAUTHENTICATED",
        "logout, bus down",
    )
    .await;

    // With every LISTEN connection stalled rather than cut (its server process stopped, so no
    // instance notices), the others stop trusting their caches within the horizon.
    let (token, _, id) = app.register("stalled@example.com", PASSWORD).await;
    cached_everywhere(&app, &urls, &token, &id).await;
    let mut listeners = Vec::new();
    for i in 0..urls.len() {
        listeners.push(
            app.sql_number(&format!(
                "SELECT pid::bigint AS n FROM pg_stat_activity WHERE application_name = \
                 'cloudbase-listener' AND datname = current_database() ORDER BY pid OFFSET {i}"
            ))
            .await
            .to_string(),
        );
    }
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .arg(sig)
            .args(&listeners)
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {listeners:?}");
    };
    signal("-STOP");
    let out = gql_at(&app, here, &token, "mutation { logout }").await;
    let refused = async {
        for url in others {
            let body = gql_at(&app, url, &token, "{ me { id } }").await;
            if body.get("errors").is_none() {
                return Err(format!("logout, bus stalled, at {url}: {body}"));
            }
        }
        Ok(())
    }
    .await;
    signal("-CONT");
    assert_eq!(out["data"]["logout"], true, "{out}");
    refused.unwrap();
}

/// With the session cache on (the SQLite default; turned on here for PostgreSQL too), a token
/// that was just accepted, and so is cached, stops the moment a logout, a disable, a role change
/// or a password change returns, including under requests racing the change.
#[tokio::test(flavor = "multi_thread")]
async fn a_cached_session_ends_the_moment_access_changes() {
    let app = TestApp::spawn_with(|c| c.auth.session_cache_secs = Some(600)).await;
    let admin = app.admin_token().await;
    let warm = |token: String| {
        let app = &app;
        async move {
            app.gql_ok(Some(&token), "{ me { id } }", json!({})).await;
        }
    };

    // Logout, with requests on the same token in flight around it.
    let (token, _, _) = app.register("leaving@example.com", PASSWORD).await;
    warm(token.clone()).await;
    let racing = racing(&app, &[app.url("/graphql")], &token, 16);
    app.gql_ok(Some(&token), "mutation { logout }", json!({}))
        .await;
    for _ in 0..5 {
        let me = app.gql(Some(&token), "{ me { id } }", json!({})).await;
        assert_eq!(error_code(&me), "UNAUTHENTICATED", "after logout: {me}");
    }
    for r in racing {
        assert!(r.await.unwrap().is_ok(), "racing requests are answered");
    }

    // Disable.
    let (token, _, id) = app.register("disabled@example.com", PASSWORD).await;
    warm(token.clone()).await;
    app.gql_ok(
        Some(&admin),
        "mutation($u: ID!) { disableUser(userId: $u) { id } }",
        json!({"u": id}),
    )
    .await;
    let me = app.gql(Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&me), "UNAUTHENTICATED", "after disable: {me}");

    // Role: promoted then demoted, each seen by the very next request.
    let (token, _, id) = app.register("role@example.com", PASSWORD).await;
    warm(token.clone()).await;
    let users = "{ users { edges { node { id } } } }";
    assert_eq!(
        error_code(&app.gql(Some(&token), users, json!({})).await),
        "FORBIDDEN"
    );
    for (role, code) in [("ADMIN", None), ("USER", Some("FORBIDDEN"))] {
        app.gql_ok(
            Some(&admin),
            "mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id } }",
            json!({"u": id, "r": role}),
        )
        .await;
        let body = app.gql(Some(&token), users, json!({})).await;
        match code {
            None => assert!(body.get("errors").is_none(), "as {role}: {body}"),
            Some(code) => assert_eq!(error_code(&body), code, "as {role}: {body}"),
        }
    }

    // Password change ends the other sessions.
    let (token, _, _) = app.register("rotating@example.com", PASSWORD).await;
    let login = app.login("rotating@example.com", PASSWORD).await;
    let other = login["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    warm(other.clone()).await;
    app.gql_ok(
        Some(&token),
        "mutation($o: String!, $n: String!) { changePassword(currentPassword: $o, newPassword: $n) }",
        json!({"o": PASSWORD, "n": "a brand new passphrase 42"}),
    )
    .await;
    let me = app.gql(Some(&other), "{ me { id } }", json!({})).await;
    assert_eq!(
        error_code(&me),
        "UNAUTHENTICATED",
        "after a password change: {me}"
    );
}

const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { id email displayName role } }";

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_creates_accounts_even_with_registration_closed() {
    let app = TestApp::spawn_with(|c| {
        c.auth.registration = cloudbase_server::config::RegistrationConfig::Closed;
    })
    .await;
    let admin = app.admin_token().await;
    let input = json!({"email": "New.Person@Example.com", "password": PASSWORD, "displayName": "New Person"});
    let made = app
        .gql_ok(Some(&admin), CREATE_USER, json!({ "input": input }))
        .await;
    assert_eq!(made["createUser"]["email"], "new.person@example.com");
    assert_eq!(made["createUser"]["role"], "USER");
    // They log in with the password given.
    let login = app.login("new.person@example.com", PASSWORD).await;
    assert_eq!(login["data"]["login"]["user"]["role"], "USER", "{login}");
    let user = login["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // An admin may make another admin.
    let second = json!({"email": "ops@example.com", "password": PASSWORD, "displayName": "Ops", "role": "ADMIN"});
    let made = app
        .gql_ok(Some(&admin), CREATE_USER, json!({ "input": second }))
        .await;
    assert_eq!(made["createUser"]["role"], "ADMIN");

    // Refused: a user, nobody, a taken email, a weak password, a bad email.
    let other = json!({"email": "x@example.com", "password": PASSWORD, "displayName": "X"});
    let by_user = app
        .gql(Some(&user), CREATE_USER, json!({ "input": other }))
        .await;
    assert_eq!(error_code(&by_user), "FORBIDDEN");
    let anonymous = app.gql(None, CREATE_USER, json!({ "input": other })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let taken = app
        .gql(Some(&admin), CREATE_USER, json!({ "input": input }))
        .await;
    assert_eq!(error_code(&taken), "CONFLICT");
    for (email, password) in [("y@example.com", "password1"), ("not-an-email", PASSWORD)] {
        let bad = json!({"email": email, "password": password, "displayName": "Y"});
        let refused = app
            .gql(Some(&admin), CREATE_USER, json!({ "input": bad }))
            .await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    }
    // The audit trail has the mutation, never the password.
    let log = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(filter: { field: \"createUser\" }, first: 10) { edges { node { arguments outcome } } } }",
            json!({}),
        )
        .await;
    let edges = log["auditLog"]["edges"].as_array().unwrap();
    let made = edges
        .iter()
        .filter(|e| e["node"]["outcome"] == "OK")
        .count();
    assert_eq!(made, 2, "both creations are audited: {log}");
    let text = log.to_string();
    assert!(
        text.contains("New.Person@Example.com"),
        "the arguments are kept: {text}"
    );
    assert!(
        !text.contains(PASSWORD),
        "the password reached the audit log: {text}"
    );
}
