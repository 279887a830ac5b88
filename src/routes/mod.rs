//! The routes of the sample service: `/api/hello` (open), `/api/whoami` (protected), health,
//! metrics, `/openapi.json` and the RFC 9728 metadata.

mod echo;
pub mod health;
mod hello;
pub mod openapi;
mod prometheus;
mod published;
pub mod resource_metadata;
mod whoami;

pub use prometheus::metrics;
pub use published::Published;

use actix_web::{HttpResponse, web};
use serde_json::json;

/// Registers every route of the sample service but `/metrics` (see [`metrics`]), which the
/// service serves here or on its own listener. The auth [`Guard`](api_guard::Guard) must be
/// registered too (see [`api_guard::configure`]), and a `web::Data<`[`Published`]`>` for
/// `/openapi.json` and the protected-resource metadata.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(hello::hello)
        .service(whoami::whoami)
        .configure(echo::configure)
        .service(openapi::openapi)
        .configure(configure_own)
        .default_service(web::to(not_found));
}

/// Registers api-guard's own routes alone, for gateway mode (where every other path belongs
/// to the upstream): health and the protected-resource metadata. No default service: the
/// proxy is.
pub fn configure_own(cfg: &mut web::ServiceConfig) {
    cfg.service(health::live)
        .service(health::ready)
        .configure(resource_metadata::configure);
}

/// 404 with a JSON body, for paths no route matches.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({"error": "not_found", "error_description": "no such route"}))
}
