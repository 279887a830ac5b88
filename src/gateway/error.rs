//! The gateway's own refusals and failures, each with a status, a JSON body like the
//! service's (`error`, `error_description`) and a stable reason for the request log and the
//! metrics. Authentication failures are not here: they are the library's [`AuthError`]
//! (`api_guard::AuthError`), answered by its one table.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::path::PathError;
use crate::telemetry::LogReason;

/// Why the gateway did not pass a request on, or could not get the upstream's answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path cannot be normalised without ambiguity: 400.
    #[error("the request path cannot be normalised: {0}")]
    BadPath(PathError),
    /// A forward-auth header names a method or URI that is not one: 400.
    #[error("forward-auth: {0}")]
    BadForwardedRequest(&'static str),
    /// The policy refuses the path to everyone: 403.
    #[error("the policy denies this path")]
    Denied,
    /// The request body is larger than `UPSTREAM_MAX_BODY_BYTES`: 413.
    #[error("request body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// A WebSocket upgrade, or a transfer coding other than chunked: 501.
    #[error("not implemented by the gateway: {0}")]
    NotImplemented(&'static str),
    /// The upstream refused the connection, reset it, or could not be resolved: 502.
    #[error("the upstream could not be reached: {0}")]
    Unreachable(String),
    /// The upstream's answer is not HTTP: 502.
    #[error("the upstream sent a malformed answer: {0}")]
    BadAnswer(String),
    /// The upstream took longer than the timeouts allow: 504.
    #[error("the upstream did not answer in time: {0}")]
    Timeout(&'static str),
    /// The client's body broke off before its end: 400.
    #[error("the request body broke off: {0}")]
    BrokenBody(String),
}

impl Error {
    /// A stable code for the request log and the metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Error::BadPath(_) => "bad_path",
            Error::BadForwardedRequest(_) => "bad_forwarded_request",
            Error::Denied => "policy_deny",
            Error::TooLarge { .. } => "body_too_large",
            Error::NotImplemented(_) => "not_implemented",
            Error::Unreachable(_) => "upstream_unreachable",
            Error::BadAnswer(_) => "upstream_malformed",
            Error::Timeout(_) => "upstream_timeout",
            Error::BrokenBody(_) => "broken_body",
        }
    }

    /// The `error` code and the curated text clients see.
    fn public(&self) -> (&'static str, String) {
        match self {
            Error::BadPath(e) => (
                "invalid_request",
                format!("the request path is ambiguous: {e}"),
            ),
            Error::BadForwardedRequest(what) => ("invalid_request", (*what).to_owned()),
            Error::Denied => (
                "access_denied",
                "this path is closed to everyone by the gateway's policy".to_owned(),
            ),
            Error::TooLarge { limit } => (
                "payload_too_large",
                format!("the request body is larger than the {limit} bytes this API accepts"),
            ),
            Error::NotImplemented(what) => ("not_implemented", (*what).to_owned()),
            Error::Unreachable(_) => (
                "bad_gateway",
                "the API behind this gateway could not be reached; retry later".to_owned(),
            ),
            Error::BadAnswer(_) => (
                "bad_gateway",
                "the API behind this gateway sent a malformed answer".to_owned(),
            ),
            Error::Timeout(_) => (
                "gateway_timeout",
                "the API behind this gateway did not answer in time".to_owned(),
            ),
            Error::BrokenBody(_) => (
                "invalid_request",
                "the request body broke off before its end".to_owned(),
            ),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::BadPath(_) | Error::BadForwardedRequest(_) | Error::BrokenBody(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::Denied => StatusCode::FORBIDDEN,
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Unreachable(_) | Error::BadAnswer(_) => StatusCode::BAD_GATEWAY,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // The request log says which reason; this line says what went wrong.
            log::warn!("{self}");
        } else {
            log::debug!("{self}");
        }
        let (error, description) = self.public();
        let mut response = HttpResponse::build(status);
        if matches!(self, Error::TooLarge { .. } | Error::BrokenBody(_)) {
            // The rest of the body is not read: the connection cannot carry another request.
            response.force_close();
        }
        let mut response = response.json(json!({"error": error, "error_description": description}));
        response
            .extensions_mut()
            .insert(LogReason(self.reason_code()));
        response
    }
}
