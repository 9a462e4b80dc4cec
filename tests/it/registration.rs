//! Who may register: open, invite-only and closed registration, invites, the per-address limit,
//! and the budget a new user starts with.

use std::sync::Arc;

use chrono::TimeDelta;
use cloudbase_schema::clock::ManualClock;
use cloudbase_server::config::{PeriodConfig, RegistrationConfig};
use serde_json::{Value, json};

use crate::limits::{PASSWORD, gql_from, retry_after_ms};
use crate::support::{TestApp, error_code};

const MODE: &str = "{ registration { mode passwordMinLength passwordMaxLength } }";
const REGISTER: &str =
    "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id email } } }";
const CREATE_INVITE: &str = "mutation($i: CreateInviteInput) { createInvite(input: $i) { code invite { id note state expiresAt } } }";
const INVITES: &str = "query($active: Boolean) { invites(activeOnly: $active) { edges { node { id note state usedBy usedAt revokedAt createdBy } } } }";
const REVOKE: &str = "mutation($id: ID!) { revokeInvite(id: $id) { id state revokedAt } }";

fn sign_up(email: &str, code: Option<&str>) -> Value {
    json!({"i": {"email": email, "password": PASSWORD, "displayName": "Newcomer", "inviteCode": code}})
}

async fn register(app: &TestApp, email: &str, code: Option<&str>) -> Value {
    app.gql(None, REGISTER, sign_up(email, code)).await
}

async fn invite(app: &TestApp, admin: &str, input: Value) -> (String, String) {
    let data = app
        .gql_ok(Some(admin), CREATE_INVITE, json!({"i": input}))
        .await;
    let created = &data["createInvite"];
    assert_eq!(created["invite"]["state"], "ACTIVE");
    (
        created["code"].as_str().unwrap().to_owned(),
        created["invite"]["id"].as_str().unwrap().to_owned(),
    )
}

