//! Keeping secrets (and, unless prompt logging is on, prompts) out of stored arguments.

use serde_json::Value;

/// Parts of argument names whose values are never stored (names compared lower-case with `_` and
/// `-` removed): `newPassword`, `apiKey`, `githubToken`, `clientSecret`, `x-api-key`, `inviteCode`,
/// a two-step sign-in `code` or `challenge`, ...
const SECRET_PARTS: &[&str] = &[
    "password",
    "passwd",
    "token",
    "secret",
    "apikey",
    "privatekey",
    "accesskey",
    "authorization",
    "credential",
    "cookie",
    "signature",
    "code",
    "challenge",
];

/// Names that contain a secret part but name public values (error and status codes, standard
/// codes of currencies, countries and languages): stored as they are. Compared whole. Token
/// counts (`maxTokens`, `limitTokens`, `tokensPerMinute`) are kept too: a name with `tokens`
/// whose value is a number ([`is_count`]).
const PUBLIC_NAMES: &[&str] = &[
    "errorcode",
    "statuscode",
    "currencycode",
    "countrycode",
    "languagecode",
    "localecode",
];

/// People's addresses (where alerts go), sealed where they are stored: never copied in clear into
/// the audit trail. Compared whole (`to` is part of many names).
const ADDRESS_NAMES: &[&str] = &["to", "address", "recipient"];

/// Prompt text: stored only with `[chat] log_prompts` on, like the call records' prompt log.
const PROMPT_NAMES: &[&str] = &["message", "messages", "systemprompt", "content", "stop"];

/// What a stored secret reads as.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces the value of every secret-named key, at any depth, with [`REDACTED`], and of every
/// prompt-named key too unless `keep_prompts`.
pub fn redact(value: &mut Value, keep_prompts: bool) {
    // Every key's normalised name is made in this one buffer: one allocation for the whole
    // value (each mutation's arguments pass here), not one per key.
    redact_with(value, keep_prompts, &mut String::new());
}

fn redact_with(value: &mut Value, keep_prompts: bool, scratch: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                scratch.clear();
                scratch.extend(
                    key.chars()
                        .filter(|c| *c != '_' && *c != '-')
                        .flat_map(char::to_lowercase),
                );
                let name = scratch.as_str();
                let prompt = !keep_prompts && PROMPT_NAMES.contains(&name);
                let secret = !PUBLIC_NAMES.contains(&name)
                    && !is_count(name, v)
                    && SECRET_PARTS.iter().any(|part| name.contains(part));
                if prompt || secret || ADDRESS_NAMES.contains(&name) {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_with(v, keep_prompts, scratch);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| redact_with(v, keep_prompts, scratch)),
        Value::String(text) => {
            if let Some(url) = redact_url(text) {
                *text = url;
            }
        }
        _ => {}
    }
}

/// A count of tokens, not a credential: the name says `tokens` and the value is a number (or
/// none). A string under such a name stays secret.
fn is_count(name: &str, value: &Value) -> bool {
    name.contains("tokens") && matches!(value, Value::Number(_) | Value::Null)
}

/// A URL with its credentials (user info) and query removed, where webhook and bot URLs carry
/// their keys; `None` if `text` is not an http(s) URL with either.
fn redact_url(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return None;
    }
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map(|(_, host)| host);
    let path_only = path.split(['?', '#']).next().unwrap_or_default();
    if host.is_none() && path_only.len() == path.len() {
        return None;
    }
    let credentials = if host.is_some() { "[REDACTED]@" } else { "" };
    let query = if path_only.len() < path.len() {
        "?[REDACTED]"
    } else {
        ""
    };
    Some(format!(
        "{scheme}://{credentials}{}{path_only}{query}",
        host.unwrap_or(authority)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = json!({
            "input": {"email": "a@b.c", "password": "hunter2", "nested": [{"api_key": "k"}]},
            "refreshToken": "r",
            "newPassword": "n",
            "challenge": "cbm_x",
            "code": "123456",
            "inviteCode": "inv",
            "filter": {"errorCode": "TIMEOUT", "currency_code": "CNY", "maxTokens": 512, "tokens_per_minute": 9, "limitTokens": null},
            "accessTokens": ["a1", "a2"],
            "settings": {"url": "https://x", "secrets": {"token": "t"}},
            "chat": {"message": "my prompt", "model": "m"},
            "targets": [{"channel": "ops", "to": "me@example.com"}],
            "address": "https://hooks.example.com/mine",
            "total": 3,
            "profile": {"githubToken": "g", "clientSecret": "c", "x-api-key": "x", "theme": "dark"},
            "hook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",
            "dsn": "https://user:pw@example.com/path",
            "plain": "https://example.com/docs",
        });
        let mut with_prompts = json!({"input": {"message": "hi", "password": "p"}});
        redact(&mut with_prompts, true);
        assert_eq!(with_prompts["input"]["message"], "hi");
        assert_eq!(with_prompts["input"]["password"], REDACTED);
        redact(&mut v, false);
        assert_eq!(v["input"]["email"], "a@b.c");
        assert_eq!(v["input"]["password"], REDACTED);
        assert_eq!(v["input"]["nested"][0]["api_key"], REDACTED);
        assert_eq!(v["refreshToken"], REDACTED);
        assert_eq!(v["challenge"], REDACTED);
        assert_eq!(v["code"], REDACTED);
        assert_eq!(v["inviteCode"], REDACTED);
        assert_eq!(
            v["filter"],
            json!({"errorCode": "TIMEOUT", "currency_code": "CNY", "maxTokens": 512, "tokens_per_minute": 9, "limitTokens": null})
        );
        assert_eq!(v["accessTokens"], REDACTED);
        assert_eq!(v["newPassword"], REDACTED);
        assert_eq!(v["settings"]["url"], "https://x");
        assert_eq!(v["settings"]["secrets"], REDACTED);
        assert_eq!(v["chat"]["message"], REDACTED);
        assert_eq!(v["chat"]["model"], "m");
        assert_eq!(v["targets"][0]["to"], REDACTED);
        assert_eq!(v["targets"][0]["channel"], "ops");
        assert_eq!(v["address"], REDACTED);
        assert_eq!(v["total"], 3);
        assert_eq!(v["profile"]["githubToken"], REDACTED);
        assert_eq!(v["profile"]["clientSecret"], REDACTED);
        assert_eq!(v["profile"]["x-api-key"], REDACTED);
        assert_eq!(v["profile"]["theme"], "dark");
        assert_eq!(
            v["hook"],
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?[REDACTED]"
        );
        assert_eq!(v["dsn"], "https://[REDACTED]@example.com/path");
        assert_eq!(v["plain"], "https://example.com/docs");
    }
}
