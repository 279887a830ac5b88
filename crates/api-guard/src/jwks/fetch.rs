//! Fetching: discovery of `jwks_uri` (RFC 8414 §3, OpenID Connect Discovery §4) and the key
//! set itself, over a client with timeouts, a size limit and no redirects.
//!
//! awc's client is not `Send`, so a [`Fetcher`] lives on the refresher's own thread.

use std::time::Duration;

use actix_web::http::header;
use serde::Deserialize;
use url::Url;

use super::keyset::KeySet;
use super::policy;
use crate::outside::quoted;
use crate::url_rules::https_or_loopback;

use rustls::pki_types::CertificateDer;

use super::proxy::{Proxy, ProxyConnector};

/// Connect timeout of every fetch.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Total timeout of one request: connect, send, headers and body.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest metadata or key-set document accepted.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Where the key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Discover `jwks_uri` from the issuer's metadata.
    Discover {
        /// The configured issuer; the metadata's `issuer` must equal it.
        issuer: String,
    },
    /// A configured `jwks_uri`: no discovery.
    Fixed {
        /// The key set's URL.
        jwks_uri: String,
    },
}

/// How a fetch ended, for the `api_guard_jwks_fetches_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchOutcome {
    /// A usable key set was loaded.
    Success,
    /// No metadata document named a usable `jwks_uri`.
    Discovery,
    /// The connection failed (refused, DNS, TLS).
    Unreachable,
    /// No complete answer in time.
    Timeout,
    /// The server answered with a status other than 2xx.
    Status,
    /// The body could not be read or was too large.
    Body,
    /// The body is not a JWK set.
    InvalidJwks,
    /// The JWK set holds no key we can verify with.
    NoUsableKey,
}

impl FetchOutcome {
    /// Every outcome, in the order metrics list them.
    pub const ALL: [FetchOutcome; 8] = [
        FetchOutcome::Success,
        FetchOutcome::Discovery,
        FetchOutcome::Unreachable,
        FetchOutcome::Timeout,
        FetchOutcome::Status,
        FetchOutcome::Body,
        FetchOutcome::InvalidJwks,
        FetchOutcome::NoUsableKey,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            FetchOutcome::Success => "success",
            FetchOutcome::Discovery => "discovery_failed",
            FetchOutcome::Unreachable => "unreachable",
            FetchOutcome::Timeout => "timeout",
            FetchOutcome::Status => "http_status",
            FetchOutcome::Body => "bad_body",
            FetchOutcome::InvalidJwks => "invalid_jwks",
            FetchOutcome::NoUsableKey => "no_usable_key",
        }
    }
}

/// A failed fetch: its kind, and one line for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub(crate) struct FetchError {
    /// What kind of failure.
    pub outcome: FetchOutcome,
    /// What happened.
    pub detail: String,
}

fn failure(outcome: FetchOutcome, detail: impl Into<String>) -> FetchError {
    FetchError {
        outcome,
        detail: detail.into(),
    }
}

/// A key set as fetched.
pub(crate) struct Fetched {
    /// The usable keys.
    pub keys: KeySet,
    /// The issuer's `Cache-Control: max-age`, if it sent one.
    pub max_age: Option<Duration>,
    /// Where it came from, for logs.
    pub uri: String,
    /// The issuer's `token_endpoint`, when discovery found a usable one.
    pub token_endpoint: Option<String>,
    /// The issuer's `introspection_endpoint` (RFC 8414 §2), when discovery found a usable one.
    pub introspection_endpoint: Option<String>,
}

/// What discovery learned from the issuer's metadata.
#[derive(Debug, Clone)]
pub(crate) struct Discovered {
    pub(crate) jwks_uri: String,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) introspection_endpoint: Option<String>,
}

/// How fetches reach the issuer: the certificates trusted besides the built-in roots, and
/// the proxy for https URLs.
#[derive(Clone, Default)]
pub(crate) struct Outbound {
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
    pub(crate) proxy: Option<Proxy>,
}

impl Outbound {
    /// What `settings` say: their extra roots (checked by `validate`) and proxy.
    pub(crate) fn of(settings: &crate::AuthSettings) -> Outbound {
        Outbound {
            extra_roots: settings.extra_roots().unwrap_or_default(),
            proxy: settings.https_proxy(),
        }
    }