fn invite_field_error(body: &Value) {
    assert_eq!(error_code(body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.inviteCode");
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_is_open_by_default_and_can_be_closed() {
    let open = TestApp::spawn().await;
    let info = open.gql_ok(None, MODE, json!({})).await;
    assert_eq!(
        info["registration"],
        json!({"mode": "OPEN", "passwordMinLength": 8, "passwordMaxLength": 128})
    );
    let body = register(&open, "anyone@example.com", Some("ignored when open")).await;
    assert!(body.get("errors").is_none(), "{body}");

    let closed = TestApp::spawn_with(|c| c.auth.registration = RegistrationConfig::Closed).await;
    let info = closed.gql_ok(None, MODE, json!({})).await;
    assert_eq!(info["registration"]["mode"], "CLOSED");
    let refused = register(&closed, "anyone@example.com", None).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("registration is closed"), "{message}");
    // The admins still get in, and an invite is no way around a closed door.
    let admin = closed.admin_token().await;
    let (code, _) = invite(&closed, &admin, json!({})).await;
    let with_code = register(&closed, "anyone@example.com", Some(&code)).await;
    assert_eq!(error_code(&with_code), "FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_mode_takes_one_valid_code_per_account() {
    let start = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| {
        c.auth.registration = RegistrationConfig::Invite;
    })
    .await;
    assert_eq!(
        app.gql_ok(None, MODE, json!({})).await["registration"]["mode"],
        "INVITE"
    );
    let admin = app.admin_token().await;
    invite_field_error(&register(&app, "nocode@example.com", None).await);
    invite_field_error(&register(&app, "nocode@example.com", Some("  ")).await);
    invite_field_error(&register(&app, "guess@example.com", Some("cbi_made-up")).await);

    let (code, id) = invite(&app, &admin, json!({"note": "for Ada"})).await;
    let ada = register(&app, "ada@example.com", Some(&format!(" {code} "))).await;
    assert!(ada.get("errors").is_none(), "{ada}");
    let ada_id = ada["data"]["register"]["user"]["id"].clone();
    invite_field_error(&register(&app, "eve@example.com", Some(&code)).await);

    let listed = app.gql_ok(Some(&admin), INVITES, json!({})).await;
    let node = &listed["invites"]["edges"][0]["node"];
    assert_eq!(node["id"], id.as_str());
    assert_eq!(node["state"], "USED");
    assert_eq!(node["usedBy"], ada_id);
    assert_eq!(node["note"], "for Ada");
    let revoke_used = app.gql(Some(&admin), REVOKE, json!({"id": id})).await;
    assert_eq!(error_code(&revoke_used), "CONFLICT", "{revoke_used}");

    // Revoked and expired codes stop working; the active list leaves them out.
    let (revoked, revoked_id) = invite(&app, &admin, json!({})).await;
    let r = app
        .gql_ok(Some(&admin), REVOKE, json!({"id": revoked_id}))
        .await;
    assert_eq!(r["revokeInvite"]["state"], "REVOKED");
    invite_field_error(&register(&app, "late@example.com", Some(&revoked)).await);
    let soon = (start + TimeDelta::hours(1)).to_rfc3339();
    let (expiring, _) = invite(&app, &admin, json!({"expiresAt": soon})).await;
    clock.advance(TimeDelta::hours(2));
    invite_field_error(&register(&app, "late@example.com", Some(&expiring)).await);
    let active = app
        .gql_ok(Some(&admin), INVITES, json!({"active": true}))
        .await;
    assert_eq!(active["invites"]["edges"], json!([]));
    let all = app.gql_ok(Some(&admin), INVITES, json!({})).await;
    let states: Vec<_> = all["invites"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["EXPIRED", "REVOKED", "USED"]);

    // Only admins manage invites; bad input is named.
    let user = ada["data"]["register"]["accessToken"].as_str().unwrap();
    for (q, vars) in [
        (CREATE_INVITE, json!({})),
        (INVITES, json!({})),
        (REVOKE, json!({"id": id})),
    ] {
        assert_eq!(error_code(&app.gql(Some(user), q, vars).await), "FORBIDDEN");
    }
    let past = app
        .gql(
            Some(&admin),
            CREATE_INVITE,
            json!({"i": {"expiresAt": "2020-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(past["errors"][0]["extensions"]["field"], "input.expiresAt");
    let missing = app
        .gql(
            Some(&admin),
            REVOKE,
            json!({"id": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");

    // Only the code's hash is stored, and the audit trail never holds a code.
    let stored = format!("SELECT COUNT(*) AS n FROM invites WHERE code_hash = '{code}'");
    assert_eq!(app.sql_number(&stored).await, 0);
    let audited = format!("SELECT COUNT(*) AS n FROM audit_log WHERE arguments LIKE '%{code}%'");
    assert_eq!(app.sql_number(&audited).await, 0);
    let creations = "SELECT COUNT(*) AS n FROM audit_log WHERE field = 'createInvite'";
    assert!(
        app.sql_number(creations).await >= 3,
        "createInvite is audited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_invite_admits_one_of_several_racing_registrations() {
    let app = TestApp::spawn_with(|c| c.auth.registration = RegistrationConfig::Invite).await;
    let admin = app.admin_token().await;
    let (code, _) = invite(&app, &admin, json!({})).await;
    let racers = (0..4).map(|i| {
        let (app, code) = (&app, code.clone());
        async move { register(app, &format!("racer{i}@example.com"), Some(&code)).await }
    });
    let bodies = futures_util::future::join_all(racers).await;
    let winners = bodies.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(winners, 1, "{bodies:?}");
    for loser in bodies.iter().filter(|b| b.get("errors").is_some()) {
        invite_field_error(loser);
    }
    let users = app
        .gql_ok(
            Some(&admin),
            "{ users { edges { node { email } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        users["users"]["edges"].as_array().unwrap().len(),
        2,
        "the admin and the one winner; the losers' accounts were rolled back"
    );
}

/// 40 accounts from one address in a moment was the finding; now each address gets
/// `registrations_per_address` an hour (a sliding hour), with `retryAfterMs`.
#[tokio::test(flavor = "multi_thread")]
async fn registrations_are_limited_per_address() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| {
        c.http.trust_forwarded_for = true;
        c.rate_limits.registrations_per_address = 3;
    })
    .await;
    let busy = "203.0.113.60";
    for i in 0..3 {
        let body = gql_from(
            &app,
            busy,
            REGISTER,
            sign_up(&format!("bulk{i}@example.com"), None),
        )
        .await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    let fourth = gql_from(&app, busy, REGISTER, sign_up("bulk3@example.com", None)).await;
    assert_eq!(retry_after_ms(&fourth), 3_600_000);
    let elsewhere = gql_from(
        &app,
        "203.0.113.61",
        REGISTER,
        sign_up("bulk3@example.com", None),
    )
    .await;
    assert!(elsewhere.get("errors").is_none(), "{elsewhere}");
    // Bad input is answered without using up the address's allowance.
    let weak = gql_from(
        &app,
        busy,
        REGISTER,
        json!({"i": {"email": "weak@example.com", "password": "password", "displayName": "W"}}),
    )
    .await;
    assert_eq!(error_code(&weak), "BAD_USER_INPUT");

    clock.advance(TimeDelta::minutes(59));
    let still = gql_from(&app, busy, REGISTER, sign_up("bulk4@example.com", None)).await;
    assert_eq!(retry_after_ms(&still), 60_000);
    clock.advance(TimeDelta::minutes(1));
    let again = gql_from(&app, busy, REGISTER, sign_up("bulk4@example.com", None)).await;
    assert!(again.get("errors").is_none(), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_users_start_with_the_configured_budget() {
    let app = TestApp::spawn_with(|c| {
        c.budgets.new_user_limit_micros = 5_000_000;
        c.budgets.new_user_period = PeriodConfig::Day;
        c.budgets.new_user_currency = "USD".into();
    })
    .await;
    let (token, _, user_id) = app.register("budgeted@example.com", PASSWORD).await;
    let budgets = app
        .gql_ok(
            Some(&token),
            "{ budgets { scope userId period currency limitMicros spentMicros } }",
            json!({}),
        )
        .await;
    assert_eq!(
        budgets["budgets"],
        json!([{"scope": "USER", "userId": user_id, "period": "DAY", "currency": "USD", "limitMicros": "5000000", "spentMicros": "0"}])
    );

    let plain = TestApp::spawn().await;
    let (token, _, _) = plain.register("unbudgeted@example.com", PASSWORD).await;
    let none = plain
        .gql_ok(Some(&token), "{ budgets { id } }", json!({}))
        .await;
    assert_eq!(none["budgets"], json!([]), "no budget unless configured");
}
