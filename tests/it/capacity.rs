//! Capacity: overload is refused fast, with a status and a time to come back; fields share their
//! request's one connection.

use serde_json::json;

use crate::support::{TestApp, instance};
use crate::ws::GqlWs;

const SLOW_STREAM: &str = "subscription { chatStream(input: {provider: \"slow\", model: \"mock-echo\", message: \"one two three four five six\"}) { delta done } }";
const CHAT: &str = "mutation { chat(input: {provider: \"mock\", model: \"mock-fast\", message: \"hi\"}) { content } }";

/// Past `[chat] max_calls_in_flight`, a call is refused at once with `UNAVAILABLE`, HTTP 503 and
/// `Retry-After`, and nothing is recorded for it, not even an audit row; when a slot frees up,
/// calls go through again.
#[tokio::test(flavor = "multi_thread")]
async fn calls_past_the_in_flight_limit_get_a_fast_503() {
    let app = TestApp::spawn_with(|c| {
        c.chat.max_calls_in_flight = 2;
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
        c.plugins.insert(
            "slow".into(),
            instance("mock", json!({"delay_ms": 400}), &[]),
        );
    })
    .await;
    let token = app.admin_token().await;
    let mut sockets = Vec::new();
    for id in ["a", "b"] {
        let mut socket = GqlWs::connect(&app, Some(&token)).await.unwrap();
        socket.subscribe(id, SLOW_STREAM, json!({})).await;
        // The first delta means the call is admitted and running.
        let first = socket.next_item(id).await;
        assert_eq!(first["type"], "next", "{first}");
        sockets.push((id, socket));
    }
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": CHAT }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["retryAfterMs"], 1000);
    // The streams finish; then a call goes through.
    for (id, mut socket) in sockets {
        let (_, error) = socket.collect(id).await;
        assert!(error.is_none(), "{error:?}");
    }
    let data = app.gql_ok(Some(&token), CHAT, json!({})).await;
    assert!(data["chat"]["content"].is_string());
    let calls = app
        .gql_ok(
            Some(&token),
            "{ aiCalls { edges { node { status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        calls["aiCalls"]["edges"].as_array().unwrap().len(),
        3,
        "the refused call left no record: {calls}"
    );
    // Nor an audit row, which would have waited for the database it was refused to spare: the
    // one `chat` mutation in the trail is the one that ran.
    let audited = app
        .gql_ok(
            Some(&token),
            "{ auditLog(filter: {field: \"chat\"}) { edges { node { outcome } } } }",
            json!({}),
        )
        .await;
    let outcomes: Vec<_> = audited["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["outcome"].clone())
        .collect();
    assert_eq!(outcomes, [json!("OK")], "{audited}");
}

/// 200 concurrent chats across two instances on PostgreSQL, with a budget and the audit chain
/// on: no internal error (calls past the in-flight limit are refused with `UNAVAILABLE`, never
/// failed), and afterwards records, rollups and the budget agree to the micro-unit, nothing is
/// left reserved, and the audit chain verifies with every row linked.
#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_chats_on_two_instances_leave_everything_consistent() {
    if crate::support::skip_without_postgres(
        "two_hundred_concurrent_chats_on_two_instances_leave_everything_consistent",
    ) {
        return;
    }
    two_hundred_concurrent_chats_on_two_instances(true).await;
}

/// The same with no budget: each instance writes the finishes of calls that end together as one
/// statement (`services::chat::finishes`). Records, rollups and audit rows agree as above, and
/// every call was finished by a batch (none fell back to finishing alone).
#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_chats_finished_in_batches_leave_everything_consistent() {
    if crate::support::skip_without_postgres(
        "two_hundred_concurrent_chats_finished_in_batches_leave_everything_consistent",
    ) {
        return;
    }
    two_hundred_concurrent_chats_on_two_instances(false).await;
}

