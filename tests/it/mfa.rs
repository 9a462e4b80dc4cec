//! Two-step sign-in with TOTP: enrolment confirmed by a code, login answered with a challenge
//! that a code or a recovery code trades for tokens, codes that work once, wrong codes throttled,
//! turning it off, the admin's reset, and `[auth] require_mfa_for_admins`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use totp_rs::{Builder, Secret, Totp};

use crate::openai::create_key;
use crate::support::{TestApp, error_code};

const PASSWORD: &str = "correct horse battery 1";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken user { id } mfaChallenge { challenge expiresAt } } }";
const COMPLETE: &str = "mutation($c: String!, $code: String!) { completeMfaLogin(challenge: $c, code: $code) { accessToken user { id email } } }";
const START: &str =
    "mutation($p: String!) { startMfaEnrolment(password: $p) { secret otpauthUri qrCodeSvg } }";
const CONFIRM: &str = "mutation($c: String!) { confirmMfaEnrolment(code: $c) { codes } }";
const STANDING: &str = "{ me { mfaEnabled mfaEnabledAt mfaRecoveryCodesLeft } }";

fn totp(secret: &str) -> Totp {
    Builder::new()
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code of the time step `offset` steps from now.
fn code(secret: &str, offset: i64) -> String {
    let at = now() as i64 + offset * 30;
    totp(secret).generate(at as u64).to_string()
}

/// A six-digit code that no step from two before now to two after matches.
/// The code of `secret` for the next time step (accepted now, and after one of this step).
pub fn next_code(secret: &str) -> String {
    code(secret, 1)
}

fn wrong_code(secret: &str) -> String {
    let near: Vec<String> = (-2..=2).map(|o| code(secret, o)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn login(app: &TestApp, email: &str) -> Value {
    app.gql_ok(
        None,
        LOGIN,
        json!({ "i": { "email": email, "password": PASSWORD } }),
    )
    .await["login"]
        .clone()
}

/// Enrols `token`'s user; returns the secret and the recovery codes.
async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>) {
    enrol_at(app, token, &cloudbase_schema::clock::SystemClock).await
}

/// [`enrol`] on a server whose time is `clock`'s.
pub async fn enrol_at(
    app: &TestApp,
    token: &str,
    clock: &dyn cloudbase_schema::clock::Clock,
) -> (String, Vec<String>) {
    let started = app
        .gql_ok(Some(token), START, json!({ "p": PASSWORD }))
        .await;
    let secret = started["startMfaEnrolment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = clock.now().timestamp() as u64;
    let confirmed = app
        .gql_ok(
            Some(token),
            CONFIRM,
            json!({ "c": totp(&secret).generate(at).to_string() }),
        )
        .await;
    let codes = confirmed["confirmMfaEnrolment"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

async fn complete(app: &TestApp, challenge: &str, code: &str) -> Value {
    app.gql(None, COMPLETE, json!({ "c": challenge, "code": code }))
        .await
}

fn challenge_of(login: &Value) -> String {
    login["mfaChallenge"]["challenge"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge in {login}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn enrolment_then_login_in_two_steps_with_codes_that_work_once() {
    let app = TestApp::spawn().await;
    let (token, _, user_id) = app.register("two@example.com", PASSWORD).await;

    // Enrolment needs the password, and turns nothing on until a code confirms it.
    let wrong = app
        .gql(Some(&token), START, json!({ "p": "not the password" }))
        .await;
    assert_eq!(error_code(&wrong), "BAD_USER_INPUT", "{wrong}");
    let started = app
        .gql_ok(Some(&token), START, json!({ "p": PASSWORD }))
        .await;
    let enrolment = &started["startMfaEnrolment"];
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert_eq!(Secret::try_from_base32(&secret).unwrap().as_ref().len(), 20);
    let uri = enrolment["otpauthUri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/CloudBase%20AI:two%40example.com?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let svg = enrolment["qrCodeSvg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    let standing = app.gql_ok(Some(&token), STANDING, json!({})).await;
    assert_eq!(standing["me"]["mfaEnabled"], false, "{standing}");
    assert!(login(&app, "two@example.com").await["accessToken"].is_string());

    // A wrong code does not confirm it; the current one does, and gives ten recovery codes.
    let refused = app
        .gql(Some(&token), CONFIRM, json!({ "c": wrong_code(&secret) }))
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    let confirmed_with = code(&secret, 0);
    let confirmed = app
        .gql_ok(Some(&token), CONFIRM, json!({ "c": confirmed_with }))
        .await;
    let codes: Vec<String> = confirmed["confirmMfaEnrolment"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let standing = app.gql_ok(Some(&token), STANDING, json!({})).await;
    assert_eq!(standing["me"]["mfaEnabled"], true, "{standing}");
    assert_eq!(standing["me"]["mfaRecoveryCodesLeft"], 10, "{standing}");
    let again = app.gql(Some(&token), START, json!({ "p": PASSWORD })).await;
    assert_eq!(error_code(&again), "CONFLICT", "{again}");

    // The right password now gets a challenge, and nothing else.
    let first = login(&app, "two@example.com").await;
    assert!(first["accessToken"].is_null(), "{first}");
    assert!(first["refreshToken"].is_null(), "{first}");
    assert!(first["user"].is_null(), "{first}");
    let challenge = challenge_of(&first);
    let wrong = complete(&app, &challenge, &wrong_code(&secret)).await;
    assert_eq!(error_code(&wrong), "BAD_USER_INPUT", "{wrong}");
    // The code that confirmed enrolment was used: it does not work again in its time step.
    let replay = complete(&app, &challenge, &confirmed_with).await;
    assert_eq!(error_code(&replay), "BAD_USER_INPUT", "{replay}");
    // The next step's code does (one step of clock skew is allowed).
    let done = complete(&app, &challenge, &code(&secret, 1)).await;
    let signed_in = &done["data"]["completeMfaLogin"];
    assert_eq!(signed_in["user"]["id"], user_id.as_str(), "{done}");
    let new_token = signed_in["accessToken"].as_str().unwrap();
    let me = app
        .gql_ok(Some(new_token), "{ me { email } }", json!({}))
        .await;
    assert_eq!(me["me"]["email"], "two@example.com");
    // A challenge is single-use, and a code of an earlier step than one used is refused.
    let reused = complete(&app, &challenge, &code(&secret, 1)).await;
    assert_eq!(error_code(&reused), "UNAUTHENTICATED", "{reused}");
    let earlier = complete(
        &app,
        &challenge_of(&login(&app, "two@example.com").await),
        &code(&secret, 0),
    )
    .await;
    assert_eq!(error_code(&earlier), "BAD_USER_INPUT", "{earlier}");

    // A recovery code signs in once, typed any which way.
    let typed = format!(" {} ", codes[3].to_uppercase().replace('-', " "));
    let second = challenge_of(&login(&app, "two@example.com").await);
    let done = complete(&app, &second, &typed).await;
    assert!(
        done["data"]["completeMfaLogin"]["accessToken"].is_string(),
        "{done}"
    );
    let third = challenge_of(&login(&app, "two@example.com").await);
    let spent = complete(&app, &third, &codes[3]).await;
    assert_eq!(error_code(&spent), "BAD_USER_INPUT", "{spent}");
    let standing = app.gql_ok(Some(&token), STANDING, json!({})).await;
    assert_eq!(standing["me"]["mfaRecoveryCodesLeft"], 9, "{standing}");

    // New recovery codes replace the old ones.
    let renewed = app
        .gql_ok(
            Some(&token),
            "mutation($c: String!) { regenerateMfaRecoveryCodes(code: $c) { codes } }",
            json!({ "c": codes[0] }),
        )
        .await;
    let fresh = renewed["regenerateMfaRecoveryCodes"]["codes"]
        .as_array()
        .unwrap();
    assert_eq!(fresh.len(), 10);
    let old = complete(&app, &third, &codes[1]).await;
    assert_eq!(error_code(&old), "BAD_USER_INPUT", "{old}");
    let new = complete(&app, &third, fresh[0].as_str().unwrap()).await;
    assert!(
        new["data"]["completeMfaLogin"]["accessToken"].is_string(),
        "{new}"
    );

    // Codes, challenges and passwords never reach the audit trail.
    let admin = app.admin_token().await;
    let log = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(first: 100) { edges { node { field arguments } } } }",
            json!({}),
        )
        .await;
    let text = log.to_string();
    for field in [
        "startMfaEnrolment",
        "confirmMfaEnrolment",
        "completeMfaLogin",
        "regenerateMfaRecoveryCodes",
    ] {
        assert!(text.contains(field), "{field} is audited: {text}");
    }
    for secret in [PASSWORD, &confirmed_with, &challenge, &codes[0], &codes[3]] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_codes_are_throttled_and_end_the_challenge() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.login_failures_before_backoff = 3;
    })
    .await;
    let (token, _, _) = app.register("guess@example.com", PASSWORD).await;
    let (secret, _) = enrol(&app, &token).await;
    let bad = wrong_code(&secret);

    // Three wrong codes are free in the throttle, as three wrong passwords are.
    let challenge = challenge_of(&login(&app, "guess@example.com").await);
    for _ in 0..3 {
        let wrong = complete(&app, &challenge, &bad).await;
        assert_eq!(error_code(&wrong), "BAD_USER_INPUT", "{wrong}");
    }
    // The fourth wrong code in a row is throttled like a fourth wrong password.
    let limited = complete(&app, &challenge, &bad).await;
    assert_eq!(error_code(&limited), "RATE_LIMITED", "{limited}");
    assert!(
        limited["errors"][0]["extensions"]["retryAfterMs"]
            .as_i64()
            .unwrap()
            > 0,
        "{limited}"
    );
    // ... and so is the right one, until the wait is over: guessing does not get faster.
    let held = complete(&app, &challenge, &code(&secret, 0)).await;
    assert_eq!(error_code(&held), "RATE_LIMITED", "{held}");
    // And so is a wrong password, from the same address.
    let password = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "email": "guess@example.com", "password": "nope nope nope" } }),
        )
        .await;
    assert_eq!(error_code(&password), "RATE_LIMITED", "{password}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_challenge_dies_after_five_wrong_codes() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.login_failures_before_backoff = 100;
    })
    .await;
    let (token, _, _) = app.register("five@example.com", PASSWORD).await;
    let (secret, _) = enrol(&app, &token).await;
    let challenge = challenge_of(&login(&app, "five@example.com").await);
    let bad = wrong_code(&secret);
    // Sent at once: each attempt is counted before its code is checked, so exactly five are
    // checked (and wrong) and the rest find the challenge dead.
    let tries = (0..8).map(|_| complete(&app, &challenge, &bad));
    let mut codes: Vec<String> = futures_util::future::join_all(tries)
        .await
        .iter()
        .map(|answer| error_code(answer).to_owned())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [vec!["BAD_USER_INPUT"; 5], vec!["UNAUTHENTICATED"; 3]].concat()
    );
    let late = complete(&app, &challenge, &code(&secret, 1)).await;
    assert_eq!(error_code(&late), "UNAUTHENTICATED", "{late}");
    assert!(
        late["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{late}"
    );
    // A fresh challenge still works with that code.
    let fresh = challenge_of(&login(&app, "five@example.com").await);
    let done = complete(&app, &fresh, &code(&secret, 1)).await;
    assert!(
        done["data"]["completeMfaLogin"]["accessToken"].is_string(),
        "{done}"
    );
    // Garbage gets a clear error, not a panic.
    let huge = complete(&app, &fresh, &"9".repeat(10_000)).await;
    assert_eq!(error_code(&huge), "BAD_USER_INPUT", "{huge}");
    let unknown = complete(&app, "cbm_nonsense", &code(&secret, 0)).await;
    assert_eq!(error_code(&unknown), "UNAUTHENTICATED", "{unknown}");

    // Ten wrong codes an hour per account, whatever the challenge: a right password (which
    // clears the login throttle) does not start the count again. Five were wrong above.
    let next = challenge_of(&login(&app, "five@example.com").await);
    for _ in 0..5 {
        let wrong = complete(&app, &next, &bad).await;
        assert_eq!(error_code(&wrong), "BAD_USER_INPUT", "{wrong}");
    }
    let last = challenge_of(&login(&app, "five@example.com").await);
    let limited = complete(&app, &last, &code(&secret, 2)).await;
    assert_eq!(error_code(&limited), "RATE_LIMITED", "{limited}");
}

