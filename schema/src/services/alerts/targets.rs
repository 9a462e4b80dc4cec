//! Where users' own webhooks may point. The server itself sends those requests, so a URL that
//! resolves to this network (loopback, private, link-local, shared or multicast addresses) would
//! let any user reach internal services through it; such URLs are refused unless
//! `[alerts] allow_private_targets` is on. The check runs when the rule is made and again before
//! each delivery (DNS answers change).

use std::net::IpAddr;

use crate::Error;

/// Checks that `url` resolves only to public addresses; the error says why not.
pub async fn check_public(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses: Vec<IpAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .map(|a| a.ip())
        .collect();
    match addresses.iter().find(|ip| is_internal(**ip)) {
        Some(ip) => Err(format!(
            "{host} resolves to {ip}, an address on this network"
        )),
        None if addresses.is_empty() => Err(format!("{host} has no address")),
        None => Ok(()),
    }
}

/// [`check_public`] as a `BAD_USER_INPUT` on `field`.
pub async fn require_public(field: &'static str, url: &str) -> Result<(), Error> {
    check_public(url)
        .await
        .map_err(|why| Error::bad_input(field, format!("webhooks must be public: {why}")))
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, broadcast or multicast.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (b & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://localhost/x",
        ] {
            assert!(check_public(url).await.is_err(), "{url}");
        }
    }
}
