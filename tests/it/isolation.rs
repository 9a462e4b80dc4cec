//! Plugins with `isolation = "process"`: a segfault (a C plugin), an abort (a Rust plugin built
//! with `panic = "abort"`) or a hang takes only the instance's runner process. The call fails with
//! a clear error, the server keeps serving, and the runner is restarted; a well-behaved plugin
//! answers isolated exactly as it does in-process.

use std::time::{Duration, Instant};

use cloudbase_server::config::{Config, Isolation, PluginInstanceConfig};
use serde_json::{Value, json};

use crate::chat::{chat_query, stream_chat};
use crate::support::{TestApp, build_abort_plugin, build_c_plugin, error_code, instance};
use crate::upstream::{Dialect, Upstream, reply_for};

const PLUGINS: &str = "{ plugins { name instance status reason } }";

fn isolated(plugin: &str, settings: Value) -> PluginInstanceConfig {
    PluginInstanceConfig {
        isolation: Isolation::Process,
        ..instance(plugin, settings, &[])
    }
}

fn chat_input(provider: &str, model: &str, message: &str) -> Value {
    json!({"input": {"provider": provider, "model": model, "message": message}})
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

/// The `plugins` row of `instance`.
async fn plugin_row(app: &TestApp, admin: &str, instance: &str) -> Value {
    let plugins = app.gql_ok(Some(admin), PLUGINS, json!({})).await;
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance"] == instance)
        .unwrap_or_else(|| panic!("no row for {instance}: {plugins}"))
        .clone()
}

/// Calls until `provider` answers `expected` again (its runner restarted), at most 20 s. Calls
/// made while the runner waits out its backoff fail fast with `UNAVAILABLE`.
async fn answers_again(app: &TestApp, user: &str, provider: &str, model: &str, expected: &str) {
    let started = Instant::now();
    loop {
        let body = app
            .gql(
                Some(user),
                &chat_query(),
                chat_input(provider, model, "hello"),
            )
            .await;
        if body.get("errors").is_none() {
            assert_eq!(body["data"]["chat"]["content"], expected);
            return;
        }
        assert_eq!(error_code(&body), "UNAVAILABLE", "while restarting: {body}");
        assert!(
            message(&body).contains("it restarts"),
            "a call while the runner is down says when it comes back: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the runner was not restarted: {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The server itself still answers (another plugin, in-process).
async fn server_still_serves(app: &TestApp, user: &str) {
    let ok = app
        .gql_ok(
            Some(user),
            &chat_query(),
            chat_input("mock", "mock-echo", "still there?"),
        )
        .await;
    assert_eq!(ok["chat"]["content"], "Mock reply: still there?");
}

fn with_c_plugin(c: &mut Config) {
    build_c_plugin(&c.plugins_dir.clone().unwrap().join("libcprovider.so"), &[]);
    c.plugins
        .insert("cprovider".into(), isolated("cprovider", json!({})));
    c.plugins
        .insert("mock".into(), instance("mock", json!({}), &[]));
    // These tests crash a runner again and again to watch it come back; the circuit breaker
    // (tests/it/breakers.rs) would rightly stop sending it calls after a few.
    c.chat.breaker.enabled = false;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segfaulting_c_plugin_takes_only_its_runner() {
    let app = TestApp::spawn_with(with_c_plugin).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("segv@example.com", "segv-password-1").await;
    let row = plugin_row(&app, &admin, "cprovider").await;
    assert_eq!(row["status"], "LOADED", "{row}");

    let ok = app
        .gql_ok(
            Some(&user),
            &chat_query(),
            chat_input("cprovider", "c-echo", "hi"),
        )
        .await;
    assert_eq!(ok["chat"]["content"], "hello from C");

    for round in 0..2 {
        let body = app
            .gql(
                Some(&user),
                &chat_query(),
                chat_input("cprovider", "c-echo", "segfault please"),
            )
            .await;
        assert_eq!(error_code(&body), "PLUGIN_FAILED", "round {round}: {body}");
        assert!(
            message(&body).contains("plugin `cprovider`")
                && message(&body).contains("runner crashed (signal 11, SIGSEGV)"),
            "round {round}: {body}"
        );
        // Right after the crash the runner waits out its backoff (100 ms, then 200 ms): if the
        // listing is that quick, it shows the instance down and why.
        let row = plugin_row(&app, &admin, "cprovider").await;
        if row["status"] == "FAILED" {
            assert!(
                row["reason"].as_str().unwrap().contains("signal 11"),
                "{row}"
            );
        } else {
            assert_eq!(row["status"], "LOADED", "{row}");
        }
        server_still_serves(&app, &user).await;
        answers_again(&app, &user, "cprovider", "c-echo", "hello from C").await;
    }
    assert_eq!(
        plugin_row(&app, &admin, "cprovider").await["status"],
        "LOADED"
    );

    // The crashed calls are on record as failed, with the plugin's error code (and any call made
    // while the runner was restarting, with UNAVAILABLE).
    let failed = app
        .gql_ok(
            Some(&user),
            "{ aiCalls(filter: {status: FAILED}, first: 100) { edges { node { errorCode } } } }",
            json!({}),
        )
        .await;
    let codes: Vec<&str> = failed["aiCalls"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["errorCode"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "PLUGIN_FAILED").count(),
        2,
        "{failed}"
    );
    assert!(
        codes
            .iter()
            .all(|c| *c == "PLUGIN_FAILED" || *c == "UNAVAILABLE"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_plugin_built_with_panic_abort_runs_isolated_and_its_abort_takes_only_its_runner() {
    let app = TestApp::spawn_with(|c| {
        build_abort_plugin(&c.plugins_dir.clone().unwrap().join("libaborter.so"));
        c.plugins
            .insert("aborter".into(), isolated("aborter", json!({})));
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
        // As in `with_c_plugin`: the calls that watch the runner come back would open the
        // breaker when the restart is slow (a loaded machine), and it would then refuse them.
        c.chat.breaker.enabled = false;
    })
    .await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("abort@example.com", "abort-password-1").await;
    assert_eq!(
        plugin_row(&app, &admin, "aborter").await["status"],
        "LOADED"
    );
    let ok = app
        .gql_ok(
            Some(&user),
            &chat_query(),
            chat_input("aborter", "abort-1", "hello"),
        )
        .await;
    assert_eq!(ok["chat"]["content"], "still standing");

    let body = app
        .gql(
            Some(&user),
            &chat_query(),
            chat_input("aborter", "abort-1", "panic please"),
        )
        .await;
    assert_eq!(error_code(&body), "PLUGIN_FAILED", "{body}");
    assert!(
        message(&body).contains("plugin `aborter`")
            && message(&body).contains("runner crashed (signal 6, SIGABRT"),
        "{body}"
    );
    server_still_serves(&app, &user).await;
    answers_again(&app, &user, "aborter", "abort-1", "still standing").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_abort_plugin_is_still_refused_in_process() {
    let app = TestApp::spawn_with(|c| {
        build_abort_plugin(&c.plugins_dir.clone().unwrap().join("libaborter.so"));
        c.plugins
            .insert("aborter".into(), instance("aborter", json!({}), &[]));
    })
    .await;
    let admin = app.admin_token().await;
    let plugins = app.gql_ok(Some(&admin), PLUGINS, json!({})).await;
    let row = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "aborter" && r["instance"].is_null())
        .unwrap_or_else(|| panic!("no library row: {plugins}"))
        .clone();
    assert_eq!(row["status"], "FAILED", "{row}");
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains("isolation = \"process\""),
        "the reason says how to run it: {row}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_isolated_plugin_is_killed_and_restarted() {
    let app = TestApp::spawn_with(|c| {
        with_c_plugin(c);
        c.plugin_call_timeout_ms = 1000;
    })
    .await;
    let (user, _, _) = app.register("hang@example.com", "hang-password-1").await;
    let started = Instant::now();
    let body = app
        .gql(
            Some(&user),
            &chat_query(),
            chat_input("cprovider", "c-hang", "wait"),
        )
        .await;
    assert_eq!(error_code(&body), "TIMEOUT", "{body}");
    assert!(
        message(&body).contains("did not answer within 1000 ms; its runner was killed"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the call ends at the deadline, not when the plugin wakes (5 s)"
    );
    server_still_serves(&app, &user).await;
    answers_again(&app, &user, "cprovider", "c-echo", "hello from C").await;
}

/// A runner reports, with the library's name, whether it reads a body that is JSON as the JSON
/// itself: a plugin of this SDK does (and is then sent that form isolated too, as in the server's
/// process: the test below), the C plugin, which does not set the flag, does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_runner_reports_whether_its_library_reads_json_bodies_as_json() {
    use cloudbase_server::plugin_host::isolated::{RunnerCommand, describe};

    use crate::support::{link_first_party_plugins, plugin_runner};
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    link_first_party_plugins(&plugins);
    let c = dir.path().join("libcprovider.so");
    build_c_plugin(&c, &[]);
    let runner = RunnerCommand::at(plugin_runner());
    let kimi = plugins.join(format!(
        "{}cloudbase_plugin_kimi{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    for (library, name, raw_json_bodies) in [(&kimi, "kimi", true), (&c, "cprovider", false)] {
        let described = describe(&runner, library, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(described.name, name);
        assert_eq!(described.raw_json_bodies, raw_json_bodies, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_isolated_plugin_answers_as_it_does_in_process() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let base = upstream.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
        c.plugins
            .insert("mock-isolated".into(), isolated("mock", json!({})));
        for (name, isolation) in [
            ("kimi", Isolation::None),
            ("kimi-isolated", Isolation::Process),
        ] {
            let kimi = PluginInstanceConfig {
                isolation,
                ..instance("kimi", json!({"base_url": base}), &[("api_key", "HOME")])
            };
            c.plugins.insert(name.into(), kimi);
        }
    })
    .await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("same@example.com", "same-password-1").await;
    for row in ["mock-isolated", "kimi-isolated"] {
        assert_eq!(plugin_row(&app, &admin, row).await["status"], "LOADED");
    }
    let question = "what is the capital of France";
    let pairs = [
        ("mock", "mock-isolated", "mock-echo"),
        ("kimi", "kimi-isolated", "kimi-k2-0905-preview"),
    ];
    for (in_process, isolated, model) in pairs {
        let plain = |provider: &'static str| {
            let app = &app;
            let user = &user;
            async move {
                app.gql_ok(
                    Some(user),
                    &chat_query(),
                    chat_input(provider, model, question),
                )
                .await["chat"]
                    .clone()
            }
        };
        let (a, b) = (plain(in_process).await, plain(isolated).await);
        assert_eq!(a["content"], b["content"], "{a} / {b}");
        for field in ["promptTokens", "completionTokens", "status"] {
            assert_eq!(a["aiCall"][field], b["aiCall"][field], "{field}: {a} / {b}");
        }
        let streamed = |provider: &'static str| {
            stream_chat(
                &app,
                &user,
                json!({"provider": provider, "model": model, "message": question}),
            )
        };
        let (text_a, done_a, _) = streamed(in_process).await;
        let (text_b, done_b, _) = streamed(isolated).await;
        assert_eq!(text_a, text_b);
        assert!(!text_a.is_empty());
        for field in ["promptTokens", "completionTokens", "status"] {
            assert_eq!(
                done_a["aiCall"][field], done_b["aiCall"][field],
                "{field}: {done_a} / {done_b}"
            );
        }
    }
    assert_eq!(
        reply_for(question).0,
        app.gql_ok(
            Some(&user),
            &chat_query(),
            chat_input("kimi-isolated", "kimi-k2-0905-preview", question)
        )
        .await["chat"]["content"]
    );
}
