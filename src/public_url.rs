//! The URL clients use to reach the service: named in `/openapi.json`, in the RFC 9728
//! protected-resource metadata and in every Bearer challenge's `resource_metadata`.
//!
//! `PUBLIC_URL` when configured; otherwise derived per request from the request's own
//! `Host` header and the connection's scheme.
//!
//! # Security
//!
//! `Forwarded` and `X-Forwarded-*` are never read here (actix's `ConnectionInfo` would):
//! any caller can send them. Behind a load balancer or proxy, set `PUBLIC_URL`.

use std::borrow::Cow;
use std::sync::Arc;

use actix_web::http::header::{CACHE_CONTROL, HOST, VARY};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

/// `PUBLIC_URL`, or nothing to derive it per request. Register it as app data; without
/// it, the URL is derived from each request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicUrl(Option<Arc<str>>);

impl PublicUrl {
    /// `configured` is the checked `PUBLIC_URL` without a trailing `/`
    /// ([`Config::public_url`](crate::Config::public_url)), or `None`.
    pub fn new(configured: Option<&str>) -> Self {
        PublicUrl(configured.map(Arc::from))
    }

    /// The public URL for `req`, without a trailing `/`: the configured one, else
    /// `http://` (`https://` on a TLS listener) and the request's `Host`, else the local
    /// address when `Host` is missing or not a plain `host[:port]`.
    pub fn for_request(&self, req: &HttpRequest) -> Cow<'_, str> {
        match &self.0 {
            Some(url) => Cow::Borrowed(url),
            None => Cow::Owned(derive(req)),
        }
    }

    /// A response carrying a document that names the public URL: shared caches may keep it for
    /// 5 minutes, and, when the URL comes from `Host`, must key it on `Host` too (`Vary`), so
    /// one client's `Host` is never served to another.
    pub fn cacheable_response(req: &HttpRequest) -> HttpResponseBuilder {
        let mut response = HttpResponse::Ok();
        response.insert_header((CACHE_CONTROL, "public, max-age=300"));
        if req
            .app_data::<PublicUrl>()
            .is_none_or(|public| public.0.is_none())
        {
            response.insert_header((VARY, "Host"));
        }
        response
    }

    /// [`PublicUrl::for_request`] with the app's registered `PublicUrl`, if any.
    pub fn of(req: &HttpRequest) -> Cow<'_, str> {
        match req.app_data::<PublicUrl>() {
            Some(public) => public.for_request(req),
            None => Cow::Owned(derive(req)),
        }
    }
}

fn derive(req: &HttpRequest) -> String {
    let config = req.app_config();
    let scheme = if config.secure() { "https" } else { "http" };
    let host = req
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| is_host_and_port(host));
    match host {
        Some(host) => format!("{scheme}://{host}"),
        None => format!("{scheme}://{}", config.local_addr()),
    }
}

/// A host name, IPv4 or bracketed IPv6 address with an optional port: nothing that could
/// add a path, user info or a quote to the URLs built from it.
fn is_host_and_port(host: &str) -> bool {
    (1..=255).contains(&host.len())
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
        })
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn the_configured_url_wins_over_the_host_header() {
        let req = TestRequest::get()
            .insert_header((HOST, "evil.example"))
            .to_http_request();
        let public = PublicUrl::new(Some("https://api.example.com"));
        assert_eq!(public.for_request(&req), "https://api.example.com");
    }

    #[test]
    fn without_configuration_the_host_header_names_the_url_and_forwarded_headers_do_not() {
        let req = TestRequest::get()
            .insert_header((HOST, "api.example.com:8443"))
            .insert_header(("X-Forwarded-Host", "evil.example"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("Forwarded", "host=evil.example;proto=https"))
            .to_http_request();
        assert_eq!(
            PublicUrl::default().for_request(&req),
            "http://api.example.com:8443"
        );
        assert_eq!(PublicUrl::of(&req), "http://api.example.com:8443");
    }

    #[test]
    fn a_host_header_that_is_not_a_host_falls_back_to_the_local_address() {
        for host in ["a.example/path", "a\"b", "user@a.example", "", "a b"] {
            let req = TestRequest::get()
                .insert_header((HOST, host))
                .to_http_request();
            let url = PublicUrl::default().for_request(&req).into_owned();
            assert!(!url.contains(host) || host.is_empty(), "{host:?}: {url}");
            assert!(url.starts_with("http://"), "{host:?}: {url}");
        }
    }
}
