//! `X-Forwarded-For` and `Forwarded` (RFC 7239) as the request log reads them behind
//! trusted proxies. The first byte picks the peer (a trusted proxy or not) and the header;
//! the rest is up to three header values, split at newlines. The oracle: the client named is
//! the peer, or an address the headers carry with only trusted proxies to its right, so
//! never an address to the left of an untrusted hop.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use api_guard_server::telemetry::TrustedProxies;
use libfuzzer_sys::fuzz_target;

/// One hop as the oracle reads it: an address, bracketed or not, with or without a port.
fn hop(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1, fd00::/8").expect("valid");
    let peer: IpAddr = if mode & 1 == 0 {
        "10.1.2.3".parse().expect("an address")
    } else {
        "198.51.100.7".parse().expect("an address")
    };
    let name = if mode & 2 == 0 {
        HeaderName::from_static("x-forwarded-for")
    } else {
        HeaderName::from_static("forwarded")
    };
    let mut headers = HeaderMap::new();
    let mut texts = Vec::new();
    for value in rest.split(|&b| b == b'\n').take(3) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            if let Ok(text) = value.to_str() {
                texts.push(text.to_owned());
            }
            headers.append(name.clone(), value);
        }
    }
    let client = trusted.client(peer, &headers);
    if !trusted.contains(peer) {
        assert_eq!(client, peer, "an untrusted peer's headers were believed");
        return;
    }
    if client == peer || texts.is_empty() {
        return;
    }
    // The hops, left to right; `None` for one the oracle cannot read as an address.
    let hops: Vec<Option<IpAddr>> = texts
        .iter()
        .flat_map(|text| text.split(','))
        .map(|element| {
            if mode & 2 == 0 {
                hop(element)
            } else {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(n, _)| n.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| {
                        let v = v.trim();
                        hop(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v))
                    })
            }
        })
        .collect();
    let named_at = hops.iter().rposition(|h| *h == Some(client));
    let Some(at) = named_at else {
        panic!("{client} is neither the peer nor in {texts:?}");
    };
    for right in &hops[at + 1..] {
        match right {
            Some(ip) if trusted.contains(*ip) => {}
            other => panic!("{client} is left of the hop {other:?} in {texts:?}"),
        }
    }
});
