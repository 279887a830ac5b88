//! The documents a resource server reads from the issuer: the JWK Set (RFC 7517 §5) at Okta's
//! `/v1/keys`, and the authorization server metadata (RFC 8414 §2) served at both
//! `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.

use std::sync::atomic::Ordering;

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::{DevIssuer, read};

/// `GET {prefix}/v1/keys`: the published keys, or the override, or 503 while failing.
pub(super) async fn keys(issuer: web::Data<DevIssuer>) -> HttpResponse {
    let inner = &issuer.inner;
    inner.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if inner.failing.load(Ordering::SeqCst) {
        return unavailable();
    }
    let overridden = read(&inner.jwk_override).clone();
    let jwks = overridden.unwrap_or_else(|| inner.keys.jwks());
    // The resource server's refresh policy honours this max-age, within its bounds.
    let max_age = format!("max-age={}", inner.settings.jwks_max_age.as_secs());
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, max_age))
        .json(jwks)
}

/// `GET {prefix}/.well-known/{oauth-authorization-server,openid-configuration}`: one document,
/// since RFC 8414 §2 and OpenID Connect Discovery §3 agree on every member used here.
pub(super) async fn discovery(issuer: web::Data<DevIssuer>) -> HttpResponse {
    issuer.inner.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    if issuer.inner.failing.load(Ordering::SeqCst) {
        return unavailable();
    }
    HttpResponse::Ok().json(document(&issuer))
}

fn document(issuer: &DevIssuer) -> Value {
    let mut algs: Vec<Value> = Vec::new();
    for key in issuer.inner.keys.jwks()["keys"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if !algs.contains(&key["alg"]) {
            algs.push(key["alg"].clone());
        }
    }
    json!({
        "issuer": issuer.issuer(),
        "token_endpoint": issuer.token_endpoint(),
        "jwks_uri": issuer.endpoint("/v1/keys"),
        "introspection_endpoint": issuer.endpoint("/v1/introspect"),
        "revocation_endpoint": issuer.endpoint("/v1/revoke"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": issuer.settings().scopes,
        "response_types_supported": ["token"],
        "id_token_signing_alg_values_supported": algs,
    })
}

/// What `set_failing(true)` answers; never cached, so recovery is seen at once.
fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(json!({
            "error": "temporarily_unavailable",
            "error_description": "the development issuer is failing on purpose",
        }))
}
