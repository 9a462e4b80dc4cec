//! WeChat's `code2Session` (`jscode2session`), the server's side of the
//! [`WeChat`](cloudbase_schema::ports::WeChat) port: one GET with the app id, the app secret and
//! the mini-program's `wx.login` code, a timeout, and WeChat's error codes turned into clear ones.
//! Errors never carry the URL, whose query holds the app secret.

use std::time::Duration;

use cloudbase_schema::Error;
use cloudbase_schema::ports::{WeChat, WeChatIdentity};
use futures_util::future::BoxFuture;
use serde::Deserialize;

use crate::config::WeChatConfig;

/// The largest answer read from WeChat (its answers are a few hundred bytes).
const ANSWER_MAX: usize = 16 * 1024;

/// `code2Session` with this server's app id and secret.
pub struct Code2Session {
    client: reqwest::Client,
    url: String,
    app_id: String,
    app_secret: String,
}

impl Code2Session {
    /// The client for `[wechat]`, or `None` when its secrets are not both set.
    pub fn from_config(config: &WeChatConfig) -> anyhow::Result<Option<Self>> {
        let Some((app_id, app_secret)) = config.credentials() else {
            return Ok(None);
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(5_000)))
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cloudbase-ai/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Self {
            client,
            url: config.code2session_url.clone(),
            app_id,
            app_secret,
        }))
    }

    async fn call(&self, code: &str) -> Result<WeChatIdentity, Error> {
        let failed = |e: reqwest::Error| {
            let e = e.without_url();
            if e.is_timeout() {
                Error::Timeout(format!("WeChat did not answer in time: {e}"))
            } else {
                Error::Upstream(format!("WeChat cannot be reached: {e}"))
            }
        };
        let mut response = self
            .client
            .get(&self.url)
            .query(&[
                ("appid", self.app_id.as_str()),
                ("secret", self.app_secret.as_str()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > ANSWER_MAX {
                return Err(Error::Upstream("WeChat's answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(Error::Upstream(format!("WeChat answered HTTP {status}")));
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            Error::Upstream(format!("WeChat's answer is not the expected JSON: {e}"))
        })?;
        answer.into_identity()
    }
}

/// What `code2Session` answers.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

impl Answer {
    fn into_identity(self) -> Result<WeChatIdentity, Error> {
        let errmsg: String = self.errmsg.chars().take(200).collect();
        match self.errcode {
            0 => match self.openid.filter(|o| !o.is_empty() && o.len() <= 128) {
                Some(openid) => Ok(WeChatIdentity {
                    openid,
                    unionid: self.unionid.filter(|u| !u.is_empty() && u.len() <= 128),
                }),
                None => Err(Error::Upstream("WeChat's answer has no openid".into())),
            },
            40029 | 40163 => Err(Error::bad_input(
                "code",
                format!(
                    "WeChat refused the login code ({}: {errmsg}): it is invalid, expired or used; call wx.login again",
                    self.errcode
                ),
            )),
            45011 => Err(Error::RateLimited {
                message: format!(
                    "WeChat is limiting this user's logins (45011: {errmsg}); try again in a minute"
                ),
                retry_after_ms: 60_000,
            }),
            -1 => Err(Error::Unavailable(format!(
                "WeChat is busy (-1: {errmsg}); try again in a moment"
            ))),
            code => Err(Error::Upstream(format!(
                "WeChat refused the login ({code}: {errmsg})"
            ))),
        }
    }
}

impl WeChat for Code2Session {
    fn code2session(&self, code: &str) -> BoxFuture<'_, Result<WeChatIdentity, Error>> {
        let code = code.to_owned();
        Box::pin(async move { self.call(&code).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Result<WeChatIdentity, Error> {
        serde_json::from_str::<Answer>(json)
            .unwrap()
            .into_identity()
    }

    #[test]
    fn wechat_errors_get_clear_codes() {
        let ok = answer(r#"{"openid":"o1","session_key":"k","unionid":"u1"}"#).unwrap();
        assert_eq!(
            (ok.openid.as_str(), ok.unionid.as_deref()),
            ("o1", Some("u1"))
        );
        let code = |json| answer(json).unwrap_err().code().as_str();
        assert_eq!(
            code(r#"{"errcode":40029,"errmsg":"invalid code"}"#),
            "BAD_USER_INPUT"
        );
        assert_eq!(
            code(r#"{"errcode":40163,"errmsg":"code been used"}"#),
            "BAD_USER_INPUT"
        );
        assert_eq!(
            code(r#"{"errcode":45011,"errmsg":"api minute-quota reach limit"}"#),
            "RATE_LIMITED"
        );
        assert_eq!(
            code(r#"{"errcode":-1,"errmsg":"system error"}"#),
            "UNAVAILABLE"
        );
        assert_eq!(
            code(r#"{"errcode":40226,"errmsg":"high risk user"}"#),
            "UPSTREAM_FAILED"
        );
        assert_eq!(code(r#"{"errcode":0}"#), "UPSTREAM_FAILED");
    }
}
