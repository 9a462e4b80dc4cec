//! HTTP to addresses users gave (their own webhooks): no redirects, and unless
//! `[alerts] allow_private_targets`, no connection to an address on this network
//! ([`targets::is_internal`]), whatever a name resolves to by the time it is sent.

use std::net::SocketAddr;
use std::sync::Arc;

use cloudbase_schema::services::alerts::targets;

use super::upstream;
use crate::config::UpstreamTimeouts;

/// A client for addresses users gave (their own webhooks): it follows no redirect (a 3xx is the
/// answer), and unless `allow_private`, connects only to public addresses ([`PublicOnly`]).
/// Through an HTTP(S)_PROXY from the environment, the proxy connects; then only the check before
/// each delivery applies.
pub fn client(timeouts: &UpstreamTimeouts, allow_private: bool) -> Result<reqwest::Client, String> {
    let mut builder = upstream::builder(timeouts).redirect(reqwest::redirect::Policy::none());
    if !allow_private && !proxied() {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// Whether reqwest will send through a proxy from the environment.
pub fn proxied() -> bool {
    ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]
        .iter()
        .flat_map(|name| [name.to_string(), name.to_ascii_lowercase()])
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Resolves like the system does, and refuses a name with any address on this network or
/// reserved ([`targets::is_internal`]): a name that changed its answer since the check before
/// sending (DNS rebinding) cannot reach this network. Addresses written in the URL are not
/// resolved; the check before sending has judged them.
struct PublicOnly;

/// Why [`PublicOnly`] refused a name; found again in the error chain for the delivery record.
#[derive(Debug)]
pub struct InternalAddress(String);

impl std::fmt::Display for InternalAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InternalAddress {}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(internal) = found.iter().find(|a| targets::is_internal(a.ip())) {
                let why = format!(
                    "{host} resolves to {}, an address on this network",
                    internal.ip()
                );
                return Err(Box::new(InternalAddress(why)) as _);
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cloudbase_plugin_api::HttpRequest;

    use super::*;

    #[tokio::test]
    async fn users_requests_reach_no_internal_name() {
        use reqwest::dns::Resolve as _;
        let refused = PublicOnly.resolve("localhost".parse().unwrap()).await;
        let Err(e) = refused else {
            panic!("localhost resolved for a user's webhook");
        };
        assert!(e.to_string().contains("an address on this network"), "{e}");
        if proxied() {
            return;
        }
        // Through the whole client: the reason survives into the delivery's error.
        let client = client(&UpstreamTimeouts::default(), false).unwrap();
        let request = HttpRequest {
            method: "POST".into(),
            url: "http://localhost:9/hook".into(),
            headers: Vec::new(),
            body: None,
        };
        let failure = upstream::send(
            &client,
            &request,
            &BTreeMap::new(),
            &UpstreamTimeouts::default(),
            "channel `hook`",
            None,
        )
        .await
        .unwrap_err();
        let message = failure.error.to_string();
        assert!(
            message.contains("not reached: localhost resolves to"),
            "{message}"
        );
    }
}
