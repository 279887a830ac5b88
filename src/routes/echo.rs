//! `POST /api/echo`: protected, because the handler takes `AuthenticatedClaims`. It answers
//! with the JSON body it got, so a caller (and the load-balancer test) can tell that a
//! request with a body went through whole; nginx never replays a POST, so it is the request
//! a rolling restart must not lose.

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpRequest, HttpResponse, web};
use api_guard::AuthenticatedClaims;
use serde_json::{Value, json};

/// The largest body accepted, in bytes; a larger one is answered 413.
pub const LIMIT: usize = 64 * 1024;

/// Registers the route with its body limit and its JSON errors.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/echo")
            .app_data(
                web::JsonConfig::default()
                    .limit(LIMIT)
                    .error_handler(body_error),
            )
            .route(web::post().to(echo)),
    );
}

/// Answers 200 with the body, once the token is verified (the claims are extracted first,
/// so a request without a valid token gets its 401 whatever its body).
async fn echo(_claims: AuthenticatedClaims, body: web::Json<Value>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(body.into_inner())
}

/// A body that is not JSON (400), not `application/json` (415) or too large (413), with the
/// service's JSON error body.
fn body_error(error: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let (status, description) = match &error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {LIMIT} bytes"),
        ),
        // actix says 400; RFC 9110 §15.5.16 has the status for it.
        JsonPayloadError::ContentType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json".to_owned(),
        ),
        _ => (
            actix_web::ResponseError::status_code(&error),
            "the body is not valid JSON".to_owned(),
        ),
    };
    let response = HttpResponse::build(status)
        .json(json!({"error": "invalid_request", "error_description": description}));
    actix_web::error::InternalError::from_response(error, response).into()
}
