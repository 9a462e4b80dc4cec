//! Plugins through the real server: the first-party cdylibs, a plugin written in C, every broken
//! library the loader must survive, misbehaving calls, notifications delivered to local
//! receivers, and the real `kimi` plugin against a local upstream.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::chat::{chat_query, expected_cost, stream_chat};
use crate::receivers::{HttpReceiver, SmtpSink};
use crate::support::{TestApp, build_c_plugin, error_code, instance};
use crate::upstream::{Dialect, Upstream, reply_for};

const PLUGINS: &str =
    "{ plugins { name instance kind version status reason mock secrets file configSchema } }";

fn row<'a>(plugins: &'a Value, name: &str, instance: Option<&str>) -> &'a Value {
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && p["instance"] == json!(instance))
        .unwrap_or_else(|| panic!("no plugin row {name}/{instance:?} in {plugins}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn first_party_plugins_load() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let plugins = app.gql_ok(Some(&admin), PLUGINS, json!({})).await;

    let mock = row(&plugins, "mock", Some("mock"));
    assert_eq!(mock["status"], "LOADED");
    assert_eq!(mock["mock"], true, "the mock says it is one");
    assert_eq!(mock["kind"], "AI_PROVIDER");
    let kimi = row(&plugins, "kimi", Some("kimi"));
    if std::env::var("MOONSHOT_API_KEY").is_err() {
        assert_eq!(kimi["status"], "DISABLED");
        assert!(
            kimi["reason"]
                .as_str()
                .unwrap()
                .contains("MOONSHOT_API_KEY"),
            "{kimi}"
        );
    }
    assert_eq!(kimi["secrets"], json!(["api_key"]));
    assert_eq!(row(&plugins, "openai-compatible", None)["status"], "LOADED");
    for channel in ["webhook", "email", "wecom", "dingtalk", "feishu"] {
        let r = row(&plugins, channel, None);
        assert_eq!(r["status"], "LOADED", "{r}");
        assert_eq!(r["kind"], "NOTIFIER");
        assert!(r["configSchema"].is_object());
    }

    let (user, _, _) = app.register("lister@example.com", "lister-password").await;
    assert_eq!(
        error_code(&app.gql(Some(&user), PLUGINS, json!({})).await),
        "FORBIDDEN"
    );
    let models = app
        .gql_ok(
            Some(&user),
            "{ models { provider id displayName mock } }",
            json!({}),
        )
        .await;
    let list = models["models"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|m| m["provider"] == "mock" && m["id"] == "mock-echo" && m["mock"] == true)
    );
    assert!(
        list.iter()
            .all(|m| m["provider"] != "kimi" || std::env::var("MOONSHOT_API_KEY").is_ok()),
        "disabled providers offer no models"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_plugins_are_listed_as_failed_and_the_server_serves() {
    let app = TestApp::spawn_with(|c| {
        let dir = c.plugins_dir.clone().unwrap();
        std::fs::write(
            dir.join("libjunk.so"),
            b"this is not a shared library at all",
        )
        .unwrap();
        build_c_plugin(&dir.join("libnosymbol.so"), &["NO_ENTRY"]);
        build_c_plugin(&dir.join("libwrongabi.so"), &["ABI=99"]);
        build_c_plugin(&dir.join("libaborts.so"), &["FLAGS=0"]);
        c.plugins.insert(
            "badmock".into(),
            instance("mock", json!({"delay_ms": "slow"}), &[]),
        );
        c.plugins
            .insert("typo".into(), instance("mock", json!({"dealy_ms": 1}), &[]));
        c.plugins
            .insert("ghost".into(), instance("no-such-plugin", json!({}), &[]));
        c.plugins
            .insert("goodmock".into(), instance("mock", json!({}), &[]));
        c.plugins.insert(
            "hook".into(),
            instance(
                "webhook",
                json!({"url": "http://127.0.0.1:9/x"}),
                &[("signing_secret", "CB_UNSET_VARIABLE_FOR_TESTS")],
            ),
        );
        c.alerts.evaluate_interval_ms = 100;
    })
    .await;
    let admin = app.admin_token().await;
    let plugins = app.gql_ok(Some(&admin), PLUGINS, json!({})).await;
    let failed = |file: &str| {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["file"] == file)
            .unwrap_or_else(|| panic!("{file} not listed: {plugins}"))
            .clone()
    };
    let cases = [
        ("libjunk.so", "not a loadable library"),
        ("libnosymbol.so", "cloudbase_plugin_entry_v1"),
        ("libwrongabi.so", "ABI version 99"),
        ("libaborts.so", "panic = \"abort\""),
    ];
    for (file, why) in cases {
        let r = failed(file);
        assert_eq!(r["status"], "FAILED", "{r}");
        assert!(r["reason"].as_str().unwrap().contains(why), "{file}: {r}");
    }
    let bad = row(&plugins, "mock", Some("badmock"));
    assert_eq!(bad["status"], "FAILED");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .contains("settings.delay_ms"),
        "{bad}"
    );
    let typo = row(&plugins, "mock", Some("typo"));
    assert_eq!(typo["status"], "FAILED");
    assert!(
        typo["reason"].as_str().unwrap().contains("dealy_ms"),
        "{typo}"
    );
    let ghost = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["instance"] == "ghost")
        .unwrap();
    assert_eq!(ghost["status"], "FAILED");
    // An optional secret whose variable is unset leaves the instance usable.
    assert_eq!(row(&plugins, "webhook", Some("hook"))["status"], "LOADED");

    // Each failure is a stored business event, and a PLUGIN_FAILED rule raises an alert for it.
    // (The writer stores them in the background: wait for them, at most 5 s.)
    let query = "{ logs(filter: {source: \"cloudbase::event::plugin\"}, first: 50) { edges { node { fields } } } }";
    let mut files: Vec<String> = Vec::new();
    for _ in 0..50 {
        let events = app.gql_ok(Some(&admin), query, json!({})).await;
        files = events["logs"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["fields"]["file"].as_str().unwrap().to_owned())
            .collect();
        if cases
            .iter()
            .all(|(file, _)| files.iter().any(|f| f == file))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (file, _) in cases {
        assert!(
            files.iter().any(|f| f == file),
            "{file} is logged: {files:?}"
        );
    }
    app.gql_ok(
        Some(&admin),
        "mutation { createAlertRule(input: {name: \"Plugins\", kind: PLUGIN_FAILED, targets: [{channel: \"hook\"}]}) { id } }",
        json!({}),
    )
    .await;
    let mut subjects = Vec::new();
    for _ in 0..100 {
        let alerts = app
            .gql_ok(
                Some(&admin),
                "{ alerts(first: 50) { edges { node { subject state } } } }",
                json!({}),
            )
            .await;
        subjects = alerts["alerts"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["subject"].as_str().unwrap().to_owned())
            .collect();
        if subjects.len() >= 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Subjects name the node (`<plugin>@<host>:<port>`): plugin status is per instance.
    let node = format!(":{}", app.addr.port());
    assert!(subjects.iter().all(|s| s.ends_with(&node)), "{subjects:?}");
    let mut subjects: Vec<&str> = subjects
        .iter()
        .map(|s| s.split('@').next().unwrap())
        .collect();
    subjects.sort();
    // The rule's cooldown (600 s by default) is per subject: one plugin's alert does not mute
    // the others'.
    assert_eq!(
        subjects,
        // Instances by instance name, libraries by their name as `plugins` lists them.
        [
            "aborts", "badmock", "ghost", "junk", "nosymbol", "typo", "wrongabi"
        ],
        "one alert per failed plugin, none for loaded ones"
    );

    // The server still serves, and the good instance works.
    let (user, _, _) = app
        .register("survivor@example.com", "survivor-password")
        .await;
    let ok = app.gql_ok(Some(&user), &chat_query(), json!({"input": {"provider": "goodmock", "model": "mock-echo", "message": "still here?"}})).await;
    assert_eq!(ok["chat"]["content"], "Mock reply: still here?");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_written_in_c_loads_and_answers() {
    let app = TestApp::spawn_with(|c| {
        build_c_plugin(&c.plugins_dir.clone().unwrap().join("libcprovider.so"), &[]);
    })
    .await;
    let admin = app.admin_token().await;
    let plugins = app.gql_ok(Some(&admin), PLUGINS, json!({})).await;
    assert_eq!(
        row(&plugins, "cprovider", Some("cprovider"))["status"],
        "LOADED"
    );
    let (user, _, _) = app.register("c-fan@example.com", "c-fan-password").await;
    let answer = app
        .gql_ok(
            Some(&user),
            &chat_query(),
            json!({"input": {"provider": "cprovider", "model": "c-echo", "message": "hi C"}}),
        )
        .await;
    assert_eq!(answer["chat"]["content"], "hello from C");
    assert_eq!(answer["chat"]["aiCall"]["promptTokens"], 3);
    assert_eq!(answer["chat"]["aiCall"]["completionTokens"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_plugins_fail_the_call_not_the_server() {
    let app = TestApp::spawn_with(|c| {
        build_c_plugin(&c.plugins_dir.clone().unwrap().join("libcprovider.so"), &[]);
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
        c.plugins.insert(
            "chaos".into(),
            instance(
                "mock",
                json!({"fault_injection": true, "hang_ms": 3000}),
                &[],
            ),
        );
        c.plugin_call_timeout_ms = 1000;
    })
    .await;
    let (user, _, _) = app.register("chaos@example.com", "chaos-password").await;
    let cases = [
        ("chaos", "mock-fault-panic", "PLUGIN_FAILED", "panicked"),
        ("chaos", "mock-fault-hang", "TIMEOUT", "did not answer"),
        ("cprovider", "c-garbage", "PLUGIN_FAILED", "not UTF-8"),
        ("cprovider", "c-shape", "PLUGIN_FAILED", "expected JSON"),
        ("cprovider", "c-hang", "TIMEOUT", "did not answer"),
    ];
    for (provider, model, code, message) in cases {
        let body = app
            .gql(
                Some(&user),
                &chat_query(),
                json!({"input": {"provider": provider, "model": model, "message": "misbehave"}}),
            )
            .await;
        assert_eq!(error_code(&body), code, "{provider}/{model}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{provider}/{model}: {body}"
        );
        // The next call works.
        let ok = app
            .gql_ok(
                Some(&user),
                &chat_query(),
                json!({"input": {"provider": "mock", "model": "mock-echo", "message": "and now?"}}),
            )
            .await;
        assert_eq!(ok["chat"]["content"], "Mock reply: and now?");
    }
    // Every failure is on record.
    let failed = app
        .gql_ok(
            Some(&user),
            "{ aiCalls(filter: {status: FAILED}, first: 10) { edges { node { errorCode } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        failed["aiCalls"]["edges"].as_array().unwrap().len(),
        cases.len()
    );
    // A panic in a stream fails the stream, and the socket keeps working.
    let mut ws = crate::ws::GqlWs::connect(&app, Some(&user)).await.unwrap();
    ws.subscribe(
        "p",
        &crate::chat::stream_query(),
        json!({"input": {"provider": "chaos", "model": "mock-fault-panic", "message": "x"}}),
    )
    .await;
    // Errors raised while a subscription runs arrive as a `next` payload with `errors`.
    let (items, error) = ws.collect("p").await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        items.last().unwrap()["errors"][0]["extensions"]["code"],
        "PLUGIN_FAILED",
        "{items:?}"
    );
    ws.subscribe(
        "q",
        &crate::chat::stream_query(),
        json!({"input": {"provider": "mock", "model": "mock-echo", "message": "fine"}}),
    )
    .await;
    let (items, error) = ws.collect("q").await;
    assert!(error.is_none() && items.last().unwrap()["data"]["chatStream"]["done"] == true);
}

type HmacSha256 = Hmac<Sha256>;

#[tokio::test(flavor = "multi_thread")]
async fn notifications_reach_their_channels() {
    let hook = HttpReceiver::start(200, "ok").await;
    let bots = HttpReceiver::start(
        200,
        r#"{"errcode":0,"errmsg":"ok","code":0,"msg":"success"}"#,
    )
    .await;
    let smtp = SmtpSink::start().await;
    let (hook_url, wecom_url, ding_url, feishu_url) = (
        hook.url("/hook"),
        bots.url("/wecom"),
        bots.url("/dingtalk?access_token=t"),
        bots.url("/feishu"),
    );
    let smtp_port = smtp.port;
    // The secrets come from variables every test machine has; the receivers read them the same way.
    let secret = std::env::var("PATH").unwrap();
    let app = TestApp::spawn_with(move |c| {
        c.plugins.insert("ops-hook".into(), instance("webhook", json!({"url": hook_url}), &[("signing_secret", "PATH")]));
        c.plugins.insert("team-wecom".into(), instance("wecom", json!({"webhook_url": wecom_url}), &[]));
        c.plugins.insert("team-ding".into(), instance("dingtalk", json!({"webhook_url": ding_url}), &[("sign_secret", "PATH")]));
        c.plugins.insert("team-feishu".into(), instance("feishu", json!({"webhook_url": feishu_url}), &[("sign_secret", "PATH")]));
        c.plugins.insert("ops-mail".into(), instance("email", json!({"host": "127.0.0.1", "port": smtp_port, "tls": "none", "from": "alerts@cloudbase.test", "to": ["oncall@cloudbase.test"]}), &[]));
    })
    .await;
    let admin = app.admin_token().await;
    let send = "mutation($c: String!, $m: String!) { testNotification(channel: $c, message: $m) { channel ok detail } }";
    for channel in [
        "ops-hook",
        "team-wecom",
        "team-ding",
        "team-feishu",
        "ops-mail",
    ] {
        let r = app
            .gql_ok(
                Some(&admin),
                send,
                json!({"c": channel, "m": format!("hello from {channel}")}),
            )
            .await;
        assert_eq!(r["testNotification"]["ok"], true, "{channel}: {r}");
    }

    // The webhook is signed: v1 = HMAC-SHA256(secret, "<timestamp>.<body>").
    let got = &hook.received()[0];
    let ts = got.headers["x-cloudbase-timestamp"].to_str().unwrap();
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", got.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        got.headers["x-cloudbase-signature"].to_str().unwrap(),
        format!("v1={expected}")
    );
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["body"], "hello from ops-hook");

    let bot_calls = bots.received();
    let wecom = bot_calls.iter().find(|r| r.path == "/wecom").unwrap();
    assert!(wecom.body.contains("hello from team-wecom"));
    let ding = bot_calls.iter().find(|r| r.path == "/dingtalk").unwrap();
    let query = ding.query.clone().unwrap();
    assert!(
        query.contains("access_token=t") && query.contains("timestamp=") && query.contains("sign="),
        "{query}"
    );
    let feishu = bot_calls.iter().find(|r| r.path == "/feishu").unwrap();
    let fbody: Value = serde_json::from_str(&feishu.body).unwrap();
    assert!(
        fbody["sign"].is_string() && fbody["timestamp"].is_string(),
        "{fbody}"
    );
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("hello from ops-mail"), "{}", mail[0]);

    // A refusal is a failed delivery, not an error; an unknown channel is bad input.
    hook.set_status(500);
    let refused = app
        .gql_ok(Some(&admin), send, json!({"c": "ops-hook", "m": "again"}))
        .await;
    assert_eq!(refused["testNotification"]["ok"], false);
    let unknown = app
        .gql(Some(&admin), send, json!({"c": "nope", "m": "x"}))
        .await;
    assert_eq!(error_code(&unknown), "BAD_USER_INPUT");
    let (user, _, _) = app.register("nosy@example.com", "nosy-password").await;
    assert_eq!(
        error_code(
            &app.gql(Some(&user), send, json!({"c": "ops-hook", "m": "x"}))
                .await
        ),
        "FORBIDDEN"
    );

    // Secrets never leave the server.
    let listing = app
        .gql_ok(Some(&admin), PLUGINS, json!({}))
        .await
        .to_string();
    assert!(!listing.contains(&secret));
}

async fn kimi_app(upstream: &Upstream) -> TestApp {
    let base = upstream.base_url();
    TestApp::spawn_with(move |c| {
        c.plugins.insert(
            "kimi".into(),
            instance("kimi", json!({"base_url": base}), &[("api_key", "HOME")]),
        );
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
    })
    .await
}

/// A provider that answers with a redirect fails the call: the prompt and the key go to the
/// configured address only, never on to wherever a response points (here, a second upstream
/// that would answer).
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_redirect_is_a_failed_call_and_is_not_followed() {
    use axum::http::{StatusCode, header};
    let elsewhere = Upstream::start(Dialect::Kimi).await;
    let location = format!("{}/chat/completions", elsewhere.base_url());
    let redirector = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let location = location.clone();
            async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, location)],
                    "",
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirector).await.unwrap() });
    let app = TestApp::spawn_with(move |c| {
        c.plugins.insert(
            "kimi".into(),
            instance("kimi", json!({"base_url": base}), &[("api_key", "HOME")]),
        );
    })
    .await;
    let (user, _, _) = app
        .register("redirected@example.com", "redirected-password")
        .await;
    let ask = json!({"input": {"provider": "kimi", "model": "kimi-k2-0905-preview", "message": "where to?"}});
    let answer = app.gql(Some(&user), &chat_query(), ask).await;
    assert_eq!(error_code(&answer), "UPSTREAM_FAILED", "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("HTTP 307"), "{answer}");
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM ai_calls WHERE status = 'FAILED'")
            .await,
        1
    );
}

