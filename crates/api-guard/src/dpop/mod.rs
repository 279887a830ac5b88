//! DPoP (RFC 9449): access tokens bound to a key the client holds, sent as
//! `Authorization: DPoP <token>` with a `DPoP` proof header signed by that key for each
//! request. A stolen bound token is useless without the key; a captured proof is useless
//! for another request, token or moment, and used once only.
//!
//! [`DpopMode`] says whether the guard accepts DPoP (`allowed`, the default), refuses it
//! (`off`: the `DPoP` scheme counts as no credentials) or requires it (`required`: Bearer
//! tokens are refused with a `DPoP` challenge). [`require_dpop`](crate::require_dpop)
//! requires it on some routes only.
//!
//! ```
//! use std::time::Duration;
//! use api_guard::{AuthSettings, DpopMode};
//!
//! let settings = AuthSettings::new("https://dev-123456.okta.com/oauth2/default")
//!     .with_dpop(DpopMode::Required)
//!     .with_dpop_window(Duration::from_secs(120))
//!     .with_public_url("https://api.example.com");
//! assert!(settings.validate().is_ok());
//! ```
//!
//! # Security
//!
//! A proof is accepted when all of RFC 9449 §4.3 hold (`proof.rs` checks them in order):
//! one `DPoP` header of at most 8 KiB; `typ` `dpop+jwt`; an asymmetric `alg` (never `none`
//! or HMAC); a public `jwk` (private members refused) that verifies the signature; `htm` the
//! method; `htu` the request's public URL (RFC 3986 normalisation, `htu.rs`); `iat` within the
//! window and not in the future past the leeway; `ath` the token's hash; the token's
//! `cnf.jkt` the key's RFC 7638 thumbprint; and its `jti` new to the replay store
//! (`replay.rs`). Behind a proxy, set the public URL: the `Host` header names it otherwise.

pub(crate) mod htu;
mod nonce;

use nonce::Nonces;
pub(crate) mod proof;
mod replay;

use actix_web::http::header::{HOST, HeaderName};
use actix_web::{HttpMessage, HttpRequest};

pub use replay::{
    MemoryReplayStore, ProofId, Remembered, ReplayFuture, ReplayStore, ReplayStoreError,
};

pub(crate) use proof::CheckedProof;

use crate::claims::AuthenticatedClaims;
use crate::error::{Error, Reason};
use crate::settings::DpopMode;

/// The `algs` of every `DPoP` challenge and the service's metadata: every [`Algorithm`]
/// (crate::Algorithm), all asymmetric. A client's proof algorithm is the client's choice,
/// independent of the issuer's.
pub(crate) const ALGS: &str = "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA";

/// The request header carrying the proof.
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The algorithms a proof may be signed with, space-separated: what the service advertises
/// as `dpop_signing_alg_values_supported` (RFC 9449 §5.1).
pub fn dpop_algorithms() -> impl Iterator<Item = &'static str> {
    ALGS.split(' ')
}

/// The key-binding step of DPoP (RFC 9449 §4.3 check 12, §7.1, §7.2) for verified `claims`:
/// `proof_thumbprint` is the RFC 7638 thumbprint of the proof's key when the token came as
/// `Authorization: DPoP` with a valid proof, `None` when it came as Bearer.
///
/// - Bearer and a token with `cnf.jkt`: refused ([`Reason::BoundTokenAsBearer`]).
/// - Bearer while `mode` is [`DpopMode::Required`]: refused ([`Reason::DpopRequired`]).
/// - DPoP and a token without `cnf.jkt`: refused ([`Reason::UnboundToken`]).
/// - DPoP and a `cnf.jkt` that is not the proof key's: refused ([`Reason::DpopKeyMismatch`]).
///
/// ```
/// use api_guard::{AuthenticatedClaims, DpopMode, Reason, check_dpop_binding};
///
/// /// What the token of `claims` would get if it were sent as Bearer.
/// fn as_bearer(claims: &AuthenticatedClaims) -> Result<(), Reason> {
///     check_dpop_binding(DpopMode::Allowed, claims, None)
/// }
/// ```
pub fn check_dpop_binding(
    mode: DpopMode,
    claims: &AuthenticatedClaims,
    proof_thumbprint: Option<&str>,
) -> Result<(), Reason> {
    match (proof_thumbprint, claims.dpop_thumbprint()) {
        (None, Some(_)) => Err(Reason::BoundTokenAsBearer),
        (None, None) if mode == DpopMode::Required => Err(Reason::DpopRequired),
        (None, None) => Ok(()),
        (Some(_), None) => Err(Reason::UnboundToken),
        (Some(proof), Some(jkt)) if proof == jkt => Ok(()),
        (Some(_), Some(_)) => Err(Reason::DpopKeyMismatch),
    }
}