async fn two_hundred_concurrent_chats_on_two_instances(with_budget: bool) {
    let (app, peers) = TestApp::spawn_cluster_with(
        2,
        std::sync::Arc::new(cloudbase_schema::clock::SystemClock),
        |c| c.rate_limits.requests_per_minute = 0,
    )
    .await;
    let admin = app.admin_token().await;
    if with_budget {
        app.gql_ok(
            Some(&admin),
            "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id } }",
            json!({"i": {"period": "MONTH", "currency": "CNY", "limitMicros": "1000000000"}}),
        )
        .await;
    }
    let (user, _, _) = app.register("busy@example.com", "busy-bee-password").await;
    let urls = [app.url("/graphql"), peers[0].url("/graphql")];
    let query = "mutation($input: ChatInput!) { chat(input: $input) { aiCall { costMicros } } }";
    let calls = (0..200).map(|i| {
        let (client, url, user) = (app.client.clone(), urls[i % 2].clone(), user.clone());
        async move {
            let response = client
                .post(url)
                .bearer_auth(user)
                .json(&json!({"query": query, "variables": {"input": {"provider": "mock", "model": "mock-fast", "message": format!("load {i}")}}}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut succeeded = 0;
    for (status, body) in &results {
        match body["errors"][0]["extensions"]["code"].as_str() {
            None => {
                assert_eq!(*status, 200);
                succeeded += 1;
            }
            Some("UNAVAILABLE") => assert_eq!(*status, 503, "{body}"),
            Some(other) => panic!("a call failed with {other}: {body}"),
        }
    }
    assert!(succeeded > 0);
    let records = app
        .sql_number("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS n FROM ai_calls")
        .await;
    let count = app
        .sql_number("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ai_calls WHERE status = 'SUCCEEDED'")
        .await;
    let pending = app
        .sql_number("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ai_calls WHERE status = 'PENDING'")
        .await;
    let rollups = app
        .sql_number("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS n FROM usage_daily")
        .await;
    let spent = app
        .sql_number("SELECT CAST(COALESCE(SUM(spent_micros), 0) AS BIGINT) AS n FROM budgets")
        .await;
    let reserved = app
        .sql_number("SELECT CAST(COALESCE(SUM(reserved_micros), 0) AS BIGINT) AS n FROM budgets")
        .await;
    assert_eq!(count, succeeded, "one record per call that succeeded");
    assert_eq!(pending, 0);
    assert!(records > 0);
    assert_eq!(rollups, records, "rollups = records");
    for rollup in ["usage_daily_users", "usage_daily_models"] {
        let sum = app
            .sql_number(&format!(
                "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS n FROM {rollup}"
            ))
            .await;
        assert_eq!(sum, records, "{rollup} = records");
    }
    if with_budget {
        assert_eq!(spent, records, "budget spend = records");
        assert_eq!(reserved, 0, "every reservation came back");
        // Calls under the budget are admitted through each instance's queue, and calls that
        // arrive together share a transaction (the budget had room for every batch).
        let mut admitted = 0.0;
        let mut batches = 0.0;
        for url in [app.url("/metrics"), peers[0].url("/metrics")] {
            let scrape = crate::monitoring::scrape_at(&app.client, url).await;
            admitted +=
                crate::monitoring::value(&scrape, "cloudbase_pg_admissions_batched_total", &[]);
            batches +=
                crate::monitoring::value(&scrape, "cloudbase_pg_admission_batches_total", &[]);
        }
        assert_eq!(
            admitted, succeeded as f64,
            "every call admitted through the queue"
        );
        assert!(
            batches >= 1.0 && batches < admitted,
            "{batches} admission batches for {admitted} calls: none shared"
        );
    } else {
        // Calls with no budget are opened and finished in batches on each instance, every one
        // of them.
        for (written, statements) in [
            (
                "cloudbase_pg_pendings_batched_total",
                "cloudbase_pg_pending_batches_total",
            ),
            (
                "cloudbase_pg_finishes_batched_total",
                "cloudbase_pg_finish_batches_total",
            ),
        ] {
            let mut batched = 0.0;
            let mut batches = 0.0;
            for url in [app.url("/metrics"), peers[0].url("/metrics")] {
                let scrape = crate::monitoring::scrape_at(&app.client, url).await;
                batched += crate::monitoring::value(&scrape, written, &[]);
                batches += crate::monitoring::value(&scrape, statements, &[]);
            }
            assert_eq!(
                batched, succeeded as f64,
                "every call went through {written}"
            );
            assert!(
                batches >= 1.0 && batches <= batched,
                "{batches} {statements} for {batched} {written}"
            );
        }
        let audited = app
            .sql_number("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log WHERE field = 'chat' AND outcome = 'OK'")
            .await;
        assert_eq!(audited, succeeded, "one audit row per call that succeeded");
    }
    // One user, one model: on PostgreSQL the calls were added to several of the day's rollup rows
    // (`db::budgets::shard`), so that they did not wait for one row lock each; a report sums them.
    let rows = app
        .sql_number("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM usage_daily")
        .await;
    let top = app
        .sql_number("SELECT CAST(MAX(shard) AS BIGINT) AS n FROM usage_daily")
        .await;
    assert!(rows > 1, "the calls went to {rows} rollup row(s)");
    assert!(
        top < i64::from(cloudbase_schema::db::budgets::ROLLUP_SHARDS),
        "shard {top}"
    );
    let today = chrono::Utc::now().date_naive();
    let range = json!({"from": (today - chrono::Duration::days(1)).to_string(), "to": (today + chrono::Duration::days(1)).to_string()});
    let report = app
        .gql_ok(
            Some(&admin),
            "query($r: DateRange!) { usage(range: $r, groupBy: [USER, MODEL]) { requests costMicros } }",
            json!({"r": range}),
        )
        .await;
    let report = report["usage"].as_array().unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["requests"], succeeded, "{report:?}");
    assert_eq!(report[0]["costMicros"], records.to_string(), "{report:?}");
    crate::audit::wait_chained(&app).await;
    let report = crate::audit::verify(&app).await;
    assert!(
        matches!(
            report.verdict,
            cloudbase_schema::services::audit::Verdict::Intact { .. }
        ),
        "{report:?}"
    );
}

/// A call finishes once. On PostgreSQL the finish, its three rollups, its tokens to the rate
/// limits and the audit row are one statement with no transaction around it; a second finish of
/// the same record (the sweep of interrupted calls racing the call's own end) must add nothing:
/// no second rollup, no second audit row, no tokens counted twice against the rate limits. The
/// first returns the row as stored, column for column (on neither backend is it read back whole:
/// it is made from the `PENDING` record and the finish, with the `conversation_id` the row has;
/// the call's conversation is deleted while it is in flight, which the database alone changes in
/// the row).
#[tokio::test(flavor = "multi_thread")]
async fn a_call_finished_twice_is_counted_and_audited_once() {
    use cloudbase_schema::db::{ai_calls, budgets, conversations, models};
    let app = TestApp::spawn().await;
    let (_, _, user_id) = app
        .register("twice@example.com", "twice-told-password")
        .await;
    let pool = own_pool(&app).await;
    // As the server's clock gives it, in microseconds, as both databases keep it.
    let now = cloudbase_schema::clock::truncate_micros(chrono::Utc::now()).naive_utc();
    let conversation = models::Conversation {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: user_id.clone(),
        title: "gone while the call runs".into(),
        provider: None,
        model: None,
        created_at: now,
        updated_at: now,
    };
    let call = models::AiCall::pending(
        user_id.clone(),
        Some(conversation.id.clone()),
        Some("req-twice".into()),
        ("mock".into(), "mock-fast".into()),
        false,
        now,
    );
    let finish = ai_calls::Finish {
        provider: "mock".into(),
        model: "mock-smart".into(),
        status: cloudbase_schema::domain::CallStatus::Succeeded,
        error_code: None,
        error_message: None,
        prompt_tokens: 11,
        cached_prompt_tokens: 3,
        completion_tokens: 29,
        usage_source: Some(cloudbase_schema::domain::UsageSource::Reported),
        finished_at: Some(now),
        latency_ms: Some(17),
        ttft_ms: None,
        upstream_ms: Some(12),
        price_id: None,
        cost_micros: 1234,
        currency: Some("CNY".into()),
        priced: true,
        cached: false,
        attempts: json!([{"provider": "mock", "model": "mock-smart", "outcome": "OK"}]),
        prompt_log: None,
    };
    let row = models::NewAuditRow {
        at: now,
        actor_id: Some(&user_id),
        actor_role: Some("USER"),
        operation_name: None,
        field: "chat",
        arguments: "{}",
        outcome: "OK",
        client_ip: Some("127.0.0.1"),
        user_agent: None,
        request_id: "req-twice",
    };
    let mut conn = pool.get().await.unwrap();
    conn.write(async |c| {
        conversations::insert(c, &conversation).await?;
        Ok(ai_calls::insert(c, &call).await?)
    })
    .await
    .unwrap();
    conn.write(async |c| Ok(conversations::delete(c, &conversation.id).await?))
        .await
        .unwrap();
    let day = "2031-01-02";
    let counters = [format!("tpm:{user_id}"), "tpm:key:family-twice".to_owned()];
    let add_to = budgets::AddTo {
        day,
        token_counters: &counters,
        minute: now,
    };
    let mut finished = Vec::new();
    for _ in 0..2 {
        let (call, finish, row, add_to) = (&call, &finish, &row, &add_to);
        finished.push(
            conn.write(async |c| {
                Ok(budgets::finish_and_add_to_daily(c, call, finish, add_to, Some(row)).await?)
            })
            .await
            .unwrap(),
        );
    }
    let read = ai_calls::find(&mut conn, &call.id).await.unwrap();
    drop(conn);
    let stored = finished[0]
        .as_ref()
        .expect("the first finish finds the call");
    assert!(finished[1].is_none(), "the second finds it finished");
    assert_eq!(
        format!("{stored:?}"),
        format!("{read:?}"),
        "the finished record returned is the row stored"
    );
    assert_eq!(stored.conversation_id, None, "its conversation was deleted");
    assert_eq!(
        (
            stored.id.as_str(),
            stored.user_id.as_str(),
            stored.request_id.as_deref()
        ),
        (call.id.as_str(), user_id.as_str(), Some("req-twice"))
    );
    assert_eq!(
        (stored.provider.as_str(), stored.model.as_str()),
        ("mock", "mock-smart")
    );
    assert_eq!(
        stored.status,
        cloudbase_schema::domain::CallStatus::Succeeded
    );
    assert_eq!(
        (
            stored.prompt_tokens,
            stored.cached_prompt_tokens,
            stored.completion_tokens
        ),
        (11, 3, 29)
    );
    assert_eq!(
        (stored.cost_micros, stored.currency.as_deref()),
        (1234, Some("CNY"))
    );
    assert_eq!(
        (stored.latency_ms, stored.ttft_ms, stored.upstream_ms),
        (Some(17), None, Some(12))
    );
    assert!(stored.priced && !stored.cached && !stored.stream);
    assert_eq!(stored.attempts[0]["model"], "mock-smart");
    for (table, key) in [
        ("usage_daily", "model = 'mock-smart' AND api_key_id = ''"),
        ("usage_daily_users", "user_id = '{user}'"),
        ("usage_daily_models", "model = 'mock-smart'"),
    ] {
        let key = key.replace("{user}", &user_id);
        let sums = |column: &str| {
            format!(
                "SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS n FROM {table} WHERE day = '{day}' AND currency = 'CNY' AND {key}"
            )
        };
        assert_eq!(app.sql_number(&sums("requests")).await, 1, "{table}");
        assert_eq!(app.sql_number(&sums("prompt_tokens")).await, 11, "{table}");
        assert_eq!(
            app.sql_number(&sums("cached_prompt_tokens")).await,
            3,
            "{table}"
        );
        assert_eq!(
            app.sql_number(&sums("completion_tokens")).await,
            29,
            "{table}"
        );
        assert_eq!(app.sql_number(&sums("cost_micros")).await, 1234, "{table}");
    }
    let audited = app
        .sql_number(&format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log WHERE request_id = 'req-twice' AND field = 'chat' AND outcome = 'OK' AND client_ip = '127.0.0.1' AND actor_id = '{user_id}' AND actor_role = 'USER' AND arguments = '{{}}' AND operation_name IS NULL AND user_agent IS NULL"))
        .await;
    assert_eq!(audited, 1, "one audit row");
    for counter in &counters {
        let counted = app
            .sql_number(&format!(
                "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM rate_counters WHERE key = '{counter}'"
            ))
            .await;
        assert_eq!(counted, 11 + 29, "the tokens counted once in {counter}");
    }
}

/// PostgreSQL's batch of finishes (`db::finish_batch`): each call `PENDING` is finished, with
/// its own columns (the record its caller makes from what the batch answers is the row stored,
/// column for column); a call already finished and a call with no row are left out and add nothing
/// anywhere; each rollup row gains the sums of the batch's calls with its key, each token counter
/// the sum of its calls' tokens, and the audit rows of the calls finished are written, those of
/// the others not. The same batch again finishes nothing and adds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_finishes_finishes_each_pending_call_once_and_sums_its_rollups() {
    use cloudbase_schema::db::finish_batch::{self, FinishBatch, Finishing};
    use cloudbase_schema::db::{DbConn, ai_calls, budgets, models};
    use cloudbase_schema::domain::CallStatus;
    if crate::support::skip_without_postgres(
        "a_batch_of_finishes_finishes_each_pending_call_once_and_sums_its_rollups",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let (_, _, ann) = app.register("ann@example.com", "ann-batch-password").await;
    let (_, _, bob) = app.register("bob@example.com", "bob-batch-password").await;
    let pool = own_pool(&app).await;
    // As the server's clock gives it, in microseconds, as both databases keep it.
    let now = cloudbase_schema::clock::truncate_micros(chrono::Utc::now()).naive_utc();
    let pending = |user: &str, n: u32| {
        models::AiCall::pending(
            user.to_owned(),
            None,
            Some(format!("req-batch-{n}")),
            ("mock".into(), "mock-fast".into()),
            false,
            now,
        )
    };
    // Ann twice and Bob once, pending; one of Ann's already finished; one never inserted.
    let calls = [
        pending(&ann, 0),
        pending(&ann, 1),
        pending(&bob, 2),
        pending(&ann, 3),
        pending(&bob, 4),
    ];
    let finish = |n: i64, status: CallStatus| ai_calls::Finish {
        provider: "mock".into(),
        model: "mock-smart".into(),
        status,
        error_code: (status == CallStatus::Failed).then(|| "UPSTREAM".to_owned()),
        error_message: (status == CallStatus::Failed).then(|| format!("failure {n}")),
        prompt_tokens: 10 + n,
        cached_prompt_tokens: n,
        completion_tokens: 100 + n,
        usage_source: Some(cloudbase_schema::domain::UsageSource::Reported),
        finished_at: Some(now),
        latency_ms: Some(20 + n),
        ttft_ms: (n % 2 == 0).then_some(5 + n),
        upstream_ms: Some(15 + n),
        price_id: None,
        cost_micros: 1000 * (n + 1),
        currency: Some("CNY".into()),
        priced: true,
        cached: false,
        attempts: json!([{"provider": "mock", "model": "mock-smart", "n": n}]),
        prompt_log: (n == 1).then(|| json!("sealed")),
    };
    let finishes = [
        finish(0, CallStatus::Succeeded),
        finish(1, CallStatus::Succeeded),
        finish(2, CallStatus::Failed),
        finish(3, CallStatus::Succeeded),
        finish(4, CallStatus::Succeeded),
    ];
    let mut conn = pool.get().await.unwrap();
    for call in &calls[..4] {
        conn.write(async |c| Ok(ai_calls::insert(c, call).await?))
            .await
            .unwrap();
    }
    let day = "2032-02-03";
    let earlier: [String; 0] = [];
    let add_to = budgets::AddTo {
        day,
        token_counters: &earlier,
        minute: now,
    };
    let (first, done) = (&calls[3], &finishes[3]);
    let alone = conn
        .write(async |c| Ok(budgets::finish_and_add_to_daily(c, first, done, &add_to, None).await?))
        .await
        .unwrap();
    assert!(alone.is_some(), "call 3 finished on its own first");
    let counters: Vec<Vec<String>> = calls
        .iter()
        .map(|c| vec![format!("tpm:{}", c.user_id), "tpm:batch-all".to_owned()])
        .collect();
    let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
    let audit_rows: Vec<models::NewAuditRow> = ids
        .iter()
        .map(|id| models::NewAuditRow {
            at: now,
            actor_id: Some(id),
            actor_role: Some("USER"),
            operation_name: Some("Batch"),
            field: "chat",
            arguments: "{}",
            outcome: "OK",
            client_ip: None,
            user_agent: Some("batch-test"),
            request_id: "req-batch",
        })
        .collect();
    let batch = || {
        let mut batch = FinishBatch::new(5);
        for i in 0..calls.len() {
            batch.push(Finishing {
                id: &ids[i],
                finish: &finishes[i],
                day,
                minute: now,
                token_counters: &counters[i],
                // Call 1 is not audited (a finish outside a mutation).
                audit: (i != 1).then(|| models::NewAuditRow { ..audit_rows[i] }),
            });
        }
        batch
    };
    let DbConn::Pg(pg) = &mut conn else {
        unreachable!("PostgreSQL only")
    };
    let mut answered = finish_batch::finish(pg, &batch()).await.unwrap();
    answered.sort();
    assert_eq!(
        answered,
        [0, 1, 2].map(|n: usize| (ids[n].clone(), None)),
        "calls 0, 1 and 2 finished, none in a conversation"
    );
    let mut finished = Vec::new();
    for (n, (_, conversation_id)) in answered.into_iter().enumerate() {
        let record =
            budgets::finished_record(calls[n].clone(), conversation_id, finishes[n].clone());
        let stored = ai_calls::find(&mut conn, &ids[n]).await.unwrap();
        assert_eq!(
            format!("{record:?}"),
            format!("{stored:?}"),
            "the record made of call {n}'s answer is its row"
        );
        finished.push(record);
    }
    let DbConn::Pg(pg) = &mut conn else {
        unreachable!("PostgreSQL only")
    };
    for (record, n) in finished.iter().zip([0_i64, 1, 2]) {
        let expected = &finishes[usize::try_from(n).unwrap()];
        assert_eq!(record.id, ids[usize::try_from(n).unwrap()]);
        assert_eq!(record.status, expected.status);
        assert_eq!(
            (record.provider.as_str(), record.model.as_str()),
            ("mock", "mock-smart")
        );
        assert_eq!(record.error_message, expected.error_message);
        assert_eq!(
            (
                record.prompt_tokens,
                record.cached_prompt_tokens,
                record.completion_tokens
            ),
            (10 + n, n, 100 + n)
        );
        assert_eq!(
            (record.latency_ms, record.ttft_ms, record.upstream_ms),
            (expected.latency_ms, expected.ttft_ms, expected.upstream_ms)
        );
        assert_eq!(record.cost_micros, 1000 * (n + 1));
        assert_eq!(record.attempts, expected.attempts);
        assert_eq!(record.prompt_log, expected.prompt_log);
        assert!(record.priced && !record.cached && !record.stream);
    }
    let again = finish_batch::finish(pg, &batch()).await.unwrap();
    assert!(again.is_empty(), "nothing is finished twice: {again:?}");
    drop(conn);
    let sum = |table: &str, column: &str, key: String| {
        format!(
            "SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS n FROM {table} WHERE day = '{day}' AND {key}"
        )
    };
    // Per user: Ann's calls 0 and 1 in the batch, 3 alone; Bob's call 2.
    for (user, requests, prompt, cost) in [
        (&ann, 3, 10 + 11 + 13, 1000 + 2000 + 4000),
        (&bob, 1, 12, 3000),
    ] {
        let key = format!("user_id = '{user}'");
        for table in ["usage_daily", "usage_daily_users"] {
            assert_eq!(
                app.sql_number(&sum(table, "requests", key.clone())).await,
                requests,
                "{table}"
            );
            assert_eq!(
                app.sql_number(&sum(table, "prompt_tokens", key.clone()))
                    .await,
                prompt,
                "{table}"
            );
            assert_eq!(
                app.sql_number(&sum(table, "cost_micros", key.clone()))
                    .await,
                cost,
                "{table}"
            );
        }
    }
    let model = "model = 'mock-smart' AND currency = 'CNY'".to_owned();
    assert_eq!(
        app.sql_number(&sum("usage_daily_models", "requests", model.clone()))
            .await,
        4
    );
    assert_eq!(
        app.sql_number(&sum(
            "usage_daily_models",
            "completion_tokens",
            model.clone()
        ))
        .await,
        100 + 101 + 102 + 103
    );
    assert_eq!(
        app.sql_number(&sum("usage_daily_models", "cached_prompt_tokens", model))
            .await,
        3 + 3
    );
    // The batch's sums went to one row per key, in its shard.
    let shards = app
        .sql_number(&format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM usage_daily_users WHERE day = '{day}' AND shard = 5"))
        .await;
    assert_eq!(shards, 2, "one row for Ann, one for Bob");
    // Tokens: the batch's calls only (call 3 finished alone with no counters).
    for (counter, tokens) in [
        (format!("tpm:{ann}"), 110 + 112),
        (format!("tpm:{bob}"), 114),
        ("tpm:batch-all".to_owned(), 110 + 112 + 114),
    ] {
        let counted = app
            .sql_number(&format!("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM rate_counters WHERE key = '{counter}'"))
            .await;
        assert_eq!(counted, tokens, "{counter}");
    }
    for (i, rows) in [(0, 1), (1, 0), (2, 1), (3, 0), (4, 0)] {
        let audited = app
            .sql_number(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log WHERE actor_id = '{}' AND field = 'chat' \
                 AND outcome = 'OK' AND actor_role = 'USER' AND operation_name = 'Batch' AND arguments = '{{}}' \
                 AND client_ip IS NULL AND user_agent = 'batch-test' AND request_id = 'req-batch'",
                ids[i]
            ))
            .await;
        assert_eq!(audited, rows, "audit rows of call {i}");
    }
    let lost = app
        .sql_number(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ai_calls WHERE id = '{}'",
            ids[4]
        ))
        .await;
    assert_eq!(lost, 0, "a call with no row gets none from a batch");
}

/// Fields that resolve side by side take turns at the request's one connection: a query with
/// several root fields that read the database, and a page of conversations with each one's
/// messages, answer in full (no `INTERNAL` for a second connection), and the pool of two is
/// never exhausted by them.
/// On PostgreSQL a call's `PENDING` insert turns `synchronous_commit` off for its own commit
/// only: the connection's next statements (the finish among them) commit synchronously again,
/// and inside a transaction, whose commit is not the insert's to change, it is a plain insert.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_insert_changes_the_commit_of_its_own_statement_only() {
    use cloudbase_schema::db::{DbConn, ai_calls};

    use crate::support::{pending_call, pg_text};

    async fn synchronous_commit(conn: &mut DbConn) -> String {
        pg_text(conn, "SELECT current_setting('synchronous_commit') AS t").await
    }

    if crate::support::skip_without_postgres(
        "a_pending_insert_changes_the_commit_of_its_own_statement_only",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let (pool, user_id) = app.pool_of_one().await;
    let call = || pending_call(&user_id);
    let mut conn = pool.get().await.unwrap();
    assert_eq!(synchronous_commit(&mut conn).await, "on");
    let alone = call();
    ai_calls::insert_pending(&mut conn, &alone).await.unwrap();
    assert_eq!(
        synchronous_commit(&mut conn).await,
        "on",
        "the setting ended with the insert's own transaction"
    );
    let inside = call();
    let during = conn
        .transaction(async |tx| {
            ai_calls::insert_pending(tx, &inside).await?;
            Ok(synchronous_commit(tx).await)
        })
        .await
        .unwrap();
    assert_eq!(during, "on", "a transaction's commit is left as it was");
    drop(conn);
    for id in [&alone.id, &inside.id] {
        let n = app
            .sql_number(&format!(
                "SELECT count(*) AS n FROM ai_calls WHERE id = '{id}' AND status = 'PENDING'"
            ))
            .await;
        assert_eq!(n, 1, "both rows committed");
    }
}

/// A new call's `PENDING` insert writes the call's own columns and leaves the others to the
/// table's defaults (`AiCall::pending_row`): the row reads back as the record the call holds,
/// column for column, alone and inside a transaction, on either backend.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_calls_pending_record_reads_back_as_the_call_holds_it() {
    use cloudbase_schema::db::{ai_calls, models};
    let app = TestApp::spawn().await;
    let (pool, user_id) = app.pool_of_one().await;
    // Both databases keep microseconds.
    let now = chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
        .unwrap()
        .naive_utc();
    let call = |n: i64| {
        models::AiCall::pending(
            user_id.clone(),
            None,
            (n == 0).then(|| format!("req-new-{n}")),
            (format!("provider-{n}"), format!("model-{n}")),
            n == 1,
            now + chrono::Duration::milliseconds(n),
        )
    };
    let (alone, inside) = (call(0), call(1));
    let mut conn = pool.get().await.unwrap();
    conn.write(async |c| Ok(ai_calls::insert_pending(c, &alone).await?))
        .await
        .unwrap();
    conn.transaction(async |tx| Ok(ai_calls::insert_pending(tx, &inside).await?))
        .await
        .unwrap();
    for made in [&alone, &inside] {
        let read = ai_calls::find(&mut conn, &made.id).await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{made:?}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sibling_fields_share_the_requests_one_connection() {
    let app = TestApp::spawn_with(|c| {
        c.database.max_connections = 2;
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
    })
    .await;
    let (user, _, _) = app
        .register("siblings@example.com", "siblings-password")
        .await;
    for i in 0..3 {
        let id = app
            .gql_ok(
                Some(&user),
                "mutation($t: String) { createConversation(title: $t, provider: \"mock\", model: \"mock-fast\") { id } }",
                json!({"t": format!("c{i}")}),
            )
            .await["createConversation"]["id"]
            .clone();
        app.gql_ok(
            Some(&user),
            &crate::chat::chat_query(),
            json!({"input": {"conversationId": id, "message": format!("hello {i}")}}),
        )
        .await;
    }
    let wide = "{ me { id } budgets { id } rateLimits { userId } aiCalls(first: 5) { nodes { id } } \
                conversations(first: 10) { nodes { title messages(first: 10) { nodes { role } } } } \
                models { id } reportCalendar { timeZone } }";
    // Several at once, on a pool of two: each request uses one connection at a time.
    let answers =
        futures_util::future::join_all((0..8).map(|_| app.gql(Some(&user), wide, json!({})))).await;
    for body in answers {
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(
            body["data"]["aiCalls"]["nodes"].as_array().unwrap().len(),
            3
        );
        let conversations = body["data"]["conversations"]["nodes"].as_array().unwrap();
        assert_eq!(conversations.len(), 3);
        for c in conversations {
            assert_eq!(
                c["messages"]["nodes"],
                json!([{"role": "USER"}, {"role": "ASSISTANT"}]),
                "{c}"
            );
        }
    }
}

#[derive(diesel::QueryableByName)]
struct WalFrames {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
}

/// On SQLite the write-ahead log is checkpointed and rewound in the writers' turn, a few times a
/// second (`db::checkpoint`), rather than inside one call's commit in seventy: after a burst of
/// calls and a quiet moment, the next call writes at the start of the log again, so the log
/// holds only its frames, far fewer than the burst wrote.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_rewinds_its_log_between_calls() {
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn_with(|c| c.rate_limits.requests_per_minute = 0).await;
    if app.is_postgres() {
        eprintln!("sqlite_rewinds_its_log_between_calls: SQLite only");
        return;
    }
    let token = app.admin_token().await;
    let url = app.config.database_url.clone().unwrap();
    let frames = async || {
        let mut conn = crate::support::sqlite_connection(&url).await;
        let rows: Vec<WalFrames> = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .load(&mut conn)
            .await
            .unwrap();
        rows[0].log
    };
    // 300 calls write thousands of frames (two commits of several pages each).
    for _ in 0..300 {
        app.gql_ok(Some(&token), CHAT, json!({})).await;
    }
    tokio::time::sleep(cloudbase_schema::db::checkpoint::EVERY * 3).await;
    app.gql_ok(Some(&token), CHAT, json!({})).await;
    let after = frames().await;
    assert!(
        after < 100,
        "after a quiet moment the log starts over: {after} frames"
    );
}

/// SQLite: the finishes that share a write batch add to the daily rollups at the batch's commit,
/// each rollup row once with the sums of the calls that share it (`db::budgets::Rollups`). The
/// sums are each call's, a call finished twice adds once, and a finish whose transaction fails
/// after it adds nothing. Outside the writers' turn a finish writes its own rollups.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_finishes_in_one_batch_add_to_each_rollup_row_once() {
    use cloudbase_schema::db::{ai_calls, budgets, models};
    use cloudbase_schema::domain::CallStatus;
    let app = TestApp::spawn().await;
    if app.is_postgres() {
        eprintln!("sqlite_finishes_in_one_batch_add_to_each_rollup_row_once: SQLite only");
        return;
    }
    let (_, _, ann) = app.register("ann@example.com", "ann-rollup-password").await;
    let (_, _, bob) = app.register("bob@example.com", "bob-rollup-password").await;
    let pool = cloudbase_schema::db::DbPool::connect_and_migrate(&cloudbase_schema::db::DbConfig {
        url: app.config.database_url.clone().unwrap(),
        max_connections: 24,
        acquire_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .unwrap();
    let gate = pool.write_gate().unwrap();
    let now = chrono::Utc::now().naive_utc();
    // (user, model): Ann with mock-fast most of the time, Bob and mock-smart now and then.
    let who = |n: usize| match n % 8 {
        3 => (&bob, "mock-fast"),
        6 => (&ann, "mock-smart"),
        _ => (&ann, "mock-fast"),
    };
    let calls: Vec<models::AiCall> = (0..20)
        .map(|n| {
            let (user, model) = who(n);
            models::AiCall::pending(
                user.clone(),
                None,
                Some(format!("req-rollup-{n}")),
                ("mock".into(), model.into()),
                false,
                now,
            )
        })
        .collect();
    let finish = |n: usize| {
        let n64 = i64::try_from(n).unwrap();
        ai_calls::Finish {
            provider: "mock".into(),
            model: who(n).1.into(),
            status: CallStatus::Succeeded,
            error_code: None,
            error_message: None,
            prompt_tokens: 10 + n64,
            cached_prompt_tokens: n64 % 3,
            completion_tokens: 100 + n64,
            usage_source: Some(cloudbase_schema::domain::UsageSource::Reported),
            finished_at: Some(now),
            latency_ms: Some(20),
            ttft_ms: None,
            upstream_ms: Some(15),
            price_id: None,
            cost_micros: 1000 * (n64 + 1),
            currency: Some("CNY".into()),
            priced: true,
            cached: false,
            attempts: json!([{"provider": "mock", "model": who(n).1}]),
            prompt_log: None,
        }
    };
    let mut conn = pool.get().await.unwrap();
    for call in &calls {
        conn.write(async |c| Ok(ai_calls::insert(c, call).await?))
            .await
            .unwrap();
    }
    drop(conn);
    let day = "2032-03-04";
    let add_to = budgets::AddTo {
        day,
        token_counters: &[],
        minute: now,
    };
    let before = gate.stats();
    let held = gate.turn().await;
    // Calls 0..18 finish; call 18's transaction fails after its finish; call 19 is finished
    // twice (the second adds nothing).
    let writers: Vec<_> = (0..21)
        .map(|i| {
            let (pool, n) = (pool.clone(), i.min(19));
            let (call, done) = (calls[n].clone(), finish(n));
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                conn.transaction(async |c| {
                    let record =
                        budgets::finish_and_add_to_daily(c, &call, &done, &add_to, None).await?;
                    if n == 18 {
                        return Err(cloudbase_schema::Error::Conflict("fails after".into()));
                    }
                    Ok(record.is_some())
                })
                .await
            })
        })
        .collect();
    until_queued(&gate, 21).await;
    drop(held);
    let mut finished = 0;
    for (i, writer) in writers.into_iter().enumerate() {
        match (i, writer.await.unwrap()) {
            (18, outcome) => assert!(outcome.is_err(), "{outcome:?}"),
            (_, Ok(true)) => finished += 1,
            (_, Ok(false)) => {}
            (i, Err(e)) => panic!("writer {i}: {e}"),
        }
    }
    assert_eq!(finished, 19, "0..18 and 19 once");
    let after = gate.stats();
    let rows = after.rollup_rows - before.rollup_rows;
    assert!(
        rows < 3 * 19,
        "{rows} rollup rows written for 19 finishes in {} commits",
        after.commits - before.commits
    );
    let counted: Vec<usize> = (0..20).filter(|&n| n != 18).collect();
    let sums = |pick: &dyn Fn(usize) -> bool| {
        counted
            .iter()
            .filter(|&&n| pick(n))
            .fold((0, 0, 0, 0, 0), |s, &n| {
                let f = finish(n);
                (
                    s.0 + 1,
                    s.1 + f.prompt_tokens,
                    s.2 + f.cached_prompt_tokens,
                    s.3 + f.completion_tokens,
                    s.4 + f.cost_micros,
                )
            })
    };
    let read = async |table: &str, key: String| {
        let mut got = Vec::new();
        for column in [
            "requests",
            "prompt_tokens",
            "cached_prompt_tokens",
            "completion_tokens",
            "cost_micros",
        ] {
            got.push(
                app.sql_number(&format!(
                    "SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS n FROM {table} \
                     WHERE day = '{day}' AND currency = 'CNY' AND {key}"
                ))
                .await,
            );
        }
        (got[0], got[1], got[2], got[3], got[4])
    };
    for (user, model) in [
        (&ann, "mock-fast"),
        (&bob, "mock-fast"),
        (&ann, "mock-smart"),
    ] {
        let key = format!("user_id = '{user}' AND model = '{model}' AND api_key_id = ''");
        let expected = sums(&|n| who(n) == (user, model));
        assert_eq!(read("usage_daily", key).await, expected, "{user} {model}");
    }
    for user in [&ann, &bob] {
        let expected = sums(&|n| who(n).0 == user);
        let key = format!("user_id = '{user}'");
        assert_eq!(read("usage_daily_users", key).await, expected, "{user}");
    }
    for model in ["mock-fast", "mock-smart"] {
        let expected = sums(&|n| who(n).1 == model);
        let key = format!("model = '{model}'");
        assert_eq!(read("usage_daily_models", key).await, expected, "{model}");
    }
    // One row per key, whatever the batches.
    let keyed = app
        .sql_number(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM usage_daily WHERE day = '{day}'"
        ))
        .await;
    assert_eq!(keyed, 3);
    let still = app
        .sql_number(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ai_calls WHERE id = '{}' AND status = 'PENDING'",
            calls[18].id
        ))
        .await;
    assert_eq!(still, 1, "the failed transaction's finish was rolled back");
    // Outside the writers' turn (a pooled connection, no transaction), a finish writes its own
    // rollups at once.
    let mut conn = pool.get().await.unwrap();
    let (lone, done) = (&calls[18], finish(18));
    let record = budgets::finish_and_add_to_daily(&mut conn, lone, &done, &add_to, None)
        .await
        .unwrap();
    assert!(record.is_some());
    let key = format!("user_id = '{ann}' AND model = 'mock-fast' AND api_key_id = ''");
    let before = sums(&|n| who(n) == (&ann, "mock-fast"));
    let expected = (
        before.0 + 1,
        before.1 + done.prompt_tokens,
        before.2 + done.cached_prompt_tokens,
        before.3 + done.completion_tokens,
        before.4 + done.cost_micros,
    );
    assert_eq!(read("usage_daily", key).await, expected);
    let models = read("usage_daily_models", "model = 'mock-fast'".to_owned()).await;
    assert_eq!(models.0, sums(&|n| who(n).1 == "mock-fast").0 + 1);
}

/// A SQLite pool of its own on a new file, with one table `t (i)`.
async fn sqlite_pool_with_a_table(dir: &tempfile::TempDir) -> cloudbase_schema::db::DbPool {
    use diesel_async::RunQueryDsl;
    let pool = cloudbase_schema::db::DbPool::connect_and_migrate(&cloudbase_schema::db::DbConfig {
        url: format!("sqlite://{}", dir.path().join("writers.db").display()),
        max_connections: 16,
        acquire_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.write(async |c| {
        cloudbase_schema::db_run!(c, |c| {
            diesel::sql_query("CREATE TABLE t (i INTEGER PRIMARY KEY)")
                .execute(c)
                .await?
        });
        Ok(())
    })
    .await
    .unwrap();
    pool
}

/// Inserts `i` into `t` in a transaction that then fails if `fail`, or never ends if `hang`.
async fn insert_into_t(
    pool: &cloudbase_schema::db::DbPool,
    i: i32,
    fail: bool,
    hang: bool,
) -> Result<(), cloudbase_schema::Error> {
    use diesel_async::RunQueryDsl;
    let mut conn = pool.get().await?;
    conn.transaction(async |tx| {
        cloudbase_schema::db_run!(tx, |c| {
            diesel::sql_query("INSERT INTO t (i) VALUES (?)")
                .bind::<diesel::sql_types::Integer, _>(i)
                .execute(c)
                .await?
        });
        if hang {
            std::future::pending::<()>().await;
        }
        if fail {
            return Err(cloudbase_schema::Error::Conflict(format!("{i} fails")));
        }
        Ok(())
    })
    .await
}

/// The rows of `t`, read on a connection of their own.
async fn rows_of_t(dir: &tempfile::TempDir) -> Vec<i32> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        i: i32,
    }
    let url = format!("sqlite://{}", dir.path().join("writers.db").display());
    let mut conn = crate::support::sqlite_connection(&url).await;
    let rows: Vec<Row> = diesel::sql_query("SELECT i FROM t ORDER BY i")
        .load(&mut conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.i).collect()
}

/// On SQLite, writers queued behind each other share one commit (`db::writer`): each runs in a
/// savepoint of the open batch, one that fails is rolled back alone, and every writer returns
/// only once the batch holding its work is committed.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_writers_queued_together_share_commits_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool_with_a_table(&dir).await;
    let gate = pool.write_gate().unwrap();
    let before = gate.stats();
    let held = gate.turn().await;
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { (i, insert_into_t(&pool, i, i % 4 == 0, false).await) })
        })
        .collect();
    // Every pooled connection (16) is taken by a writer waiting for the turn.
    until_queued(&gate, 16).await;
    drop(held);
    let mut committed = Vec::new();
    for writer in writers {
        let (i, outcome) = writer.await.unwrap();
        match outcome {
            Ok(()) => {
                assert_ne!(i % 4, 0);
                // Durable the moment it returns: seen from another connection.
                assert!(rows_of_t(&dir).await.contains(&i), "{i} not committed");
                committed.push(i);
            }
            Err(e) => {
                assert_eq!(i % 4, 0, "{i}: {e}");
                assert!(matches!(e, cloudbase_schema::Error::Conflict(_)), "{e}");
            }
        }
    }
    committed.sort_unstable();
    assert_eq!(committed.len(), 30);
    assert_eq!(
        rows_of_t(&dir).await,
        committed,
        "the failed writers' rows are gone"
    );
    let after = gate.stats();
    let (writes, commits) = (after.writes - before.writes, after.commits - before.commits);
    assert_eq!(writes, 30);
    assert!(commits < writes / 2, "{writes} writes in {commits} commits");
}