/// Prices the test Kimi model so costs are real numbers.
async fn price_kimi(app: &TestApp) {
    let admin = app.admin_token().await;
    app.gql_ok(Some(&admin), "mutation($i: AddPriceInput!) { addPrice(input: $i) { id } }", json!({"i": {"provider": "kimi", "model": "kimi-k2-0905-preview", "input": "4.00", "cachedInput": "1.00", "output": "16.00", "currency": "CNY", "effectiveFrom": "2020-01-01T00:00:00Z"}})).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kimi_against_a_local_upstream_plain_and_streamed() {
    for dialect in [Dialect::Kimi, Dialect::OpenAi] {
        let upstream = Upstream::start(dialect).await;
        let app = kimi_app(&upstream).await;
        price_kimi(&app).await;
        let (user, _, _) = app
            .register("kimi-user@example.com", "kimi-user-password")
            .await;
        let input = json!({"provider": "kimi", "model": "kimi-k2-0905-preview", "message": "what is the capital of France", "temperature": 0.6});
        let plain = app
            .gql_ok(Some(&user), &chat_query(), json!({ "input": input }))
            .await["chat"]
            .clone();
        let (reply, (prompt, cached, completion)) = reply_for("what is the capital of France");
        assert_eq!(plain["content"], reply);
        let call = &plain["aiCall"];
        assert_eq!(call["promptTokens"].as_u64(), Some(prompt), "{dialect:?}");
        assert_eq!(
            call["cachedPromptTokens"].as_u64(),
            Some(cached),
            "{dialect:?}"
        );
        assert_eq!(
            call["completionTokens"].as_u64(),
            Some(completion),
            "{dialect:?}"
        );
        assert_eq!(call["usageSource"], "REPORTED");
        assert_eq!(
            call["costMicros"].as_str().unwrap().parse::<i64>().unwrap(),
            expected_cost(&app, &user, call).await
        );

        let (text, last, _) = stream_chat(&app, &user, input).await;
        assert_eq!(text, reply, "{dialect:?}");
        for key in [
            "promptTokens",
            "cachedPromptTokens",
            "completionTokens",
            "costMicros",
        ] {
            assert_eq!(
                last["aiCall"][key], call[key],
                "{dialect:?}: {key} differs when streamed"
            );
        }
        // The key came from the named variable and was sent as a bearer token; the plugin never saw it.
        let seen = upstream.seen();
        let home = std::env::var("HOME").unwrap();
        assert!(
            seen.iter()
                .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {home}")))
        );
        assert_eq!(seen[1].body["stream"], true);
        assert_eq!(seen[0].body["temperature"], 0.6);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kimi_errors_come_back_clearly() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let app = kimi_app(&upstream).await;
    let (user, _, _) = app
        .register("kimi-errors@example.com", "kimi-errors-password")
        .await;
    let ask = |message: &str, temperature: f64| json!({"input": {"provider": "kimi", "model": "kimi-k2-0905-preview", "message": message, "temperature": temperature}});

    let too_long = app
        .gql(Some(&user), &chat_query(), ask("TOO_LONG please", 0.3))
        .await;
    assert_eq!(error_code(&too_long), "BAD_USER_INPUT");
    assert!(
        too_long["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("exceeded model token limit"),
        "{too_long}"
    );

    let hot = app.gql(Some(&user), &chat_query(), ask("hi", 1.5)).await;
    assert_eq!(
        error_code(&hot),
        "BAD_USER_INPUT",
        "Kimi allows temperature 0-1: {hot}"
    );

    upstream.fail_next(1, 401);
    let denied = app.gql(Some(&user), &chat_query(), ask("hi", 0.3)).await;
    assert_eq!(error_code(&denied), "UPSTREAM_FAILED");
    assert!(
        denied["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("upstream exploded")
    );
    let requests_before = upstream.seen().len();
    let ok = app.gql_ok(Some(&user), &chat_query(), ask("hi", 0.3)).await;
    assert_eq!(ok["chat"]["aiCall"]["status"], "SUCCEEDED");
    assert_eq!(
        upstream.seen().len(),
        requests_before + 1,
        "the temperature error never reached the upstream"
    );

    let failed = app
        .gql_ok(
            Some(&user),
            "{ aiCalls(filter: {status: FAILED}) { edges { node { errorCode errorMessage } } } }",
            json!({}),
        )
        .await;
    assert_eq!(failed["aiCalls"]["edges"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_stream_cancels_the_upstream_call() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    upstream.chunk_delay(300);
    let app = kimi_app(&upstream).await;
    price_kimi(&app).await;
    let (user, _, _) = app
        .register("impatient@example.com", "impatient-password")
        .await;
    let mut ws = crate::ws::GqlWs::connect(&app, Some(&user)).await.unwrap();
    let input = json!({"provider": "kimi", "model": "kimi-k2-0905-preview", "message": "tell me a long story about the sea"});
    ws.subscribe("1", &crate::chat::stream_query(), json!({ "input": input }))
        .await;
    let first = ws.next().await;
    assert_eq!(first["type"], "next", "{first}");
    ws.drop_connection().await;

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let call = loop {
        let calls = app
            .gql_ok(
                Some(&user),
                &format!(
                    "{{ aiCalls {{ edges {{ node {{ {} }} }} }} }}",
                    crate::chat::CALL_FIELDS
                ),
                json!({}),
            )
            .await;
        let node = calls["aiCalls"]["edges"][0]["node"].clone();
        if node["status"] != "PENDING" {
            break node;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {node}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(call["status"], "CANCELLED");
    assert_eq!(
        call["usageSource"], "ESTIMATED",
        "the upstream never got to report usage"
    );
    assert!(call["promptTokens"].as_i64().unwrap() > 0);
    assert_eq!(
        call["costMicros"].as_str().unwrap().parse::<i64>().unwrap(),
        expected_cost(&app, &user, &call).await
    );
}