/// The request a DPoP proof must name (`htm`, `htu`) when it is not the HTTP request that
/// carries the token: a forward-auth endpoint (nginx `auth_request`, Caddy `forward_auth`,
/// Traefik `forwardAuth`) is asked about the client's request, which the front proxy
/// describes in headers (`X-Original-Method`, `X-Original-URI`, ...). Insert it in the
/// request's extensions before the extractor runs, and only when the describing peer is
/// trusted: the proof is then checked against this method and path (with the public URL's
/// scheme and authority) instead of the request's own.
///
/// Insert it before anything authenticates the request: once an extractor or
/// [`RequireScopes`](crate::RequireScopes) has checked it, the claims are kept for the
/// request and the proof is not checked again. A path that does not start with `/` matches
/// no proof.
///
/// ```
/// use actix_web::HttpMessage;
/// use actix_web::http::Method;
/// use api_guard::ProofTarget;
///
/// # let req = actix_web::test::TestRequest::default().to_http_request();
/// // In a forward-auth handler, for a request a trusted front proxy described:
/// req.extensions_mut().insert(ProofTarget::new(Method::POST, "/orders"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProofTarget {
    /// The client's method.
    pub method: actix_web::http::Method,
    /// The client's path, without the query.
    pub path: String,
}

impl ProofTarget {
    /// The request `method path` (`path` without the query).
    pub fn new(method: actix_web::http::Method, path: impl Into<String>) -> Self {
        ProofTarget {
            method,
            path: path.into(),
        }
    }
}

/// Finds and checks the proof of a request that came as `Authorization: DPoP <token>`:
/// every check but the binding and the replay store. `bound_to` is the token's `cnf.jkt`.
pub(crate) fn check_request(
    req: &HttpRequest,
    token: &str,
    bound_to: Option<&str>,
    settings: &crate::AuthSettings,
    now: u64,
) -> Result<CheckedProof, Error> {
    let mut headers = req.headers().get_all(DPOP);
    let Some(value) = headers.next() else {
        return Err(Error::from(Reason::DpopMissingProof));
    };
    if headers.next().is_some() {
        return Err(Error::from(Reason::DpopRepeatedHeader));
    }
    if value.len() > proof::MAX_PROOF_BYTES {
        return Err(Error::from(Reason::DpopTooLarge));
    }
    let proof = value
        .to_str()
        .map_err(|_| Error::from(Reason::DpopMalformed))?;
    let target = req.extensions().get::<ProofTarget>().cloned();
    let (method, path) = match &target {
        Some(target) => (target.method.as_str(), target.path.as_str()),
        None => (req.method().as_str(), req.uri().path()),
    };
    let url =
        request_url(req, path, settings.public_url()).ok_or(Error::from(Reason::DpopWrongUrl))?;
    let nonces = settings.dpop_nonce_secret().map(Nonces::new);
    let expected = proof::Expected {
        method,
        url: &url,
        token: Some(token),
        now,
        window: settings.dpop_window(),
        leeway: settings.leeway(),
        nonces: nonces.as_ref(),
        bound_to,
    };
    proof::check(proof, &expected).map_err(|reason| match (reason, &nonces) {
        (Reason::DpopUseNonce, Some(nonces)) => Error::UseDpopNonce {
            nonce: nonces.current(now),
        },
        _ => Error::from(reason),
    })
}

