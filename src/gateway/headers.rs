//! What a proxy forwards of the headers, each way (RFC 9110 §7.6): hop-by-hop headers are
//! dropped (§7.6.1: the fixed list and every name the `Connection` header lists), the
//! forwarding headers (`X-Forwarded-For`, `-Proto`, `-Host`) are written from what api-guard
//! saw, extended only from `TRUSTED_PROXIES`, and the identity headers are never taken
//! from the client.

use std::fmt::Write;
use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::identity::is_identity_header;
use crate::telemetry::TrustedProxies;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// RFC 9110 §7.6.1's hop-by-hop headers, the obsolete `Proxy-Connection` and `Keep-Alive`
/// with them, and the proxy-authentication pair (meant for api-guard, not the upstream).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "proxy-connection"
            | "keep-alive"
            | "te"
            | "transfer-encoding"
            | "upgrade"
            | "trailer"
            | "proxy-authenticate"
            | "proxy-authorization"
    )
}

/// Whether `name` is listed in one of `headers`' `Connection` values (§7.6.1: those are
/// hop-by-hop too). Read in place: no list is built for the common case of none.
fn named_in_connection(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers.get_all(header::CONNECTION).any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|option| option.trim().eq_ignore_ascii_case(name.as_str()))
        })
    })
}

/// Whether a header of the upstream's answer goes on to the client. The framing
/// (`Content-Length`) is the response body's own.
pub(super) fn passes_back(headers: &HeaderMap, name: &HeaderName) -> bool {
    !(is_hop_by_hop(name) || *name == header::CONTENT_LENGTH || named_in_connection(headers, name))
}

/// What the request to the upstream carries besides the client's end-to-end headers.
pub(super) struct Forwarding<'a> {
    /// The TCP peer, if known.
    pub peer: Option<IpAddr>,
    /// Whose forwarding headers are believed.
    pub trusted: &'a TrustedProxies,
    /// Keep `Authorization` and `DPoP`.
    pub forward_token: bool,
    /// Keep the client's `Host`.
    pub preserve_host: bool,
}

/// Copies the end-to-end headers of the client's request `incoming` into `out` (the request
/// to the upstream), then writes the forwarding headers. `Host` is the upstream's own (awc
/// writes it from the URL) unless `preserve_host`.
pub(super) fn to_upstream(incoming: &HeaderMap, forwarding: &Forwarding<'_>, out: &mut HeaderMap) {
    let trusted = forwarding
        .peer
        .is_some_and(|peer| forwarding.trusted.contains(peer));
    for (name, value) in incoming {
        let dropped = is_hop_by_hop(name)
            || is_identity_header(name)
            || *name == header::CONTENT_LENGTH
            // api-guard streams the body itself; an upstream need not be asked to confirm.
            || *name == header::EXPECT
            || (*name == header::HOST && !forwarding.preserve_host)
            || *name == X_FORWARDED_FOR
            || *name == X_FORWARDED_PROTO
            || *name == X_FORWARDED_HOST
            // What an untrusted client claims about earlier hops never reaches the upstream.
            || (*name == header::FORWARDED && !trusted)
            || ((*name == header::AUTHORIZATION || *name == DPOP) && !forwarding.forward_token)
            || named_in_connection(incoming, name);
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    // What a trusted proxy sent, then the peer: one string, written once.
    let mut xff = trusted
        .then(|| joined(incoming, &X_FORWARDED_FOR))
        .flatten()
        .unwrap_or_default();
    if let Some(peer) = forwarding.peer {
        if !xff.is_empty() {
            xff.push_str(", ");
        }
        let _ = write!(xff, "{}", peer.to_canonical());
    }
    if let Ok(value) = HeaderValue::try_from(xff)
        && !value.is_empty()
    {
        out.insert(X_FORWARDED_FOR, value);
    }
    let believed = |name: &HeaderName| trusted.then(|| incoming.get(name)).flatten().cloned();
    let proto = believed(&X_FORWARDED_PROTO).unwrap_or(HeaderValue::from_static("http"));
    out.insert(X_FORWARDED_PROTO, proto);
    if let Some(host) = believed(&X_FORWARDED_HOST).or_else(|| incoming.get(header::HOST).cloned())
    {
        out.insert(X_FORWARDED_HOST, host);
    }
}

/// Every value of `name`, joined with `, ` (several `X-Forwarded-For` lines are one list).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut all = headers.get_all(name).peekable();
    all.peek()?;
    let mut out = String::new();
    for value in all {
        let text = value.to_str().ok()?;
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(text.trim());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn forward(incoming: &HeaderMap, peer: &str, trusted: &str) -> HeaderMap {
        let trusted = TrustedProxies::parse(trusted).unwrap();
        let mut out = HeaderMap::new();
        let forwarding = Forwarding {
            peer: Some(peer.parse().unwrap()),
            trusted: &trusted,
            forward_token: false,
            preserve_host: false,
        };
        to_upstream(incoming, &forwarding, &mut out);
        out
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let incoming = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("accept", "application/json"),
        ]);
        let out = forward(&incoming, "192.0.2.1", "");
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
        ] {
            assert!(!out.contains_key(gone), "{gone}");
        }
        assert!(out.contains_key("traceparent"));
        assert!(out.contains_key("accept"));
        let answer = headers(&[("connection", "x-hop"), ("x-hop", "1"), ("x-end", "1")]);
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap();
        assert!(!passes_back(&answer, &name("x-hop")));
        assert!(!passes_back(&answer, &name("transfer-encoding")));
        assert!(passes_back(&answer, &name("x-end")));
    }

    #[test]
    fn forwarding_headers_are_extended_only_from_trusted_peers() {
        let incoming = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example.com"),
            ("forwarded", "for=198.51.100.7"),
            ("host", "gateway.local:8080"),
        ]);
        let untrusted = forward(&incoming, "203.0.113.9", "10.0.0.0/8");
        assert_eq!(untrusted.get("x-forwarded-for").unwrap(), "203.0.113.9");
        assert_eq!(untrusted.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(
            untrusted.get("x-forwarded-host").unwrap(),
            "gateway.local:8080"
        );
        assert!(!untrusted.contains_key("forwarded"));
        assert!(!untrusted.contains_key("host"));
        let trusted = forward(&incoming, "10.0.0.1", "10.0.0.0/8");
        assert_eq!(
            trusted.get("x-forwarded-for").unwrap(),
            "198.51.100.7, 10.0.0.1"
        );
        assert_eq!(trusted.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(trusted.get("x-forwarded-host").unwrap(), "api.example.com");
        assert!(trusted.contains_key("forwarded"));
    }
}
