//! Getting back into an account: a password reset link sent through the `email` notifier plugin
//! (to a local SMTP sink), the same answer for every address, throttled; the token single-use,
//! stored hashed, valid 30 minutes; a reset ends every session. And an admin's requirement of a
//! new password at the next sign-in.

use std::sync::Arc;
use std::time::Duration;

use cloudbase_schema::clock::ManualClock;
use serde_json::{Value, json};

use crate::receivers::SmtpSink;
use crate::support::{TestApp, error_code, instance};

const PASSWORD: &str = "correct horse battery 1";
const NEW_PASSWORD: &str = "purple giraffe umbrella 7";
const REQUEST: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
const RESET: &str =
    "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";
const ME: &str = "{ me { id passwordChangeRequired } }";

async fn with_mail(smtp: &SmtpSink, clock: Option<Arc<ManualClock>>) -> TestApp {
    let port = smtp.port;
    let tweak = move |c: &mut cloudbase_server::config::Config| {
        c.plugins.insert(
            "mail".into(),
            instance(
                "email",
                json!({"host": "127.0.0.1", "port": port, "tls": "none", "from": "noreply@cloudbase.test", "to": ["ops@cloudbase.test"]}),
                &[],
            ),
        );
        c.auth.password_reset_channel = Some("mail".into());
        c.auth.password_reset_url =
            Some("https://ai.example.com/console#/reset-password?token={token}".into());
    };
    match clock {
        Some(clock) => TestApp::spawn_with_clock(clock, tweak).await,
        None => TestApp::spawn_with(tweak).await,
    }
}

