//! Rate limits through the real server: requests and tokens per minute (default and per-user
//! overrides), the login throttle (a sliding window, the owner and a shared address still signing
//! in, the backoff, parallel guesses), and the same limit across two processes on PostgreSQL.
//! Time is pinned with a manual clock so no test straddles a minute by accident.

use std::sync::Arc;

use chrono::{DurationRound, TimeDelta};
use cloudbase_schema::clock::ManualClock;
use serde_json::{Value, json};

use crate::chat::{chat_query, spawn_chat};
use crate::support::{TestApp, error_code};

fn clock_at_minute_start() -> Arc<ManualClock> {
    let now = chrono::Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap()
        + TimeDelta::seconds(1);
    Arc::new(ManualClock::new(now))
}

fn hi() -> Value {
    json!({"input": {"message": "hi"}})
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_per_minute_hold_and_reset() {
    let clock = clock_at_minute_start();
    let app =
        TestApp::spawn_with_clock(clock.clone(), |c| c.rate_limits.requests_per_minute = 3).await;
    let (user, _, _) = app.register("busy@example.com", "busy-password").await;
    for _ in 0..3 {
        app.gql_ok(Some(&user), &chat_query(), hi()).await;
    }
    let limited = app.gql(Some(&user), &chat_query(), hi()).await;
    assert_eq!(error_code(&limited), "RATE_LIMITED", "{limited}");
    let retry = limited["errors"][0]["extensions"]["retryAfterMs"]
        .as_i64()
        .unwrap();
    assert!(retry > 0 && retry <= 60_000, "{retry}");
    let calls = app
        .gql_ok(
            Some(&user),
            "{ aiCalls { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        calls["aiCalls"]["edges"].as_array().unwrap().len(),
        3,
        "a refused call is not made"
    );

    clock.advance(chrono::Duration::milliseconds(retry));
    app.gql_ok(Some(&user), &chat_query(), hi()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_override_a_users_limits() {
    let clock = clock_at_minute_start();
    let app = TestApp::spawn_with_clock(clock, |c| c.rate_limits.requests_per_minute = 3).await;
    let admin = app.admin_token().await;
    let (slow, _, slow_id) = app.register("slow@example.com", "slow-password").await;
    let (fast, _, _) = app.register("fast@example.com", "fast-password").await;
    let set = "mutation($u: ID!, $r: Int) { setRateLimits(userId: $u, requestsPerMinute: $r) { requestsPerMinute tokensPerMinute } }";
    assert_eq!(
        error_code(
            &app.gql(Some(&slow), set, json!({"u": slow_id, "r": 100}))
                .await
        ),
        "FORBIDDEN"
    );
    let r = app
        .gql_ok(Some(&admin), set, json!({"u": slow_id, "r": 1}))
        .await;
    assert_eq!(r["setRateLimits"]["requestsPerMinute"], 1);
    let mine = app
        .gql_ok(
            Some(&slow),
            "{ rateLimits { requestsPerMinute } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["rateLimits"]["requestsPerMinute"], 1);
    assert_eq!(
        error_code(
            &app.gql(Some(&admin), set, json!({"u": slow_id, "r": 0}))
                .await
        ),
        "BAD_USER_INPUT"
    );

    app.gql_ok(Some(&slow), &chat_query(), hi()).await;
    assert_eq!(
        error_code(&app.gql(Some(&slow), &chat_query(), hi()).await),
        "RATE_LIMITED"
    );
    for _ in 0..3 {
        app.gql_ok(Some(&fast), &chat_query(), hi()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_per_minute_hold() {
    let clock = clock_at_minute_start();
    let app = TestApp::spawn_with_clock(clock, |c| c.rate_limits.tokens_per_minute = 20).await;
    let (user, _, _) = app.register("wordy@example.com", "wordy-password").await;
    let mut used = 0;
    let mut refused = false;
    for _ in 0..5 {
        let body = app.gql(Some(&user), "mutation($input: ChatInput!) { chat(input: $input) { aiCall { promptTokens completionTokens } } }", json!({"input": {"message": "a few words here"}})).await;
        if body.get("errors").is_some() {
            assert_eq!(error_code(&body), "RATE_LIMITED");
            refused = true;
            break;
        }
        let call = &body["data"]["chat"]["aiCall"];
        used += call["promptTokens"].as_i64().unwrap() + call["completionTokens"].as_i64().unwrap();
    }
    assert!(refused, "the minute's tokens ran out");
    assert!(
        used >= 20,
        "refused only once the limit was reached ({used} tokens)"
    );
}

/// A password strong enough for any account here.
pub const PASSWORD: &str = "tidal-ferry-quartz";

/// A POST to `/graphql` that arrives as if from `ip` (the server trusts `X-Forwarded-For` in
/// these tests, as it would behind a proxy).
pub async fn gql_from(app: &TestApp, ip: &str, query: &str, variables: Value) -> Value {
    app.client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A login from `ip`.
pub async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> Value {
    gql_from(
        app,
        ip,
        "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
        json!({"i": {"email": email, "password": password}}),
    )
    .await
}

/// Registers a user from `ip` (which the account then trusts); returns the access token.
pub async fn register_from(app: &TestApp, ip: &str, email: &str, password: &str) -> String {
    let body = gql_from(
        app,
        ip,
        "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
        json!({"i": {"email": email, "password": password, "displayName": "Someone"}}),
    )
    .await;
    body["data"]["register"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("registration failed: {body}"))
        .to_owned()
}

pub fn retry_after_ms(body: &Value) -> i64 {
    assert_eq!(error_code(body), "RATE_LIMITED", "{body}");
    body["errors"][0]["extensions"]["retryAfterMs"]
        .as_i64()
        .unwrap()
}

fn signed_in(body: &Value) -> bool {
    body.get("errors").is_none() && body["data"]["login"]["accessToken"].is_string()
}

/// A fixed window let 10 guesses through just before its end and 10 more just after; the
/// sliding window still counts the first 10 after the boundary, until they are 15 minutes old.
#[tokio::test(flavor = "multi_thread")]
async fn the_login_window_slides_across_a_boundary() {
    let window = TimeDelta::minutes(15);
    let start =
        chrono::Utc::now().duration_trunc(window).unwrap() + window - TimeDelta::seconds(10);
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| c.http.trust_forwarded_for = true).await;
    register_from(&app, "198.51.100.1", "edge@example.com", PASSWORD).await;
    for i in 1..=10 {
        let body = login_from(&app, &format!("192.0.2.{i}"), "edge@example.com", "guess").await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    }
    let full = login_from(&app, "192.0.2.11", "edge@example.com", "guess").await;
    retry_after_ms(&full);

    clock.advance(TimeDelta::seconds(20));
    let after_boundary = login_from(&app, "192.0.2.12", "edge@example.com", "guess").await;
    let retry = retry_after_ms(&after_boundary);
    assert_eq!(
        retry,
        (window - TimeDelta::seconds(20)).num_milliseconds(),
        "the first failures leave the window 15 minutes after they happened"
    );
    clock.advance(TimeDelta::milliseconds(retry));
    let later = login_from(&app, "192.0.2.13", "edge@example.com", "guess").await;
    assert_eq!(error_code(&later), "UNAUTHENTICATED", "{later}");
}

/// An attacker spreading guesses over many addresses exhausts the account's limit, but that only
/// holds back addresses the account has not signed in from: the owner gets in at once.
#[tokio::test(flavor = "multi_thread")]
async fn the_owner_signs_in_while_their_account_is_attacked() {
    let clock = clock_at_minute_start();
    let app = TestApp::spawn_with_clock(clock, |c| c.http.trust_forwarded_for = true).await;
    let home = "198.51.100.7";
    register_from(&app, home, "owner@example.com", PASSWORD).await;
    let mut refused = 0;
    for i in 1..=30 {
        let body = login_from(
            &app,
            &format!("203.0.113.{i}"),
            "owner@example.com",
            "guess",
        )
        .await;
        match error_code(&body) {
            "UNAUTHENTICATED" => assert!(i <= 10, "guess {i} was checked: {body}"),
            _ => {
                retry_after_ms(&body);
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 20, "10 guesses per window for the whole botnet");
    let stranger = login_from(&app, "203.0.113.99", "owner@example.com", PASSWORD).await;
    retry_after_ms(&stranger);

    let typo = login_from(&app, home, "owner@example.com", "tidal-ferry-quarts").await;
    assert_eq!(error_code(&typo), "UNAUTHENTICATED", "{typo}");
    let owner = login_from(&app, home, "owner@example.com", PASSWORD).await;
    assert!(signed_in(&owner), "the owner is not locked out: {owner}");
}

/// 100 failures from one address (others behind the same NAT guessing) stop that address from
/// guessing, but not its people from signing in to accounts they have used from there.
#[tokio::test(flavor = "multi_thread")]
async fn a_shared_address_keeps_its_users_after_100_failures_by_others() {
    let clock = clock_at_minute_start();
    let app = TestApp::spawn_with_clock(clock, |c| c.http.trust_forwarded_for = true).await;
    let nat = "203.0.113.50";
    register_from(&app, nat, "colleague@example.com", PASSWORD).await;
    register_from(&app, "198.51.100.9", "newcomer@example.com", PASSWORD).await;
    for i in 0..100 {
        let body = login_from(&app, nat, &format!("nobody{i}@example.com"), "guess").await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "failure {i}: {body}");
    }
    let spraying = login_from(&app, nat, "nobody-else@example.com", "guess").await;
    retry_after_ms(&spraying);

    let colleague = login_from(&app, nat, "colleague@example.com", PASSWORD).await;
    assert!(signed_in(&colleague), "{colleague}");
    let first_time = login_from(&app, nat, "newcomer@example.com", PASSWORD).await;
    retry_after_ms(&first_time);
    let at_home = login_from(&app, "198.51.100.9", "newcomer@example.com", PASSWORD).await;
    assert!(signed_in(&at_home), "{at_home}");
}

/// Guessing one account from one address: three failures are free, then each attempt waits
/// twice as long as the one before; signing in starts the pair afresh.
#[tokio::test(flavor = "multi_thread")]
async fn guessing_from_one_address_backs_off() {
    let clock = clock_at_minute_start();
    let app = TestApp::spawn_with_clock(clock.clone(), |c| c.http.trust_forwarded_for = true).await;
    register_from(&app, "198.51.100.20", "slowed@example.com", PASSWORD).await;
    let from = "192.0.2.20";
    for _ in 0..3 {
        let body = login_from(&app, from, "slowed@example.com", "guess").await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    }
    for wait_ms in [1_000, 2_000, 4_000] {
        let early = login_from(&app, from, "slowed@example.com", "guess").await;
        assert_eq!(retry_after_ms(&early), wait_ms);
        clock.advance(TimeDelta::milliseconds(wait_ms));
        let body = login_from(&app, from, "slowed@example.com", "guess").await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    }
    let early = login_from(&app, from, "slowed@example.com", PASSWORD).await;
    assert_eq!(
        retry_after_ms(&early),
        8_000,
        "the right password waits too"
    );
    clock.advance(TimeDelta::seconds(8));
    let ok = login_from(&app, from, "slowed@example.com", PASSWORD).await;
    assert!(signed_in(&ok), "{ok}");
    let fresh = login_from(&app, from, "slowed@example.com", "guess").await;
    assert_eq!(
        error_code(&fresh),
        "UNAUTHENTICATED",
        "a sign-in clears the pair: {fresh}"
    );
}

/// Parallel guesses cannot all pass one check: each attempt is counted before its password is
/// checked, under a lock of its keys.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_guesses_are_counted_one_by_one() {
    let app = TestApp::spawn_with(|c| {
        c.http.trust_forwarded_for = true;
        c.rate_limits.login_failures_per_account = 5;
    })
    .await;
    register_from(&app, "198.51.100.30", "burst@example.com", PASSWORD).await;
    let guesses = (1..=20).map(|i| {
        let app = &app;
        async move { login_from(app, &format!("192.0.2.{i}"), "burst@example.com", "guess").await }
    });
    let bodies = futures_util::future::join_all(guesses).await;
    let checked = bodies
        .iter()
        .filter(|b| error_code(b) == "UNAUTHENTICATED")
        .count();
    assert_eq!(checked, 5, "exactly the limit was checked: {bodies:?}");
    assert!(
        bodies
            .iter()
            .all(|b| matches!(error_code(b), "UNAUTHENTICATED" | "RATE_LIMITED"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_limits_hold_across_two_instances_on_postgres() {
    if crate::support::skip_without_postgres("request_limits_hold_across_two_instances_on_postgres")
    {
        return;
    }
    let clock = clock_at_minute_start();
    let (app, peers) =
        TestApp::spawn_cluster_with(2, clock, |c| c.rate_limits.requests_per_minute = 5).await;
    let (user, _, _) = app.register("spread@example.com", "spread-password").await;
    let urls = [app.url("/graphql"), peers[0].url("/graphql")];
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..12)
        .map(|i| spawn_chat(&client, &urls[i % 2], &user, hi()))
        .collect();
    let mut ok = 0;
    for t in tasks {
        let body = t.await.unwrap();
        match body.get("errors") {
            None => ok += 1,
            Some(_) => assert_eq!(error_code(&body), "RATE_LIMITED", "{body}"),
        }
    }
    assert_eq!(ok, 5, "5 a minute in total, whichever instance serves them");
}

/// What every call reads and an admin rarely changes (the user's limits, the model's prices, the
/// budgets that apply) is read once and then kept (`services::call_reads`); each change applies
/// to the very next call all the same, because the change forgets what was kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_to_limits_prices_or_budgets_applies_to_the_very_next_call() {
    let clock = clock_at_minute_start();
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app.register("next@example.com", "next-password").await;
    let ask = json!({"input": {"provider": "mock", "model": "mock-echo", "message": "what does this cost"}});
    let call = async || app.gql(Some(&user), &chat_query(), ask.clone()).await;
    let cost = |body: &Value| -> i64 {
        body["data"]["chat"]["aiCall"]["costMicros"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .parse()
            .unwrap()
    };
    // Read and kept: the price history, no budget, no limits.
    let before = cost(&call().await);
    assert_eq!(cost(&call().await), before);

    // A dearer price from a second ago applies to the next call.
    use cloudbase_schema::clock::Clock;
    let from =
        (clock.now() - TimeDelta::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    app.gql_ok(Some(&admin), "mutation($i: AddPriceInput!) { addPrice(input: $i) { id } }", json!({"i": {"provider": "mock", "model": "mock-echo", "input": "500", "cachedInput": "0", "output": "500", "currency": "CNY", "effectiveFrom": from}})).await;
    let dearer = call().await;
    let tokens = dearer["data"]["chat"]["aiCall"]["promptTokens"]
        .as_i64()
        .unwrap()
        + dearer["data"]["chat"]["aiCall"]["completionTokens"]
            .as_i64()
            .unwrap();
    assert_eq!(
        cost(&dearer),
        tokens * 500,
        "500 CNY per 1M tokens: {dearer}"
    );

    // A budget with no room refuses the next call; deleting it lets the next one through.
    let created = app
        .gql_ok(Some(&admin), "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id } }", json!({"i": {"userId": user_id, "period": "MONTH", "currency": "CNY", "limitMicros": "1"}}))
        .await;
    assert_eq!(error_code(&call().await), "BUDGET_EXCEEDED");
    app.gql_ok(
        Some(&admin),
        "mutation($id: ID!) { deleteBudget(id: $id) }",
        json!({"id": created["createBudget"]["id"]}),
    )
    .await;
    let through = call().await;
    assert!(through.get("errors").is_none(), "{through}");

    // The calls so far counted against the default limit: one a minute refuses the next call,
    // a hundred lets it through.
    let set = "mutation($u: ID!, $r: Int) { setRateLimits(userId: $u, requestsPerMinute: $r) { requestsPerMinute } }";
    app.gql_ok(Some(&admin), set, json!({"u": user_id, "r": 1}))
        .await;
    assert_eq!(error_code(&call().await), "RATE_LIMITED");
    app.gql_ok(Some(&admin), set, json!({"u": user_id, "r": 100}))
        .await;
    let through = call().await;
    assert!(through.get("errors").is_none(), "{through}");
}
