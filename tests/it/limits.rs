//! Rate limits through the real server: requests and tokens per minute (default and per-user
//! overrides), failed logins per account and address, and the same limit across two processes on
//! PostgreSQL. Time is pinned with a manual clock so no test straddles a minute by accident.

use std::sync::Arc;

use chrono::{DurationRound, TimeDelta};
use cloudbase_schema::clock::ManualClock;
use serde_json::{Value, json};

use crate::chat::chat_query;
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

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_limited_per_account_and_per_address() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.login_failures_per_account = 3;
        c.rate_limits.login_failures_per_address = 5;
    })
    .await;
    app.register("target@example.com", "target-password").await;
    app.register("bystander@example.com", "bystander-password")
        .await;
    for _ in 0..3 {
        assert_eq!(
            error_code(&app.login("target@example.com", "guess").await),
            "UNAUTHENTICATED"
        );
    }
    let locked = app.login("target@example.com", "target-password").await;
    assert_eq!(
        error_code(&locked),
        "RATE_LIMITED",
        "even the right password waits: {locked}"
    );
    assert!(
        locked["errors"][0]["extensions"]["retryAfterMs"]
            .as_i64()
            .unwrap()
            > 0
    );

    // Another account from the same address still works until the address limit.
    assert!(
        app.login("bystander@example.com", "bystander-password")
            .await
            .get("errors")
            .is_none()
    );
    for _ in 0..2 {
        assert_eq!(
            error_code(&app.login("bystander@example.com", "guess").await),
            "UNAUTHENTICATED"
        );
    }
    let address = app
        .login("bystander@example.com", "bystander-password")
        .await;
    assert_eq!(
        error_code(&address),
        "RATE_LIMITED",
        "5 failures from one address: {address}"
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
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (client, url, user) = (client.clone(), urls[i % 2].clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(user)
                .json(&json!({"query": chat_query(), "variables": hi()}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
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
