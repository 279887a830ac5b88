//! The one rule for every URL api-guard fetches or names: https, or plain http to a
//! loopback host only (OpenID Connect Discovery §3; loopback for local development issuers).

use std::net::IpAddr;

use url::{Host, Url};

/// Whether `url` is an `https` URL, or an `http` URL whose host is loopback (`127.0.0.0/8`,
/// `::1`, `localhost`). Anything that does not parse as a URL is not.
///
/// ```
/// assert!(api_guard::is_https_or_loopback("https://dev-123456.okta.com/oauth2/default"));
/// assert!(api_guard::is_https_or_loopback("http://127.0.0.1:8080/oauth2/default"));
/// assert!(!api_guard::is_https_or_loopback("http://example.com/oauth2/default"));
/// ```
pub fn is_https_or_loopback(url: &str) -> bool {
    Url::parse(url).is_ok_and(|url| https_or_loopback(&url))
}

pub(crate) fn https_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// Checks a URL api-guard will fetch or name (an issuer, a JWKS URL): absolute, http(s) with a
/// host, https unless loopback, and no query, fragment or credentials. The error says what
/// is wrong in words an operator can act on; `example` shows the expected shape.
pub(crate) fn check_endpoint(value: &str, example: &str) -> Result<Url, String> {
    let url = Url::parse(value)
        .map_err(|e| format!("`{value}` is not a URL ({e}); expected e.g. {example}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{value}` must be an https URL, e.g. {example}"));
    }
    if !https_or_loopback(&url) {
        return Err(format!(
            "`{value}` uses http; https is required except for loopback hosts (127.0.0.1, ::1, localhost)"
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err("must not have a query, fragment, user name or password".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_for_loopback_hosts_only() {
        for ok in [
            "https://a.example/x",
            "http://127.0.0.1:9000/x",
            "http://127.8.9.1/x",
            "http://[::1]:8/x",
            "http://localhost/x",
            "http://LOCALHOST/x",
        ] {
            assert!(is_https_or_loopback(ok), "{ok}");
        }
        for bad in [
            "http://example.com/x",
            "http://10.0.0.1/x",
            "http://localhost.example.com/x",
            "ftp://127.0.0.1/x",
            "not a url",
        ] {
            assert!(!is_https_or_loopback(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints_have_no_query_fragment_or_credentials() {
        for bad in [
            "https://a.example/x?y=1",
            "https://a.example/x#f",
            "https://u:p@a.example/x",
            "mailto:a@example.com",
        ] {
            assert!(check_endpoint(bad, "https://a.example").is_err(), "{bad}");
        }
        assert!(check_endpoint("https://a.example/oauth2/default", "").is_ok());
    }
}
