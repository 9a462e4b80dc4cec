//! Usage reports and statements: the sums the rollups give equal the sums of the call records.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::chat::chat_query;
use crate::support::{TestApp, error_code, instance};

fn range() -> Value {
    let today = chrono::Utc::now().date_naive();
    json!({"from": (today - chrono::Duration::days(1)).to_string(), "to": (today + chrono::Duration::days(1)).to_string()})
}

fn micros(v: &Value) -> i64 {
    v.as_str().unwrap().parse().unwrap()
}

/// Every call record visible to `token`: (user, model, cost, tokens).
async fn records(app: &TestApp, token: &str) -> Vec<(String, String, i64, i64)> {
    let data = app.gql_ok(Some(token), "{ aiCalls(first: 100) { edges { node { userId model costMicros promptTokens completionTokens } } } }", json!({})).await;
    data["aiCalls"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["userId"].as_str().unwrap().to_owned(),
                n["model"].as_str().unwrap().to_owned(),
                micros(&n["costMicros"]),
                n["promptTokens"].as_i64().unwrap() + n["completionTokens"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn traffic() -> (TestApp, String, (String, String), (String, String)) {
    let app = TestApp::spawn_with(|c| {
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
    })
    .await;
    let admin = app.admin_token().await;
    let (a, _, a_id) = app
        .register("report-a@example.com", "report-a-password")
        .await;
    let (b, _, b_id) = app
        .register("report-b@example.com", "report-b-password")
        .await;
    for (token, model, n) in [
        (&a, "mock-echo", 3),
        (&a, "mock-fast", 2),
        (&b, "mock-echo", 4),
    ] {
        for i in 0..n {
            app.gql_ok(Some(token), &chat_query(), json!({"input": {"provider": "mock", "model": model, "message": format!("question number {i}")}})).await;
        }
    }
    (app, admin, (a, a_id), (b, b_id))
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_reports_equal_the_call_records() {
    let (app, admin, (a, a_id), (_, b_id)) = traffic().await;
    let all = records(&app, &admin).await;
    assert_eq!(all.len(), 9);
    let q = "query($r: DateRange!, $g: [UsageDimension!]!, $f: UsageFilter) { usage(range: $r, groupBy: $g, filter: $f) { day userId provider model currency requests promptTokens completionTokens costMicros } }";

    let by_model = app
        .gql_ok(Some(&admin), q, json!({"r": range(), "g": ["MODEL"]}))
        .await;
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (_, model, cost, _) in &all {
        let e = expected.entry(model.clone()).or_default();
        e.0 += 1;
        e.1 += cost;
    }
    let got: BTreeMap<String, (i64, i64)> = by_model["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().to_owned(),
                (r["requests"].as_i64().unwrap(), micros(&r["costMicros"])),
            )
        })
        .collect();
    assert_eq!(got, expected, "per model");
    assert!(
        by_model["usage"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["userId"].is_null() && r["day"].is_null())
    );

    let by_user = app
        .gql_ok(Some(&admin), q, json!({"r": range(), "g": ["USER"]}))
        .await;
    let users: BTreeMap<String, i64> = by_user["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["userId"].as_str().unwrap().to_owned(),
                micros(&r["costMicros"]),
            )
        })
        .collect();
    let cost_of = |u: &str| all.iter().filter(|r| r.0 == u).map(|r| r.2).sum::<i64>();
    assert_eq!(users.get(&a_id), Some(&cost_of(&a_id)));
    assert_eq!(users.get(&b_id), Some(&cost_of(&b_id)));

    let filtered = app.gql_ok(Some(&admin), q, json!({"r": range(), "g": ["DAY", "MODEL"], "f": {"userId": a_id, "model": "mock-fast"}})).await;
    let rows = filtered["usage"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["requests"], 2);
    assert!(rows[0]["day"].is_string());

    // Users read their own usage only; the admin report is for admins.
    let mine = app
        .gql_ok(
            Some(&a),
            "query($r: DateRange!) { myUsage(range: $r, groupBy: []) { requests costMicros } }",
            json!({"r": range()}),
        )
        .await;
    assert_eq!(mine["myUsage"][0]["requests"], 5);
    assert_eq!(micros(&mine["myUsage"][0]["costMicros"]), cost_of(&a_id));
    assert_eq!(
        error_code(&app.gql(Some(&a), q, json!({"r": range(), "g": []})).await),
        "FORBIDDEN"
    );
    let backwards = json!({"from": "2026-02-01", "to": "2026-01-01"});
    assert_eq!(
        error_code(
            &app.gql(Some(&admin), q, json!({"r": backwards, "g": []}))
                .await
        ),
        "BAD_USER_INPUT"
    );
    let too_long = json!({"from": "2020-01-01", "to": "2026-01-01"});
    assert_eq!(
        error_code(
            &app.gql(Some(&admin), q, json!({"r": too_long, "g": []}))
                .await
        ),
        "BAD_USER_INPUT"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn monthly_statements_as_graphql_and_csv() {
    let (app, admin, (a, a_id), (b, _)) = traffic().await;
    let all = records(&app, &admin).await;
    // The month as the statement counts it: in the budgets' time zone (a day ahead of UTC for
    // eight hours a day with the default, Asia/Shanghai).
    let timezone = cloudbase_server::config::Config::default()
        .timezone()
        .unwrap();
    let month = chrono::Utc::now()
        .with_timezone(&timezone)
        .format("%Y-%m")
        .to_string();
    let q = "query($u: ID, $m: String!) { statement(userId: $u, month: $m) { userId month lines { provider model currency requests costMicros } totals { currency requests costMicros } } }";
    let s = app.gql_ok(Some(&a), q, json!({"m": month})).await;
    let lines = s["statement"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "a line per model: {lines:?}");
    let total = micros(&s["statement"]["totals"][0]["costMicros"]);
    assert_eq!(
        total,
        all.iter().filter(|r| r.0 == a_id).map(|r| r.2).sum::<i64>()
    );
    assert_eq!(
        lines.iter().map(|l| micros(&l["costMicros"])).sum::<i64>(),
        total
    );
    assert_eq!(
        error_code(&app.gql(Some(&b), q, json!({"u": a_id, "m": month})).await),
        "FORBIDDEN"
    );
    assert_eq!(
        error_code(&app.gql(Some(&a), q, json!({"m": "2026-13"})).await),
        "BAD_USER_INPUT"
    );
    let by_admin = app
        .gql_ok(Some(&admin), q, json!({"u": a_id, "m": month}))
        .await;
    assert_eq!(by_admin["statement"]["totals"], s["statement"]["totals"]);

    let url = app.url(&format!("/statements/{month}.csv"));
    let csv = app.client.get(&url).bearer_auth(&a).send().await.unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".csv")
    );
    let text = csv.text().await.unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].starts_with("month,provider,model,currency"));
    assert_eq!(
        rows.len(),
        1 + 2 + 1,
        "header, two lines, one total: {text}"
    );
    let total_row = rows.iter().find(|r| r.contains(",TOTAL,")).unwrap();
    let decimal = format!("{}.{:06}", total / 1_000_000, total % 1_000_000);
    assert!(total_row.ends_with(&decimal), "{total_row} vs {decimal}");

    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
    let other = app
        .client
        .get(format!("{url}?userId={a_id}"))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    let admin_csv = app
        .client
        .get(format!("{url}?userId={a_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_csv.text().await.unwrap(), text);
    let bad = app
        .client
        .get(app.url("/statements/2026-99.csv"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// A page's "today" is the server's: `reportCalendar` names the zone days are counted in, and a
/// call made now is on its `today` in the usage report, in a zone far ahead of UTC and in one
/// far behind it.
#[tokio::test(flavor = "multi_thread")]
async fn the_report_calendar_is_the_one_reports_count_days_in() {
    for zone in ["Pacific/Kiritimati", "Pacific/Pago_Pago"] {
        let app = TestApp::spawn_with(|c| {
            c.budgets.timezone = zone.into();
            c.plugins
                .insert("mock".into(), instance("mock", json!({}), &[]));
        })
        .await;
        let (user, _, _) = app
            .register("calendar@example.com", "calendar-password")
            .await;
        let calendar = app
            .gql_ok(
                Some(&user),
                "{ reportCalendar { timeZone today month } }",
                json!({}),
            )
            .await["reportCalendar"]
            .clone();
        assert_eq!(calendar["timeZone"], zone);
        let today = calendar["today"].as_str().unwrap().to_owned();
        assert_eq!(calendar["month"], today[..7], "{calendar}");
        let expected = chrono::Utc::now()
            .with_timezone(&zone.parse::<chrono_tz::Tz>().unwrap())
            .date_naive()
            .to_string();
        assert_eq!(today, expected, "{zone}");
        app.gql_ok(
            Some(&user),
            &chat_query(),
            json!({"input": {"provider": "mock", "model": "mock-fast", "message": "which day is it?"}}),
        )
        .await;
        let rows = app
            .gql_ok(
                Some(&user),
                "query($r: DateRange!) { myUsage(range: $r, groupBy: [DAY]) { day requests } }",
                json!({"r": {"from": today, "to": today}}),
            )
            .await;
        assert_eq!(
            rows["myUsage"],
            json!([{"day": today, "requests": 1}]),
            "{zone}"
        );
        let anonymous = app
            .gql(None, "{ reportCalendar { timeZone } }", json!({}))
            .await;
        assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    }
}
