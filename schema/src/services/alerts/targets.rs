//! Where users' own webhooks may point. The server itself sends those requests, so a URL that
//! resolves to this network or to a reserved address ([`is_internal`]) would let any user reach
//! internal services through it; such URLs are refused unless `[alerts] allow_private_targets`
//! is on. The check runs when the rule is made and again before each delivery (DNS answers
//! change); the host also checks every address it connects to for such a delivery, and never
//! follows a redirect from one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// IPv4 networks a user's webhook may not reach: every IANA special-purpose block that is not
/// globally reachable, the deprecated 6to4 relay anycast, multicast and the reserved `240/4`
/// (which holds the broadcast address).
const INTERNAL_V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (cloud metadata services live here)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and 255.255.255.255
];

/// IPv6 networks inside global unicast (`2000::/3`) a user's webhook may not reach.
const INTERNAL_V6: &[([u16; 8], u8)] = &[
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, benchmarking, ORCHID)
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
];

/// Whether a user's webhook must not reach `ip`: any address on this network or reserved, in
/// the IANA special-purpose registries. IPv6 must be global unicast (`2000::/3`; outside it are
/// loopback, unspecified, unique-local `fc00::/7`, link-local `fe80::/10`, multicast and the
/// reserved blocks, including IPv4-compatible `::a.b.c.d`), and an IPv4 address embedded in IPv6
/// (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged as that IPv4
/// address; the local-use NAT64 prefix `64:ff9b:1::/48` is refused outright.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let ip = u32::from(v4);
            INTERNAL_V4
                .iter()
                .any(|&(net, len)| in_network(ip.into(), u32::from_be_bytes(net).into(), len, 32))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_internal(IpAddr::V4(v4));
            }
            let ip = u128::from(v6);
            !in_network(ip, 0x2000 << 112, 3, 128)
                || INTERNAL_V6
                    .iter()
                    .any(|&(net, len)| in_network(ip, u128::from(Ipv6Addr::from(net)), len, 128))
        }
    }
}

/// The IPv4 address a mapped, NAT64 (well-known prefix) or 6to4 address stands for.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let [.., a, b, c, d] = v6.octets();
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => {
            Some(Ipv4Addr::new(a, b, c, d))
        }
        [0x2002, hi, lo, ..] => {
            let [a, b] = hi.to_be_bytes();
            let [c, d] = lo.to_be_bytes();
            Some(Ipv4Addr::new(a, b, c, d))
        }
        _ => None,
    }
}

/// Whether the top `len` of `bits` bits of `ip` and `net` agree.
fn in_network(ip: u128, net: u128, len: u8, bits: u8) -> bool {
    let shift = u32::from(bits - len.min(bits));
    ip.checked_shr(shift).unwrap_or(0) == net.checked_shr(shift).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(ip: &str) -> bool {
        is_internal(ip.parse().unwrap())
    }

    #[test]
    fn special_purpose_ipv4_is_internal() {
        for ip in [
            "0.0.0.0",
            "0.255.255.255",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.255",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.7",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.255",
        ] {
            assert!(internal(ip), "{ip}");
        }
        // The neighbours of each block are public.
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.1",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.88.98.255",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
        ] {
            assert!(!internal(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_outside_global_unicast_or_special_is_internal() {
        for ip in [
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b:1::808:808",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:1ff:ffff::1",
            "2001:2::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "3fff::1",
            "3fff:fff::1",
            "4000::1",
            "5f00::1",
        ] {
            assert!(internal(ip), "{ip}");
        }
        for ip in [
            "2606:4700::1111",
            "2001:200::1",
            "2001:db7::1",
            "2001:db9::1",
            "2400:cb00::1",
            "3ffe:ffff::1",
            "3fff:1000::1",
        ] {
            assert!(!internal(ip), "{ip}");
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.0.1",
            "64:ff9b::198.18.0.1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:a9fe:a9fe::1",
            "2002:c612:1::1",
            "2002:f000:1::1",
        ] {
            assert!(internal(ip), "{ip}");
        }
        for ip in ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"] {
            assert!(!internal(ip), "{ip}");
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
