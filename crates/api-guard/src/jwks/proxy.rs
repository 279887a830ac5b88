//! The outbound https fetches through an HTTP proxy, as curl does with `HTTPS_PROXY` and
//! `NO_PROXY`: a TCP connection to the proxy, `CONNECT host:port`, then TLS with the issuer
//! inside the tunnel, so the proxy never sees the traffic and the certificate is checked
//! against the issuer's name as without a proxy.
//!
//! Plain-http URLs (loopback issuers only, see `url_rules`) are always reached directly.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;

use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use awc::http::Uri;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The port curl assumes for a proxy URL without one.
const DEFAULT_PORT: u16 = 1080;
/// The longest answer head a proxy may send to `CONNECT`.
const MAX_ANSWER_BYTES: usize = 8 * 1024;

/// The proxy for https fetches, and the hosts that bypass it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    host: String,
    port: u16,
    /// `Basic ...`, from the URL's user and password.
    authorization: Option<String>,
    bypass: NoProxy,
}

impl fmt::Debug for Proxy {
    /// Without the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.display())
    }
}

impl Proxy {
    /// Reads a proxy URL as curl does: `http://[user:password@]host[:port]`, the scheme
    /// optional, port 1080 when absent; and the `NO_PROXY` list that goes with it.
    pub(crate) fn parse(url: &str, no_proxy: &str) -> Result<Proxy, String> {
        let url = url.trim();
        let with_scheme = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let parsed = url::Url::parse(&with_scheme)
            .map_err(|e| format!("is not a proxy URL ({e}); write it as http://host:port"))?;
        if parsed.scheme() != "http" {
            return Err(format!(
                "uses {}://, but api-guard tunnels through an HTTP proxy with CONNECT only; write it as http://host:port",
                parsed.scheme()
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("names no host; write it as http://host:port".into()),
        };
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err("has a path or query, which a proxy URL does not take; write it as http://host:port".into());
        }
        let authorization = (!parsed.username().is_empty()).then(|| {
            let decode = |part: &str| percent_decode(part).unwrap_or_else(|| part.to_owned());
            let pair = format!(
                "{}:{}",
                decode(parsed.username()),
                decode(parsed.password().unwrap_or(""))
            );
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Ok(Proxy {
            host,
            port: parsed.port().unwrap_or(DEFAULT_PORT),
            authorization,
            bypass: NoProxy::parse(no_proxy),
        })
    }

    /// The proxy for logs and errors: `http://host:port`, never the credentials.
    pub(crate) fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let user = if self.authorization.is_some() {
            "***@"
        } else {
            ""
        };
        format!("http://{user}{host}:{}", self.port)
    }

    /// Whether a fetch of `uri` goes through the proxy: https, and not a `NO_PROXY` host.
    fn applies_to(&self, uri: &Uri) -> bool {
        uri.scheme_str() == Some("https") && !self.bypass.matches(uri.host().unwrap_or(""))
    }
}

/// curl's `NO_PROXY`: comma-separated host names (each also covering its subdomains; a
/// leading dot is the same), IP addresses, CIDR ranges, or `*` for every host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NoProxy {
    every_host: bool,
    names: Vec<String>,
    ranges: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut bypass = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                bypass.every_host = true;
                continue;
            }
            let (address, bits) = match entry.split_once('/') {
                Some((address, bits)) => (address, bits.parse::<u8>().ok()),
                None => (entry, None),
            };
            let address = address.trim_start_matches('[').trim_end_matches(']');
            match address.parse::<IpAddr>() {
                Ok(ip) => {
                    let full = if ip.is_ipv4() { 32 } else { 128 };
                    bypass.ranges.push((ip, bits.unwrap_or(full).min(full)));
                }
                Err(_) => bypass.names.push(
                    entry
                        .trim_start_matches('.')
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                ),
            }
        }
        bypass
    }

    fn matches(&self, host: &str) -> bool {
        if self.every_host {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self
                .ranges
                .iter()
                .any(|&(net, bits)| in_range(ip, net, bits));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|name| {
            host == *name
                || host
                    .strip_suffix(name.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            (u128::from(ip.to_bits()), u128::from(net.to_bits()), 32)
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => (ip.to_bits(), net.to_bits(), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (net >> shift)
}

/// `%XX` escapes of a URL's user or password, decoded; `None` if not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// awc's TCP connector with the proxy in front: connections that [`Proxy::applies_to`] are
/// tunnels through it; the others are direct. awc's connect timeout covers the tunnel's
/// set-up too.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    direct: ConnectorService,
    proxy: Option<Rc<Proxy>>,
}

impl ProxyConnector {
    pub(crate) fn new(proxy: Option<Proxy>) -> Self {
        ProxyConnector {
            direct: ConnectorService::default(),
            proxy: proxy.map(Rc::new),
        }
    }
}

type Connected = Connection<Uri, TcpStream>;

impl Service<ConnectInfo<Uri>> for ProxyConnector {
    type Response = Connected;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Connected, ConnectError>>>>;

    actix_service::always_ready!();

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let Some(proxy) = self
            .proxy
            .clone()
            .filter(|p| p.applies_to(request.request()))
        else {
            return Box::pin(self.direct.call(request));
        };
        let direct = self.direct.clone();
        Box::pin(async move {
            let target = request.request().clone();
            let to_proxy = ConnectInfo::new(proxy.host.clone()).set_port(proxy.port);
            let (mut stream, _) = direct.call(to_proxy).await?.into_parts();
            tunnel(&mut stream, &proxy, &target)
                .await
                .map_err(ConnectError::Io)?;
            Ok(Connection::new(target, stream))
        })
    }
}

/// Asks the proxy for a tunnel to `target`'s host and port and reads its answer: any 2xx
/// opens the tunnel.
async fn tunnel(stream: &mut TcpStream, proxy: &Proxy, target: &Uri) -> std::io::Result<()> {
    let host = target.host().unwrap_or("");
    let port = target.port_u16().unwrap_or(443);
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(credentials) = &proxy.authorization {
        head.push_str("Proxy-Authorization: ");
        head.push_str(credentials);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let failed = |what: String| {
        std::io::Error::other(format!(
            "proxy {} (HTTPS_PROXY) {what} for a tunnel to {authority}",
            proxy.display()
        ))
    };
    let mut answer = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        if answer.len() > MAX_ANSWER_BYTES {
            return Err(failed("answered with a head over 8 KiB".into()));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(failed("closed the connection without answering".into()));
        }
        answer.extend_from_slice(&buf[..n]);
    }
    if !answer.ends_with(b"\r\n\r\n") {
        return Err(failed("sent data before the tunnel was open".into()));
    }
    let status_line = answer
        .split(|&b| b == b'\r')
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut words = status_line.split_whitespace();
    let status = match (words.next(), words.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    };
    match status {
        Some(200..=299) => Ok(()),
        Some(code) => Err(failed(format!(
            "refused CONNECT with {}",
            crate::outside::quoted(status_line.get(9..).unwrap_or(&code.to_string()))
        ))),
        None => Err(failed(format!(
            "answered CONNECT with {}, not HTTP",
            crate::outside::quoted(&status_line)
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn a_proxy_url_is_read_as_curl_reads_it() {
        let proxy = Proxy::parse("proxy.corp:3128", "").unwrap();
        assert_eq!(proxy.display(), "http://proxy.corp:3128");
        assert_eq!(Proxy::parse("http://10.0.0.1", "").unwrap().port, 1080);
        let with_user = Proxy::parse("http://me:p%40ss@[::1]:8080/", "").unwrap();
        assert_eq!(with_user.display(), "http://***@[::1]:8080");
        // "me:p@ss"
        assert_eq!(
            with_user.authorization.as_deref(),
            Some("Basic bWU6cEBzcw==")
        );
        assert!(!format!("{with_user:?}").contains("bWU6"), "{with_user:?}");
        for (bad, says) in [
            ("socks5://proxy:1080", "CONNECT only"),
            ("https://proxy:443", "CONNECT only"),
            ("http://proxy:3128/path", "path or query"),
            ("http://", "not a proxy URL"),
        ] {
            let error = Proxy::parse(bad, "").unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn no_proxy_covers_names_their_subdomains_addresses_and_ranges() {
        let proxy = Proxy::parse(
            "http://proxy:3128",
            " .corp.example, okta.com ,10.0.0.0/8, ::1, 192.168.1.5",
        )
        .unwrap();
        for (url, proxied) in [
            ("https://dev-1.okta.com/oauth2/default", false),
            ("https://OKTA.COM./x", false),
            ("https://notokta.com/x", true),
            ("https://keycloak.corp.example/realms/a", false),
            ("https://corp.example/", false),
            ("https://10.1.2.3/keys", false),
            ("https://11.1.2.3/keys", true),
            ("https://[::1]:8443/keys", false),
            ("https://192.168.1.5/keys", false),
            ("https://192.168.1.6/keys", true),
            ("https://issuer.example/keys", true),
            // Plain http (loopback issuers) is never proxied.
            ("http://127.0.0.1:8080/keys", false),
        ] {
            assert_eq!(proxy.applies_to(&uri(url)), proxied, "{url}");
        }
        let every = Proxy::parse("http://proxy:3128", "*").unwrap();
        assert!(!every.applies_to(&uri("https://issuer.example/")));
    }
}
