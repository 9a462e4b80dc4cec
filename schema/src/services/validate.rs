//! Input rules. Each returns a `BAD_USER_INPUT` error naming the field and what was expected.

use unicode_normalization::UnicodeNormalization;

use crate::Error;

/// Longest email accepted (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;
/// Password length bounds, in characters.
pub const PASSWORD_MIN: usize = 8;
/// Upper bound, so hashing cost stays bounded.
pub const PASSWORD_MAX: usize = 128;
/// The lowest zxcvbn score a new password may have (0–4; 2 means about 10^6 guesses or more).
pub const PASSWORD_MIN_SCORE: u8 = 2;
/// Display name bounds, in characters.
pub const NAME_MAX: usize = 64;
/// Avatar URL bound, in bytes.
pub const URL_MAX: usize = 2048;
/// Settings JSON bound, serialized, in bytes.
pub const SETTINGS_MAX: usize = 16 * 1024;
/// Page size bounds for connections.
pub const PAGE_MAX: i32 = 100;

/// The form an email is stored and looked up in: trimmed, NFKC-normalised (full-width letters
/// and other compatibility forms become their plain equivalents) and lower-cased. Login looks
/// accounts up by this key, so `ＡＤＡ@example.com` finds `ada@example.com`.
pub fn email_key(raw: &str) -> String {
    raw.trim().nfkc().collect::<String>().to_lowercase()
}

