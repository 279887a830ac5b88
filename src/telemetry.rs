//! Logging: one line per request with method, path, status, latency, request id and, on a
//! rejection, its reason. Never the token: the query string is not logged either.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

use crate::auth::Error;

/// The header carrying the request id, taken from the caller or generated, and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The request-log middleware: `App::new().wrap(from_fn(api_guard::telemetry::log_request))`.
pub async fn log_request<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable_id(v))
        .map_or_else(generate_id, str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.path().to_owned();
    let log = |status: StatusCode, error: Option<&actix_web::Error>| {
        let reason = error
            .and_then(|e| e.as_error::<Error>())
            .map(|e| format!(" reason={}", e.reason_code()))
            .unwrap_or_default();
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        let line = format!(
            "{method} {path} {} {millis:.1}ms id={id}{reason}",
            status.as_u16()
        );
        if status.is_server_error() {
            log::warn!(target: "api_guard::request", "{line}");
        } else {
            log::info!(target: "api_guard::request", "{line}");
        }
    };

    match next.call(req).await {
        Ok(mut response) => {
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            log(response.status(), response.response().error());
            Ok(response)
        }
        Err(error) => {
            // actix turns the error into the response after us; log what it will send.
            log(error.as_response_error().status_code(), Some(&error));
            Err(error)
        }
    }
}

/// Printable ASCII of sensible length, so a caller cannot inject into logs.
fn is_acceptable_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

fn generate_id() -> String {
    let mut bytes = [0u8; 12];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return format!("{:x}", std::process::id());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(2 * bytes.len());
    for b in bytes {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_printable_ascii() {
        assert!(is_acceptable_id("abc-123"));
        assert!(!is_acceptable_id(""));
        assert!(!is_acceptable_id("a b"));
        assert!(!is_acceptable_id(&"x".repeat(129)));
        assert_eq!(generate_id().len(), 24);
    }
}
