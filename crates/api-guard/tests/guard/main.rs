//! The library as an embedder uses it, with the test kit: handlers in an actix app, tokens
//! from an in-process issuer, no network. One test binary.
#![allow(missing_docs, clippy::unwrap_used)]

mod cache_binding;
mod dpop;
mod extractor;
mod hardening;
mod issuers;
mod scopes;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};

/// `GET path` through `app`, with `token` as a Bearer token if given: status, the
/// `WWW-Authenticate` header and the body.
pub async fn get<S>(app: &S, path: &str, token: Option<&str>) -> (u16, String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut request = TestRequest::get().uri(path);
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let response = test::call_service(app, request.to_request()).await;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
    (status, challenge, body)
}
