//! WeChat mini-program sign-in against a local stand-in for `code2Session` on loopback: the first
//! sign-in makes an account, later ones (and the same person from another app, by `unionid`) sign
//! in the linked one; linking and unlinking; WeChat's refusals get clear codes; the app secret
//! never shows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const LOGIN: &str = "mutation($c: String!) { wechatLogin(code: $c) { accessToken user { id email displayName } mfaChallenge { challenge } } }";
const LINKED: &str = "{ me { id wechatLinked } }";

/// The queries the stand-in got.
type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// The stand-in: answers by `js_code`, and keeps every query it got.
struct StandIn {
    addr: SocketAddr,
    seen: Seen,
}

async fn code2session(
    State(seen): State<Seen>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    seen.lock().unwrap().push(q.clone());
    let app_id_ok = q.get("appid").map(String::as_str) == std::env::var("HOME").ok().as_deref();
    let secret_ok = q.get("secret").map(String::as_str) == std::env::var("PATH").ok().as_deref();
    if !app_id_ok
        || !secret_ok
        || q.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return Json(json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    let code = q.get("js_code").cloned().unwrap_or_default();
    Json(match code.as_str() {
        "bad" => json!({"errcode": 40029, "errmsg": "invalid code"}),
        "limited" => json!({"errcode": 45011, "errmsg": "api minute-quota reach limit"}),
        "busy" => json!({"errcode": -1, "errmsg": "system error"}),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json!({"openid": "o-slow"})
        }
        "bob-other-app" => json!({"openid": "o-bob-2", "session_key": "k", "unionid": "u-bob"}),
        "bob" => json!({"openid": "o-bob", "session_key": "k", "unionid": "u-bob"}),
        other => {
            json!({"openid": format!("o-{}", other.trim_end_matches("-again")), "session_key": "k"})
        }
    })
}

impl StandIn {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/sns/jscode2session", get(code2session))
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen }
    }
}

async fn with_wechat(
    stand_in: &StandIn,
    tweak: impl FnOnce(&mut cloudbase_server::config::Config),
) -> TestApp {
    let url = format!("http://{}/sns/jscode2session", stand_in.addr);
    TestApp::spawn_with(move |c| {
        c.wechat.code2session_url = url;
        c.wechat.secrets.insert("app_id".into(), "HOME".into());
        c.wechat.secrets.insert("app_secret".into(), "PATH".into());
        c.wechat.timeout_ms = 1_000;
        tweak(c);
    })
    .await
}

async fn wechat_login(app: &TestApp, code: &str) -> Value {
    app.gql(None, LOGIN, json!({ "c": code })).await
}

