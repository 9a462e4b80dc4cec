//! Accounts through GraphQL: the whole session lifecycle.

use serde_json::json;

use crate::support::{TestApp, error_code};

const ME: &str = "{ me { id email displayName avatarUrl settings role disabled } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";

#[tokio::test(flavor = "multi_thread")]
async fn register_login_me() {
    let app = TestApp::spawn().await;
    let (token, _, id) = app.register("  Ada@Example.com ", "correct horse 1").await;

    let me = app.gql_ok(Some(&token), ME, json!({})).await;
    assert_eq!(me["me"]["id"], id);
    assert_eq!(
        me["me"]["email"], "ada@example.com",
        "emails are normalised"
    );
    assert_eq!(me["me"]["role"], "USER");
    assert_eq!(me["me"]["settings"], json!({}));

    let login = app.login("ADA@example.com", "correct horse 1").await;
    assert!(login.get("errors").is_none(), "{login}");
    let token2 = login["data"]["login"]["accessToken"].as_str().unwrap();
    let me2 = app.gql_ok(Some(token2), ME, json!({})).await;
    assert_eq!(me2["me"]["id"], id);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_does_not_reveal_whether_an_email_exists() {
    let app = TestApp::spawn().await;
    app.register("bob@example.com", "bob-password-1").await;
    let wrong_password = app.login("bob@example.com", "not-his-password").await;
    let unknown_email = app.login("nobody@example.com", "bob-password-1").await;
    assert_eq!(error_code(&wrong_password), "UNAUTHENTICATED");
    assert_eq!(
        wrong_password["errors"][0]["message"],
        unknown_email["errors"][0]["message"]
    );
    assert_eq!(
        wrong_password["errors"][0]["extensions"],
        unknown_email["errors"][0]["extensions"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_input_is_validated() {
    let app = TestApp::spawn().await;
    let q = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }";
    let cases = [
        (
            json!({"email": "not-an-email", "password": "long enough 1", "displayName": "X"}),
            "input.email",
        ),
        (
            json!({"email": "a@example.com", "password": "short", "displayName": "X"}),
            "input.password",
        ),
        (
            json!({"email": "a@example.com", "password": "long enough 1", "displayName": "   "}),
            "input.displayName",
        ),
    ];
    for (input, field) in cases {
        let body = app.gql(None, q, json!({ "input": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    app.register("dup@example.com", "long enough 1").await;
    let again = app
        .gql(None, q, json!({"input": {"email": "DUP@example.com", "password": "long enough 2", "displayName": "D"}}))
        .await;
    assert_eq!(error_code(&again), "CONFLICT", "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = TestApp::spawn().await;
    let (access1, refresh1, _) = app.register("carol@example.com", "carol-password").await;

    let rotated = app.gql_ok(None, REFRESH, json!({ "t": refresh1 })).await;
    let access2 = rotated["refreshSession"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh2 = rotated["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(refresh1, refresh2, "a new refresh token each time");
    app.gql_ok(Some(&access2), ME, json!({})).await;

    // Presenting the used token again is theft or replay: the whole family dies.
    let reused = app.gql(None, REFRESH, json!({ "t": refresh1 })).await;
    assert_eq!(error_code(&reused), "UNAUTHENTICATED");
    let after = app.gql(None, REFRESH, json!({ "t": refresh2 })).await;
    assert_eq!(
        error_code(&after),
        "UNAUTHENTICATED",
        "the newest token is revoked too"
    );
    for token in [&access1, &access2] {
        let me = app.gql(Some(token), ME, json!({})).await;
        assert_eq!(
            error_code(&me),
            "UNAUTHENTICATED",
            "access tokens of the session stop at once"
        );
    }

    let junk = app
        .gql(None, REFRESH, json!({ "t": "cbr_not-a-token" }))
        .await;
    assert_eq!(error_code(&junk), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_refreshes_with_one_token_have_one_winner() {
    let app = TestApp::spawn().await;
    let (_, refresh, _) = app.register("race@example.com", "race-password").await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (client, url, t) = (app.client.clone(), app.url("/graphql"), refresh.clone());
        tasks.push(tokio::spawn(async move {
            let body: serde_json::Value = client
                .post(url)
                .json(&json!({ "query": REFRESH, "variables": { "t": t } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body.get("errors").is_none()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one concurrent refresh may succeed");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_session_at_once() {
    let app = TestApp::spawn().await;
    let (access, refresh, _) = app.register("dan@example.com", "dan-password").await;
    let out = app
        .gql_ok(Some(&access), "mutation { logout }", json!({}))
        .await;
    assert_eq!(out["logout"], true);
    let me = app.gql(Some(&access), ME, json!({})).await;
    assert_eq!(error_code(&me), "UNAUTHENTICATED");
    let r = app.gql(None, REFRESH, json!({ "t": refresh })).await;
    assert_eq!(error_code(&r), "UNAUTHENTICATED");
    let anonymous = app.gql(None, "mutation { logout }", json!({})).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread")]
async fn change_password_revokes_other_sessions() {
    let app = TestApp::spawn().await;
    let (here, _, _) = app.register("erin@example.com", "first-password").await;
    let elsewhere =
        app.login("erin@example.com", "first-password").await["data"]["login"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
    let q = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

    let wrong = app
        .gql(
            Some(&here),
            q,
            json!({"c": "nope-nope-nope", "n": "second-password"}),
        )
        .await;
    assert_eq!(error_code(&wrong), "BAD_USER_INPUT");
    let weak = app
        .gql(Some(&here), q, json!({"c": "first-password", "n": "short"}))
        .await;
    assert_eq!(error_code(&weak), "BAD_USER_INPUT");

    app.gql_ok(
        Some(&here),
        q,
        json!({"c": "first-password", "n": "second-password"}),
    )
    .await;
    app.gql_ok(Some(&here), ME, json!({})).await;
    let other = app.gql(Some(&elsewhere), ME, json!({})).await;
    assert_eq!(
        error_code(&other),
        "UNAUTHENTICATED",
        "the other session ended"
    );
    assert_eq!(
        error_code(&app.login("erin@example.com", "first-password").await),
        "UNAUTHENTICATED"
    );
    assert!(
        app.login("erin@example.com", "second-password")
            .await
            .get("errors")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_profile() {
    let app = TestApp::spawn().await;
    let (token, _, _) = app.register("fay@example.com", "fay-password").await;
    let q = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { displayName avatarUrl settings } }";
    let set = app
        .gql_ok(Some(&token), q, json!({"i": {"displayName": " Fay ", "avatarUrl": "https://img.example.com/f.png", "settings": {"theme": "dark", "lang": "zh-CN"}}}))
        .await;
    assert_eq!(set["updateProfile"]["displayName"], "Fay");
    assert_eq!(set["updateProfile"]["settings"]["lang"], "zh-CN");

    let partial = app
        .gql_ok(Some(&token), q, json!({"i": {"avatarUrl": null}}))
        .await;
    assert_eq!(
        partial["updateProfile"]["avatarUrl"],
        serde_json::Value::Null,
        "null clears"
    );
    assert_eq!(
        partial["updateProfile"]["displayName"], "Fay",
        "omitted fields stay"
    );
    assert_eq!(partial["updateProfile"]["settings"]["theme"], "dark");

    for bad in [
        json!({"avatarUrl": "javascript:alert(1)"}),
        json!({"settings": [1, 2]}),
        json!({"displayName": "x".repeat(65)}),
    ] {
        let body = app.gql(Some(&token), q, json!({ "i": bad })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    let me = app.gql_ok(Some(&token), ME, json!({})).await;
    assert_eq!(
        me["me"]["displayName"], "Fay",
        "a rejected update changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked() {
    let app = TestApp::spawn().await;
    for header in ["Bearer not.a.jwt", "Basic abc", "Bearer "] {
        let body: serde_json::Value = app
            .client
            .post(app.url("/graphql"))
            .header("authorization", header)
            .json(&json!({ "query": ME }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{header}: {body}");
    }
    // A token signed with another key is rejected.
    let other = TestApp::spawn_with(|c| {
        c.jwt_secret = Some(cloudbase_server::config::Secret::new(
            "another-secret-another-secret-another-1",
        ));
    })
    .await;
    let (foreign, _, _) = other.register("gus@example.com", "gus-password").await;
    let body = app.gql(Some(&foreign), ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    // Public operations still work with no token.
    let anon = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(anon["data"]["__typename"], "Query");
}

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { accessToken user { email } } }";

/// The examples and their kin are refused wherever a password is set: registration and
/// a password change (the bootstrap admin's and the CLI's go through the same check; see
/// `a_weak_bootstrap_admin_password_stops_the_start`).
#[tokio::test(flavor = "multi_thread")]
async fn trivial_passwords_are_refused() {
    let app = TestApp::spawn().await;
    for weak in [
        "password",
        "12345678",
        "\0\0\0\0\0\0\0\0",
        "Password1",
        "qwertyuiop",
        "ada.lovelace",
    ] {
        let body = app
            .gql(None, REGISTER, json!({"input": {"email": "ada.lovelace@example.com", "password": weak, "displayName": "Ada"}}))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{weak:?}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "input.password");
    }
    let (token, _, _) = app
        .register("ada.lovelace@example.com", "correct horse 1")
        .await;
    let q = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    for weak in ["password", "11111111", "abcdefgh"] {
        let body = app
            .gql(Some(&token), q, json!({"c": "correct horse 1", "n": weak}))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{weak:?}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "newPassword");
    }
}

/// Full-width letters fold to the ASCII account (at registration and at login); letters from
/// other scripts that only look Latin are refused.
#[tokio::test(flavor = "multi_thread")]
async fn lookalike_emails_cannot_make_a_second_account() {
    let app = TestApp::spawn().await;
    let (_, _, id) = app.register("ada@example.com", "correct horse 1").await;
    for (lookalike, code) in [
        ("ａｄａ@example.com", "CONFLICT"),
        ("\u{430}da@example.com", "BAD_USER_INPUT"),
        ("ada@ex\u{430}mple.com", "BAD_USER_INPUT"),
    ] {
        let body = app
            .gql(None, REGISTER, json!({"input": {"email": lookalike, "password": "correct horse 2", "displayName": "Eve"}}))
            .await;
        assert_eq!(error_code(&body), code, "{lookalike}: {body}");
        if code == "BAD_USER_INPUT" {
            assert_eq!(body["errors"][0]["extensions"]["field"], "input.email");
        }
    }
    let login = app
        .login("ＡＤＡ@ｅｘａｍｐｌｅ.ｃｏｍ", "correct horse 1")
        .await;
    assert!(login.get("errors").is_none(), "{login}");
    assert_eq!(login["data"]["login"]["user"]["id"], id.as_str());
}

/// The bootstrap admin's password is checked like any other: a trivial one stops the start-up
/// with an error naming the setting.
#[tokio::test(flavor = "multi_thread")]
async fn a_weak_bootstrap_admin_password_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = cloudbase_server::config::Config {
        data_dir: dir.path().to_path_buf(),
        plugins_dir: Some(dir.path().join("no-plugins")),
        database_url: Some(format!("sqlite://{}", dir.path().join("weak.db").display())),
        jwt_secret: Some(cloudbase_server::config::Secret::new(
            "test-secret-test-secret-test-secret-0123",
        )),
        bootstrap_admin_email: Some("admin@cloudbase.test".into()),
        bootstrap_admin_password: Some(cloudbase_server::config::Secret::new("12345678")),
        ..Default::default()
    };
    std::fs::create_dir_all(dir.path().join("no-plugins")).unwrap();
    cloudbase_server::telemetry::init_for_tests();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        cloudbase_server::run(config, listener, std::future::pending()),
    )
    .await
    .expect("the server should refuse to start, not serve");
    let message = format!("{:#}", outcome.expect_err("a weak bootstrap password"));
    assert!(
        message.contains("bootstrap_admin") && message.contains("too easy to guess"),
        "{message}"
    );
}