/// A writer that fails because of a writer before it in the same batch (the same key, inserted
/// twice) returns only once that batch is committed: when it looks for the row it collided with,
/// as the sign-in of two first WeChat logins at once does, the row is there. (Answered before the
/// commit, it found nothing and reported a conflict with an account it could not see.)
#[tokio::test(flavor = "multi_thread")]
async fn a_writer_that_collides_with_its_batch_returns_once_the_batch_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool_with_a_table(&dir).await;
    let held = pool.write_gate().unwrap().turn().await;
    // 7, then 7 again (the collision), then 9, which keeps the batch open until it is stopped.
    let mut writers = queue_writers(&pool, &[7, 7, 9], &[9]).await;
    drop(held);
    let hanging = writers.pop().unwrap();
    let mut colliding = writers.pop().unwrap();
    // It answers once the batch is stopped (the writer of 9 hangs in it), or earlier only if it
    // committed the batch itself: on a loaded machine the batch can pass its age limit (4 ms)
    // between the two writers of 7. Either way, the row it collided with is committed when it
    // answers; answered with the batch still open, it would not be.
    let (outcome, rows) = tokio::select! {
        outcome = &mut colliding => {
            let rows = rows_of_t(&dir).await;
            hanging.abort();
            (outcome.unwrap(), rows)
        }
        () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
            hanging.abort();
            let outcome = colliding.await.unwrap();
            (outcome, rows_of_t(&dir).await)
        }
    };
    assert!(outcome.is_err(), "the second insert of 7 fails");
    assert_eq!(
        rows,
        vec![7],
        "the row it collided with is committed when it answers"
    );
    assert!(writers.pop().unwrap().await.unwrap().is_ok());
}

