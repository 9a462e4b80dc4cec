//! The GraphQL-over-HTTP surface: media types, methods, status codes, limits, introspection,
//! and the `graphql-http` audit suite (npm) run against the real server.

use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const GRJ: &str = "application/graphql-response+json";

async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    accept: &str,
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .header("accept", accept)
        .body(body.to_owned());
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    request.send().await.unwrap()
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn post_takes_json_only() {
    let app = TestApp::spawn().await;
    let body = r#"{"query":"{ __typename }"}"#;
    for ct in [
        Some("text/plain"),
        None,
        Some("application/json; charset=latin1"),
    ] {
        let r = post_raw(&app, ct, "application/json", body).await;
        assert_eq!(r.status(), 415, "{ct:?}");
    }
    let ok = post_raw(
        &app,
        Some("Application/JSON; charset=UTF-8"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(ok.status(), 200);
    for bad in [
        "",
        "{ not json",
        "[1]",
        r#"{"query": 1}"#,
        r#"{"query":"{ __typename }","variables":"x"}"#,
        r#"{"nope":"{ __typename }"}"#,
    ] {
        let r = post_raw(&app, Some("application/json"), GRJ, bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(error_code(&body), "BAD_REQUEST", "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn response_type_follows_accept() {
    let app = TestApp::spawn().await;
    let body = r#"{"query":"{ __typename }"}"#;
    for (accept, expected) in [
        (GRJ, GRJ),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        (
            "application/graphql-response+json;q=0, application/json",
            "application/json",
        ),
    ] {
        let r = post_raw(&app, Some("application/json"), accept, body).await;
        assert_eq!(r.status(), 200);
        assert!(
            content_type(&r).starts_with(expected),
            "{accept} -> {}",
            content_type(&r)
        );
    }
    let refused = post_raw(&app, Some("application/json"), "text/html", body).await;
    assert_eq!(refused.status(), 406);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_errors_have_no_data_and_a_code() {
    let app = TestApp::spawn().await;
    // Under application/graphql-response+json, a parse error is a 400 without `data`.
    let r = post_raw(&app, Some("application/json"), GRJ, r#"{"query":"{"}"#).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(error_code(&body), "GRAPHQL_PARSE_FAILED");
    // Under application/json, the same error comes with 200.
    let r = post_raw(
        &app,
        Some("application/json"),
        "application/json",
        r#"{"query":"{ nope }"}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED");
    // A field error is not a request error: data is present (null) and the status is 200.
    let r = post_raw(
        &app,
        Some("application/json"),
        GRJ,
        r#"{"query":"{ me { id } }"}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("data").is_some(), "{body}");
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert_eq!(body["errors"][0]["path"], json!(["me"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn get_runs_queries_but_never_mutations() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/graphql"))
        .query(&[
            (
                "query",
                "query Q($n: String!) { __type(name: $n) { name } }",
            ),
            ("variables", r#"{"n":"User"}"#),
            ("operationName", "Q"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["__type"]["name"], "User");

    let mutation = r#"mutation { register(input: {email: "get@example.com", password: "get-password", displayName: "G"}) { accessToken } }"#;
    let r = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", mutation)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let login = app.login("get@example.com", "get-password").await;
    assert_eq!(
        error_code(&login),
        "UNAUTHENTICATED",
        "the GET mutation did not run"
    );

    let r = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ __typename }"), ("variables", "[1]")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app.client.delete(app.url("/graphql")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_on_bodies_depth_complexity_and_aliases() {
    let app = TestApp::spawn_with(|c| {
        c.http.max_body_bytes = 2048;
        c.graphql.max_depth = 3;
        c.graphql.max_complexity = 6;
        c.graphql.max_aliases = 2;
    })
    .await;
    let big = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(4096)) }).to_string();
    let r = post_raw(&app, Some("application/json"), "application/json", &big).await;
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");

    let deep = app
        .gql(None, "{ users { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(error_code(&deep), "GRAPHQL_VALIDATION_FAILED", "{deep}");
    let wide = app
        .gql(
            None,
            "{ me { id email displayName avatarUrl role disabled createdAt } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&wide), "GRAPHQL_VALIDATION_FAILED", "{wide}");
    let aliases = app
        .gql(
            None,
            "{ a: __typename b: __typename c: __typename }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&aliases),
        "GRAPHQL_VALIDATION_FAILED",
        "{aliases}"
    );
    assert!(
        aliases["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases")
    );
    let fine = app
        .gql(None, "{ a: __typename b: __typename }", json!({}))
        .await;
    assert_eq!(fine["data"]["a"], "Query");
}

#[tokio::test(flavor = "multi_thread")]
async fn introspection_is_for_admins_in_prod() {
    let app = TestApp::spawn_with(|c| c.env = cloudbase_server::config::Environment::Prod).await;
    let q = "{ __schema { queryType { name } } }";
    let anonymous = app.gql(None, q, json!({})).await;
    assert_eq!(error_code(&anonymous), "FORBIDDEN", "{anonymous}");
    assert!(anonymous.get("data").is_none(), "{anonymous}");
    let (user, _, _) = app
        .register("curious@example.com", "curious-password")
        .await;
    let hidden = app
        .gql(
            Some(&user),
            "query { ...F } fragment F on Query { __type(name: \"User\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&hidden),
        "FORBIDDEN",
        "fragments do not hide introspection: {hidden}"
    );
    // Plain queries still work for users.
    app.gql_ok(Some(&user), "{ me { id } __typename }", json!({}))
        .await;
    let admin = app.admin_token().await;
    let as_admin = app.gql_ok(Some(&admin), q, json!({})).await;
    assert_eq!(as_admin["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_has_a_request_id() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("x-request-id").is_some());
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-request-id"],
        "trace-abc-123",
        "a sane caller id is kept"
    );
}

/// The `graphql-http` audit suite (every MUST and SHOULD) against the real server.
/// Needs Node and npm; installs the pinned harness from its lockfile on first run.
#[tokio::test(flavor = "multi_thread")]
async fn graphql_over_http_audit() {
    let app = TestApp::spawn().await;
    crate::support::run_node_harness(
        "http-audit",
        "graphql-http",
        "audit.mjs",
        vec![app.url("/graphql")],
    )
    .await;
}

/// The full introspection queries of graphql-js (`getIntrospectionQuery()`, what codegen and most
/// clients send) and of GraphiQL (the same with every option on), as graphql 16.11 writes them.
const INTROSPECTION_QUERIES: [&str; 2] = [
    include_str!("fixtures/introspection-graphql-js.graphql"),
    include_str!("fixtures/introspection-graphiql.graphql"),
];

#[tokio::test(flavor = "multi_thread")]
async fn full_introspection_passes_the_default_limits_and_deep_queries_still_do_not() {
    let app = TestApp::spawn().await;
    for query in INTROSPECTION_QUERIES {
        let body = app.gql(None, query, json!({})).await;
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
        let types = body["data"]["__schema"]["types"].as_array().unwrap();
        assert!(
            types.iter().any(|t| t["name"] == "AiCall"),
            "the whole schema comes back"
        );
    }
    // An ordinary query deeper than `max_depth` (12) is still refused, as is one that hides its
    // depth in a fragment.
    let mut deep = String::from("id");
    for _ in 0..12 {
        deep = format!("user(id: \"x\") {{ {deep} }}");
    }
    let refused = app.gql(None, &format!("{{ {deep} }}"), json!({})).await;
    assert_eq!(
        error_code(&refused),
        "GRAPHQL_VALIDATION_FAILED",
        "{refused}"
    );
    let hidden = format!("{{ ...F }} fragment F on Query {{ {deep} }}");
    let refused = app.gql(None, &hidden, json!({})).await;
    assert_eq!(
        error_code(&refused),
        "GRAPHQL_VALIDATION_FAILED",
        "{refused}"
    );
    // Introspection has its own bound: an `ofType` chain deeper than any real client sends.
    let mut chain = String::from("name");
    for _ in 0..30 {
        chain = format!("ofType {{ {chain} }}");
    }
    let attack = format!("{{ __type(name: \"Query\") {{ {chain} }} }}");
    let refused = app.gql(None, &attack, json!({})).await;
    assert_eq!(
        error_code(&refused),
        "GRAPHQL_VALIDATION_FAILED",
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_listed_origins_only() {
    let listed = "https://console.example";
    let app = TestApp::spawn_with(|c| c.http.cors_origins = vec![listed.into()]).await;
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let r = preflight(listed).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], listed);
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(h.get("access-control-allow-credentials").is_none());
    // The request itself carries the grant and exposes the request id.
    let r = app
        .client
        .post(app.url("/graphql"))
        .header("origin", listed)
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], listed);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.to_lowercase().contains("x-request-id"));
    // Any other origin gets no grant, so its browser refuses to read the answer.
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = preflight("https://console.example.evil.example")
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // By default no origin is listed.
    let closed = TestApp::spawn().await;
    let r = closed
        .client
        .request(reqwest::Method::OPTIONS, closed.url("/graphql"))
        .header("origin", listed)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
