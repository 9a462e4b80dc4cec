//! The body of `POST /v1/chat/completions`, read field by field so every refusal names its
//! `param`: what the gateway honours becomes a [`ChatInput`]; what it cannot honour is refused
//! with a 400 rather than silently dropped.

use cloudbase_plugin_api::{ChatMessage, ChatRole};
use cloudbase_schema::services::chat::ChatInput;
use serde_json::{Map, Value};

/// A refused body: what is wrong, and which parameter.
#[derive(Debug)]
pub struct Invalid {
    /// The parameter at fault (`messages[2].role`), when there is one.
    pub param: Option<String>,
    /// What was expected.
    pub message: String,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        param: Some(param.into()),
        message: message.into(),
    }
}

/// A request as the gateway understood it.
#[derive(Debug)]
pub struct Completion {
    /// The model name as the client sent it (echoed back in replies).
    pub model: String,
    /// Stream the reply as server-sent events.
    pub stream: bool,
    /// With `stream`: end with a chunk carrying the usage.
    pub include_usage: bool,
    /// Everything else, for the chat flow (provider and model are set once resolved).
    pub input: ChatInput,
}

/// Whether a field's value is its default.
type IsDefault = fn(&Value) -> bool;

/// Fields accepted only with their default value (they change nothing then).
const DEFAULT_ONLY: &[(&str, IsDefault)] = &[
    ("n", |v| v.as_i64() == Some(1)),
    ("presence_penalty", |v| v.as_f64() == Some(0.0)),
    ("frequency_penalty", |v| v.as_f64() == Some(0.0)),
    ("logprobs", |v| v.as_bool() == Some(false)),
    ("store", |v| v.as_bool() == Some(false)),
    ("parallel_tool_calls", |v| v.is_boolean()),
    ("service_tier", |v| {
        matches!(v.as_str(), Some("auto" | "default"))
    }),
];

/// Fields the gateway reads.
const READ: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "stream",
    "stream_options",
    "user",
];

/// Parses a request body.
pub fn parse(body: &[u8]) -> Result<Completion, Invalid> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Invalid {
        param: None,
        message: format!("the request body is not valid JSON: {e}"),
    })?;
    let Value::Object(fields) = value else {
        return Err(Invalid {
            param: None,
            message: "the request body must be a JSON object".into(),
        });
    };
    for (name, value) in &fields {
        if READ.contains(&name.as_str()) || value.is_null() {
            continue;
        }
        match DEFAULT_ONLY.iter().find(|(n, _)| n == name) {
            Some((_, is_default)) if is_default(value) => {}
            Some(_) if name == "n" => {
                return Err(invalid("n", "only n = 1 is supported"));
            }
            _ => {
                return Err(invalid(
                    name.clone(),
                    format!("`{name}` is not supported by this gateway"),
                ));
            }
        }
    }
    let model = match fields.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        _ => return Err(invalid("model", "`model` is required (a string)")),
    };
    let stream = optional(&fields, "stream", Value::as_bool, "a boolean")?.unwrap_or(false);
    let include_usage = match fields.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(options)) => {
            if let Some(other) = options.keys().find(|k| *k != "include_usage") {
                return Err(invalid(
                    format!("stream_options.{other}"),
                    format!("`stream_options.{other}` is not supported by this gateway"),
                ));
            }
            if !stream {
                return Err(invalid(
                    "stream_options",
                    "`stream_options` is only allowed with `stream: true`",
                ));
            }
            optional(options, "include_usage", Value::as_bool, "a boolean")?.unwrap_or(false)
        }
        Some(_) => {
            return Err(invalid(
                "stream_options",
                "`stream_options` must be an object",
            ));
        }
    };
    let max_tokens = optional(&fields, "max_tokens", Value::as_i64, "an integer")?;
    let max_completion = optional(
        &fields,
        "max_completion_tokens",
        Value::as_i64,
        "an integer",
    )?;
    let max_tokens = match (max_tokens, max_completion) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(
                "max_completion_tokens",
                "give `max_completion_tokens` or `max_tokens`, not two different values",
            ));
        }
        (a, b) => b.or(a),
    };
    let max_tokens = max_tokens
        .map(|m| {
            i32::try_from(m).map_err(|_| invalid("max_tokens", "`max_tokens` is out of range"))
        })
        .transpose()?;
    optional(&fields, "user", Value::as_str, "a string")?;
    let input = ChatInput {
        messages: Some(messages(fields.get("messages"))?),
        temperature: optional(&fields, "temperature", Value::as_f64, "a number")?,
        top_p: optional(&fields, "top_p", Value::as_f64, "a number")?,
        max_tokens,
        stop: stop(fields.get("stop"))?,
        ..ChatInput::default()
    };
    Ok(Completion {
        model,
        stream,
        include_usage,
        input,
    })
}

