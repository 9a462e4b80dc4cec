//! Unit tests of the kimi provider (settings, defaults, schema); the tests on recorded
//! Moonshot responses are in `tests/kimi.rs`.

use super::*;
use cloudbase_plugin_api::schema_lists_settings;

fn create(settings: Value) -> Result<Kimi, PluginError> {
    Kimi::create(PluginConfig {
        settings,
        secrets: Default::default(),
    })
}

#[test]
fn defaults_to_the_china_endpoint_and_builtin_models() {
    for settings in [Value::Null, json!({})] {
        let kimi = create(settings).unwrap();
        assert_eq!(kimi.base_url, CN_BASE_URL);
        assert_eq!(kimi.models().len(), BUILTIN_MODELS.len());
        assert!(!kimi.has_api_key);
    }
    let kimi = create(json!({"region": "global"})).unwrap();
    assert_eq!(kimi.base_url, GLOBAL_BASE_URL);
    let kimi = create(json!({"region": "global", "base_url": "http://127.0.0.1:9/v1"})).unwrap();
    assert_eq!(kimi.base_url, "http://127.0.0.1:9/v1");
}

#[test]
fn bad_settings_name_the_field() {
    let cases = [
        (json!({"region": "eu"}), "`region`"),
        (json!({"base_url": "api.moonshot.cn"}), "`base_url`"),
        (json!({"base_url": 5}), "`base_url`"),
        (json!({"models": []}), "`models`"),
        (json!({"models": [{"display_name": "x"}]}), "`models`"),
        (json!({"api_key": "sk-..."}), "`api_key`"),
        (json!("cn"), "settings must be an object"),
    ];
    for (settings, needle) in cases {
        let err = create(settings).unwrap_err();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(err.message.contains(needle), "{}", err.message);
    }
}

#[test]
fn schema_lists_every_setting() {
    assert_eq!(schema_lists_settings::<Settings>(&config_schema()), Ok(()));
}
