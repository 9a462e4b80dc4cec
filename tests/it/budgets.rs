//! Budgets through the real server: no overspending under concurrency (and across processes on
//! PostgreSQL), records = rollups = spend to the micro-unit, periods in the configured time zone,
//! and expired reservations released by the sweeper.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Timelike};
use cloudbase_schema::clock::{Clock, ManualClock};
use serde_json::{Value, json};

use crate::chat::{CALL_FIELDS, chat_query, spawn_chat};
use crate::support::{TestApp, error_code, instance};

const BUDGETS: &str = "query($u: ID) { budgets(userId: $u) { id scope period currency limitMicros spentMicros reservedMicros remainingMicros spentRequests reservedRequests resetAt } }";
const CREATE: &str = "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id resetAt } }";

fn micros(v: &Value) -> i64 {
    v.as_str().unwrap().parse().unwrap()
}

fn ask() -> Value {
    json!({"input": {"provider": "mock", "model": "mock-echo", "message": "budget test", "maxTokens": 3}})
}

/// The cost of one `ask()` call, measured before any budget exists.
async fn cost_of_one(app: &TestApp, token: &str) -> i64 {
    let data = app.gql_ok(Some(token), &chat_query(), ask()).await;
    micros(&data["chat"]["aiCall"]["costMicros"])
}

async fn budget_of(app: &TestApp, admin: &str, user_id: &str) -> Value {
    let data = app
        .gql_ok(Some(admin), BUDGETS, json!({"u": user_id}))
        .await;
    data["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["scope"] == "USER")
        .unwrap()
        .clone()
}

async fn fire(urls: &[String], token: &str, n: usize) -> (Vec<i64>, usize) {
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..n)
        .map(|i| spawn_chat(&client, &urls[i % urls.len()], token, ask()))
        .collect();
    let (mut costs, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let body = t.await.unwrap();
        match body.get("errors") {
            None => costs.push(micros(&body["data"]["chat"]["aiCall"]["costMicros"])),
            Some(_) => {
                assert_eq!(error_code(&body), "BUDGET_EXCEEDED", "{body}");
                assert!(
                    body["errors"][0]["extensions"]["remainingMicros"].is_string(),
                    "{body}"
                );
                refused += 1;
            }
        }
    }
    (costs, refused)
}

