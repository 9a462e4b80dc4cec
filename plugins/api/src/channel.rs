//! Helpers for notifier plugins: URL checks that never echo the URL (channel URLs carry
//! credentials), truncation on a character boundary, and judging the `{"code": 0, ...}` replies of
//! group-bot APIs.

use std::borrow::Cow;

use serde_json::Value;

use crate::messages::{DeliveryReport, HttpResponse, PluginError};

/// Marks a cut.
pub const ELLIPSIS: &str = "…";

/// `text` cut to at most `max` bytes on a character boundary, ending with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let end = text.floor_char_boundary(max.saturating_sub(ELLIPSIS.len()));
    Cow::Owned(format!("{}{ELLIPSIS}", &text[..end]))
}

/// Checks that setting `field` holds an absolute http(s) URL without whitespace. The URL itself
/// is left out of the message.
pub fn check_url(field: &str, url: &str) -> Result<(), PluginError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(PluginError::config(format!(
            "`{field}` must be an http:// or https:// URL without spaces"
        ))),
    }
}

/// Judges a JSON reply whose status is a number where 0 means success. `fields` lists
/// `(code field, message field)` pairs to try in order (APIs rename them across versions); the
/// delivery worked when the HTTP status is 2xx and the first code present is 0.
pub fn report_from_code(response: &HttpResponse, fields: &[(&str, &str)]) -> DeliveryReport {
    let reply = serde_json::from_str::<Value>(&response.body).ok();
    let judged = reply.as_ref().and_then(|r| {
        fields.iter().find_map(|(code, message)| {
            let code_value = r.get(*code)?.as_i64()?;
            let text = r.get(*message).and_then(Value::as_str).unwrap_or_default();
            Some((*code, code_value, text.to_owned()))
        })
    });
    let http_ok = (200..300).contains(&response.status);
    match judged {
        Some((_, 0, message)) if http_ok => DeliveryReport {
            ok: true,
            detail: message,
        },
        Some((field, code, message)) => DeliveryReport {
            ok: false,
            detail: format!("HTTP {}, {field} {code}: {message}", response.status),
        },
        None => DeliveryReport {
            ok: false,
            detail: format!(
                "HTTP {}: unexpected reply: {}",
                response.status,
                truncate(&response.body, 200)
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body: body.into(),
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("告警告警告警", 10);
        assert!(cut.len() <= 10 && cut.ends_with(ELLIPSIS), "{cut}");
    }

    #[test]
    fn urls_are_checked_without_being_echoed() {
        assert!(check_url("u", "https://x.example/hook?key=secret").is_ok());
        let err = check_url("u", "ftp://x.example/?key=secret").unwrap_err();
        assert!(!err.message.contains("secret"));
        assert!(check_url("u", "https://a b").is_err());
    }

    #[test]
    fn code_replies_are_judged() {
        let pairs = [("code", "msg"), ("StatusCode", "StatusMessage")];
        assert!(report_from_code(&response(200, r#"{"code":0,"msg":"success"}"#), &pairs).ok);
        assert!(
            report_from_code(
                &response(200, r#"{"StatusCode":0,"StatusMessage":"ok"}"#),
                &pairs
            )
            .ok
        );
        let failed = report_from_code(
            &response(200, r#"{"code":19021,"msg":"sign match fail"}"#),
            &pairs,
        );
        assert!(!failed.ok && failed.detail.contains("code 19021: sign match fail"));
        assert!(
            !report_from_code(&response(500, r#"{"code":0}"#), &pairs).ok,
            "HTTP errors fail"
        );
        assert!(
            report_from_code(&response(200, "<html>"), &pairs)
                .detail
                .contains("unexpected reply")
        );
    }
}
