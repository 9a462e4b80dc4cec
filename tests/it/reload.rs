//! Hot reload of plugins through the real server, with two real versions of one plugin
//! (`fixtures/c_versioned.c`, compiled by the test): a call in flight finishes on the old version
//! while new calls get the new one; a broken library, settings the new version rejects, or a
//! config file that does not load keep the old version serving; `SIGHUP` and the folder watch
//! reload too; only admins may ask.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{chat_query, stream_query};
use crate::support::{PeerProcess, TestApp, build_c_fixture, error_code, instance};
use crate::ws::GqlWs;

const RELOAD: &str = "mutation { reloadPlugins { \
    changes { name instance change status previousVersion version reason } \
    plugins { name instance version status reason } } }";

const PLUGINS: &str = "{ plugins { name instance version status reason file } }";

const STATUS_EVENTS: &str = "subscription { pluginStatusChanged { name instance status version } }";

/// Compiles version `version` of the `versioned` plugin into `out`, with more `defines`.
fn build(out: &Path, version: &str, defines: &[&str]) {
    let version = format!("VERSION=\"{version}\"");
    let all: Vec<&str> = std::iter::once(version.as_str())
        .chain(defines.iter().copied())
        .collect();
    build_c_fixture("c_versioned.c", out, &all);
}

fn library(app: &TestApp) -> PathBuf {
    app.config
        .plugins_dir
        .clone()
        .unwrap()
        .join("libversioned.so")
}

/// Writes `bytes` over the library in place (truncating the same file, as `cp` does): safe only
/// because the server never maps the file itself.
fn overwrite(target: &Path, bytes: &[u8]) {
    std::fs::write(target, bytes).unwrap();
}

/// Version `version` of the plugin, compiled in a scratch folder; its bytes.
fn built(version: &str, defines: &[&str]) -> Vec<u8> {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("libversioned.so");
    build(&out, version, defines);
    std::fs::read(out).unwrap()
}

/// A server with version 1.0.0 of `versioned` (built with `defines`) and an instance of it,
/// `config` tweaked further.
async fn spawn_v1(defines: &[&str], tweak: impl FnOnce(&mut cloudbase_server::Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        build(
            &c.plugins_dir.clone().unwrap().join("libversioned.so"),
            "1.0.0",
            defines,
        );
        c.plugins
            .insert("versioned".into(), instance("versioned", json!({}), &[]));
        tweak(c);
    })
    .await
}

/// What a plain call to `versioned` answers.
async fn say(app: &TestApp, token: &str) -> String {
    let data = app
        .gql_ok(
            Some(token),
            &chat_query(),
            json!({"input": {"provider": "versioned", "model": "v-model", "message": "hi"}}),
        )
        .await;
    data["chat"]["content"].as_str().unwrap().to_owned()
}