/// Starts writers of `t` one after another, each queued for the turn (held by the caller)
/// before the next: the writer of `i` hangs in its turn if `i` is in `hang`.
async fn queue_writers(
    pool: &cloudbase_schema::db::DbPool,
    rows: &[i32],
    hang: &[i32],
) -> Vec<tokio::task::JoinHandle<Result<(), cloudbase_schema::Error>>> {
    let gate = pool.write_gate().unwrap();
    let mut writers = Vec::new();
    for (n, &i) in rows.iter().enumerate() {
        let (pool, hangs) = (pool.clone(), hang.contains(&i));
        writers.push(tokio::spawn(async move {
            insert_into_t(&pool, i, false, hangs).await
        }));
        until_queued(&gate, n + 1).await;
    }
    writers
}

/// Waits (10 s at most) until `n` writers queue for the turn.
async fn until_queued(gate: &cloudbase_schema::db::WriteGate, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while gate.queued() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} queued of {n}",
            gate.queued()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A writer dropped in the middle of its turn (its request went away) leaves its work open on
/// the writer connection: the next writer rolls back that work alone (the whole transaction if
/// it was the batch's first writer, its savepoint otherwise) and goes on; the writers before it
/// in the batch are committed, and the pool is fine.
#[tokio::test(flavor = "multi_thread")]
async fn a_writer_dropped_in_its_turn_loses_only_its_own_work() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool_with_a_table(&dir).await;
    let gate = pool.write_gate().unwrap();
    // First in its batch (no savepoint), then in the middle of one (a savepoint).
    for (rows, hanging) in [(vec![1, 2], 1), (vec![3, 4, 5], 4)] {
        let held = gate.turn().await;
        let mut writers = queue_writers(&pool, &rows, &[hanging]).await;
        drop(held);
        let at = rows.iter().position(|&i| i == hanging).unwrap();
        let hung = writers.remove(at);
        // The hanging writer holds the turn (its row written, uncommitted) and never ends.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !writers.last().unwrap().is_finished(),
            "the last writer waits for the turn"
        );
        hung.abort();
        assert!(hung.await.unwrap_err().is_cancelled());
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
    }
    assert_eq!(rows_of_t(&dir).await, vec![2, 3, 5]);
    // Every pooled connection still writes.
    let more = (6..40).map(|i| insert_into_t(&pool, i, false, false));
    for outcome in futures_util::future::join_all(more).await {
        outcome.unwrap();
    }
    let mut expected = vec![2, 3, 5];
    expected.extend(6..40);
    assert_eq!(rows_of_t(&dir).await, expected);
}