/// A proof sent to a token endpoint that passed [`check_token_request_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRequestProof {
    /// The RFC 7638 thumbprint of the proof's key: the `cnf.jkt` to put in the token.
    pub thumbprint: String,
    /// The proof's id, for the endpoint's own [`ReplayStore`].
    pub id: ProofId,
    /// How long the replay store must remember it.
    pub ttl: std::time::Duration,
}

/// Checks a DPoP proof sent to an authorization server's token endpoint (RFC 9449 §5):
/// every check of §4.3 but `ath` (no token exists yet), for a request with `method` to
/// `url` (the endpoint's public URL). The replay check is the caller's, with the returned
/// id. For an authorization server written with this crate, and the service's development
/// issuer.
pub fn check_token_request_proof(
    proof: &str,
    method: &str,
    url: &str,
    window: std::time::Duration,
    leeway: std::time::Duration,
) -> Result<TokenRequestProof, Reason> {
    let url = htu::normalise(url).ok_or(Reason::DpopWrongUrl)?;
    let expected = proof::Expected {
        method,
        url: &url,
        token: None,
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        window,
        leeway,
        nonces: None,
        bound_to: None,
    };
    let checked = proof::check(proof, &expected)?;
    Ok(TokenRequestProof {
        thumbprint: checked.thumbprint,
        id: checked.id,
        ttl: checked.ttl,
    })
}

/// The URL of `path` as a proof's `htu` must name it, normalised: `public_url` (or the
/// connection's scheme and the `Host` header of `req`) and `path`, without a query.
fn request_url(req: &HttpRequest, path: &str, public_url: Option<&str>) -> Option<String> {
    // Anything else would run into the authority (`https://api.example.com` + `.evil/x`).
    if !path.starts_with('/') {
        return None;
    }
    match public_url {
        Some(base) => htu::normalise(&format!("{}{path}", base.trim_end_matches('/'))),
        None => {
            let scheme = if req.app_config().secure() {
                "https"
            } else {
                "http"
            };
            let host = req
                .headers()
                .get(HOST)
                .and_then(|value| value.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
            if host.contains(['/', '@', '?', '#']) {
                return None;
            }
            htu::normalise(&format!("{scheme}://{host}{path}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    #[test]
    fn the_challenge_algorithms_are_every_algorithm() {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|alg| alg.name()).collect();
        assert_eq!(ALGS, names.join(" "));
    }

    #[test]
    fn modes_parse_from_their_names_only() {
        for mode in [DpopMode::Off, DpopMode::Allowed, DpopMode::Required] {
            assert_eq!(mode.name().parse(), Ok(mode));
        }
        assert!("Required".parse::<DpopMode>().is_err());
        assert_eq!(DpopMode::default(), DpopMode::Allowed);
    }

    #[test]
    fn the_request_url_comes_from_the_public_url_when_set() {
        let req = actix_web::test::TestRequest::get()
            .uri("/api/whoami?x=1")
            .insert_header((HOST, "evil.example"))
            .to_http_request();
        let path = req.uri().path();
        assert_eq!(
            request_url(&req, path, Some("https://API.example.com:443/")).as_deref(),
            Some("https://api.example.com/api/whoami")
        );
        // A path that does not start with `/` would run into the authority.
        assert_eq!(
            request_url(&req, ".evil.example/x", Some("https://api.example.com")),
            None
        );
        assert_eq!(
            request_url(&req, path, None).as_deref(),
            Some("http://evil.example/api/whoami")
        );
    }
}
