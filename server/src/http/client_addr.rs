//! The client's address, for login limits per address, sessions and the audit trail.
//!
//! By default it is the TCP peer. Behind `[http] trusted_proxies = N` proxies, each proxy appends
//! the address it was connected from to `X-Forwarded-For`, so reading the entries right to left
//! (across every `X-Forwarded-For` header, in order), the N-th was written by the outermost trusted
//! proxy and names the client. Entries further left are whatever the client sent, and are never
//! read. When there are fewer than N entries, every one of them was written by a trusted proxy,
//! and the leftmost is used. The chosen entry must be an IP address (`203.0.113.7`,
//! `203.0.113.7:51234`, `2001:db8::1`, `[2001:db8::1]:443`); anything else, or no header at all,
//! means the peer's address is used instead. With `[http] proxy_networks`, the header is read only
//! when the peer is in one of those networks. Only `X-Forwarded-For` is read, never `Forwarded`
//! or `X-Real-IP`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// How to find the client's address.
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    /// Proxies that append to `X-Forwarded-For`; 0 ignores the header.
    hops: usize,
    /// Peers whose `X-Forwarded-For` is read; empty means any peer.
    proxies: Vec<IpNet>,
}

impl ClientAddress {
    /// Reads `X-Forwarded-For` as written by `hops` proxies, from peers in `proxies` (any peer
    /// when empty).
    pub fn new(hops: usize, proxies: Vec<IpNet>) -> Self {
        Self { hops, proxies }
    }

    /// The client's address for a request from `peer`.
    pub fn of(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        let peer = peer.ip().to_canonical();
        if self.hops == 0
            || !(self.proxies.is_empty() || self.proxies.iter().any(|n| n.contains(&peer)))
        {
            return peer;
        }
        // A value that is not visible ASCII counts as one unusable entry, so positions from the
        // right stay exact.
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .collect();
        let chosen = match entries.len().checked_sub(self.hops) {
            Some(i) => entries.get(i),
            None => entries.first(),
        };
        chosen.and_then(|e| parse_entry(e)).unwrap_or(peer)
    }
}

/// An address, with or without a port (`[v6]:port`, `v4:port`, `[v6]`), in canonical form
/// (an IPv4-mapped IPv6 address becomes IPv4).
pub fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", v.parse().unwrap());
        }
        map
    }

    fn peer() -> SocketAddr {
        "10.0.0.5:40000".parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_parse_with_or_without_a_port() {
        assert_eq!(parse_entry(" 203.0.113.7 "), Some(ip("203.0.113.7")));
        assert_eq!(parse_entry("203.0.113.7:51234"), Some(ip("203.0.113.7")));
        assert_eq!(parse_entry("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_entry("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_entry("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_entry("::ffff:198.51.100.2"), Some(ip("198.51.100.2")));
        for bad in [
            "",
            "unknown",
            "garbage-not-ip",
            "1.2.3",
            "1.2.3.4.5",
            "[1.2.3.4]",
            "_hidden",
        ] {
            assert_eq!(parse_entry(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let addr = ClientAddress::default();
        assert_eq!(addr.of(&headers(&["6.6.6.6"]), peer()), ip("10.0.0.5"));
    }

    #[test]
    fn the_hop_added_by_the_trusted_proxy_is_used() {
        let one = ClientAddress::new(1, Vec::new());
        // The client wrote the first two entries; the proxy appended the last one.
        let h = headers(&["6.6.6.6, garbage-not-ip, 203.0.113.7"]);
        assert_eq!(one.of(&h, peer()), ip("203.0.113.7"));
        // Several headers are one list, in order.
        let h = headers(&["6.6.6.6", "203.0.113.8"]);
        assert_eq!(one.of(&h, peer()), ip("203.0.113.8"));
        // Two proxies: the outer one wrote the second entry from the right.
        let two = ClientAddress::new(2, Vec::new());
        let h = headers(&["6.6.6.6, 203.0.113.9, 10.0.0.2"]);
        assert_eq!(two.of(&h, peer()), ip("203.0.113.9"));
        // Fewer entries than proxies: all were written by proxies; the leftmost is the client.
        assert_eq!(
            two.of(&headers(&["203.0.113.10"]), peer()),
            ip("203.0.113.10")
        );
    }

    #[test]
    fn missing_or_unusable_entries_fall_back_to_the_peer() {
        let one = ClientAddress::new(1, Vec::new());
        assert_eq!(one.of(&HeaderMap::new(), peer()), ip("10.0.0.5"));
        assert_eq!(
            one.of(&headers(&["203.0.113.7, garbage"]), peer()),
            ip("10.0.0.5")
        );
        assert_eq!(one.of(&headers(&["203.0.113.7,"]), peer()), ip("10.0.0.5"));
        let mut map = HeaderMap::new();
        map.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"203.0.113.7 \xff").unwrap(),
        );
        assert_eq!(one.of(&map, peer()), ip("10.0.0.5"));
    }

    #[test]
    fn only_peers_in_the_proxy_networks_are_believed() {
        let addr = ClientAddress::new(1, vec!["10.0.0.0/24".parse().unwrap()]);
        let h = headers(&["203.0.113.7"]);
        assert_eq!(addr.of(&h, peer()), ip("203.0.113.7"));
        let outsider: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(addr.of(&h, outsider), ip("192.0.2.1"));
        // A peer on a dual-stack socket is matched in its IPv4 form.
        let mapped: SocketAddr = "[::ffff:10.0.0.9]:5000".parse().unwrap();
        assert_eq!(addr.of(&h, mapped), ip("203.0.113.7"));
    }
}
