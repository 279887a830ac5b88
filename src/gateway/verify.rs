//! Forward-auth: `/auth/verify`, any method. A front proxy (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `forwardAuth`) asks before it serves a request; api-guard applies
//! the same normalisation, policy and token check as its own proxy and answers 200 with the
//! identity headers for the proxy to pass on, or the service's own 401/403 (with its
//! `WWW-Authenticate` challenge), or 503 while the issuer's keys are unavailable.
//!
//! The request being decided is named by `X-Original-Method` / `X-Original-URI` (nginx) or
//! `X-Forwarded-Method` / `X-Forwarded-Uri` (Traefik, Caddy), believed only from a peer in
//! `TRUSTED_PROXIES`; from anyone else they are ignored and the request's own method and
//! path are decided. The token is the `Authorization` header the front proxy passes along;
//! a DPoP proof must name the described method and path (the library's `ProofTarget`).
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

const ORIGINAL_METHOD: [HeaderName; 2] = [
    HeaderName::from_static("x-original-method"),
    HeaderName::from_static("x-forwarded-method"),
];
const ORIGINAL_URI: [HeaderName; 2] = [
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-forwarded-uri"),
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
    let (method, path) = if trusted {
        described(req.headers())?
    } else {
        (None, None)
    };
    let described = method.is_some() || path.is_some();
    let method = method.unwrap_or_else(|| req.method().clone());
    let raw_path = path.as_deref().unwrap_or(req.path());
    let path = normalized(raw_path)?;
    if described {
        // A challenge names the metadata of the resource the client asked for, and a DPoP
        // proof must name the client's request, not this one.
        req.extensions_mut().insert(ResourcePath(path.clone()));
        req.extensions_mut().insert(ProofTarget {
            method: method.clone(),
            path: raw_path.to_owned(),
        });
    }
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

/// The method and path (query and fragment cut off) a trusted front proxy describes, each
/// `None` when it sends no such header.
fn described(headers: &HeaderMap) -> Result<(Option<Method>, Option<String>), Error> {
    let method = match first_of(headers, &ORIGINAL_METHOD)? {
        None => None,
        Some(text) => Some(Method::from_bytes(text.trim().as_bytes()).map_err(|_| {
            Error::BadForwardedRequest("the original method is not an HTTP method")
        })?),
    };
    let path = first_of(headers, &ORIGINAL_URI)?.map(|uri| {
        let end = uri.find(['?', '#']).unwrap_or(uri.len());
        uri[..end].trim().to_owned()
    });
    Ok((method, path))
}

/// The one value of the first of `names` present; two values of it are refused (which one
/// would the front proxy have meant?).
fn first_of<'a>(headers: &'a HeaderMap, names: &[HeaderName]) -> Result<Option<&'a str>, Error> {
    for name in names {
        let mut values = headers.get_all(name);
        let Some(value) = values.next() else { continue };
        if values.next().is_some() {
            return Err(Error::BadForwardedRequest(
                "the original request is named twice; send X-Original-* or X-Forwarded-* once",
            ));
        }
        return value
            .to_str()
            .map(Some)
            .map_err(|_| Error::BadForwardedRequest("the original URI is not ASCII"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn described_by(pairs: &[(&str, &str)]) -> Result<(Option<Method>, Option<String>), Error> {
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
    fn nginx_names_win_and_the_query_is_cut_off() {
        let (method, path) = described_by(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/b"),
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/orders/1?x=/admin#frag"),
        ])
        .unwrap();
        assert_eq!(method, Some(Method::DELETE));
        assert_eq!(path.as_deref(), Some("/orders/1"));
        let (method, path) = described_by(&[("x-forwarded-uri", "/c?d")]).unwrap();
        assert_eq!((method, path.as_deref()), (None, Some("/c")));
        assert!(described_by(&[("x-original-uri", "/a"), ("x-original-uri", "/b")]).is_err());
        assert!(described_by(&[("x-original-method", "G E T")]).is_err());
    }
}