    /// An HTTP client for calls to the issuer (the key store's, the introspection client's):
    /// the built-in roots plus the extra ones, through the proxy where it applies, a connect
    /// timeout, `timeout` per request, no redirects and api-guard's `User-Agent`.
    pub(crate) fn client(&self, timeout: Duration) -> awc::Client {
        let mut connector = awc::Connector::new()
            .connector(ProxyConnector::new(self.proxy.clone()))
            .timeout(CONNECT_TIMEOUT.min(timeout));
        if !self.extra_roots.is_empty() {
            // awc's own TLS configuration, as `Connector::new` builds it, plus the extra roots.
            let mut roots: rustls::RootCertStore =
                webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
            roots.add_parsable_certificates(self.extra_roots.iter().cloned());
            let mut config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            connector = connector.rustls_0_23(std::sync::Arc::new(config));
        }
        awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .add_default_header((
                header::USER_AGENT,
                concat!("api-guard/", env!("CARGO_PKG_VERSION")),
            ))
            .finish()
    }
}

/// Fetches key sets; remembers the discovered metadata until a fetch from its `jwks_uri`
/// fails.
pub(crate) struct Fetcher {
    client: awc::Client,
    source: Source,
    discovered: Option<Discovered>,
}

impl Fetcher {
    /// A fetcher for `source`, with its own HTTP client (see [`Outbound::client`]).
    pub(crate) fn new(source: Source, outbound: &Outbound) -> Self {
        let client = outbound.client(REQUEST_TIMEOUT);
        Fetcher {
            client,
            source,
            discovered: None,
        }
    }

    /// Fetches the key set, discovering its URL first if needed. The error is one line for
    /// the operator's log.
    pub(crate) async fn fetch(&mut self) -> Result<Fetched, FetchError> {
        let found = match (&self.source, &self.discovered) {
            (Source::Fixed { jwks_uri }, _) => Discovered {
                jwks_uri: jwks_uri.clone(),
                token_endpoint: None,
                introspection_endpoint: None,
            },
            (Source::Discover { .. }, Some(found)) => found.clone(),
            (Source::Discover { issuer }, None) => {
                let found = self.discover(&issuer.clone()).await?;
                self.discovered = Some(found.clone());
                found
            }
        };
        let result = self
            .fetch_keys(&found.jwks_uri)
            .await
            .map(|fetched| Fetched {
                token_endpoint: found.token_endpoint,
                introspection_endpoint: found.introspection_endpoint,
                ..fetched
            });
        if result.is_err() {
            // The metadata may have moved the key set: discover again next time.
            self.discovered = None;
        }
        result
    }

    async fn fetch_keys(&self, uri: &str) -> Result<Fetched, FetchError> {
        let (body, cache_control) = self.get(uri).await?;
        let keys = KeySet::from_json(&body)
            .map_err(|e| failure(FetchOutcome::InvalidJwks, format!("JWKS at {uri}: {e}")))?;
        if keys.is_empty() {
            return Err(failure(
                FetchOutcome::NoUsableKey,
                format!("JWKS at {uri} holds no usable signing key"),
            ));
        }
        let max_age = cache_control.as_deref().and_then(policy::max_age);
        Ok(Fetched {
            keys,
            max_age,
            uri: uri.to_owned(),
            token_endpoint: None,
            introspection_endpoint: None,
        })
    }

    /// Tries the metadata locations in turn; the first document whose `issuer` is ours wins.
    async fn discover(&self, issuer: &str) -> Result<Discovered, FetchError> {
        let mut failures = Vec::new();
        for url in metadata_urls(issuer) {
            match self.metadata(&url, issuer).await {
                Ok(found) => {
                    log::info!(
                        "discovered from {url}: jwks_uri {}, token_endpoint {}",
                        quoted(&found.jwks_uri),
                        found
                            .token_endpoint
                            .as_deref()
                            .map_or_else(|| "(none usable)".to_owned(), quoted)
                    );
                    return Ok(found);
                }
                Err(why) => failures.push(why),
            }
        }
        Err(failure(
            FetchOutcome::Discovery,
            format!("discovery failed: {}", failures.join("; ")),
        ))
    }

