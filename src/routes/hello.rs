//! `GET /api/hello`: anonymous, because the handler takes no `AuthenticatedClaims`.

use actix_web::{HttpResponse, get};
use serde_json::json;

/// Answers anyone, with or without a token.
#[get("/api/hello")]
pub async fn hello() -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"message": "Hello from api-guard: this endpoint is open to anyone."}))
}