/// Another process on the same SQLite file (a command-line tool, a second server) holds the write
/// lock while it waits for something: a write on the call path waits for the lock without
/// stopping the runtime's thread, so the holder goes on, and both writes land. (In SQLite's busy
/// handler, on the one worker thread here, the holder could not finish before the 5 s timeout,
/// and the write failed with "database is locked".)
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_write_waiting_for_another_process_lock_leaves_the_runtime_running() {
    use diesel_async::RunQueryDsl;
    let dir = tempfile::tempdir().unwrap();
    let ours = sqlite_pool_with_a_table(&dir).await;
    let theirs =
        cloudbase_schema::db::DbPool::connect_and_migrate(&cloudbase_schema::db::DbConfig {
            url: format!("sqlite://{}", dir.path().join("writers.db").display()),
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        })
        .await
        .unwrap();
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(async move {
        let mut conn = theirs.get().await?;
        conn.transaction(async |tx| {
            cloudbase_schema::db_run!(tx, |c| {
                diesel::sql_query("INSERT INTO t (i) VALUES (1)")
                    .execute(c)
                    .await?
            });
            let _ = locked.send(());
            let _ = released.await;
            Ok(())
        })
        .await
    });
    is_locked.await.unwrap();
    let writer = tokio::spawn(async move {
        cloudbase_schema::db::on_call_path(insert_into_t(&ours, 2, false, false)).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!writer.is_finished(), "the second write waits for the lock");
    let _ = release.send(());
    holder.await.unwrap().unwrap();
    writer.await.unwrap().unwrap();
    assert_eq!(rows_of_t(&dir).await, vec![1, 2]);
}

/// PostgreSQL's batch of `PENDING` records (`db::pending_batch`): every call of the batch is
/// inserted as given (the columns of a new call, each call's own, and the rest the table's
/// defaults, which read back as `AiCall::pending` sets them), and its id comes back; the
/// statement commits without waiting for the disk, and that setting stays its own (the
/// connection's is untouched after it); a batch with one call already recorded inserts none of
/// the others (one statement); an empty batch inserts nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_pending_records_inserts_every_column_of_every_call_or_none() {
    use cloudbase_schema::db::{DbConn, ai_calls, conversations, models, pending_batch};
    use diesel_async::RunQueryDsl;
    if crate::support::skip_without_postgres(
        "a_batch_of_pending_records_inserts_every_column_of_every_call_or_none",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let (token, _, ann) = app
        .register("ann@example.com", "ann-pending-password")
        .await;
    let made = app
        .gql_ok(
            Some(&token),
            "mutation { createApiKey(input: {name: \"batch\", scope: CHAT}) { apiKey { id } } }",
            json!({}),
        )
        .await;
    let key_id = made["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pool = own_pool(&app).await;
    // PostgreSQL keeps microseconds.
    let now = chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
        .unwrap()
        .naive_utc();
    let conversation = models::Conversation {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: ann.clone(),
        title: "a call's turn".into(),
        provider: None,
        model: None,
        created_at: now,
        updated_at: now,
    };
    let call = |n: i64| {
        models::AiCall::pending(
            ann.clone(),
            None,
            (n != 1).then(|| format!("req-pending-{n}")),
            (format!("provider-{n}"), format!("mock-{n}")),
            n == 1,
            now + chrono::Duration::milliseconds(n),
        )
    };
    let mut calls: Vec<models::AiCall> = (0..3).map(call).collect();
    // Each optional column set on one call and not the others, so that two columns swapped in
    // the statement would show.
    calls[1].api_key_id = Some(key_id);
    calls[2].conversation_id = Some(conversation.id.clone());
    let mut conn = pool.get().await.unwrap();
    conn.write(async |c| Ok(conversations::insert(c, &conversation).await?))
        .await
        .unwrap();
    let DbConn::Pg(pg) = &mut conn else {
        unreachable!("PostgreSQL only")
    };
    let nothing = pending_batch::insert(pg, &[]).await.unwrap();
    assert!(nothing.is_empty());
    let refs: Vec<&models::AiCall> = calls.iter().collect();
    let inserted = pending_batch::insert(pg, &refs).await.unwrap();
    assert!(
        inserted.iter().all(|(_, setting)| setting == "off"),
        "the statement's own commit does not wait for the disk: {inserted:?}"
    );
    let mut inserted: Vec<String> = inserted.into_iter().map(|(id, _)| id).collect();
    inserted.sort();
    let mut ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    assert_eq!(inserted, ids);
    let setting: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
        "current_setting('synchronous_commit')",
    ))
    .get_result(pg)
    .await
    .unwrap();
    assert_eq!(setting, "on", "the connection's own setting is untouched");
    // One fresh call and one already recorded: the statement fails, and inserts neither.
    let fresh = call(3);
    let failed = pending_batch::insert(pg, &[&fresh, &calls[0]]).await;
    assert!(failed.is_err(), "{failed:?}");
    for stored in &calls {
        let read = ai_calls::find(&mut conn, &stored.id).await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{stored:?}"));
    }
    assert!(!ai_calls::exists(&mut conn, &fresh.id).await.unwrap());
}