    async fn metadata(&self, url: &str, issuer: &str) -> Result<Discovered, String> {
        let (body, _) = self.get(url).await.map_err(|e| e.detail)?;
        read_metadata(url, &body, issuer)
    }

    /// One GET, bounded as a whole: connect, headers and body within [`REQUEST_TIMEOUT`].
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<String>), FetchError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.get_unbounded(url))
            .await
            .unwrap_or_else(|_| {
                Err(failure(
                    FetchOutcome::Timeout,
                    format!(
                        "GET {url}: no complete answer within {}s",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                ))
            })
    }

    async fn get_unbounded(&self, url: &str) -> Result<(Vec<u8>, Option<String>), FetchError> {
        let mut response = self
            .client
            .get(url)
            .insert_header((header::ACCEPT, "application/json"))
            .send()
            .await
            .map_err(|e| {
                let outcome = if matches!(e, awc::error::SendRequestError::Timeout) {
                    FetchOutcome::Timeout
                } else {
                    FetchOutcome::Unreachable
                };
                failure(outcome, format!("GET {url}: {e}"))
            })?;
        if !response.status().is_success() {
            return Err(failure(
                FetchOutcome::Status,
                format!("GET {url}: status {}", response.status()),
            ));
        }
        let cache_control = response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .body()
            .limit(MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| failure(FetchOutcome::Body, format!("GET {url}: body: {e}")))?;
        Ok((body.to_vec(), cache_control))
    }
}

/// The longest `jwks_uri` or `token_endpoint` taken from metadata.
const MAX_URL_CHARS: usize = 2048;

/// Reads an issuer's metadata document (RFC 8414 §3.2) fetched from `url`: its `issuer` must
/// be `issuer`, its `jwks_uri` https (or loopback for a loopback issuer). The URLs are kept
/// as the URL parser writes them (percent-encoded, no control characters), and every value
/// in a message is quoted and bounded: they came from the network.
pub(crate) fn read_metadata(url: &str, body: &[u8], issuer: &str) -> Result<Discovered, String> {
    #[derive(Deserialize)]
    struct Metadata {
        issuer: Option<String>,
        jwks_uri: Option<String>,
        token_endpoint: Option<String>,
        introspection_endpoint: Option<String>,
    }
    let metadata: Metadata = serde_json::from_slice(body)
        .map_err(|_| format!("{url} is not a JSON metadata document"))?;
    // RFC 8414 §3.3: the issuer in the metadata must be identical to the one we expect.
    match metadata.issuer.as_deref() {
        Some(found) if found == issuer => {}
        found => {
            return Err(format!(
                "{url} names issuer {}, expected `{issuer}`",
                quoted(found.unwrap_or("(none)"))
            ));
        }
    }
    let jwks_uri = metadata
        .jwks_uri
        .ok_or_else(|| format!("{url} has no `jwks_uri`"))?;
    // OpenID Connect Discovery §3: https. Plain http only for an issuer that is itself
    // on loopback (the development issuer), never as a way into the host's own services.
    let issuer_is_local = Url::parse(issuer).is_ok_and(|u| u.scheme() == "http");
    let acceptable = |candidate: &str| {
        if candidate.chars().count() > MAX_URL_CHARS {
            return None;
        }
        Url::parse(candidate)
            .ok()
            .filter(|parsed| {
                parsed.scheme() == "https" || (issuer_is_local && https_or_loopback(parsed))
            })
            .map(String::from)
    };
    let Some(jwks_uri) = acceptable(&jwks_uri) else {
        return Err(format!(
            "{url}: `jwks_uri` {} is not an https URL of at most {MAX_URL_CHARS} characters",
            quoted(&jwks_uri)
        ));
    };
    // An unusable endpoint is dropped: the token endpoint is only named to clients (in
    // /openapi.json); the introspection endpoint is called only when introspection is on.
    let usable = |name: &str, endpoint: Option<String>| {
        endpoint.and_then(|endpoint| {
            let usable = acceptable(&endpoint);
            if usable.is_none() {
                log::warn!(
                    "{url}: ignoring `{name}` {}: not an https URL of at most {MAX_URL_CHARS} characters",
                    quoted(&endpoint)
                );
            }
            usable
        })
    };
    Ok(Discovered {
        jwks_uri,
        token_endpoint: usable("token_endpoint", metadata.token_endpoint),
        introspection_endpoint: usable("introspection_endpoint", metadata.introspection_endpoint),
    })
}

