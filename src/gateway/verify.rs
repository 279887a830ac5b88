//! Forward-auth: `/auth/verify`, any method. A front proxy (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `forwardAuth`) asks before it serves a request; api-guard applies
//! the same normalisation, policy and token check as its own proxy and answers 200 with the
//! identity headers for the proxy to pass on, or the service's own 401/403 (with its
//! `WWW-Authenticate` challenge), or 503 while the issuer's keys are unavailable.
//!
//! The request being decided is named by `X-Original-Method` / `X-Original-URI` (nginx) or
//! `X-Forwarded-Method` / `X-Forwarded-Uri` (Traefik, Caddy), believed only from a peer in
//! `TRUSTED_PROXIES`; from anyone else they are ignored and the request's own method and
//! path are decided. Both halves of one pair, or 400: a front proxy passes the client's other
//! headers on, so a second pair (or half of one) may be the client's. The token is the
//! `Authorization` header the front proxy passes along; a DPoP proof must name the described
//! method and the path as normalised (the library's `ProofTarget`).
//!
//! A 200 always carries the four identity headers, empty on an anonymous rule (and for a
//! claim the token lacks), so a front proxy that copies them overwrites a client's own.

use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use api_guard::ProofTarget;

use crate::routes::resource_metadata::ResourcePath;

use super::Gateway;
use super::access::{Allowed, authorize, normalized};
use super::error::Error;
use super::identity;

/// How front proxies describe the request they ask about: nginx's `auth_request` snippet
/// sets the first pair, Caddy's `forward_auth` and Traefik's `forwardAuth` the second. Each
/// passes the client's other headers on, so a request describing itself with both pairs is
/// refused: one of them came from the client.
const DESCRIPTIONS: [(HeaderName, HeaderName); 2] = [
    (
        HeaderName::from_static("x-original-method"),
        HeaderName::from_static("x-original-uri"),
    ),
    (
        HeaderName::from_static("x-forwarded-method"),
        HeaderName::from_static("x-forwarded-uri"),
    ),
];

/// The handler, for every method.
pub(super) async fn verify(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    let Some(gateway) = req.app_data::<Gateway>() else {
        log::error!("/auth/verify is registered without its gateway: use Gateway::configure");
        return Ok(HttpResponse::InternalServerError().finish());
    };
    let trusted = req
        .peer_addr()
        .is_some_and(|peer| gateway.0.trusted.contains(peer.ip()));
    let described = if trusted {
        described(req.headers())?
    } else {
        None
    };
    let (method, path) = match described {
        Some((method, raw_path)) => {
            let path = normalized(&raw_path)?;
            // A challenge names the metadata of the resource the client asked for, and a
            // DPoP proof must name the client's request (as normalised for the policy, the
            // path the upstream receives), not this one.
            req.extensions_mut().insert(ResourcePath(path.clone()));
            req.extensions_mut()
                .insert(ProofTarget::new(method.clone(), path.clone()));
            (method, path)
        }
        None => (req.method().clone(), normalized(req.path())?),
    };
    let allowed = authorize(&gateway.0.policy, &req, &method, &path).await?;
    let mut response = HttpResponse::Ok();
    // A front proxy may cache this answer only if told to; say it must not.
    response.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    let mut response = response.finish();
    let identity = match &allowed {
        Allowed::Authenticated(identity) => Some(identity),
        Allowed::Anonymous => None,
    };
    identity::write_all(identity, response.headers_mut());
    Ok(response)
}

/// The method and path (query and fragment cut off) a trusted front proxy describes, or
/// `None` when it describes none. Both halves of one pair, or 400.
fn described(headers: &HeaderMap) -> Result<Option<(Method, String)>, Error> {
    let mut found = None;
    for (method_name, uri_name) in &DESCRIPTIONS {
        let (method, uri) = (one_of(headers, method_name)?, one_of(headers, uri_name)?);
        if method.is_none() && uri.is_none() {
            continue;
        }
        if found.is_some() {
            return Err(Error::BadForwardedRequest(
                "the original request is described by both X-Original-* and X-Forwarded-*; a front proxy sets one pair, so the other came from the client",
            ));
        }
        let (Some(method), Some(uri)) = (method, uri) else {
            return Err(Error::BadForwardedRequest(
                "the original request is described by half: send its method and its URI (X-Original-Method and X-Original-URI, or X-Forwarded-Method and X-Forwarded-Uri)",
            ));
        };
        let method = Method::from_bytes(method.trim().as_bytes())
            .map_err(|_| Error::BadForwardedRequest("the original method is not an HTTP method"))?;
        let end = uri.find(['?', '#']).unwrap_or(uri.len());
        found = Some((method, uri[..end].trim().to_owned()));
    }
    Ok(found)
}

/// The one value of `name`, if present; two values are refused (which one would the front
/// proxy have meant?).
fn one_of<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Error> {
    let mut values = headers.get_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::BadForwardedRequest(
            "the original request is named twice; send X-Original-* or X-Forwarded-* once",
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| Error::BadForwardedRequest("the original URI is not ASCII"))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn described_by(pairs: &[(&str, &str)]) -> Result<Option<(Method, String)>, Error> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        described(&headers)
    }

    #[test]
    fn one_pair_describes_the_request_and_the_query_is_cut_off() {
        let (method, path) = described_by(&[
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/orders/1?x=/admin#frag"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((method, path.as_str()), (Method::DELETE, "/orders/1"));
        let (method, path) =
            described_by(&[("x-forwarded-method", "GET"), ("x-forwarded-uri", "/c?d")])
                .unwrap()
                .unwrap();
        assert_eq!((method, path.as_str()), (Method::GET, "/c"));
        assert!(described_by(&[("x-request-id", "1")]).unwrap().is_none());
    }

    #[test]
    fn both_pairs_half_a_pair_or_a_repeated_header_are_refused() {
        for pairs in [
            // A client's own X-Original-URI passed on by Caddy or Traefik.
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/b"),
                ("x-original-uri", "/public"),
            ][..],
            // Mixed: the method of one pair, the URI of the other.
            &[("x-original-method", "GET"), ("x-forwarded-uri", "/b")],
            &[("x-forwarded-uri", "/b")],
            &[("x-original-method", "GET")],
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/a"),
                ("x-original-uri", "/b"),
            ],
            &[("x-original-method", "G E T"), ("x-original-uri", "/a")],
        ] {
            assert!(described_by(pairs).is_err(), "{pairs:?}");
        }
    }
}