/// A quoted-printable body decoded (soft line breaks joined, `=XX` bytes restored).
fn decoded(message: &str) -> String {
    let joined = message.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits for the SMTP sink to hold `n` messages; returns them, decoded.
async fn mail(smtp: &SmtpSink, n: usize) -> Vec<String> {
    for _ in 0..100 {
        let messages = smtp.messages();
        if messages.len() >= n {
            return messages.iter().map(|m| decoded(m)).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} messages, got {:?}", smtp.messages());
}

/// The reset token in a message: `cbp_` and its URL-safe base64.
fn token_in(message: &str) -> String {
    let start = message
        .find("cbp_")
        .unwrap_or_else(|| panic!("no token in {message}"));
    message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_link_by_email_sets_a_new_password_and_ends_every_session() {
    let smtp = SmtpSink::start().await;
    let app = with_mail(&smtp, None).await;
    let (first, _, _) = app.register("lost@example.com", PASSWORD).await;
    let second = app.login("lost@example.com", PASSWORD).await["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same answer for an account, an unknown address, and anything at all.
    for email in [
        "lost@example.com",
        "nobody@example.com",
        "LOST@Example.com ",
    ] {
        let answer = app.gql(None, REQUEST, json!({ "e": email })).await;
        assert_eq!(
            answer,
            json!({ "data": { "requestPasswordReset": true } }),
            "{email}"
        );
    }
    // Mail goes only to the account (twice: the address is normalised as at login).
    let messages = mail(&smtp, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages_now = smtp.messages();
    assert_eq!(messages_now.len(), 2, "{messages_now:?}");
    for m in &messages {
        assert!(m.contains("lost@example.com"), "{m}");
        assert!(!m.contains("nobody@example.com"), "{m}");
        assert!(m.contains("Reset your CloudBase AI password"), "{m}");
    }
    let token = token_in(&messages[0]);
    let older = token_in(&messages[1]);
    assert_ne!(token, older);
    assert!(
        messages[0].contains(&format!(
            "https://ai.example.com/console#/reset-password?token={token}"
        )),
        "{}",
        messages[0]
    );
    // Only the hash is stored.
    let stored = app
        .sql_number(&format!(
            "SELECT COUNT(*) AS n FROM password_resets WHERE id = '{token}'"
        ))
        .await;
    assert_eq!(stored, 0);
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM password_resets")
            .await,
        2
    );

    // A weak password is refused and the token still works.
    let weak = app
        .gql(None, RESET, json!({ "t": token, "p": "password" }))
        .await;
    assert_eq!(error_code(&weak), "BAD_USER_INPUT", "{weak}");
    app.gql_ok(None, RESET, json!({ "t": token, "p": NEW_PASSWORD }))
        .await;

    // Every session ended; the old password is gone; the new one signs in.
    for token in [&first, &second] {
        let refused = app.gql(Some(token), ME, json!({})).await;
        assert_eq!(error_code(&refused), "UNAUTHENTICATED", "{refused}");
    }
    let old = app.login("lost@example.com", PASSWORD).await;
    assert_eq!(error_code(&old), "UNAUTHENTICATED", "{old}");
    assert!(
        app.login("lost@example.com", NEW_PASSWORD).await["data"]["login"]["accessToken"]
            .is_string()
    );

    // The token worked once, and the other one sent earlier died with it.
    for (t, what) in [(&token, "used"), (&older, "the other one")] {
        let again = app
            .gql(
                None,
                RESET,
                json!({ "t": t, "p": "another fine passphrase 9" }),
            )
            .await;
        assert_eq!(error_code(&again), "BAD_USER_INPUT", "{what}: {again}");
        assert_eq!(
            again["errors"][0]["extensions"]["field"], "token",
            "{again}"
        );
    }
    let nonsense = app
        .gql(
            None,
            RESET,
            json!({ "t": "cbp_nonsense", "p": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&nonsense), "BAD_USER_INPUT", "{nonsense}");
    let huge = app
        .gql(
            None,
            RESET,
            json!({ "t": "x".repeat(100_000), "p": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&huge), "BAD_USER_INPUT", "{huge}");

    // Neither the token nor the password reaches the audit trail.
    let admin = app.admin_token().await;
    let log = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(filter: { field: \"resetPassword\" }, first: 20) { edges { node { arguments outcome } } } }",
            json!({}),
        )
        .await;
    let text = log.to_string();
    assert!(text.contains("OK"), "{text}");
    assert!(
        !text.contains(&token) && !text.contains(NEW_PASSWORD),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_link_expires_after_30_minutes_and_two_step_sign_in_stays_on() {
    let smtp = SmtpSink::start().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = with_mail(&smtp, Some(Arc::clone(&clock))).await;
    let (token, _, _) = app.register("late@example.com", PASSWORD).await;
    crate::mfa::enrol_at(&app, &token, &*clock).await;

    app.gql_ok(None, REQUEST, json!({ "e": "late@example.com" }))
        .await;
    let expired = token_in(&mail(&smtp, 1).await[0]);
    clock.advance(chrono::Duration::minutes(31));
    let late = app
        .gql(None, RESET, json!({ "t": expired, "p": NEW_PASSWORD }))
        .await;
    assert_eq!(error_code(&late), "BAD_USER_INPUT", "{late}");

    app.gql_ok(None, REQUEST, json!({ "e": "late@example.com" }))
        .await;
    let fresh = token_in(&mail(&smtp, 2).await[1]);
    clock.advance(chrono::Duration::minutes(29));
    // A challenge the old password earned dies with it.
    let earned = app
        .gql_ok(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { mfaChallenge { challenge } } }",
            json!({ "i": { "email": "late@example.com", "password": PASSWORD } }),
        )
        .await["login"]["mfaChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql_ok(None, RESET, json!({ "t": fresh, "p": NEW_PASSWORD }))
        .await;
    let dead = app
        .gql(
            None,
            "mutation($c: String!) { completeMfaLogin(challenge: $c, code: \"123456\") { accessToken } }",
            json!({ "c": earned }),
        )
        .await;
    assert_eq!(error_code(&dead), "UNAUTHENTICATED", "{dead}");
    // The new password still owes a code: a reset is no way around two-step sign-in.
    let login = app
        .gql_ok(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken mfaChallenge { challenge } } }",
            json!({ "i": { "email": "late@example.com", "password": NEW_PASSWORD } }),
        )
        .await;
    assert!(login["login"]["accessToken"].is_null(), "{login}");
    assert!(
        login["login"]["mfaChallenge"]["challenge"].is_string(),
        "{login}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_requests_are_throttled_the_same_for_every_address() {
    let smtp = SmtpSink::start().await;
    let app = with_mail(&smtp, None).await;
    app.register("busy@example.com", PASSWORD).await;
    // Three an hour per address asked for, whether or not it has an account.
    for email in ["busy@example.com", "ghost@example.com"] {
        for _ in 0..3 {
            app.gql_ok(None, REQUEST, json!({ "e": email })).await;
        }
        let fourth = app.gql(None, REQUEST, json!({ "e": email })).await;
        assert_eq!(error_code(&fourth), "RATE_LIMITED", "{email}: {fourth}");
        assert!(
            fourth["errors"][0]["extensions"]["retryAfterMs"]
                .as_i64()
                .unwrap()
                > 0
        );
    }
    assert_eq!(mail(&smtp, 3).await.len(), 3);
    // Ten an hour from one client, whatever the addresses: the 8 above count, refused ones too.
    for n in 0..2 {
        app.gql_ok(
            None,
            REQUEST,
            json!({ "e": format!("spray{n}@example.com") }),
        )
        .await;
    }
    let sprayed = app
        .gql(None, REQUEST, json!({ "e": "spray9@example.com" }))
        .await;
    assert_eq!(error_code(&sprayed), "RATE_LIMITED", "{sprayed}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_channel_there_is_no_reset_by_email() {
    let app = TestApp::spawn().await;
    let refused = app
        .gql(None, REQUEST, json!({ "e": "a@example.com" }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_requires_a_new_password_at_the_next_sign_in() {
    let app = TestApp::spawn().await;
    let (token, _, user_id) = app.register("stale@example.com", PASSWORD).await;
    let admin = app.admin_token().await;
    const REQUIRE: &str =
        "mutation($u: ID!) { requirePasswordChange(userId: $u) { id passwordChangeRequired } }";

    let not_admin = app
        .gql(Some(&token), REQUIRE, json!({ "u": user_id }))
        .await;
    assert_eq!(error_code(&not_admin), "FORBIDDEN", "{not_admin}");
    let required = app
        .gql_ok(Some(&admin), REQUIRE, json!({ "u": user_id }))
        .await;
    assert_eq!(
        required["requirePasswordChange"]["passwordChangeRequired"],
        true
    );
    // The sessions it had are over.
    let ended = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(error_code(&ended), "UNAUTHENTICATED", "{ended}");

    // Signed in again, it may read itself and change its password, and nothing else.
    let body: Value = app.login("stale@example.com", PASSWORD).await;
    let token = body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.gql_ok(Some(&token), ME, json!({})).await;
    assert_eq!(me["me"]["passwordChangeRequired"], true);
    let sessions = app
        .gql(Some(&token), "{ mySessions { id } }", json!({}))
        .await;
    assert_eq!(
        error_code(&sessions),
        "PASSWORD_CHANGE_REQUIRED",
        "{sessions}"
    );
    let v1 = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 403);
    let v1: Value = v1.json().await.unwrap();
    assert_eq!(v1["error"]["code"], "password_change_required", "{v1}");
    const CHANGE: &str = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let same = app
        .gql(
            Some(&token),
            CHANGE,
            json!({ "c": PASSWORD, "n": PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&same), "BAD_USER_INPUT", "{same}");
    app.gql_ok(
        Some(&token),
        CHANGE,
        json!({ "c": PASSWORD, "n": NEW_PASSWORD }),
    )
    .await;
    // The same token now works for everything.
    app.gql_ok(Some(&token), "{ mySessions { id } }", json!({}))
        .await;
    let me = app.gql_ok(Some(&token), ME, json!({})).await;
    assert_eq!(me["me"]["passwordChangeRequired"], false);
    let log = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(filter: { field: \"requirePasswordChange\" }, first: 10) { edges { node { outcome } } } }",
            json!({}),
        )
        .await;
    let outcomes = log["auditLog"]["edges"].to_string();
    assert!(
        outcomes.contains("OK") && outcomes.contains("FORBIDDEN"),
        "{outcomes}"
    );
}