/// Where an issuer's metadata may be: Okta's and most servers' `{issuer}/.well-known/...`,
/// then RFC 8414 §3.1's form with the well-known segment before the issuer's path.
fn metadata_urls(issuer: &str) -> Vec<String> {
    let base = issuer.trim_end_matches('/');
    let mut urls = vec![
        format!("{base}/.well-known/oauth-authorization-server"),
        format!("{base}/.well-known/openid-configuration"),
    ];
    if let Ok(url) = Url::parse(issuer) {
        let path = url.path().trim_end_matches('/');
        if !path.is_empty() {
            let origin = url.origin().ascii_serialization();
            urls.push(format!(
                "{origin}/.well-known/oauth-authorization-server{path}"
            ));
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_appended_then_inserted() {
        assert_eq!(
            metadata_urls("https://dev-1.okta.com/oauth2/default"),
            [
                "https://dev-1.okta.com/oauth2/default/.well-known/oauth-authorization-server",
                "https://dev-1.okta.com/oauth2/default/.well-known/openid-configuration",
                "https://dev-1.okta.com/.well-known/oauth-authorization-server/oauth2/default",
            ]
        );
        assert_eq!(
            metadata_urls("https://tenant.example.com/"),
            [
                "https://tenant.example.com/.well-known/oauth-authorization-server",
                "https://tenant.example.com/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn the_introspection_endpoint_is_kept_when_usable_and_dropped_when_not() {
        let issuer = "https://issuer.example";
        let document = |endpoint: &str| {
            serde_json::json!({
                "issuer": issuer,
                "jwks_uri": "https://issuer.example/keys",
                "introspection_endpoint": endpoint,
            })
            .to_string()
        };
        let read = |endpoint| {
            read_metadata("u", document(endpoint).as_bytes(), issuer)
                .expect("usable metadata")
                .introspection_endpoint
        };
        assert_eq!(
            read("https://issuer.example/v1/introspect").as_deref(),
            Some("https://issuer.example/v1/introspect")
        );
        assert_eq!(read("http://elsewhere.example/introspect"), None);
        assert_eq!(read("not a url"), None);
    }

    #[test]
    fn discovered_urls_reach_messages_escaped_and_bounded() {
        let issuer = "https://issuer.example";
        let forged = format!("https://x\nERROR forged {}", "y".repeat(50_000));
        let document = |jwks_uri: &str, token_endpoint: &str| {
            serde_json::json!({"issuer": issuer, "jwks_uri": jwks_uri, "token_endpoint": token_endpoint})
                .to_string()
        };
        let why = read_metadata("u", document(&forged, "https://t").as_bytes(), issuer)
            .expect_err("refused");
        assert!(
            !why.contains('\n') && why.len() < 600,
            "{}",
            &why[..200.min(why.len())]
        );
        let why = read_metadata(
            "u",
            document("http://host.example/\u{85}\n", "").as_bytes(),
            issuer,
        )
        .expect_err("refused");
        assert!(!why.contains('\n') && !why.contains('\u{85}'), "{why}");
        let found = read_metadata("u", document("https://k/a b", &forged).as_bytes(), issuer)
            .expect("a usable jwks_uri");
        assert_eq!(
            found.jwks_uri, "https://k/a%20b",
            "kept as the URL parser writes it"
        );
        assert_eq!(
            found.token_endpoint, None,
            "an over-long endpoint is dropped"
        );
        let why = read_metadata(
            "u",
            serde_json::json!({"issuer": forged}).to_string().as_bytes(),
            issuer,
        )
        .expect_err("wrong issuer");
        assert!(
            !why.contains('\n') && why.len() < 600,
            "{}",
            &why[..200.min(why.len())]
        );
    }
}