async fn check_never_overspent(app: &TestApp, urls: &[String]) {
    let admin = app.admin_token().await;
    let (user, _, user_id) = app
        .register("spender@example.com", "spender-password")
        .await;
    let one = cost_of_one(app, &user).await;
    assert!(one > 0);
    app.gql_ok(Some(&admin), CREATE, json!({"i": {"userId": user_id, "period": "TOTAL", "currency": "CNY", "limitMicros": (10 * one).to_string()}})).await;

    let (costs, refused) = fire(urls, &user, 50).await;
    assert!(
        !costs.is_empty() && costs.len() <= 10,
        "{} calls succeeded on a budget for 10",
        costs.len()
    );
    assert_eq!(costs.len() + refused, 50);
    let budget = budget_of(app, &admin, &user_id).await;
    let spent = micros(&budget["spentMicros"]);
    assert_eq!(
        spent,
        costs.iter().sum::<i64>(),
        "spend is exactly what the calls cost"
    );
    assert!(
        spent <= micros(&budget["limitMicros"]),
        "never overspent: {budget}"
    );
    assert_eq!(budget["reservedMicros"], "0", "every reservation came back");
    assert_eq!(budget["reservedRequests"], 0);
    // A refused call keeps nothing: its record and its reservations went with its transaction
    // (on PostgreSQL, a flight whose `COMMIT` became a rollback).
    let records = app
        .sql_number(&format!(
            "SELECT count(*) AS n FROM ai_calls WHERE user_id = '{user_id}'"
        ))
        .await;
    assert_eq!(
        records,
        1 + costs.len() as i64,
        "one record per admitted call"
    );
    let left = app
        .sql_number("SELECT count(*) AS n FROM budget_reservations")
        .await;
    assert_eq!(left, 0, "no reservation row is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_is_never_overspent_by_concurrent_calls() {
    let app = TestApp::spawn().await;
    check_never_overspent(&app, &[app.url("/graphql")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_holds_across_two_server_processes_on_postgres() {
    if crate::support::skip_without_postgres(
        "a_budget_holds_across_two_server_processes_on_postgres",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let other = crate::support::PeerProcess::start(&app.config).await;
    let urls = vec![app.url("/graphql"), other.url("/graphql")];
    check_never_overspent(&app, &urls).await;
}

/// A call under several budgets reserves in all of them and settles all of them in one step: its
/// cost counts only in the budget of the price's currency, its request and tokens in every one,
/// and nothing stays reserved. Forty more calls under the same two budgets, admitted and settled
/// side by side, all succeed and add up, and so do their tokens against the user's token limit.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_under_several_budgets_settles_each_in_its_own_currency() {
    let app = TestApp::spawn_with(|c| c.rate_limits.tokens_per_minute = 1_000_000_000).await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app
        .register("two-budgets@example.com", "quartz lantern ferry budget")
        .await;
    let cost = cost_of_one(&app, &user).await;
    assert!(cost > 0, "the mock's call is priced");
    for (owner, currency) in [(Some(user_id.as_str()), "CNY"), (None, "USD")] {
        app.gql_ok(
            Some(&admin),
            CREATE,
            json!({"i": {"userId": owner, "period": "MONTH", "currency": currency, "limitMicros": "1000000000"}}),
        )
        .await;
    }
    let call = app.gql_ok(Some(&user), &chat_query(), ask()).await["chat"]["aiCall"].clone();
    assert_eq!(micros(&call["costMicros"]), cost);
    assert_eq!(call["currency"], "CNY");
    let tokens =
        call["promptTokens"].as_i64().unwrap() + call["completionTokens"].as_i64().unwrap();
    let (costs, refused) = fire(&[app.url("/graphql")], &user, 40).await;
    assert_eq!((costs.len(), refused), (40, 0));
    let calls = 41;
    let spent = cost + costs.iter().sum::<i64>();
    check_each_counts(&app, &admin, 2, spent, tokens * calls, calls).await;
    // The first call (before any budget) and the 41 under budgets, all counted once.
    let counted = app
        .sql_number(&format!(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM rate_counters WHERE key = 'tpm:{user_id}'"
        ))
        .await;
    assert_eq!(counted, tokens * (calls + 1), "every call's tokens counted");
}

/// Calls under the same several budgets lock them in one order (by id) wherever they take more
/// than one: admission, a call's finish with its settlement (one update a budget, or, past
/// `SETTLED_EACH_UP_TO` budgets, the rows locked after the rollups), and a finish inside a conversation's
/// turn. Otherwise, on PostgreSQL, one call's admission and another's settlement can each hold one
/// budget's row while waiting for the other's, until the database breaks the cycle by failing
/// one of them (after its `deadlock_timeout`): an internal error. So all of these, at once, succeed,
/// and every budget counts each of them once.
#[tokio::test(flavor = "multi_thread")]
async fn calls_under_the_same_budgets_at_once_never_wait_for_each_other_in_a_cycle() {
    calls_at_once_under(3).await;
}

/// The same past the budgets a finish settles one update each: there a finish settles after
/// its rollups, budgets locked in id order, as a conversation turn does (taking the budgets
/// first deadlocked with a turn holding a new rollup row, once in CI).
#[tokio::test(flavor = "multi_thread")]
async fn calls_under_many_budgets_at_once_never_wait_for_each_other_in_a_cycle() {
    calls_at_once_under(cloudbase_schema::db::budgets::SETTLED_EACH_UP_TO + 2).await;
}

async fn calls_at_once_under(budgets: usize) {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.requests_per_minute = 0;
        c.rate_limits.tokens_per_minute = 1_000_000_000;
    })
    .await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app
        .register("many-budgets@example.com", "quartz lantern ferry budget")
        .await;
    // The user's and global ones, in both currencies, in turn.
    for i in 0..budgets {
        let owner = (i % 2 == 0).then_some(user_id.as_str());
        let currency = if i % 3 == 2 { "USD" } else { "CNY" };
        app.gql_ok(
            Some(&admin),
            CREATE,
            json!({"i": {"userId": owner, "period": "MONTH", "currency": currency, "limitMicros": "1000000000000"}}),
        )
        .await;
    }
    // Calls inside a conversation settle inside their turn's transaction, the others in their
    // finish's own statement: both ways at once.
    let mut conversations = Vec::new();
    for i in 0..30 {
        let id = app
            .gql_ok(
                Some(&user),
                "mutation($t: String) { createConversation(title: $t, provider: \"mock\", model: \"mock-echo\") { id } }",
                json!({"t": format!("budgets {i}")}),
            )
            .await["createConversation"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        conversations.push(id);
    }
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    // 120: fewer than the calls an instance takes at once with the tests' pool.
    for i in 0..120 {
        // Every fourth call a turn, each in a conversation of its own.
        let variables = match (i % 4, conversations.get(i / 4)) {
            (0, Some(id)) => {
                json!({"input": {"conversationId": id, "message": "a turn", "maxTokens": 3}})
            }
            _ => ask(),
        };
        tasks.push(spawn_chat(&client, &app.url("/graphql"), &user, variables));
    }
    let (mut spent, mut tokens) = (0, 0);
    let calls = tasks.len() as i64;
    for t in tasks {
        let body = t.await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        let call = &body["data"]["chat"]["aiCall"];
        assert_eq!(call["status"], "SUCCEEDED", "{body}");
        spent += micros(&call["costMicros"]);
        tokens +=
            call["promptTokens"].as_i64().unwrap() + call["completionTokens"].as_i64().unwrap();
    }
    check_each_counts(&app, &admin, budgets, spent, tokens, calls).await;
}

/// Each of the `n` budgets counts `calls` calls once: the `spent` micro-units in those in CNY (the
/// price's currency; nothing in the others), `tokens` and `calls` requests in every one, and
/// nothing stays reserved.
async fn check_each_counts(
    app: &TestApp,
    admin: &str,
    n: usize,
    spent: i64,
    tokens: i64,
    calls: i64,
) {
    let all = app
        .gql_ok(
            Some(admin),
            "{ budgets { currency spentMicros reservedMicros spentTokens spentRequests reservedRequests } }",
            json!({}),
        )
        .await;
    let listed = all["budgets"].as_array().unwrap();
    assert_eq!(listed.len(), n, "{all}");
    for b in listed {
        let cost = if b["currency"] == "CNY" { spent } else { 0 };
        assert_eq!(micros(&b["spentMicros"]), cost, "{b}");
        assert_eq!(b["spentTokens"], tokens, "{b}");
        assert_eq!(b["spentRequests"], calls, "{b}");
        assert_eq!(b["reservedMicros"], "0", "{b}");
        assert_eq!(b["reservedRequests"], 0, "{b}");
    }
    assert_eq!(
        app.sql_number("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM budget_reservations")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_rollups_and_spend_agree_to_the_micro_unit() {
    let app = TestApp::spawn_with(|c| {
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
        let mut cached = instance("mock", json!({}), &[]);
        cached.cache_ttl_secs = Some(60);
        c.plugins.insert("cachedmock".into(), cached);
        c.plugins.insert(
            "slowmock".into(),
            instance("mock", json!({"delay_ms": 100}), &[]),
        );
        c.plugins.insert(
            "chaos".into(),
            instance("mock", json!({"fault_injection": true}), &[]),
        );
    })
    .await;
    let admin = app.admin_token().await;
    // The mock instances share the mock's seeded price only under the name "mock": price the others.
    for provider in ["cachedmock", "slowmock", "chaos"] {
        app.gql_ok(Some(&admin), "mutation($i: AddPriceInput!) { addPrice(input: $i) { id } }", json!({"i": {"provider": provider, "model": "mock-echo", "input": "3.00", "cachedInput": "1.00", "output": "7.00", "currency": "CNY", "effectiveFrom": "2020-01-01T00:00:00Z"}})).await;
    }
    app.gql_ok(
        Some(&admin),
        CREATE,
        json!({"i": {"period": "MONTH", "currency": "CNY", "limitMicros": "1000000000"}}),
    )
    .await;
    let (user, _, _) = app.register("mixed@example.com", "mixed-password").await;
    for i in 0..4 {
        app.gql_ok(
            Some(&user),
            &chat_query(),
            json!({"input": {"provider": "mock", "message": format!("plain {i}")}}),
        )
        .await;
    }
    for _ in 0..3 {
        app.gql_ok(Some(&user), &chat_query(), json!({"input": {"provider": "cachedmock", "model": "mock-echo", "message": "cache me"}})).await;
    }
    let failed = app
        .gql(
            Some(&user),
            &chat_query(),
            json!({"input": {"provider": "chaos", "model": "mock-fault-panic", "message": "x"}}),
        )
        .await;
    assert_eq!(error_code(&failed), "PLUGIN_FAILED");
    let mut ws = crate::ws::GqlWs::connect(&app, Some(&user)).await.unwrap();
    ws.subscribe("1", &crate::chat::stream_query(), json!({"input": {"provider": "slowmock", "model": "mock-echo", "message": "a long reply to cancel halfway through"}})).await;
    assert_eq!(ws.next().await["type"], "next");
    ws.drop_connection().await;

    // Wait until every call is finished (the cancelled one finishes in the background).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app
        .sql_number("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ai_calls WHERE status = 'PENDING'")
        .await
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a call never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let statuses = app
        .gql_ok(
            Some(&user),
            &format!("{{ aiCalls(first: 100) {{ edges {{ node {{ {CALL_FIELDS} cached }} }} }} }}"),
            json!({}),
        )
        .await;
    let calls: Vec<Value> = statuses["aiCalls"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(calls.len(), 9);
    assert!(calls.iter().any(|c| c["status"] == "CANCELLED"));
    assert!(calls.iter().any(|c| c["status"] == "FAILED"));
    assert_eq!(calls.iter().filter(|c| c["cached"] == true).count(), 2);
    let records: i64 = calls.iter().map(|c| micros(&c["costMicros"])).sum();
    let rollups = app
        .sql_number("SELECT CAST(SUM(cost_micros) AS BIGINT) AS n FROM usage_daily")
        .await;
    let requests = app
        .sql_number("SELECT CAST(SUM(requests) AS BIGINT) AS n FROM usage_daily")
        .await;
    let global = app.gql_ok(Some(&admin), BUDGETS, json!({})).await["budgets"][0].clone();
    assert!(records > 0);
    assert_eq!(rollups, records, "rollups = records");
    for rollup in ["usage_daily_users", "usage_daily_models"] {
        let sums = app
            .sql_number(&format!(
                "SELECT CAST(SUM(cost_micros) * 100 + SUM(requests) AS BIGINT) AS n FROM {rollup}"
            ))
            .await;
        assert_eq!(sums, rollups * 100 + requests, "{rollup} = usage_daily");
    }
    assert_eq!(
        micros(&global["spentMicros"]),
        records,
        "spend = records: {global}"
    );
    assert_eq!(requests, 9);
    assert_eq!(global["spentRequests"], 9);
    assert_eq!(global["reservedMicros"], "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn periods_start_over_at_midnight_in_the_configured_zone() {
    let shanghai = chrono_tz::Asia::Shanghai;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| {
        c.budgets.timezone = "Asia/Shanghai".into()
    })
    .await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app.register("daily@example.com", "daily-password").await;
    let one = cost_of_one(&app, &user).await;
    // One request a day (the money limit is wide: admission reserves the worst case, above `one`).
    let created = app
        .gql_ok(Some(&admin), CREATE, json!({"i": {"userId": user_id, "period": "DAY", "currency": "CNY", "limitMicros": "1000000", "limitRequests": 1}}))
        .await;
    let now = clock.now();
    let local = now.with_timezone(&shanghai);
    let midnight = shanghai
        .from_local_datetime(
            &(local.date_naive() + chrono::Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .unwrap()
        .with_timezone(&chrono::Utc);
    let reset =
        chrono::DateTime::parse_from_rfc3339(created["createBudget"]["resetAt"].as_str().unwrap())
            .unwrap();
    assert_eq!(reset, midnight, "the day ends at local midnight");

    app.gql_ok(Some(&user), &chat_query(), ask()).await;
    let refused = app.gql(Some(&user), &chat_query(), ask()).await;
    assert_eq!(error_code(&refused), "BUDGET_EXCEEDED");
    let reset_at = chrono::DateTime::parse_from_rfc3339(
        refused["errors"][0]["extensions"]["resetAt"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reset_at, midnight, "the error says when the budget resets");

    // A minute past local midnight the day starts over.
    clock.advance(midnight - now + chrono::Duration::minutes(1));
    assert_eq!(clock.now().with_timezone(&shanghai).hour(), 0);
    app.gql_ok(Some(&user), &chat_query(), ask()).await;
    let budget = budget_of(&app, &admin, &user_id).await;
    assert_eq!(
        micros(&budget["spentMicros"]),
        one,
        "only today's call counts: {budget}"
    );
    assert_eq!(budget["spentRequests"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn reservations_left_by_a_crash_are_released() {
    let app = TestApp::spawn_with(|c| c.budgets.sweep_interval_secs = 1).await;
    let admin = app.admin_token().await;
    let (_, _, user_id) = app
        .register("crashed@example.com", "crashed-password")
        .await;
    let budget = app.gql_ok(Some(&admin), CREATE, json!({"i": {"userId": user_id, "period": "TOTAL", "currency": "CNY", "limitMicros": "1000"}})).await;
    let budget_id = budget["createBudget"]["id"].as_str().unwrap().to_owned();
    // What a process that died mid-call leaves: a PENDING record holding a reservation.
    let call_id = uuid::Uuid::now_v7().to_string();
    let started = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S");
    let empty_json = if app.is_postgres() {
        "'[]'"
    } else {
        "jsonb('[]')"
    };
    app.sql(&format!("INSERT INTO ai_calls (id, user_id, provider, model, stream, status, started_at, attempts) VALUES ('{call_id}', '{user_id}', 'mock', 'mock-echo', FALSE, 'PENDING', '{started}', {empty_json})")).await;
    app.sql(&format!("INSERT INTO budget_reservations (ai_call_id, budget_id, amount_micros, tokens, requests, expires_at) VALUES ('{call_id}', '{budget_id}', 400, 10, 1, '2020-01-01 00:15:00')")).await;
    app.sql(&format!("UPDATE budgets SET reserved_micros = 400, reserved_tokens = 10, reserved_requests = 1 WHERE id = '{budget_id}'")).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let b = budget_of(&app, &admin, &user_id).await;
        if b["reservedMicros"] == "0" {
            assert_eq!(b["reservedRequests"], 0);
            assert_eq!(b["spentMicros"], "0", "nothing was spent");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper never released it: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin_view = app
        .gql_ok(
            Some(&admin),
            "query($id: ID!) { aiCall(id: $id) { status errorCode errorMessage } }",
            json!({"id": call_id}),
        )
        .await;
    assert_eq!(
        admin_view["aiCall"]["status"], "FAILED",
        "the orphaned call is closed as failed: {admin_view}"
    );
    // As the interrupted-call sweep closes it, whichever sweep finds it first: the same code,
    // and counted in the rollups as the request it was.
    assert_eq!(
        admin_view["aiCall"]["errorCode"], "INTERRUPTED",
        "{admin_view}"
    );
    let counted = app
        .sql_number(&format!(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n FROM usage_daily \
             WHERE user_id = '{user_id}'"
        ))
        .await;
    assert_eq!(counted, 1, "the orphaned call is in the rollups");
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_are_managed_by_admins_and_seen_by_their_users() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app.register("viewer@example.com", "viewer-password").await;
    let (other, _, other_id) = app
        .register("other-budget@example.com", "other-password")
        .await;
    let input = json!({"i": {"userId": user_id, "period": "MONTH", "currency": "CNY", "limitMicros": "5000000"}});
    assert_eq!(
        error_code(&app.gql(Some(&user), CREATE, input.clone()).await),
        "FORBIDDEN"
    );
    let id = app.gql_ok(Some(&admin), CREATE, input).await["createBudget"]["id"].clone();
    app.gql_ok(
        Some(&admin),
        CREATE,
        json!({"i": {"period": "DAY", "currency": "CNY", "limitMicros": "9000000"}}),
    )
    .await;

    let mine = app.gql_ok(Some(&user), BUDGETS, json!({})).await;
    assert_eq!(
        mine["budgets"].as_array().unwrap().len(),
        2,
        "own and global"
    );
    let theirs = app.gql_ok(Some(&other), BUDGETS, json!({})).await;
    assert_eq!(
        theirs["budgets"].as_array().unwrap().len(),
        1,
        "only the global one"
    );
    assert_eq!(
        error_code(&app.gql(Some(&other), BUDGETS, json!({"u": user_id})).await),
        "FORBIDDEN"
    );
    let _ = other_id;

    let bad = app
        .gql(
            Some(&admin),
            CREATE,
            json!({"i": {"period": "DAY", "currency": "yuan", "limitMicros": "1"}}),
        )
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
    let negative = app
        .gql(
            Some(&admin),
            CREATE,
            json!({"i": {"period": "DAY", "currency": "CNY", "limitMicros": "-1"}}),
        )
        .await;
    assert_eq!(error_code(&negative), "BAD_USER_INPUT");
    let updated = app.gql_ok(Some(&admin), "mutation($id: ID!) { updateBudget(id: $id, limitMicros: \"7000000\", limitRequests: 100) { limitMicros limitRequests } }", json!({"id": id})).await;
    assert_eq!(updated["updateBudget"]["limitMicros"], "7000000");
    app.gql_ok(
        Some(&admin),
        "mutation($id: ID!) { deleteBudget(id: $id) }",
        json!({"id": id}),
    )
    .await;
    let gone = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { deleteBudget(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&gone), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread")]
async fn thresholds_are_raised_once_per_period() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app
        .register("watched@example.com", "watched-password")
        .await;
    let one = cost_of_one(&app, &user).await;
    // Wide enough that the worst-case reservation never refuses a call below 100%.
    let limit = 40 * one;
    app.gql_ok(Some(&admin), CREATE, json!({"i": {"userId": user_id, "period": "MONTH", "currency": "CNY", "limitMicros": limit.to_string(), "thresholds": [80, 25, 50, 50]}})).await;
    let q = "query($u: ID) { budgets(userId: $u) { scope thresholds alertedPercent spentMicros } }";
    let state = |v: Value| {
        let b = v["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["scope"] == "USER")
            .unwrap()
            .clone();
        (
            b["alertedPercent"].as_i64().unwrap(),
            micros(&b["spentMicros"]),
            b["thresholds"].clone(),
        )
    };
    let (alerted, _, thresholds) = state(app.gql_ok(Some(&admin), q, json!({"u": user_id})).await);
    assert_eq!(thresholds, json!([25, 50, 80]), "sorted, deduplicated");
    assert_eq!(alerted, 0);
    let mut seen = vec![0];
    for _ in 0..34 {
        app.gql_ok(Some(&user), &chat_query(), ask()).await;
        let (alerted, spent, _) = state(app.gql_ok(Some(&admin), q, json!({"u": user_id})).await);
        let used = spent * 100 / limit;
        let expected = [25, 50, 80]
            .into_iter()
            .filter(|t| *t <= used)
            .max()
            .unwrap_or(0);
        assert_eq!(
            alerted, expected,
            "at {used}% the highest crossed threshold is raised"
        );
        if *seen.last().unwrap() != alerted {
            seen.push(alerted);
        }
    }
    assert_eq!(seen, vec![0, 25, 50, 80], "each threshold once, in order");
    let bad = app.gql(Some(&admin), CREATE, json!({"i": {"period": "DAY", "currency": "CNY", "limitMicros": "1", "thresholds": [0, 150]}})).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}

/// PostgreSQL sends a call's admission and its settlement as one flight, `BEGIN` to `COMMIT`. A
/// flight dropped halfway (its request cancelled) may leave its transaction open: its connection
/// is never lent again. One that landed keeps its connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_whose_flight_was_dropped_is_never_lent_again() {
    use cloudbase_schema::db::{DbConn, budgets};
    use futures_util::FutureExt;

    use crate::support::{pending_call, pg_text};

    async fn pid(conn: &mut DbConn) -> String {
        pg_text(conn, "SELECT pg_backend_pid()::text AS t").await
    }

    if crate::support::skip_without_postgres(
        "a_connection_whose_flight_was_dropped_is_never_lent_again",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let (pool, user_id) = app.pool_of_one().await;
    let call = || pending_call(&user_id);

    let mut conn = pool.get().await.unwrap();
    let first = pid(&mut conn).await;
    let landed = call();
    let DbConn::Pg(c) = &mut conn else {
        unreachable!()
    };
    let refused = budgets::insert_and_reserve_in_one_flight(c, &landed, &[])
        .await
        .unwrap();
    assert_eq!(refused, None);
    assert_eq!(
        pid(&mut conn).await,
        first,
        "a flight that landed keeps its connection"
    );
    drop(conn);
    let mut conn = pool.get().await.unwrap();
    assert_eq!(pid(&mut conn).await, first, "and the pool lends it again");

    // Polled once, then dropped: its statements may be out, its `COMMIT` may not.
    let DbConn::Pg(c) = &mut conn else {
        unreachable!()
    };
    let dropped = call();
    let outcome = budgets::insert_and_reserve_in_one_flight(c, &dropped, &[]).now_or_never();
    assert!(outcome.is_none(), "the flight was still out when dropped");
    drop(conn);
    let mut conn = pool.get().await.unwrap();
    assert_ne!(
        pid(&mut conn).await,
        first,
        "the connection of a dropped flight was discarded"
    );
    let n = app
        .sql_number(&format!(
            "SELECT count(*) AS n FROM ai_calls WHERE id = '{}'",
            landed.id
        ))
        .await;
    assert_eq!(n, 1, "the flight that landed committed its call");
}

/// On PostgreSQL a call's finish and settlement are one statement, the reservations released
/// being those of the row the finish updated. A call the sweep of expired reservations already
/// failed (it releases a call's reservations one transaction at a time, so some may be left for
/// a moment) settles nothing when its own finish comes late; a call still running settles in
/// full, in its budget's currency; and the settlement locks its budget's row last.
#[tokio::test(flavor = "multi_thread")]
async fn a_late_finish_settles_nothing_and_a_timely_one_settles_all_locking_its_budget_last() {
    use cloudbase_schema::db::models::{AiCall, Reservation};
    use cloudbase_schema::db::{DbConn, ai_calls, budgets};
    use cloudbase_schema::domain::{CallStatus, UsageSource};
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

    if crate::support::skip_without_postgres(
        "a_late_finish_settles_nothing_and_a_timely_one_settles_all_locking_its_budget_last",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let budget_id = app
        .gql_ok(
            Some(&admin),
            CREATE,
            json!({"i": {"period": "MONTH", "currency": "CNY", "limitMicros": "1000000000"}}),
        )
        .await["createBudget"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (pool, user_id) = app.pool_of_one().await;
    let now = chrono::Utc::now().naive_utc();
    let admitted = |request: &str| {
        let call = AiCall {
            request_id: Some(request.to_owned()),
            started_at: now,
            ..crate::support::pending_call(&user_id)
        };
        let held = Reservation {
            ai_call_id: call.id.clone(),
            budget_id: budget_id.clone(),
            amount_micros: 5_000,
            tokens: 100,
            requests: 1,
            expires_at: now + chrono::Duration::hours(1),
        };
        (call, held)
    };
    let finish = ai_calls::Finish {
        provider: "mock".into(),
        model: "mock-echo".into(),
        status: CallStatus::Succeeded,
        error_code: None,
        error_message: None,
        prompt_tokens: 11,
        cached_prompt_tokens: 0,
        completion_tokens: 29,
        usage_source: Some(UsageSource::Reported),
        finished_at: Some(now),
        latency_ms: Some(5),
        ttft_ms: None,
        upstream_ms: Some(4),
        price_id: None,
        cost_micros: 1_234,
        currency: Some("CNY".into()),
        priced: true,
        cached: false,
        attempts: json!([]),
        prompt_log: None,
    };
    let add_to = budgets::AddTo {
        day: "2031-01-02",
        token_counters: &[],
        minute: now,
    };
    let watched = [budget_id.clone()];
    let budget = |column: &str| {
        format!("SELECT CAST({column} AS BIGINT) AS n FROM budgets WHERE id = '{budget_id}'")
    };
    let mut conn = pool.get().await.unwrap();
    let DbConn::Pg(c) = &mut conn else {
        unreachable!("PostgreSQL only")
    };

    // Failed by the sweep (its status changed), its reservation not released yet.
    let (late, late_held) = admitted("late");
    let refused = budgets::insert_and_reserve_in_one_flight(c, &late, &[late_held])
        .await
        .unwrap();
    assert_eq!(refused, None);
    app.sql(&format!(
        "UPDATE ai_calls SET status = 'FAILED', finished_at = now() WHERE id = '{}'",
        late.id
    ))
    .await;
    let done = budgets::finish_and_settle(c, &late, &finish, &add_to, None, &watched, 1)
        .await
        .unwrap();
    assert!(
        done.record.is_none(),
        "the late finish finds the call finished"
    );
    assert_eq!(
        app.sql_number(&budget("spent_micros")).await,
        0,
        "nothing spent"
    );
    assert_eq!(app.sql_number(&budget("spent_requests")).await, 0);
    assert_eq!(
        app.sql_number(&budget("reserved_micros")).await,
        5_000,
        "left to the sweep"
    );
    let left = app
        .sql_number("SELECT count(*) AS n FROM budget_reservations")
        .await;
    assert_eq!(left, 1, "its reservation is left to the sweep");

    // Still running: settled in full.
    let (timely, timely_held) = admitted("timely");
    budgets::insert_and_reserve_in_one_flight(c, &timely, &[timely_held])
        .await
        .unwrap();
    assert_eq!(app.sql_number(&budget("reserved_micros")).await, 10_000);
    let done = budgets::finish_and_settle(c, &timely, &finish, &add_to, None, &watched, 1)
        .await
        .unwrap();
    let record = done
        .record
        .expect("the timely finish finds the call running");
    assert_eq!(
        (record.cost_micros, record.status),
        (1_234, CallStatus::Succeeded)
    );
    assert_eq!(app.sql_number(&budget("spent_micros")).await, 1_234);
    assert_eq!(app.sql_number(&budget("spent_tokens")).await, 40);
    assert_eq!(app.sql_number(&budget("spent_requests")).await, 1);
    assert_eq!(
        app.sql_number(&budget("reserved_micros")).await,
        5_000,
        "only the late call's"
    );
    assert_eq!(done.watched.len(), 1);
    assert_eq!(
        done.watched[0].spent_micros, 1_234,
        "the budget as it now stands"
    );

    // The settlement takes its budgets' rows last, after the rollups, so that they stay locked
    // for the commit only: with a rollup row held by another transaction, the finish waits
    // there, and its budget's row is free all the while.
    let (third, third_held) = admitted("third");
    budgets::insert_and_reserve_in_one_flight(c, &third, &[third_held])
        .await
        .unwrap();
    let url = app.config.database_url.clone().unwrap();
    let mut blocker = AsyncPgConnection::establish(&url).await.unwrap();
    blocker
        .batch_execute(
            "INSERT INTO usage_daily_models (day, provider, model, currency, shard, requests, \
             prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros) \
             SELECT '2031-01-03', 'mock', 'mock-echo', 'CNY', s, 0, 0, 0, 0, 0 \
             FROM generate_series(0, 15) AS s; \
             BEGIN; SELECT 1 FROM usage_daily_models WHERE day = '2031-01-03' FOR UPDATE",
        )
        .await
        .unwrap();
    let later = budgets::AddTo {
        day: "2031-01-03",
        ..add_to
    };
    let finishing = budgets::finish_and_settle(c, &third, &finish, &later, None, &watched, 1);
    let probe = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let waiting = "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'";
        while app.sql_number(waiting).await == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the finish never waited for the rollup row"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut other = AsyncPgConnection::establish(&url).await.unwrap();
        let free = other
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM budgets WHERE id = '{budget_id}' FOR UPDATE NOWAIT; ROLLBACK"
            ))
            .await;
        blocker.batch_execute("COMMIT").await.unwrap();
        free
    };
    let (done, free) = tokio::join!(finishing, probe);
    assert!(
        free.is_ok(),
        "the budget's row was locked while the finish waited for a rollup: {free:?}"
    );
    let record = done
        .unwrap()
        .record
        .expect("the finish found the call running");
    assert_eq!(record.status, CallStatus::Succeeded);
    assert_eq!(app.sql_number(&budget("spent_micros")).await, 2 * 1_234);
    assert_eq!(
        app.sql_number(&budget("reserved_micros")).await,
        5_000,
        "only the late call's"
    );

    // The flights' transactions commit without waiting for the disk (and then wait for it apart),
    // and so does a rate counter's step: the setting is the transaction's own, and the pooled
    // connection they ran on commits as usual afterwards.
    let DbConn::Pg(c) = &mut conn else {
        unreachable!("PostgreSQL only")
    };
    let still_waiting = "DO $$ BEGIN IF current_setting('synchronous_commit') <> 'on' THEN \
         RAISE EXCEPTION 'synchronous_commit is %', current_setting('synchronous_commit'); \
         END IF; END $$";
    c.batch_execute(still_waiting).await.unwrap();
    assert!(
        cloudbase_schema::db::rate_limits::take(&mut conn, "rpm:probe", now, 1, 5)
            .await
            .unwrap()
    );
    assert!(
        cloudbase_schema::db::rate_limits::take(&mut conn, "rpm:probe", now, 1, 5)
            .await
            .unwrap()
    );
    let DbConn::Pg(c) = &mut conn else {
        unreachable!("PostgreSQL only")
    };
    c.batch_execute(still_waiting).await.unwrap();
    // Inside a transaction a step would turn off the commit's wait for that whole transaction:
    // it refuses, and the transaction commits as usual.
    let inside = conn
        .transaction(async |tx| {
            let step = cloudbase_schema::db::rate_limits::take(tx, "rpm:probe", now, 1, 5).await;
            Ok(format!("{step:?}"))
        })
        .await
        .unwrap();
    assert_eq!(inside, "Err(AlreadyInTransaction)");
    let DbConn::Pg(c) = &mut conn else {
        unreachable!("PostgreSQL only")
    };
    c.batch_execute(still_waiting).await.unwrap();
    assert_eq!(
        app.sql_number(
            "SELECT CAST(count AS BIGINT) AS n FROM rate_counters WHERE key = 'rpm:probe'"
        )
        .await,
        2,
        "both steps committed, and not the refused one"
    );
}

/// On PostgreSQL, calls admitted together (`db::admission_batch`, through each instance's queue
/// `services::chat::admissions`): one transaction updates each budget once by the sum of its
/// calls' reservations, and keeps every call of the batch, or none when a budget has no room for
/// the sum. Each call is then admitted on its own, which says exactly which ones fit.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_admissions_keeps_all_its_calls_or_none() {
    use cloudbase_schema::db::admission_batch::{self, Admitting, Flown};
    use cloudbase_schema::db::models::Reservation;
    use cloudbase_schema::db::{DbConn, budgets};

    use crate::support::pending_call;

    if crate::support::skip_without_postgres("a_batch_of_admissions_keeps_all_its_calls_or_none") {
        return;
    }
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = app
        .gql_ok(
            Some(&admin),
            CREATE,
            json!({"i": {"period": "TOTAL", "currency": "CNY", "limitMicros": "1000", "limitRequests": 3}}),
        )
        .await;
    let budget_id = created["createBudget"]["id"].as_str().unwrap().to_owned();
    let (pool, user_id) = app.pool_of_one().await;
    let calls: Vec<_> = (0..4).map(|_| pending_call(&user_id)).collect();
    let wanted: Vec<Vec<Reservation>> = calls
        .iter()
        .map(|call| {
            vec![Reservation {
                ai_call_id: call.id.clone(),
                budget_id: budget_id.clone(),
                amount_micros: 400,
                tokens: 10,
                requests: 1,
                expires_at: chrono::Utc::now().naive_utc() + chrono::Duration::hours(1),
            }]
        })
        .collect();
    let batch = |range: std::ops::Range<usize>| -> Vec<Admitting<'_>> {
        range
            .map(|i| Admitting {
                call: &calls[i],
                wanted: &wanted[i],
            })
            .collect()
    };
    let state = async || {
        let held = app
            .sql_number(&format!(
                "SELECT reserved_micros * 10000 + reserved_tokens * 10 + reserved_requests AS n \
                 FROM budgets WHERE id = '{budget_id}'"
            ))
            .await;
        let records = app
            .sql_number("SELECT count(*) AS n FROM ai_calls WHERE status = 'PENDING'")
            .await;
        let rows = app
            .sql_number("SELECT count(*) AS n FROM budget_reservations")
            .await;
        (held, records, rows)
    };
    let mut conn = pool.get().await.unwrap();
    let DbConn::Pg(pg) = &mut conn else {
        unreachable!("PostgreSQL only")
    };
    let refused_by = |flown: Flown<'_>| match flown {
        Flown::Refused(id) => id.to_owned(),
        other => panic!("not refused: {other:?}"),
    };
    // Three calls' 1,200 micros do not fit in 1,000: nothing is kept.
    let flown = admission_batch::insert_and_reserve(pg, &batch(0..3)).await;
    assert_eq!(refused_by(flown.unwrap()), budget_id);
    assert_eq!(state().await, (0, 0, 0), "a refused batch keeps nothing");
    // Two calls' 800 do: both recorded and reserved, the budget updated by the sums.
    let flown = admission_batch::insert_and_reserve(pg, &batch(0..2)).await;
    assert!(matches!(flown, Ok(Flown::Admitted)), "{flown:?}");
    assert_eq!(state().await, (800 * 10000 + 20 * 10 + 2, 2, 2));
    // The third alone finds 200 micros left: refused by the budget, as one call.
    assert_eq!(
        budgets::insert_and_reserve_in_one_flight(pg, &calls[2], &wanted[2])
            .await
            .unwrap(),
        Some(0)
    );
    // The requests limit counts a batch's requests too: with room in micros for two more but
    // a request for one only, a batch of two is refused.
    app.gql_ok(
        Some(&admin),
        "mutation($id: ID!) { updateBudget(id: $id, limitMicros: \"2000\", limitRequests: 3) { id } }",
        json!({"id": budget_id}),
    )
    .await;
    let flown = admission_batch::insert_and_reserve(pg, &batch(2..4)).await;
    assert_eq!(refused_by(flown.unwrap()), budget_id);
    assert_eq!(state().await, (800 * 10000 + 20 * 10 + 2, 2, 2));
    // Under two budgets, the one refused is named, here the second in id order: a call alone
    // is told its index among its reservations.
    let other = app
        .gql_ok(
            Some(&admin),
            CREATE,
            json!({"i": {"period": "TOTAL", "currency": "CNY", "limitMicros": "100"}}),
        )
        .await["createBudget"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(other > budget_id, "ids in creation order");
    let mut both = wanted[3].clone();
    both.push(Reservation {
        budget_id: other.clone(),
        ..wanted[3][0].clone()
    });
    assert_eq!(
        budgets::insert_and_reserve_in_one_flight(pg, &calls[3], &both)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(state().await, (800 * 10000 + 20 * 10 + 2, 2, 2));
    // The connection is sound after the flights, and commits as usual.
    let setting = crate::support::pg_text(
        &mut conn,
        "SELECT current_setting('synchronous_commit') AS t",
    )
    .await;
    assert_eq!(setting, "on");
}
