//! The client's address for logs: the TCP peer, or what trusted proxies report in
//! `X-Forwarded-For` or `Forwarded` (RFC 7239 §5.2, `for=`).
//!
//! The headers are read only when the direct peer is a trusted proxy, and walked right to
//! left: each proxy appends the address it received the request from, so the first address
//! from the right that is not a trusted proxy is the client. Whatever a client wrote further
//! left is never reached. A hop that cannot be parsed on the way (or `for=unknown`) makes
//! the peer the answer: a wrong address is worse than a proxy's.
//!
//! `X-Forwarded-For` wins when both headers are present, because it is what nginx, HAProxy,
//! and the cloud load balancers append; a proxy that writes only `Forwarded` must drop an
//! incoming `X-Forwarded-For`, or clients could choose their logged address.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{self, HeaderMap, HeaderName};
use ipnet::IpNet;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding headers are believed (`TRUSTED_PROXIES`). Empty by default:
/// nobody is trusted and the client is always the TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses comma-separated CIDRs or bare addresses (a bare address is a /32 or /128).
    /// The error names the entry that is neither.
    pub fn parse(value: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "`{entry}` is not an IP address or CIDR; write e.g. 10.0.0.0/8,127.0.0.1,fd00::/8"
                    )
                })?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` carrying `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        let xff = headers.get_all(X_FORWARDED_FOR);
        if xff.len() > 0 {
            for value in xff {
                match value.to_str() {
                    Ok(text) => hops.extend(text.split(',').map(parse_node)),
                    Err(_) => return peer,
                }
            }
        } else {
            for value in headers.get_all(header::FORWARDED) {
                match value.to_str() {
                    Ok(text) => hops.extend(text.split(',').map(forwarded_for)),
                    Err(_) => return peer,
                }
            }
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(ip) = hop else { return peer };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        // Every hop is a trusted proxy: the furthest one is the best we know.
        client
    }
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=https`), if it has
/// exactly one (RFC 7239 §4: a parameter at most once per element). An element with two
/// `for=` is malformed, so unreadable: else `for=unknown;for=192.0.2.9` would name an address
/// its writer chose where the rule says the peer.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut nodes = element.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value)
    });
    let (Some(value), None) = (nodes.next(), nodes.next()) else {
        return None;
    };
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    parse_node(value)
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, or either
/// with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let ip = node
        .parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            node.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        map
    }

    #[test]
    fn bare_addresses_are_single_hosts_and_bad_entries_are_named() {
        let trusted = TrustedProxies::parse(" 10.0.0.0/8, 127.0.0.1,fd00::/8 ,::1").unwrap();
        assert!(trusted.contains(ip("10.1.2.3")));
        assert!(trusted.contains(ip("127.0.0.1")));
        assert!(!trusted.contains(ip("127.0.0.2")));
        assert!(trusted.contains(ip("fd00::5")));
        assert!(trusted.contains(ip("::1")));
        assert!(trusted.contains(ip("::ffff:10.0.0.9")), "IPv4-mapped peers");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let error = TrustedProxies::parse("10.0.0.0/8,proxy.local").unwrap_err();
        assert!(error.starts_with("`proxy.local` is not"), "{error}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    /// (what, peer, headers, expected client)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("an untrusted peer's headers are ignored", "203.0.113.9", &[("x-forwarded-for", "1.2.3.4")], "203.0.113.9"),
            ("no header: the peer", "10.0.0.1", &[], "10.0.0.1"),
            ("one proxy", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
            ("a spoofed entry left of the real client is skipped", "10.0.0.1", &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")], "198.51.100.7"),
            ("trusted hops are skipped", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7, 10.0.0.2,10.0.0.3")], "198.51.100.7"),
            ("several header lines read as one list", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7"), ("x-forwarded-for", "10.0.0.2")], "198.51.100.7"),
            ("every hop trusted: the leftmost", "10.0.0.1", &[("x-forwarded-for", "10.0.0.5, 10.0.0.2")], "10.0.0.5"),
            ("garbage left of the client is never reached", "10.0.0.1", &[("x-forwarded-for", "<script>, 198.51.100.7")], "198.51.100.7"),
            ("a malformed hop on the way: the peer", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7, nonsense")], "10.0.0.1"),
            ("an empty hop: the peer", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7,")], "10.0.0.1"),
            ("ports are dropped", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7:5123")], "198.51.100.7"),
            ("IPv6", "10.0.0.1", &[("x-forwarded-for", "2001:db8::7")], "2001:db8::7"),
            ("Forwarded for=", "10.0.0.1", &[("forwarded", "for=198.51.100.7;proto=https")], "198.51.100.7"),
            ("Forwarded quoted IPv6 with port", "10.0.0.1", &[("forwarded", "for=\"[2001:db8::7]:4711\"")], "2001:db8::7"),
            ("Forwarded walked right to left", "10.0.0.1", &[("forwarded", "for=6.6.6.6, For=198.51.100.7, for=10.0.0.2;by=10.0.0.1")], "198.51.100.7"),
            ("Forwarded for=unknown: the peer", "10.0.0.1", &[("forwarded", "for=unknown")], "10.0.0.1"),
            ("Forwarded without for: the peer", "10.0.0.1", &[("forwarded", "proto=https")], "10.0.0.1"),
            ("X-Forwarded-For wins over Forwarded", "10.0.0.1", &[("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
        ];
        for (case, peer, pairs, expected) in cases {
            assert_eq!(
                trusted.client(ip(peer), &headers(pairs)),
                ip(expected),
                "{case}"
            );
        }
    }

    #[test]
    fn non_ascii_headers_fall_back_to_the_peer() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let mut map = HeaderMap::new();
        map.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"198.51.100.7\xff").unwrap(),
        );
        assert_eq!(trusted.client(ip("10.0.0.1"), &map), ip("10.0.0.1"));
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let trusted = TrustedProxies::default();
        let map = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(trusted.client(ip("127.0.0.1"), &map), ip("127.0.0.1"));
    }

    #[test]
    fn a_forwarded_element_with_two_for_parameters_is_unreadable() {
        // Found by the `forwarded` fuzz target (fuzz/regressions/forwarded): the second `for=`
        // was taken when the first did not parse.
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        for value in [
            "for=unknown;for=192.0.2.9",
            "for=10.9.9:;for=192.0.2.9",
            "for=192.0.2.8;for=192.0.2.9",
            "For=10.9.9:;for=100.9.9.9",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::FORWARDED, HeaderValue::from_static(value));
            assert_eq!(trusted.client(peer, &headers), peer, "{value}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=192.0.2.9;proto=https"),
        );
        assert_eq!(
            trusted.client(peer, &headers),
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
    }
}
