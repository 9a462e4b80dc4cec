//! A live notifier instance: the plugin builds a delivery (an HTTP request or an email), the host
//! sends it, and the plugin reads the answer. Users' own addresses go through a client that
//! follows no redirects and reaches public addresses only.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudbase_plugin_api::{Delivery, DeliveryReport, Notification};
use cloudbase_schema::Error;
use cloudbase_schema::ports::Destination;

use super::callee::Callee;
use super::failure::failure;
use super::{smtp, upstream};
use crate::config::UpstreamTimeouts;

/// A live notifier instance.
pub(super) struct Notifier {
    pub(super) name: String,
    pub(super) instance: Callee,
    pub(super) client: reqwest::Client,
    /// For addresses users gave: no redirects, public addresses only ([`user_http::client`]).
    pub(super) user_client: reqwest::Client,
    pub(super) secrets: BTreeMap<String, String>,
    pub(super) timeouts: UpstreamTimeouts,
}

impl Notifier {
    pub(super) async fn deliver(
        &self,
        notification: Notification,
        destination: Destination,
    ) -> Result<DeliveryReport, Error> {
        let what = format!("channel `{}`", self.name);
        let client = match destination {
            Destination::Operator => &self.client,
            Destination::User => &self.user_client,
        };
        let delivery: Delivery = self
            .instance
            .call("notify.build", &notification)
            .await
            .map_err(|f| failure(&self.name, f))?;
        match delivery {
            Delivery::Http { request } => {
                let sent = match upstream::send(
                    client,
                    &request,
                    &self.secrets,
                    &self.timeouts,
                    &what,
                    None,
                )
                .await
                {
                    Ok(sent) => sent,
                    // A plugin bug is an error; an unreachable channel is a failed delivery.
                    Err(upstream::Failure {
                        error: Error::Plugin(m),
                        ..
                    }) => return Err(Error::Plugin(m)),
                    Err(failure) => {
                        return Ok(DeliveryReport {
                            ok: false,
                            detail: failure.error.to_string(),
                        });
                    }
                };
                if destination == Destination::User && sent.status().is_redirection() {
                    return Ok(DeliveryReport {
                        ok: false,
                        detail: format!(
                            "{what}: the webhook answered HTTP {} (a redirect); redirects are \
                             not followed for users' webhooks",
                            sent.status().as_u16()
                        ),
                    });
                }
                let whole = match upstream::read_whole(sent, &what).await {
                    Ok(whole) => whole,
                    Err(e) => {
                        return Ok(DeliveryReport {
                            ok: false,
                            detail: e.to_string(),
                        });
                    }
                };
                self.instance
                    .call("notify.parse_response", &whole)
                    .await
                    .map_err(|f| failure(&self.name, f))
            }
            Delivery::Email { email } => {
                Ok(smtp::send(&email, Duration::from_millis(self.timeouts.total_ms)).await)
            }
        }
    }
}