fn instance_row(plugins: &Value) -> &Value {
    plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "versioned" && p["instance"] == "versioned")
        .unwrap_or_else(|| panic!("no versioned instance in {plugins}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_swaps_versions_while_calls_in_flight_finish_on_the_old() {
    // 1.0.0's stream stops after its first piece until the test opens this gate.
    let scratch = tempfile::tempdir().unwrap();
    let gate = scratch.path().join("go");
    let gate_define = format!("GATE=\"{}\"", gate.display());
    let destroyed = scratch.path().join("v1-destroyed");
    let destroyed_define = format!("DESTROYED=\"{}\"", destroyed.display());
    let app = spawn_v1(&[&gate_define, &destroyed_define], |_| {}).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("reload@example.com", "reload-password").await;
    assert_eq!(say(&app, &user).await, "reply from 1.0.0");

    let mut events = GqlWs::connect(&app, Some(&admin)).await.unwrap();
    events.subscribe("ev", STATUS_EVENTS, json!({})).await;
    // A stream on 1.0.0, under way (held at the gate) during the reload.
    let mut stream = GqlWs::connect(&app, Some(&user)).await.unwrap();
    stream
        .subscribe(
            "s",
            &stream_query(),
            json!({"input": {"provider": "versioned", "model": "v-model", "message": "slowly"}}),
        )
        .await;
    let mut before = String::new();
    while before.is_empty() {
        let item = stream.next_item("s").await;
        assert_eq!(item["type"], "next", "{item}");
        before += item["payload"]["data"]["chatStream"]["delta"]
            .as_str()
            .unwrap_or_default();
    }

    // 2.0.0 written over the very file 1.0.0 was loaded from, then a reload.
    overwrite(&library(&app), &built("2.0.0", &[]));
    let reload = app.gql_ok(Some(&admin), RELOAD, json!({})).await;
    assert_eq!(
        reload["reloadPlugins"]["changes"],
        json!([{
            "name": "versioned", "instance": "versioned", "change": "REPLACED", "status": "LOADED",
            "previousVersion": "1.0.0", "version": "2.0.0", "reason": null
        }]),
        "only the changed plugin changes: {reload}"
    );
    assert_eq!(
        instance_row(&reload["reloadPlugins"]["plugins"])["version"],
        "2.0.0"
    );

    // New calls get 2.0.0 at once, while the stream goes on on 1.0.0 to its end; the 1.0.0
    // instance is not destroyed while it serves it.
    assert_eq!(say(&app, &user).await, "reply from 2.0.0");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !destroyed.exists(),
        "destroyed while a stream still ran on it"
    );
    std::fs::write(&gate, b"").unwrap();
    let (rest, error) = stream.collect("s").await;
    assert!(error.is_none(), "{error:?}");
    let text: String = rest
        .iter()
        .map(|i| {
            i["data"]["chatStream"]["delta"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        before + &text,
        "1.0.0 ".repeat(5),
        "the call in flight finished on the old version"
    );
    let last = &rest.last().unwrap()["data"]["chatStream"];
    assert_eq!(last["done"], true);
    assert_eq!(last["aiCall"]["status"], "SUCCEEDED");
    // Its last call over, the replaced instance is given back to its plugin's `destroy`.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !destroyed.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        destroyed.exists(),
        "the replaced 1.0.0 instance was never destroyed"
    );

    // The list says so, the event went out, and the reload is on the audit trail.
    let plugins = app.gql_ok(Some(&admin), PLUGINS, json!({})).await;
    let row = instance_row(&plugins["plugins"]);
    assert_eq!(
        (&row["version"], &row["status"]),
        (&json!("2.0.0"), &json!("LOADED"))
    );
    let event = events.next_item("ev").await;
    assert_eq!(
        event["payload"]["data"]["pluginStatusChanged"],
        json!({"name": "versioned", "instance": "versioned", "status": "LOADED", "version": "2.0.0"})
    );

    // Nothing changed: nothing is reported, and the instance in place stays.
    let again = app.gql_ok(Some(&admin), RELOAD, json!({})).await;
    assert_eq!(again["reloadPlugins"]["changes"], json!([]));
    assert_eq!(say(&app, &user).await, "reply from 2.0.0");
    assert!(
        events.next_within(300).await.is_none(),
        "no event for a reload that changed nothing"
    );

    // Only admins may reload.
    let refused = app.gql(Some(&user), RELOAD, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    let audit = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(filter: {field: \"reloadPlugins\"}) { edges { node { actorRole outcome } } } }",
            json!({}),
        )
        .await;
    let outcomes: Vec<(&Value, &Value)> = audit["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["node"]["actorRole"], &e["node"]["outcome"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (&json!("USER"), &json!("FORBIDDEN")),
            (&json!("ADMIN"), &json!("OK")),
            (&json!("ADMIN"), &json!("OK")),
        ],
        "newest first"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reload_keeps_the_old_version_serving_and_says_why() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("cloudbase.toml");
    std::fs::write(&file, "[plugins.versioned]\nplugin = \"versioned\"\n").unwrap();
    let app = spawn_v1(&[], |c| c.config_file = Some(file.clone())).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("keeper@example.com", "keeper-password").await;
    let changes = |reload: &Value| reload["reloadPlugins"]["changes"].clone();
    let reason = |change: &Value| change["reason"].as_str().unwrap_or_default().to_owned();

    // A file that is no library at all: the library row fails, the instance keeps 1.0.0.
    overwrite(&library(&app), b"not a library");
    let reload = app.gql_ok(Some(&admin), RELOAD, json!({})).await;
    let changes_now = changes(&reload);
    assert_eq!(changes_now.as_array().unwrap().len(), 2, "{reload}");
    let (file_row, kept) = (&changes_now[0], &changes_now[1]);
    assert_eq!(
        (
            &file_row["instance"],
            &file_row["change"],
            &file_row["status"]
        ),
        (&json!(null), &json!("FAILED"), &json!("FAILED"))
    );
    assert!(
        reason(file_row).contains("not a loadable library"),
        "{reload}"
    );
    assert_eq!(
        (
            &kept["instance"],
            &kept["change"],
            &kept["status"],
            &kept["version"]
        ),
        (
            &json!("versioned"),
            &json!("FAILED"),
            &json!("LOADED"),
            &json!("1.0.0")
        )
    );
    assert!(reason(kept).contains("not a loadable library"), "{reload}");
    assert!(
        reason(kept).ends_with("version 1.0.0 keeps serving"),
        "{reload}"
    );
    assert_eq!(say(&app, &user).await, "reply from 1.0.0");
    let plugins = app.gql_ok(Some(&admin), PLUGINS, json!({})).await;
    let row = instance_row(&plugins["plugins"]);
    assert_eq!(row["status"], "LOADED");
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .ends_with("version 1.0.0 keeps serving"),
        "{plugins}"
    );

    // 2.0.0 requires a `mode` setting the config does not give: checked again, refused, and
    // 1.0.0 still serves.
    overwrite(&library(&app), &built("2.0.0", &["STRICT"]));
    let reload = app.gql_ok(Some(&admin), RELOAD, json!({})).await;
    let changes_now = changes(&reload);
    assert_eq!(changes_now.as_array().unwrap().len(), 1, "{reload}");
    assert_eq!(changes_now[0]["change"], "FAILED");
    assert_eq!(changes_now[0]["version"], "1.0.0");
    assert!(reason(&changes_now[0]).contains("mode"), "{reload}");
    assert_eq!(say(&app, &user).await, "reply from 1.0.0");

    // The config file now gives it: read again on the reload, 2.0.0 takes over.
    std::fs::write(
        &file,
        "[plugins.versioned]\nplugin = \"versioned\"\nsettings = { mode = \"fast\" }\n",
    )
    .unwrap();
    let reload = app.gql_ok(Some(&admin), RELOAD, json!({})).await;
    assert_eq!(
        changes(&reload),
        json!([{
            "name": "versioned", "instance": "versioned", "change": "REPLACED", "status": "LOADED",
            "previousVersion": "1.0.0", "version": "2.0.0", "reason": null
        }])
    );
    assert_eq!(say(&app, &user).await, "reply from 2.0.0");

    // A config file that does not load: nothing is reloaded, and the error says why.
    std::fs::write(&file, "[plugins.versioned\n").unwrap();
    let refused = app.gql(Some(&admin), RELOAD, json!({})).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cloudbase.toml"),
        "{refused}"
    );
    assert_eq!(say(&app, &user).await, "reply from 2.0.0");
}

/// POSTs `query` to another instance's `/graphql`; the JSON body.
async fn gql_at(app: &TestApp, url: &str, token: &str, query: &str) -> Value {
    app.client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Asks `PLUGINS` at `url` until the `versioned` instance is on `version`, for up to 20 s.
async fn wait_for_version(app: &TestApp, url: &str, token: &str, version: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = gql_at(app, url, token, PLUGINS).await;
        if instance_row(&body["data"]["plugins"])["version"] == version {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still not on {version} after 20 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `operationName`s of the audit rows of reloads without a user, newest first, once there
/// are `count` of them (a reload's row is written just after its swap), or after 20 s.
async fn unattended_reloads(app: &TestApp, admin: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let audit = app
            .gql_ok(
                Some(admin),
                "{ auditLog(filter: {field: \"reloadPlugins\"}) { edges { node { actorId operationName outcome } } } }",
                json!({}),
            )
            .await;
        let rows: Vec<Value> = audit["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["node"]["actorId"].is_null() && e["node"]["outcome"] == "OK")
            .map(|e| e["node"]["operationName"].clone())
            .collect();
        if rows.len() >= count || tokio::time::Instant::now() >= deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_and_the_folder_watch_reload_too() {
    // The folder watch, in this process.
    let app = spawn_v1(&[], |c| c.plugins_watch_secs = 1).await;
    let admin = app.admin_token().await;
    overwrite(&library(&app), &built("2.0.0", &[]));
    wait_for_version(&app, &app.url("/graphql"), &admin, "2.0.0").await;
    assert_eq!(
        unattended_reloads(&app, &admin, 1).await,
        [json!("plugins_watch")]
    );

    // SIGHUP, to a server in a process of its own (a signal to this one would reach every
    // test's server), configured through the environment, watching nothing.
    let peer = PeerProcess::start_with(
        &app.config,
        &[("CLOUDBASE_PLUGINS__VERSIONED__PLUGIN", "versioned")],
    )
    .await;
    let url = peer.url("/graphql");
    wait_for_version(&app, &url, &admin, "2.0.0").await;
    overwrite(&library(&app), &built("3.0.0", &[]));
    peer.signal("HUP");
    wait_for_version(&app, &url, &admin, "3.0.0").await;
    // The watch in this process saw 3.0.0 as well; both reloads are on the (shared) trail.
    wait_for_version(&app, &app.url("/graphql"), &admin, "3.0.0").await;
    let reloads = unattended_reloads(&app, &admin, 3).await;
    assert!(reloads.contains(&json!("SIGHUP")), "{reloads:?}");
    assert_eq!(
        reloads.iter().filter(|r| **r == "plugins_watch").count(),
        2,
        "{reloads:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reloaded_plugin_brings_its_list_price_and_calls_are_priced_by_it() {
    const PRICES: &str = "query { prices(provider: \"versioned\", model: \"v-model\") { currency inputPerMtok cachedInputPerMtok outputPerMtok effectiveFrom note } }";
    let app = spawn_v1(&[], |_| {}).await;
    let admin = app.admin_token().await;
    let call = async |app: &TestApp| {
        app.gql_ok(
            Some(&admin),
            &chat_query(),
            json!({"input": {"provider": "versioned", "model": "v-model", "message": "hi"}}),
        )
        .await["chat"]["aiCall"]
            .clone()
    };
    // 1.0.0 names no price: nothing is seeded and its calls are unpriced.
    let before = call(&app).await;
    assert_eq!(
        (&before["priced"], &before["costMicros"]),
        (&json!(false), &json!("0"))
    );
    let prices = app.gql_ok(Some(&admin), PRICES, json!({})).await;
    assert_eq!(prices["prices"], json!([]));

    // 2.0.0 publishes one: the reload seeds it, and the price memo hears of it at once.
    overwrite(&library(&app), &built("2.0.0", &["PRICED"]));
    let reload = app.gql_ok(Some(&admin), RELOAD, json!({})).await;
    assert_eq!(reload["reloadPlugins"]["changes"][0]["change"], "REPLACED");
    let prices = app.gql_ok(Some(&admin), PRICES, json!({})).await;
    let mut seeded = prices["prices"].clone();
    assert_eq!(seeded.as_array().map(Vec::len), Some(1), "{prices}");
    let from = seeded[0]["effectiveFrom"].take();
    assert!(
        from.as_str().unwrap().starts_with("2025-01-01T00:00:00"),
        "{prices}"
    );
    assert_eq!(
        seeded[0],
        json!({
            "currency": "CNY", "inputPerMtok": "2000000", "cachedInputPerMtok": "500000",
            "outputPerMtok": "8000000", "effectiveFrom": null, "note": "versioned 2.0.0 list price"
        })
    );
    let after = call(&app).await;
    // 3 prompt tokens at 2.00 and 2 completion tokens at 8.00 per 1M: 6 + 16 micros.
    assert_eq!(
        (&after["priced"], &after["costMicros"], &after["currency"]),
        (&json!(true), &json!("22"), &json!("CNY"))
    );

    // 3.0.0 publishes the same row (same effective date): it is left alone, not added again.
    overwrite(&library(&app), &built("3.0.0", &["PRICED"]));
    let reload = app.gql_ok(Some(&admin), RELOAD, json!({})).await;
    assert_eq!(reload["reloadPlugins"]["changes"][0]["version"], "3.0.0");
    let prices = app.gql_ok(Some(&admin), PRICES, json!({})).await;
    assert_eq!(prices["prices"].as_array().unwrap().len(), 1, "{prices}");
    assert_eq!(prices["prices"][0]["note"], "versioned 2.0.0 list price");
}
