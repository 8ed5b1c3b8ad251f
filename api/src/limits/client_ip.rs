//! The client's IP address, as rate limits key it.
//!
//! It is the socket's peer address, read from the `ConnectInfo<SocketAddr>` extension that the
//! serve loop inserts. Only when that peer is one of `PHOTON_TRUSTED_PROXIES` are forwarding
//! headers believed: `X-Forwarded-For` if present (what nginx, load balancers and CDNs append
//! to), else RFC 7239 `Forwarded: for=`. Either list is walked from the right, skipping our
//! own trusted proxies; the first other address is the client. Anything to its left was
//! written by the client and is ignored. A value that does not parse stops the walk and the
//! last trusted hop is used, so a hostile header can at worst share its proxy's bucket.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::app::AppState;

/// At most this many hops of a forwarding header are looked at; longer chains are not real.
const MAX_HOPS: usize = 32;

/// The client's address for rate limiting. Extracting it never fails: without connection
/// info (a router driven without a socket) every request shares the unspecified address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// Resolves the client from the peer address and, for trusted peers, the headers.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let peer = peer.to_canonical();
        if !is_trusted(peer, trusted) {
            return Self(peer);
        }
        let forwarded_for: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let hops: Vec<&str> = if !forwarded_for.is_empty() {
            forwarded_for.iter().flat_map(|v| v.split(',')).collect()
        } else {
            headers
                .get_all("forwarded")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(forwarded_for_param)
                .collect()
        };
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
            let Some(address) = parse_hop(hop) else {
                break;
            };
            client = address;
            if !is_trusted(address, trusted) {
                break;
            }
        }
        Self(client)
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(Self::resolve(
            peer,
            &parts.headers,
            &state.config.rate_limits.trusted_proxies,
        ))
    }
}

/// Whether `address` is one of the trusted reverse proxies. An IPv4 peer of a dual-stack
/// listener arrives IPv4-mapped, and matches the IPv4 entries.
pub fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    let address = address.to_canonical();
    trusted.iter().any(|net| net.contains(&address))
}

/// The `for=` value of one `Forwarded` element (`for=1.2.3.4;proto=https;by=…`), or "" when
/// it has none (which then fails to parse, ending the walk).
fn forwarded_for_param(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
        .map_or("", |(_, value)| value)
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`, optionally
/// quoted (as `Forwarded` requires for IPv6). `unknown` and obfuscated names are not
/// addresses.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let hop = hop
        .strip_prefix('"')
        .and_then(|h| h.strip_suffix('"'))
        .unwrap_or(hop)
        .trim();
    if hop.len() > 64 {
        return None;
    }
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    // `[2001:db8::1]` without a port.
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<Ipv6Addr>().ok())
        .map(|v6| IpAddr::V6(v6).to_canonical())
}

/// Parses one `PHOTON_TRUSTED_PROXIES` entry: a CIDR, or a bare address meaning just itself.
pub fn parse_proxy(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{value:?} is not an IP address or CIDR"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn trusted() -> Vec<IpNet> {
        vec![
            parse_proxy("127.0.0.1/32").unwrap(),
            parse_proxy("10.0.0.0/8").unwrap(),
        ]
    }

    fn resolve(peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        ClientIp::resolve(ip(peer), &headers(pairs), &trusted()).0
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_its_ipv4_proxy_entry() {
        let trusted = vec!["10.0.0.0/8".parse::<IpNet>().unwrap()];
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
        assert!(is_trusted(mapped, &trusted));
        assert!(!is_trusted("192.168.0.1".parse().unwrap(), &trusted));
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let h = [("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")];
        assert_eq!(resolve("203.0.113.9", &h), ip("203.0.113.9"));
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let h = [("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")];
        assert_eq!(resolve("127.0.0.1", &h), ip("198.51.100.7"));
        // Several header lines are one list, in order.
        let h = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.8"),
        ];
        assert_eq!(resolve("127.0.0.1", &h), ip("198.51.100.8"));
    }

    #[test]
    fn a_forged_left_part_cannot_pick_the_key() {
        // The client sent "X-Forwarded-For: 10.0.0.1" hoping to pass as a proxy; ours
        // appended the real address after it.
        let h = [("x-forwarded-for", "10.0.0.1, 198.51.100.7")];
        assert_eq!(resolve("127.0.0.1", &h), ip("198.51.100.7"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        for value in [
            "",
            ",,,",
            "not-an-ip",
            "198.51.100.7, garbage",
            "1.2.3.4\u{0}",
            "999.1.1.1",
            "[::1",
            "unknown",
            &"9".repeat(10_000),
        ] {
            let Ok(v) = HeaderValue::from_str(value) else {
                continue;
            };
            let mut map = HeaderMap::new();
            map.insert("x-forwarded-for", v);
            assert_eq!(
                ClientIp::resolve(ip("127.0.0.1"), &map, &trusted()).0,
                ip("127.0.0.1"),
                "{value:?}"
            );
        }
        // Behind two proxies, garbage beyond the inner one leaves the inner one.
        let h = [("x-forwarded-for", "junk, 10.9.9.9")];
        assert_eq!(resolve("127.0.0.1", &h), ip("10.9.9.9"));
    }

    #[test]
    fn a_long_chain_is_cut_short() {
        let mut value = vec!["198.51.100.1".to_owned()];
        value.extend((0..100).map(|i| format!("10.0.0.{}", i % 250)));
        let h = [("x-forwarded-for", value.join(","))];
        let h: Vec<(&'static str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Only trusted hops within the first MAX_HOPS from the right: the innermost seen.
        assert!(
            trusted()
                .iter()
                .any(|n| n.contains(&resolve("127.0.0.1", &h)))
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let h = [("x-forwarded-for", "198.51.100.7:4711")];
        assert_eq!(resolve("127.0.0.1", &h), ip("198.51.100.7"));
        let h = [("x-forwarded-for", "[2001:db8::17]:4711")];
        assert_eq!(resolve("127.0.0.1", &h), ip("2001:db8::17"));
        let h = [("x-forwarded-for", "::ffff:198.51.100.7")];
        assert_eq!(resolve("127.0.0.1", &h), ip("198.51.100.7"));
        // A v4-mapped peer is the v4 address it maps.
        assert_eq!(resolve("::ffff:127.0.0.1", &h), ip("198.51.100.7"));
    }

    #[test]
    fn rfc7239_forwarded() {
        let h = [(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https;by=10.0.0.2",
        )];
        assert_eq!(resolve("127.0.0.1", &h), ip("2001:db8:cafe::17"));
        let h = [("forwarded", "FOR=198.51.100.7;proto=http")];
        assert_eq!(resolve("127.0.0.1", &h), ip("198.51.100.7"));
        for value in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for",
            "for=\"",
            "=;=;=",
        ] {
            assert_eq!(
                resolve("127.0.0.1", &[("forwarded", value)]),
                ip("127.0.0.1")
            );
        }
        // X-Forwarded-For wins when both are there.
        let h = [
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ];
        assert_eq!(resolve("127.0.0.1", &h), ip("198.51.100.7"));
    }

    #[test]
    fn proxy_entries() {
        assert_eq!(
            parse_proxy(" 10.1.2.3/8 ").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(parse_proxy("::1").unwrap().to_string(), "::1/128");
        assert!(parse_proxy("10.0.0.0/33").is_err());
        assert!(parse_proxy("proxy.internal").is_err());
    }
}
