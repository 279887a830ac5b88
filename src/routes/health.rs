//! `GET /health/live` and `GET /health/ready`, for load balancers and orchestrators.

use actix_web::{HttpRequest, HttpResponse, get};
use serde_json::json;

use crate::Guard;
use crate::shutdown::Drain;

/// 200 while the process serves requests.
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

/// 200 once the issuer's signing keys are loaded; 503 before, so no traffic is routed to a
/// replica that could only answer 503 on protected routes, and 503 again once a shutdown
/// signal started the drain.
#[get("/health/ready")]
pub async fn ready(req: HttpRequest) -> HttpResponse {
    if req.app_data::<Drain>().is_some_and(Drain::is_draining) {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "draining",
            "reason": "shutting down: finishing requests in flight, send new ones elsewhere",
        }));
    }
    let status = req.app_data::<Guard>().map(|guard| guard.store().status());
    match status {
        Some(status) if status.keys > 0 => HttpResponse::Ok().json(json!({
            "status": "ready",
            "keys": status.keys,
            "keys_age_secs": status.age.map(|age| age.as_secs()),
        })),
        _ => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "reason": "the issuer's signing keys are not loaded yet"})),
    }
}
