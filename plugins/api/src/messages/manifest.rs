//! What a plugin declares about itself ([`Manifest`]) and what an instance is created from
//! ([`PluginConfig`], read with [`parse_settings`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::PluginError;

/// What a plugin provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Chat completions.
    AiProvider,
    /// Alert and notification delivery.
    Notifier,
}

/// How a provider produces completions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Builds HTTP requests the host sends (`chat.build_request`, `chat.parse_*`).
    #[default]
    Http,
    /// Answers in-process (`chat.complete`, and `chat.stream` through `call_stream`).
    Local,
}

/// A secret the plugin needs. The operator names an environment variable for it; the host reads
/// it and passes the value in `PluginConfig::secrets`. Secrets never appear in responses or logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSpec {
    /// Key in `PluginConfig::secrets`, e.g. `api_key`.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether the instance can work without it.
    pub required: bool,
    /// The environment variable read when the operator names none, e.g. `MOONSHOT_API_KEY`.
    #[serde(default)]
    pub default_env: Option<String>,
}

/// Describes a plugin: returned by `manifest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unique name, `[a-z0-9_-]+`; instances refer to it with `plugin = "<name>"`.
    pub name: String,
    /// Provider or notifier.
    pub kind: PluginKind,
    /// The plugin's own version (semver).
    pub version: String,
    /// One line for humans.
    pub description: String,
    /// A mock or test double, never a real model or channel; labelled as such wherever listed.
    #[serde(default)]
    pub mock: bool,
    /// JSON Schema of the instance `settings`.
    pub config_schema: Value,
    /// Secrets the instance reads.
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    /// Create an instance named after the plugin, with empty settings, when the operator
    /// configures none.
    #[serde(default)]
    pub default_instance: bool,
    /// For providers: HTTP (sans-IO) or local.
    #[serde(default)]
    pub transport: Transport,
}

/// What `create` receives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PluginConfig {
    /// The instance settings, already validated against `config_schema`.
    #[serde(default)]
    pub settings: Value,
    /// Secret values by name (only those that are set).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// What a host sends to `create`: the instance's [`PluginConfig`], and what the host can read
/// besides (as top-level keys, which a plugin of an earlier SDK ignores).
#[derive(Debug, Serialize)]
pub struct CreateInput<'a> {
    /// The instance's settings and secrets.
    #[serde(flatten)]
    pub config: &'a PluginConfig,
    /// What the host offers.
    #[serde(flatten)]
    pub offers: HostOffers,
}

/// What a host tells a plugin it can read, in what `create` receives ([`CreateInput`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOffers {
    /// The host reads an [`crate::HttpRequest`]'s body that is JSON as the JSON itself
    /// (`body_json`, [`crate::JsonBodies`]). Absent (an earlier host): it does not.
    #[serde(default)]
    pub raw_json_bodies: bool,
}

/// Deserializes instance `settings` (null counts as `{}`) into a plugin's settings type. A bad
/// value is reported as a `config` error naming the setting at fault, where it can be found.
pub fn parse_settings<T: serde::de::DeserializeOwned>(settings: &Value) -> Result<T, PluginError> {
    let object = match settings {
        Value::Null => serde_json::Map::new(),
        Value::Object(map) => map.clone(),
        _ => return Err(PluginError::config("settings must be an object")),
    };
    serde_json::from_value(Value::Object(object.clone())).map_err(|e| {
        // Find the key whose removal makes the error go away (or turn into "missing").
        let culprit = object.keys().find(|key| {
            let mut rest = object.clone();
            rest.remove(key.as_str());
            match serde_json::from_value::<T>(Value::Object(rest)) {
                Ok(_) => true,
                Err(e) => e.to_string().contains(&format!("missing field `{key}`")),
            }
        });
        match culprit {
            Some(key) => PluginError::config(format!("invalid setting `{key}`: {e}")),
            None => PluginError::config(format!("invalid settings: {e}")),
        }
    })
}

/// Checks, for a plugin's own test, that its settings JSON Schema (`config_schema` in the
/// manifest) names exactly the keys its settings type `T` accepts. `T` must deny unknown fields
/// (`#[serde(deny_unknown_fields)]`): the error for an unknown key is what lists the accepted
/// ones. The error says what differs.
pub fn schema_lists_settings<T: serde::de::DeserializeOwned>(schema: &Value) -> Result<(), String> {
    let probe = serde_json::json!({ "\u{1}probe": null });
    let message = match serde_json::from_value::<T>(probe) {
        Ok(_) => return Err("the settings type accepts unknown keys (deny_unknown_fields)".into()),
        Err(e) => e.to_string(),
    };
    let listed = message
        .split_once("expected one of ")
        .or_else(|| message.split_once("expected "))
        .map_or("", |(_, keys)| keys);
    // serde lists them as "`a`", "`a` or `b`", or "one of `a`, `b`, `c`".
    let mut accepted: Vec<&str> = listed
        .split(", ")
        .flat_map(|part| part.split(" or "))
        .map(|k| k.trim_matches('`'))
        .filter(|k| !k.is_empty())
        .collect();
    let mut named: Vec<&str> = schema["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    accepted.sort_unstable();
    named.sort_unstable();
    match accepted == named {
        true => Ok(()),
        false => Err(format!(
            "the schema names {named:?}; the settings accept {accepted:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only its accepted keys matter here")]
    struct Two {
        region: Option<String>,
        base_url: Option<String>,
    }

    #[derive(serde::Deserialize)]
    #[expect(dead_code, reason = "only its accepted keys matter here")]
    struct Open {
        region: Option<String>,
    }

    #[test]
    fn a_schema_must_name_exactly_the_accepted_keys() {
        let both = serde_json::json!({"properties": {"base_url": {}, "region": {}}});
        assert_eq!(schema_lists_settings::<Two>(&both), Ok(()));
        let one = serde_json::json!({"properties": {"region": {}}});
        let missing = schema_lists_settings::<Two>(&one).unwrap_err();
        assert!(missing.contains("base_url"), "{missing}");
        let extra = serde_json::json!({"properties": {"region": {}, "base_url": {}, "x": {}}});
        assert!(schema_lists_settings::<Two>(&extra).is_err());
        assert!(
            schema_lists_settings::<Open>(&one).is_err(),
            "unknown keys must be denied"
        );
    }

    #[test]
    fn what_create_receives_reads_as_before_and_says_what_the_host_offers() {
        let config = PluginConfig {
            settings: serde_json::json!({"base_url": "http://127.0.0.1:9/v1"}),
            secrets: [("api_key".to_owned(), "sk-test".to_owned())].into(),
        };
        for raw_json_bodies in [true, false] {
            let offers = HostOffers { raw_json_bodies };
            let sent = serde_json::to_vec(&CreateInput {
                config: &config,
                offers,
            })
            .unwrap();
            // A plugin of an earlier SDK reads only its config, and ignores the rest.
            let read: PluginConfig = serde_json::from_slice(&sent).unwrap();
            assert_eq!(
                (&read.settings, &read.secrets),
                (&config.settings, &config.secrets)
            );
            assert_eq!(serde_json::from_slice::<HostOffers>(&sent).unwrap(), offers);
        }
        // What an earlier host sends offers nothing.
        let earlier = serde_json::to_vec(&config).unwrap();
        assert_eq!(
            serde_json::from_slice::<HostOffers>(&earlier).unwrap(),
            HostOffers::default()
        );
    }
}