/// `fields[name]` read with `read`; `None` when absent or null.
fn optional<'v, T>(
    fields: &'v Map<String, Value>,
    name: &str,
    read: impl Fn(&'v Value) -> Option<T>,
    what: &str,
) -> Result<Option<T>, Invalid> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => read(v)
            .map(Some)
            .ok_or_else(|| invalid(name, format!("`{name}` must be {what}"))),
    }
}

fn stop(value: Option<&Value>) -> Result<Option<Vec<String>>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| invalid("stop", "`stop` must be a string or a list of strings")),
        Some(_) => Err(invalid(
            "stop",
            "`stop` must be a string or a list of strings",
        )),
    }
}

fn messages(value: Option<&Value>) -> Result<Vec<ChatMessage>, Invalid> {
    let Some(Value::Array(items)) = value else {
        return Err(invalid("messages", "`messages` is required (a list)"));
    };
    if items.is_empty() {
        return Err(invalid("messages", "`messages` must not be empty"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| message(i, item))
        .collect()
}

fn message(i: usize, item: &Value) -> Result<ChatMessage, Invalid> {
    let at = |field: &str| format!("messages[{i}].{field}");
    let Value::Object(fields) = item else {
        return Err(invalid(
            format!("messages[{i}]"),
            "each message must be an object",
        ));
    };
    for (name, value) in fields {
        let allowed = matches!(name.as_str(), "role" | "content" | "name") || value.is_null();
        if !allowed {
            return Err(invalid(
                at(name),
                format!(
                    "`{name}` in messages is not supported by this gateway (tools and function calls are not)"
                ),
            ));
        }
    }
    let role = match fields.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => ChatRole::System,
        Some("user") => ChatRole::User,
        Some("assistant") => ChatRole::Assistant,
        Some(other) => {
            return Err(invalid(
                at("role"),
                format!(
                    "role `{other}` is not supported; use system, developer, user or assistant"
                ),
            ));
        }
        None => return Err(invalid(at("role"), "each message needs a `role`")),
    };
    let content = match fields.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => text.push_str(t),
                    _ => {
                        return Err(invalid(
                            format!("messages[{i}].content[{j}]"),
                            "only text content parts are supported",
                        ));
                    }
                }
            }
            text
        }
        _ => return Err(invalid(at("content"), "each message needs text `content`")),
    };
    Ok(ChatMessage { role, content })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> Invalid {
        parse(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn an_sdk_body_is_understood() {
        let c = parse(
            br#"{"model":"mock/mock-fast","messages":[{"role":"developer","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
                "stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":9,
                "stop":"END","n":1,"presence_penalty":0,"user":"u-1","temperature":null}"#,
        )
        .unwrap();
        assert_eq!(c.model, "mock/mock-fast");
        assert!(c.stream && c.include_usage);
        assert_eq!(c.input.max_tokens, Some(9));
        assert_eq!(c.input.stop, Some(vec!["END".to_owned()]));
        let messages = c.input.messages.unwrap();
        assert_eq!(messages[0].role, ChatRole::System);
        assert_eq!(messages[1].content, "hi there");
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        assert_eq!(
            refused(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#)
                .param
                .as_deref(),
            Some("n")
        );
        assert_eq!(
            refused(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[]}"#)
                .param
                .as_deref(),
            Some("tools")
        );
        assert_eq!(
            refused(r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#)
                .param
                .as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            refused(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#).param.as_deref(),
            Some("messages[0].content[0]")
        );
        assert_eq!(
            refused(r#"{"model":"m","messages":[]}"#).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            refused(r#"{"messages":[{"role":"user","content":"x"}]}"#)
                .param
                .as_deref(),
            Some("model")
        );
        assert_eq!(
            refused(
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#
            )
            .param
            .as_deref(),
            Some("temperature")
        );
        assert_eq!(
            refused(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5,"max_completion_tokens":6}"#).param.as_deref(),
            Some("max_completion_tokens")
        );
        assert_eq!(
            refused(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#).param.as_deref(),
            Some("stream_options")
        );
        assert!(refused("[1,2]").param.is_none());
        assert!(refused("{").param.is_none());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"metadata":{deep}}}"#
        );
        assert!(
            refused(&body).param.is_none(),
            "the JSON parser's depth limit refuses it"
        );
    }
}