/// Normalises an email with [`email_key`] and checks its shape. What is still not ASCII after
/// normalisation (a Cyrillic `а`, a Greek `ο`) is refused, so two accounts can never differ only
/// by letters that look alike.
pub fn email(field: &'static str, raw: &str) -> Result<String, Error> {
    let email = email_key(raw);
    let bad = |why: &str| {
        Err(Error::bad_input(
            field,
            format!("{why}; expected an address like name@example.com"),
        ))
    };
    if email.is_empty() {
        return bad("email is empty");
    }
    if email.len() > EMAIL_MAX {
        return bad("email is longer than 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("email contains spaces or control characters");
    }
    if !email.is_ascii() {
        return bad(
            "email may only use ASCII letters, digits and punctuation (write an \
             internationalised domain in its xn-- form)",
        );
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad("email has no @");
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return bad("email has an invalid local part");
    }
    let labels_ok = domain
        .split('.')
        .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if !domain.contains('.') || !labels_ok {
        return bad("email has an invalid domain");
    }
    if domain.ends_with(".invalid") {
        return bad("`.invalid` addresses are reserved (accounts made by WeChat sign-in use them)");
    }
    Ok(email)
}

/// Checks a new password: 8–128 characters, no control characters, and hard enough to guess.
///
/// Strength is zxcvbn's estimate (Dropbox's estimator: dictionaries of common passwords, names
/// and words, keyboard patterns, sequences, repeats, dates, l33t substitutions), and a password
/// must score at least [`PASSWORD_MIN_SCORE`], that is, need about a million guesses or more.
/// That refuses `password`, `12345678`, `Password1` or `qwertyuiop`, while a passphrase such as
/// `correct horse 1` passes. `context` holds words an attacker would try first for this account
/// (the email, the display name); a password built from them scores lower.
pub fn password(field: &'static str, raw: &str, context: &[&str]) -> Result<(), Error> {
    let chars = raw.chars().count();
    if chars < PASSWORD_MIN {
        return Err(Error::bad_input(
            field,
            format!("password must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if chars > PASSWORD_MAX {
        return Err(Error::bad_input(
            field,
            format!("password must be at most {PASSWORD_MAX} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::bad_input(
            field,
            "password must not contain control characters",
        ));
    }
    if raw.trim().is_empty() {
        return Err(Error::bad_input(field, "password must not be only spaces"));
    }
    // Each context word whole, by its `@` halves (an email's name), and by its parts.
    let mut inputs: Vec<&str> = vec!["cloudbase"];
    for word in context {
        inputs.push(word);
        inputs.extend(word.split('@'));
        inputs.extend(
            word.split(['@', '.', '-', '_', '+', ' '])
                .filter(|w| w.len() > 2),
        );
    }
    let estimate = zxcvbn::zxcvbn(raw, &inputs);
    if u8::from(estimate.score()) < PASSWORD_MIN_SCORE {
        let why = estimate
            .feedback()
            .and_then(zxcvbn::feedback::Feedback::warning)
            .map_or_else(String::new, |w| format!(" ({w})"));
        return Err(Error::bad_input(
            field,
            format!("password is too easy to guess{why}; use a longer phrase of uncommon words"),
        ));
    }
    Ok(())
}

/// Trims a display name and checks it is 1–64 printable characters.
pub fn display_name(field: &'static str, raw: &str) -> Result<String, Error> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::bad_input(field, "display name must not be empty"));
    }
    if name.chars().count() > NAME_MAX {
        return Err(Error::bad_input(
            field,
            format!("display name must be at most {NAME_MAX} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::bad_input(
            field,
            "display name must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Checks an avatar URL: absolute `http` or `https`, no spaces, at most 2048 bytes.
pub fn url(field: &'static str, raw: &str) -> Result<String, Error> {
    let url = raw.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    if !host_ok || url.len() > URL_MAX || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::bad_input(
            field,
            "expected an absolute http(s) URL of at most 2048 characters",
        ));
    }
    Ok(url.to_owned())
}

/// Checks free-form settings: a JSON object of at most 16 KiB.
pub fn settings(field: &'static str, value: &serde_json::Value) -> Result<(), Error> {
    if !value.is_object() {
        return Err(Error::bad_input(field, "settings must be a JSON object"));
    }
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > SETTINGS_MAX {
        return Err(Error::bad_input(
            field,
            format!("settings must be at most {SETTINGS_MAX} bytes of JSON"),
        ));
    }
    Ok(())
}

/// Checks a connection's `first` argument (default 20, 1–100).
pub fn page_size(first: Option<i32>) -> Result<i64, Error> {
    match first {
        None => Ok(20),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(i64::from(n)),
        Some(_) => Err(Error::bad_input(
            "first",
            format!("first must be between 1 and {PAGE_MAX}"),
        )),
    }
}

/// Checks an id argument has the shape of a UUID (so junk gets a clear error, not "not found").
pub fn id(field: &'static str, raw: &str) -> Result<(), Error> {
    uuid::Uuid::parse_str(raw)
        .map(|_| ())
        .map_err(|_| Error::bad_input(field, "expected an id (a UUID)"))
}

/// Turns a search string into a case-insensitive LIKE pattern (`%`, `_` and `\` escaped with `\`).
pub fn like_pattern(field: &'static str, raw: &str) -> Result<Option<String>, Error> {
    let q = raw.trim();
    if q.is_empty() {
        return Ok(None);
    }
    if q.chars().count() > 100 {
        return Err(Error::bad_input(
            field,
            "search must be at most 100 characters",
        ));
    }
    Ok(Some(format!("%{}%", escape_like(&q.to_lowercase()))))
}

/// `raw` with the LIKE wildcards `%`, `_` and the escape `\` escaped with `\`.
pub fn escape_like(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            email("email", "  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@-x.com",
            "ada@example..com",
        ] {
            assert!(email("email", bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn lookalike_emails_are_folded_or_refused() {
        assert_eq!(
            email("email", "ａｄａ@ＥＸＡＭＰＬＥ.com").unwrap(),
            "ada@example.com",
            "full-width letters fold to ASCII"
        );
        assert_eq!(email_key(" ＡＤＡ@example.com "), "ada@example.com");
        for lookalike in [
            "\u{430}da@example.com",
            "ada@ex\u{430}mple.com",
            "ad\u{3b1}@example.com",
        ] {
            let err = email("input.email", lookalike).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadInput {
                        field: Some("input.email"),
                        ..
                    }
                ),
                "{lookalike:?}: {err:?}"
            );
        }
        assert!(
            email("email", "ada@xn--fsqu00a.xn--fiqs8s").is_ok(),
            "punycode is ASCII"
        );
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(password("p", "short", &[]).is_err());
        assert!(password("p", "        ", &[]).is_err());
        assert!(password("p", &"x".repeat(129), &[]).is_err());
        assert!(password("p", "long enough 1", &[]).is_ok());
        assert!(
            password("p", "我家的猫叫小花生", &[]).is_ok(),
            "length counts characters, not bytes"
        );
    }

    #[test]
    fn trivial_passwords_are_refused() {
        for weak in [
            "password",
            "12345678",
            "\0\0\0\0\0\0\0\0",
            "Password1",
            "qwertyuiop",
            "aaaaaaaaaa",
            "密码密码密码密码",
            "abc\u{7}defghijklmn",
        ] {
            assert!(
                password("p", weak, &[]).is_err(),
                "{weak:?} should be refused"
            );
        }
        for fine in ["correct horse 1", "admin-password-1", "tidal-ferry-quartz"] {
            assert!(password("p", fine, &[]).is_ok(), "{fine:?} should pass");
        }
        assert!(
            password("p", "ada.lovelace", &["ada.lovelace@example.com"]).is_err(),
            "the account's own email is no password"
        );
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(
            like_pattern("q", " A_b%c\\ ").unwrap().as_deref(),
            Some("%a\\_b\\%c\\\\%")
        );
        assert_eq!(like_pattern("q", "   ").unwrap(), None);
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(url("u", "https://example.com/a.png").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "javascript:alert(1)",
            "https:///x",
            "https://a b",
        ] {
            assert!(url("u", bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
