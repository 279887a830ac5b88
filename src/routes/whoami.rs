//! `GET /api/whoami`: protected, because the handler takes `AuthenticatedClaims`.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, get};
use serde_json::json;

use crate::AuthenticatedClaims;

/// Answers with the caller's verified claims.
#[get("/api/whoami")]
pub async fn whoami(claims: AuthenticatedClaims) -> HttpResponse {
    // The claims are the caller's own; no shared cache should keep them.
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(json!({
            "sub": claims.sub(),
            "client_id": claims.client_id(),
            "scopes": claims.scopes(),
            "claims": claims.claims(),
        }))
}