fn signed_in(body: &Value) -> (String, String) {
    let login = &body["data"]["wechatLogin"];
    (
        login["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned(),
        login["user"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_wechat_sign_in_makes_an_account_and_later_ones_sign_it_in() {
    let stand_in = StandIn::start().await;
    let app = with_wechat(&stand_in, |_| {}).await;

    let first = wechat_login(&app, "alice").await;
    let (token, alice) = signed_in(&first);
    let user = &first["data"]["wechatLogin"]["user"];
    assert!(
        user["email"].as_str().unwrap().ends_with("@wechat.invalid"),
        "{first}"
    );
    assert!(
        user["displayName"]
            .as_str()
            .unwrap()
            .starts_with("WeChat user"),
        "{first}"
    );
    let me = app.gql_ok(Some(&token), LINKED, json!({})).await;
    assert_eq!(me["me"]["wechatLinked"], true);
    // The server asked WeChat with its app id, secret and the code.
    let asked = stand_in.seen.lock().unwrap()[0].clone();
    assert_eq!(asked.get("js_code").map(String::as_str), Some("alice"));
    assert_eq!(
        asked.get("grant_type").map(String::as_str),
        Some("authorization_code")
    );

    // Later codes of the same WeChat user sign the same account in.
    let (_, again) = signed_in(&wechat_login(&app, "alice-again").await);
    assert_eq!(again, alice);
    // The same person from another app of the developer (same unionid) finds their account.
    let (_, bob) = signed_in(&wechat_login(&app, "bob").await);
    let (_, bob_elsewhere) = signed_in(&wechat_login(&app, "bob-other-app").await);
    assert_eq!(bob, bob_elsewhere);
    assert_ne!(bob, alice);

    // An account WeChat made cannot be unlinked: it has no other way in.
    let unlink = app
        .gql(Some(&token), "mutation { unlinkWechat { id } }", json!({}))
        .await;
    assert_eq!(error_code(&unlink), "CONFLICT", "{unlink}");
    // Nor can an admin require a password of it: it has none to change.
    let admin = app.admin_token().await;
    let require = app
        .gql(
            Some(&admin),
            "mutation($u: ID!) { requirePasswordChange(userId: $u) { id } }",
            json!({ "u": alice }),
        )
        .await;
    assert_eq!(error_code(&require), "CONFLICT", "{require}");
    // And nobody can register its reserved address.
    let email = first["data"]["wechatLogin"]["user"]["email"]
        .as_str()
        .unwrap();
    let taken = app
        .gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            json!({ "i": { "email": email, "password": "correct horse battery 1", "displayName": "X" } }),
        )
        .await;
    assert_eq!(error_code(&taken), "BAD_USER_INPUT", "{taken}");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_sign_ins_of_one_wechat_user_at_once_all_get_the_one_account() {
    let stand_in = StandIn::start().await;
    let app = with_wechat(&stand_in, |_| {}).await;
    // Six at once, before any account exists: each finds no link and hashes a password before
    // it writes, so they race to make the account. One makes it; the others sign it in.
    let logins = futures_util::future::join_all((0..6).map(|_| wechat_login(&app, "carol"))).await;
    let ids: Vec<String> = logins.iter().map(|body| signed_in(body).1).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{logins:?}");
    let admin = app.admin_token().await;
    let users = app
        .gql_ok(
            Some(&admin),
            "{ users(first: 100) { edges { node { email } } } }",
            json!({}),
        )
        .await;
    let wechat_accounts = users["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["node"]["email"]
                .as_str()
                .unwrap()
                .ends_with("@wechat.invalid")
        })
        .count();
    assert_eq!(wechat_accounts, 1, "{users}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wechat_refusals_get_clear_codes_and_never_show_the_secret() {
    let stand_in = StandIn::start().await;
    let app = with_wechat(&stand_in, |_| {}).await;
    let secret = std::env::var("PATH").unwrap();
    for (code, expected) in [
        ("bad", "BAD_USER_INPUT"),
        ("limited", "RATE_LIMITED"),
        ("busy", "UNAVAILABLE"),
        ("slow", "TIMEOUT"),
    ] {
        let refused = wechat_login(&app, code).await;
        assert_eq!(error_code(&refused), expected, "{code}: {refused}");
        assert!(
            !refused.to_string().contains(&secret),
            "{code}: the secret leaked: {refused}"
        );
    }
    let limited = wechat_login(&app, "limited").await;
    assert!(
        limited["errors"][0]["extensions"]["retryAfterMs"]
            .as_i64()
            .unwrap()
            > 0
    );
    // Codes that cannot be WeChat's are refused before WeChat is asked.
    let asked = stand_in.seen.lock().unwrap().len();
    for junk in ["", "   ", &"x".repeat(500), "a\nb"] {
        let refused = wechat_login(&app, junk).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    }
    assert_eq!(stand_in.seen.lock().unwrap().len(), asked);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_links_and_unlinks_wechat() {
    let stand_in = StandIn::start().await;
    let app = with_wechat(&stand_in, |_| {}).await;
    let (carol, _, carol_id) = app
        .register("carol@example.com", "correct horse battery 1")
        .await;
    let (dave, _, _) = app
        .register("dave@example.com", "correct horse battery 2")
        .await;
    const LINK: &str = "mutation($c: String!, $p: String!) { linkWechat(code: $c, password: $p) { id wechatLinked } }";

    // A link is a way in: the password confirms it (a stolen access token cannot add one).
    let no_password = app
        .gql(
            Some(&carol),
            LINK,
            json!({ "c": "carol", "p": "not the password" }),
        )
        .await;
    assert_eq!(error_code(&no_password), "BAD_USER_INPUT", "{no_password}");
    let linked = app
        .gql_ok(
            Some(&carol),
            LINK,
            json!({ "c": "carol", "p": "correct horse battery 1" }),
        )
        .await;
    assert_eq!(linked["linkWechat"]["wechatLinked"], true);
    let (_, signed) = signed_in(&wechat_login(&app, "carol-again").await);
    assert_eq!(signed, carol_id);
    // Another account cannot take the same WeChat user, nor can carol link a second one.
    let taken = app
        .gql(
            Some(&dave),
            LINK,
            json!({ "c": "carol", "p": "correct horse battery 2" }),
        )
        .await;
    assert_eq!(error_code(&taken), "CONFLICT", "{taken}");
    let second = app
        .gql(
            Some(&carol),
            LINK,
            json!({ "c": "someone-else", "p": "correct horse battery 1" }),
        )
        .await;
    assert_eq!(error_code(&second), "CONFLICT", "{second}");

    let unlinked = app
        .gql_ok(
            Some(&carol),
            "mutation { unlinkWechat { id wechatLinked } }",
            json!({}),
        )
        .await;
    assert_eq!(unlinked["unlinkWechat"]["wechatLinked"], false);
    // Now that WeChat user is nobody's: signing in makes a new account.
    let (_, fresh) = signed_in(&wechat_login(&app, "carol").await);
    assert_ne!(fresh, carol_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_setup_or_open_registration_there_is_no_new_wechat_account() {
    let stand_in = StandIn::start().await;
    let closed = with_wechat(&stand_in, |c| {
        c.auth.registration = cloudbase_server::config::RegistrationConfig::Invite;
    })
    .await;
    let refused = wechat_login(&closed, "erin").await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");

    let plain = TestApp::spawn().await;
    let refused = wechat_login(&plain, "erin").await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
}