#[tokio::test(flavor = "multi_thread")]
async fn turning_it_off_needs_password_and_code_and_an_admin_can_reset_it() {
    let app = TestApp::spawn().await;
    let (token, _, user_id) = app.register("off@example.com", PASSWORD).await;
    let (secret, codes) = enrol(&app, &token).await;
    const DISABLE: &str =
        "mutation($p: String!, $c: String!) { disableMfa(password: $p, code: $c) }";

    let wrong_password = app
        .gql(
            Some(&token),
            DISABLE,
            json!({ "p": "wrong wrong wrong", "c": code(&secret, 1) }),
        )
        .await;
    assert_eq!(
        error_code(&wrong_password),
        "BAD_USER_INPUT",
        "{wrong_password}"
    );
    let wrong_code_given = app
        .gql(
            Some(&token),
            DISABLE,
            json!({ "p": PASSWORD, "c": wrong_code(&secret) }),
        )
        .await;
    assert_eq!(
        error_code(&wrong_code_given),
        "BAD_USER_INPUT",
        "{wrong_code_given}"
    );
    assert_eq!(
        app.gql_ok(Some(&token), STANDING, json!({})).await["me"]["mfaEnabled"],
        true
    );
    app.gql_ok(
        Some(&token),
        DISABLE,
        json!({ "p": PASSWORD, "c": codes[0] }),
    )
    .await;
    let standing = app.gql_ok(Some(&token), STANDING, json!({})).await;
    assert_eq!(standing["me"]["mfaEnabled"], false, "{standing}");
    assert_eq!(standing["me"]["mfaRecoveryCodesLeft"], 0, "{standing}");
    assert!(login(&app, "off@example.com").await["accessToken"].is_string());

    // On again; then the device is lost, and an admin resets it.
    enrol(&app, &token).await;
    assert!(login(&app, "off@example.com").await["accessToken"].is_null());
    const RESET: &str = "mutation($u: ID!) { resetUserMfa(userId: $u) { id mfaEnabled } }";
    let not_admin = app.gql(Some(&token), RESET, json!({ "u": user_id })).await;
    assert_eq!(error_code(&not_admin), "FORBIDDEN", "{not_admin}");
    let admin = app.admin_token().await;
    let reset = app
        .gql_ok(Some(&admin), RESET, json!({ "u": user_id }))
        .await;
    assert_eq!(reset["resetUserMfa"]["mfaEnabled"], false, "{reset}");
    let admin_id = app.gql_ok(Some(&admin), "{ me { id } }", json!({})).await["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let own = app.gql(Some(&admin), RESET, json!({ "u": admin_id })).await;
    assert_eq!(error_code(&own), "FORBIDDEN", "{own}");
    let nobody = app
        .gql(
            Some(&admin),
            RESET,
            json!({ "u": "0190c6f0-0000-7000-8000-000000000000" }),
        )
        .await;
    assert_eq!(error_code(&nobody), "NOT_FOUND", "{nobody}");
    assert!(login(&app, "off@example.com").await["accessToken"].is_string());
    let log = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(filter: { field: \"resetUserMfa\" }, first: 10) { edges { node { outcome arguments } } } }",
            json!({}),
        )
        .await;
    let outcomes: Vec<&Value> = log["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"]["outcome"])
        .collect();
    assert!(outcomes.contains(&&json!("OK")), "{log}");
    assert!(log.to_string().contains(&user_id), "{log}");

    // An API key cannot manage two-step sign-in, even with scope FULL.
    let (key, _) = create_key(&app, &token, json!({ "name": "full", "scope": "FULL" })).await;
    let by_key = app.gql(Some(&key), START, json!({ "p": PASSWORD })).await;
    assert_eq!(error_code(&by_key), "FORBIDDEN", "{by_key}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_without_it_may_only_enrol_when_it_is_required() {
    let app = TestApp::spawn_with(|c| c.auth.require_mfa_for_admins = true).await;
    let admin = app.admin_token().await;

    // Everything but enrolling, reading one's own account and signing out is MFA_REQUIRED.
    let users = app
        .gql(
            Some(&admin),
            "{ users(first: 5) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&users), "MFA_REQUIRED", "{users}");
    let chat = app
        .gql(
            Some(&admin),
            "mutation { chat(input: { message: \"hi\" }) { __typename } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&chat), "MFA_REQUIRED", "{chat}");
    let me = app
        .gql_ok(Some(&admin), "{ me { role mfaEnabled } }", json!({}))
        .await;
    assert_eq!(me["me"]["mfaEnabled"], false, "{me}");
    let v1 = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 403);
    let body: Value = v1.json().await.unwrap();
    assert_eq!(body["error"]["code"], "mfa_required", "{body}");

    // Enrolling lifts it for the same token at once.
    let started = app
        .gql_ok(
            Some(&admin),
            START,
            json!({ "p": crate::support::ADMIN_PASSWORD }),
        )
        .await;
    let secret = started["startMfaEnrolment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql_ok(Some(&admin), CONFIRM, json!({ "c": code(&secret, 0) }))
        .await;
    app.gql_ok(
        Some(&admin),
        "{ users(first: 5) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    // And an admin may not turn it off while it is required.
    let off = app
        .gql(
            Some(&admin),
            "mutation($p: String!, $c: String!) { disableMfa(password: $p, code: $c) }",
            json!({ "p": crate::support::ADMIN_PASSWORD, "c": code(&secret, 1) }),
        )
        .await;
    assert_eq!(error_code(&off), "FORBIDDEN", "{off}");

    // Ordinary users are not asked for it.
    let (user, _, _) = app.register("plain@example.com", PASSWORD).await;
    app.gql_ok(Some(&user), "{ me { id } mySessions { id } }", json!({}))
        .await;
}