/// A pool of its own on `app`'s database, for statements sent beside the server's.
async fn own_pool(app: &TestApp) -> cloudbase_schema::db::DbPool {
    cloudbase_schema::db::DbPool::connect_and_migrate(&cloudbase_schema::db::DbConfig {
        url: app.config.database_url.clone().unwrap(),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .unwrap()
}

/// What a probe item asks its batch's statement to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Probe {
    /// Written.
    Write,
    /// Written, after the statement sleeps (the items queued meanwhile form the next batch).
    Slow,
    /// Left out of the statement's answer.
    LeftOut,
    /// Makes the statement fail (division by zero, in PostgreSQL).
    Fail,
    /// Makes the write panic.
    Panic,
}

/// A kind of write for the queue's own tests: each item is a key and what to do; what it gives
/// back for a written item is the size of the batch that wrote it (1 for the single statement).
struct Probes;

impl cloudbase_schema::services::chat::batches::Batch for Probes {
    type Item = (String, Probe);
    type Out = usize;
    const WHAT: &'static str = "probes";

    fn key(item: &Self::Item) -> &str {
        &item.0
    }

    async fn write(
        conn: &mut diesel_async::AsyncPgConnection,
        items: &[&Self::Item],
    ) -> diesel::QueryResult<Vec<(String, usize)>> {
        probe_statement(conn, items).await
    }

    async fn write_one(
        conn: &mut diesel_async::AsyncPgConnection,
        item: &Self::Item,
    ) -> diesel::QueryResult<Option<usize>> {
        Ok(probe_statement(conn, &[item])
            .await?
            .into_iter()
            .next()
            .map(|(_, n)| n))
    }
}

/// One real statement for `items`: `SELECT pg_sleep(…), 1 / …` (failing, slow or neither).
async fn probe_statement(
    conn: &mut diesel_async::AsyncPgConnection,
    items: &[&(String, Probe)],
) -> diesel::QueryResult<Vec<(String, usize)>> {
    use diesel_async::RunQueryDsl;
    let has = |p: Probe| items.iter().any(|(_, q)| *q == p);
    assert!(!has(Probe::Panic), "a probe that panics");
    let sleep = if has(Probe::Slow) { 0.4 } else { 0.0 };
    let divisor = if has(Probe::Fail) { 0 } else { 1 };
    diesel::sql_query(format!("SELECT pg_sleep({sleep}), 1 / {divisor} AS n"))
        .execute(conn)
        .await?;
    Ok(items
        .iter()
        .filter(|(_, p)| *p != Probe::LeftOut)
        .map(|(key, _)| (key.clone(), items.len()))
        .collect())
}

/// The queue every call's write goes through on PostgreSQL: the items queued while a batch is
/// written form the next one, each caller gets its own outcome; an item left out, a statement
/// that fails and one that panics give their items back to be written alone, and the writer
/// goes on; with no connection to be had, every waiting caller fails with `UNAVAILABLE`, and the
/// queue writes again once one is free.
#[tokio::test(flavor = "multi_thread")]
async fn the_batch_queue_gives_each_caller_its_own_outcome_whatever_the_statement_does() {
    use cloudbase_schema::Error;
    use cloudbase_schema::services::chat::batches::{BatchStats, Queue, Unwritten};
    use std::time::Duration;
    if crate::support::skip_without_postgres(
        "the_batch_queue_gives_each_caller_its_own_outcome_whatever_the_statement_does",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let pool = cloudbase_schema::db::DbPool::connect_and_migrate(&cloudbase_schema::db::DbConfig {
        url: app.config.database_url.clone().unwrap(),
        max_connections: 1,
        acquire_timeout: Duration::from_millis(300),
    })
    .await
    .unwrap();
    let queue = std::sync::Arc::new(Queue::<Probes>::new(pool.clone()));
    /// What a caller got: the size of the batch that wrote it, or how it came back.
    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Written(usize),
        Alone,
        Failed(String),
        Gone,
    }
    let write = |key: &str, probe: Probe| {
        let (queue, key) = (queue.clone(), key.to_owned());
        tokio::spawn(async move {
            match queue.write((key.clone(), probe)).await {
                Ok(((k, _), n)) => {
                    assert_eq!(k, key, "each caller gets its own item back");
                    Got::Written(n)
                }
                Err(Unwritten::Alone((k, _))) => {
                    assert_eq!(k, key);
                    Got::Alone
                }
                Err(Unwritten::Failed((k, _), e)) => {
                    assert_eq!(k, key);
                    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
                    Got::Failed(e.to_string())
                }
                Err(Unwritten::Gone) => Got::Gone,
            }
        })
    };
    // A batch of one is the single statement; while a slow one is written, the others queue.
    assert_eq!(write("one", Probe::Write).await.unwrap(), Got::Written(1));
    // `queued`: a slow item in the writer, then `probes` sent while it sleeps; their outcomes.
    let queued = async |probes: &[(&str, Probe)]| {
        let slow = write("slow", Probe::Slow);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let waiting: Vec<_> = probes.iter().map(|(k, p)| write(k, *p)).collect();
        assert_eq!(slow.await.unwrap(), Got::Written(1));
        let mut got = Vec::new();
        for w in waiting {
            got.push(w.await.unwrap());
        }
        got
    };
    let got = queued(&[
        ("a", Probe::Write),
        ("b", Probe::LeftOut),
        ("c", Probe::Write),
    ])
    .await;
    assert_eq!(got, [Got::Written(3), Got::Alone, Got::Written(3)]);
    assert_eq!(
        queue.stats(),
        BatchStats {
            batches: 3,
            written: 4
        }
    );
    // A failing statement and a panicking write give every item of their batch back.
    for bad in [Probe::Fail, Probe::Panic] {
        let got = queued(&[("d", Probe::Write), ("e", bad), ("f", Probe::Write)]).await;
        assert_eq!(got, [Got::Alone, Got::Alone, Got::Alone], "{bad:?}");
    }
    assert_eq!(queue.stats().written, 6, "the two slow ones only");
    // No connection to be had: the callers fail with the pool's refusal (never handed back to
    // ask the exhausted pool again each).
    let held = pool.get().await.unwrap();
    let waiting: Vec<_> = ["g", "h", "i", "j"]
        .iter()
        .map(|k| write(k, Probe::Write))
        .collect();
    for w in waiting {
        let got = w.await.unwrap();
        assert!(matches!(got, Got::Failed(_)), "{got:?}");
    }
    drop(held);
    assert_eq!(write("k", Probe::Write).await.unwrap(), Got::Written(1));
}

/// A lazy connection takes none from its pool until it is first used, then keeps the one it took
/// (a second use takes no other), and gives it back when dropped: a call whose price and budgets
/// are known opens without checking one out.
#[tokio::test(flavor = "multi_thread")]
async fn a_lazy_connection_is_taken_on_first_use_only_and_once() {
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn().await;
    let pool = own_pool(&app).await;
    let in_use = || pool.usage().in_use;
    let mut lazy = pool.lazy();
    assert_eq!(in_use(), 0, "nothing is taken before it is used");
    for _ in 0..2 {
        let conn = lazy.get().await.unwrap();
        cloudbase_schema::db_run!(conn, |c| {
            diesel::sql_query("SELECT 1").execute(c).await.unwrap();
        });
        assert_eq!(
            in_use(),
            1,
            "the first use takes one, the second the same one"
        );
    }
    drop(lazy);
    assert_eq!(in_use(), 0, "given back when dropped");
}
