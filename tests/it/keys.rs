//! Keys (issue 16, items 5 and 6): access tokens signed by Ed25519 keys that rotate, with a
//! `kid` and a published JWKS, HS256 tokens of an older deployment running out without logging
//! anyone out; sensitive columns sealed under a master key that rotates online, and a wrong
//! master key refused at start.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloudbase_schema::clock::ManualClock;
use cloudbase_server::config::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::support::{TestApp, error_code, skip_without_postgres};
use crate::ws::GqlWs;

const ME: &str = "{ me { id } }";
const KEYS: &str = "{ signingKeys { kid algorithm state signsFrom verifiesUntil } }";
const ROTATE: &str = "mutation($s: Int) { rotateSigningKey(publishAheadSecs: $s) { kid state } }";
const RETIRE: &str = "mutation($k: String!) { retireSigningKey(kid: $k) }";
const REFRESH: &str =
    "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .unwrap_or_default()
}

/// The claims of a token, read without checking it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn jwks(app: &TestApp) -> (Value, String) {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.json().await.unwrap(), cache)
}

fn jwks_kids(set: &Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn works(app: &TestApp, token: &str) -> bool {
    let body = app.gql(Some(token), ME, json!({})).await;
    match body["data"]["me"]["id"].as_str() {
        Some(_) => true,
        None => {
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_name_their_key_and_other_services_verify_them_with_the_jwks() {
    let app = TestApp::spawn().await;
    let (token, _, user_id) = app.register("jwks@example.com", "jwks-password-1").await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let kid = header.kid.expect("a kid");
    let (set, cache) = jwks(&app).await;
    assert!(cache.contains("max-age=60"), "{cache}");
    let key = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("{kid} not in {set}"));
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert!(key.get("d").is_none(), "no private part: {key}");
    // Another service verifies the token with the published key alone.
    let decoding = DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["cloudbase-ai"]);
    let verified = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
    assert_eq!(verified.claims["sub"], user_id.as_str());

    // What an attacker sends: the Ed25519 key's `kid` on an HS256 token signed with the public
    // key as the secret (algorithm confusion), `alg: none`, a key nobody has, a changed payload.
    let public = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    let mut forged_claims = claims(&token);
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some(kid.clone());
    let confusion = jsonwebtoken::encode(
        &confused,
        &forged_claims,
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert!(!works(&app, &confusion).await);
    let parts: Vec<&str> = token.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{kid}"}}"#));
    assert!(!works(&app, &format!("{none_header}.{}.", parts[1])).await);
    let mut stranger = Header::new(Algorithm::HS256);
    stranger.kid = Some("made-up".into());
    let made_up =
        jsonwebtoken::encode(&stranger, &forged_claims, &EncodingKey::from_secret(b"x")).unwrap();
    assert!(!works(&app, &made_up).await);
    forged_claims["sub"] = json!("someone-else");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
    assert!(!works(&app, &format!("{}.{payload}.{}", parts[0], parts[2])).await);
    assert!(works(&app, &token).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_published_first_and_the_old_one_verifies_until_its_tokens_expire() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    let admin = app.admin_token().await;
    let old = kid(&admin);
    let (user, _, _) = app
        .register("keys-user@example.com", "keys-password-1")
        .await;
    let refused = app.gql(Some(&user), ROTATE, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    for bad in [-1, 86_401] {
        let body = app.gql(Some(&admin), ROTATE, json!({ "s": bad })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }

    let rotated = app.gql_ok(Some(&admin), ROTATE, json!({})).await;
    let new = rotated["rotateSigningKey"]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["rotateSigningKey"]["state"], "next");
    // Published before it signs: outside verifiers learn it first.
    let mut both = [old.clone(), new.clone()];
    both.sort();
    assert_eq!(jwks_kids(&jwks(&app).await.0), both);
    assert_eq!(kid(&app.admin_token().await), old, "not signing yet");

    clock.advance(chrono::Duration::seconds(61));
    let fresh = app.admin_token().await;
    assert_eq!(kid(&fresh), new);
    assert!(
        works(&app, &admin).await,
        "tokens of the old key still work"
    );
    let keys = app.gql_ok(Some(&fresh), KEYS, json!({})).await;
    let states: Vec<(String, String)> = keys["signingKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (old.clone(), "verifying".into()),
            (new.clone(), "signing".into())
        ]
    );
    assert!(keys["signingKeys"][0]["verifiesUntil"].is_string());
    let signing = app.gql(Some(&fresh), RETIRE, json!({ "k": new })).await;
    assert_eq!(error_code(&signing), "BAD_USER_INPUT", "{signing}");
    let unknown = app.gql(Some(&fresh), RETIRE, json!({ "k": "nope" })).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND", "{unknown}");

    // Once every token the old key signed has expired, it verifies nothing and is unpublished.
    clock.advance(chrono::Duration::minutes(16));
    assert!(!works(&app, &admin).await);
    assert_eq!(jwks_kids(&jwks(&app).await.0), std::slice::from_ref(&new));
    assert!(works(&app, &fresh).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retired_key_stops_at_once_and_its_sessions_go_on_with_a_refresh() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let login = app.login("admin@cloudbase.test", "admin-password-1").await;
    let refresh = login["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = kid(&admin);
    let mut socket = GqlWs::connect(&app, Some(&admin)).await.unwrap();
    app.gql_ok(Some(&admin), ROTATE, json!({ "s": 0 })).await;
    assert!(works(&app, &admin).await);
    let fresh = app.admin_token().await;
    let mut fresh_socket = GqlWs::connect(&app, Some(&fresh)).await.unwrap();
    app.gql_ok(Some(&fresh), RETIRE, json!({ "k": old })).await;
    assert!(!works(&app, &admin).await, "a retired key verifies nothing");
    let (code, reason) = socket.closed().await;
    assert_eq!(
        code,
        Some(4401),
        "a socket opened with its token closes: {reason}"
    );
    assert!(
        fresh_socket.next_within(300).await.is_none(),
        "a socket of the new key stays open"
    );
    assert!(!jwks_kids(&jwks(&app).await.0).contains(&old));
    let renewed = app.gql_ok(None, REFRESH, json!({ "t": refresh })).await;
    let token = renewed["refreshSession"]["accessToken"].as_str().unwrap();
    assert!(works(&app, token).await, "nobody is logged out");
    let audited = app
        .gql_ok(
            Some(&fresh),
            "{ auditLog(filter: {field: \"retireSigningKey\"}) { edges { node { outcome } } } }",
            json!({}),
        )
        .await;
    assert_eq!(audited["auditLog"]["edges"][0]["node"]["outcome"], "OK");
}

/// The operator's command on another process: every instance takes the new key through the
/// event bus, without a restart and well before its periodic reload.
#[tokio::test(flavor = "multi_thread")]
async fn every_instance_takes_a_rotation_from_the_command_line_at_once() {
    if skip_without_postgres("every_instance_takes_a_rotation_from_the_command_line_at_once") {
        return;
    }
    // Started at the same moment: each finds no key and one first key stands.
    let (app, peers) = TestApp::spawn_cluster(3).await;
    let before = kid(&app.admin_token().await);
    cloudbase_server::keys::rotate(&app.config, std::time::Duration::ZERO)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let token = loop {
        let t = app.admin_token().await;
        if kid(&t) != before {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the instance still signs with {before}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    for peer in &peers {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let body: Value = app
                .client
                .post(peer.url("/graphql"))
                .bearer_auth(&token)
                .json(&json!({ "query": ME }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["data"]["me"]["id"].is_string() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "an instance never took the key: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let keys = app.gql_ok(Some(&token), KEYS, json!({})).await;
    assert_eq!(
        keys["signingKeys"].as_array().unwrap().len(),
        2,
        "one first key, one rotated: {keys}"
    );
}

/// A deployment from before rotation: its HS256 tokens (no `kid`) keep working until they
/// expire, its sessions go on with a refresh, and the secret is never published.
#[tokio::test(flavor = "multi_thread")]
async fn an_hs256_deployment_moves_over_without_logging_anyone_out() {
    const SECRET: &str = "legacy-secret-legacy-secret-legacy-0123";
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| {
        c.jwt_secret = Some(Secret::new(SECRET));
    })
    .await;
    let (token, refresh, _) = app
        .register("legacy@example.com", "legacy-password-1")
        .await;
    // The token the old version would have issued for the same session.
    let old = claims(&token);
    let legacy = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &old,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert!(works(&app, &legacy).await, "an old token still works");
    let wrong = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &old,
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-not-the"),
    )
    .unwrap();
    assert!(!works(&app, &wrong).await);
    let admin = app.admin_token().await;
    let keys = app.gql_ok(Some(&admin), KEYS, json!({})).await;
    let legacy_row = &keys["signingKeys"][0];
    assert_eq!(legacy_row["kid"], "hs256-legacy");
    assert_eq!(legacy_row["algorithm"], "HS256");
    assert!(legacy_row["verifiesUntil"].is_string());
    let (set, _) = jwks(&app).await;
    assert!(!jwks_kids(&set).contains(&"hs256-legacy".to_owned()));
    assert!(!set.to_string().contains(SECRET));

    clock.advance(chrono::Duration::minutes(16));
    assert!(
        !works(&app, &legacy).await,
        "run out with the tokens it signed"
    );
    let renewed = app.gql_ok(None, REFRESH, json!({ "t": refresh })).await;
    let token = renewed["refreshSession"]["accessToken"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        Algorithm::EdDSA
    );
    assert!(works(&app, token).await, "the session goes on");
}

/// A published key thought stolen before it ever signed: retiring it leaves the key that signs
/// signing, and verifying, without an end (it would otherwise have run out behind it, leaving no
/// key at all).
#[tokio::test(flavor = "multi_thread")]
async fn retiring_a_published_key_leaves_the_signer_without_an_end() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    let admin = app.admin_token().await;
    let current = kid(&admin);
    let rotated = app.gql_ok(Some(&admin), ROTATE, json!({})).await;
    let next = rotated["rotateSigningKey"]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql_ok(Some(&admin), RETIRE, json!({ "k": next })).await;
    assert!(!jwks_kids(&jwks(&app).await.0).contains(&next));
    clock.advance(chrono::Duration::minutes(20));
    let later = app.admin_token().await;
    assert_eq!(kid(&later), current);
    assert!(works(&app, &later).await);
    let keys = app.gql_ok(Some(&later), KEYS, json!({})).await;
    assert_eq!(keys["signingKeys"].as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys["signingKeys"][0]["state"], "signing");
    assert!(keys["signingKeys"][0]["verifiesUntil"].is_null(), "{keys}");
}
