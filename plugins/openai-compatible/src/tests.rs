//! Unit tests of the openai-compatible provider (settings, schema); the tests on recorded
//! responses are in `tests/openai_compatible.rs`.

use super::*;
use cloudbase_plugin_api::schema_lists_settings;

fn create(settings: Value) -> Result<OpenAiCompatible, PluginError> {
    OpenAiCompatible::create(PluginConfig {
        settings,
        secrets: Default::default(),
    })
}

#[test]
fn reads_settings() {
    let p = create(json!({
        "base_url": "https://openrouter.ai/api/v1",
        "models": [{"id": "deepseek/deepseek-chat"}],
        "stream_usage": false,
        "extra_headers": {"HTTP-Referer": "https://cloudbase.example", "X-Title": "CloudBase"}
    }))
    .unwrap();
    assert!(!p.stream_usage && !p.has_api_key);
    assert_eq!(p.extra_headers.len(), 2);
    let p =
        create(json!({"base_url": "http://127.0.0.1:11434/v1", "models": [{"id": "qwen3:8b"}]}));
    assert!(p.unwrap().stream_usage);
}

#[test]
fn bad_settings_name_the_field() {
    let models = json!([{"id": "m"}]);
    let cases = [
        (Value::Null, "`base_url`: required"),
        (json!("x"), "settings must be an object"),
        (json!({"models": models}), "`base_url`: required"),
        (
            json!({"base_url": "ftp://x", "models": models}),
            "`base_url`",
        ),
        (json!({"base_url": "http://x"}), "`models`: required"),
        (json!({"base_url": "http://x", "models": []}), "`models`"),
        (
            json!({"base_url": "http://x", "models": [{"name": "m"}]}),
            "`models`",
        ),
        (
            json!({"base_url": "http://x", "models": models, "stream_usage": "yes"}),
            "`stream_usage`",
        ),
        (
            json!({"base_url": "http://x", "models": models, "extra_headers": {"a": 1}}),
            "`extra_headers`",
        ),
        (
            json!({"base_url": "http://x", "models": models, "extra_headers": {"Authorization": "x"}}),
            "set by the plugin",
        ),
        (
            json!({"base_url": "http://x", "models": models, "extra_headers": {"a b": "x"}}),
            "not a header name",
        ),
        (
            json!({"base_url": "http://x", "models": models, "extra_headers": {"x": "a\r\nb: c"}}),
            "line break",
        ),
        (
            json!({"base_url": "http://x", "models": models, "region": "cn"}),
            "unknown field `region`",
        ),
    ];
    for (settings, needle) in cases {
        let err = create(settings).unwrap_err();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(err.message.contains(needle), "{needle}: {}", err.message);
    }
}

#[test]
fn schema_lists_every_setting() {
    assert_eq!(schema_lists_settings::<Settings>(&config_schema()), Ok(()));
}
