//! Unit tests of the kimi provider (settings, defaults, schema, the catalogue's prices, request
//! shaping); the tests on recorded Moonshot responses are in `tests/kimi.rs`.

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
        assert_eq!(kimi.models().len(), catalogue::MODELS.len());
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

#[test]
fn prices_follow_the_region_currency() {
    let cn = create(json!({})).unwrap();
    let global = create(json!({"region": "global"})).unwrap();
    for (kimi, currency) in [(&cn, "CNY"), (&global, "USD")] {
        for model in kimi.models() {
            if let Some(price) = &model.price {
                assert_eq!(price.currency, currency, "{}", model.id);
            }
        }
    }
    let k2 = |kimi: &Kimi| {
        kimi.models()
            .into_iter()
            .find(|m| m.id == "kimi-k2-0905-preview")
            .and_then(|m| m.price)
            .unwrap()
    };
    assert_eq!(
        (k2(&cn).input.as_str(), k2(&cn).output.as_str()),
        ("4.00", "16.00")
    );
    assert_eq!(
        (k2(&global).input.as_str(), k2(&global).output.as_str()),
        ("0.60", "2.50")
    );
    // A base_url override keeps the region's currency: the region says which platform bills.
    let proxied = create(json!({"region": "global", "base_url": "http://127.0.0.1:9/v1"})).unwrap();
    assert_eq!(k2(&proxied).currency, "USD");
}

#[test]
fn the_catalogue_is_what_moonshot_serves() {
    let ids: Vec<&str> = catalogue::MODELS.iter().map(|s| s.id).collect();
    for id in [
        "kimi-k2.5",
        "kimi-k2-thinking",
        "kimi-k2-thinking-turbo",
        "kimi-k2-0905-preview",
        "kimi-k2-turbo-preview",
        "kimi-k2-0711-preview",
        "kimi-latest",
        "moonshot-v1-auto",
        "moonshot-v1-8k-vision-preview",
        "moonshot-v1-32k-vision-preview",
        "moonshot-v1-128k-vision-preview",
    ] {
        assert!(ids.contains(&id), "{id} is missing");
    }
    assert!(
        !ids.contains(&"kimi-thinking-preview"),
        "discontinued in November 2025"
    );
    for spec in catalogue::MODELS {
        for price in [spec.cny, spec.usd].into_iter().flatten() {
            for amount in [price.input, price.cached_input, price.output] {
                let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
                assert!(
                    !whole.is_empty()
                        && frac.len() <= 6
                        && whole
                            .bytes()
                            .chain(frac.bytes())
                            .all(|b| b.is_ascii_digit()),
                    "{}: {amount}",
                    spec.id
                );
            }
            assert!(
                price.from.ends_with('Z') && price.from.len() == 20,
                "{}",
                spec.id
            );
            assert!(!price.note.is_empty(), "{} names no source", spec.id);
        }
    }
}

#[test]
fn default_max_tokens_leaves_room_for_the_prompt() {
    let model = |window: u32| ModelInfo {
        id: "m".into(),
        display_name: None,
        context_window: Some(window),
        max_output_tokens: None,
        price: None,
    };
    let ask = |text: &str| ChatRequest {
        model: "m".into(),
        messages: vec![cloudbase_plugin_api::ChatMessage {
            role: cloudbase_plugin_api::ChatRole::User,
            content: text.into(),
        }],
        temperature: None,
        top_p: None,
        max_tokens: None,
        stop: vec![],
        stream: false,
    };
    // A 256K window: the 32K cap.
    assert_eq!(
        default_max_tokens(&ask("hi"), &model(262_144)),
        Some(32_768)
    );
    // An 8K window: what the prompt leaves (bytes + 8 per message + 8).
    assert_eq!(
        default_max_tokens(&ask("hi"), &model(8_192)),
        Some(8_192 - 18)
    );
    let long = "字".repeat(3000); // 9000 bytes
    assert_eq!(default_max_tokens(&ask(&long), &model(8_192)), None);
    // No window and no cap known: nothing is sent.
    let bare = ModelInfo {
        context_window: None,
        ..model(1)
    };
    assert_eq!(default_max_tokens(&ask("hi"), &bare), None);
}
