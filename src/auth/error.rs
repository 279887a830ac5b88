//! The one error type of authentication and its one mapping to HTTP (RFC 6750 §3).
//!
//! [`Error`]'s `Display` is for operators and goes to logs; clients get the curated
//! [`Reason::description`] only, which never echoes the token, a secret or a library's
//! internals.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The realm named in every `WWW-Authenticate: Bearer` challenge.
pub const REALM: &str = "api-guard";

/// Why a request was not authenticated: the outcomes of RFC 6750 §3.1, plus the
/// server-side ones (keys unavailable, wiring missing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No credentials at all (or another scheme than Bearer): 401 with a bare challenge,
    /// no error code (RFC 6750 §3.1).
    #[error("no bearer token: {0}")]
    MissingToken(Reason),
    /// The request is malformed: 400 `invalid_request`.
    #[error("malformed request: {0}")]
    InvalidRequest(Reason),
    /// The token is malformed, expired, forged or for someone else: 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(Reason),
    /// The token is valid but lacks a scope: 403 `insufficient_scope`.
    #[error("insufficient scope: needs `{}`", .required.join(" "))]
    InsufficientScope {
        /// Every scope the resource needs (all of them are required).
        required: Vec<String>,
    },
    /// No signing key of the issuer was ever loaded: 503 with `Retry-After`.
    #[error("signing keys of the issuer are not available yet")]
    KeysUnavailable {
        /// When the caller may try again.
        retry_after: Duration,
    },
    /// `AuthenticatedClaims` was used in an app that never called `api_guard::configure`.
    #[error(
        "authentication is not configured: register it with `App::new().configure(api_guard::configure(guard))`"
    )]
    NotConfigured,
}

/// The detail of a rejection: a stable code for logs and metrics, a short text for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// No `Authorization` header.
    #[error("no `Authorization` header")]
    NoHeader,
    /// An `Authorization` header with another scheme (Basic, DPoP, ...).
    #[error("`Authorization` header uses another scheme than Bearer")]
    OtherScheme,
    /// `access_token` in the query string, which RFC 6750 §2.3 allows but we refuse.
    #[error("token sent in the query string")]
    TokenInQuery,
    /// More than one `Authorization` header.
    #[error("several `Authorization` headers")]
    RepeatedHeader,
    /// `Bearer` with nothing, whitespace or characters outside RFC 6750 §2.1's b64token.
    #[error("malformed `Authorization: Bearer` header")]
    MalformedHeader,
    /// Not three base64url segments, or they do not decode to JSON objects.
    #[error("token is not a well-formed JWS")]
    Malformed,
    /// Longer than the configured limit.
    #[error("token too large")]
    TooLarge,
    /// `alg` missing, `none`, symmetric, or outside `AUTH_ALGORITHMS`.
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// `typ` is neither absent, `JWT` nor `at+jwt` (RFC 9068 §2.1, RFC 8725 §3.11).
    #[error("token type not accepted")]
    WrongType,
    /// `jku`, `jwk`, `x5u` or `x5c`: keys come only from the issuer's JWKS.
    #[error("token header carries or points to a key")]
    KeyInHeader,
    /// `crit` names extensions we do not understand (RFC 7515 §4.1.11).
    #[error("token header has critical extensions")]
    UnsupportedCritical,
    /// No `kid`, and the key set has more than one candidate key.
    #[error("token header has no `kid`")]
    MissingKeyId,
    /// No key with this `kid`, even after a refetch of the key set.
    #[error("no key with this `kid` in the issuer's key set")]
    UnknownKey,
    /// The key's type or `alg` disagrees with the token's `alg`.
    #[error("key does not match the token's algorithm")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` contains none of the configured audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp`, `iss` or `aud` is missing.
    #[error("required claim missing")]
    MissingClaim,
    /// A registered claim has the wrong JSON type.
    #[error("claim has the wrong type")]
    BadClaim,
}

impl Reason {
    /// A stable, lowercase code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Reason::NoHeader => "no_header",
            Reason::OtherScheme => "other_scheme",
            Reason::TokenInQuery => "token_in_query",
            Reason::RepeatedHeader => "repeated_header",
            Reason::MalformedHeader => "malformed_header",
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::WrongType => "wrong_type",
            Reason::KeyInHeader => "key_in_header",
            Reason::UnsupportedCritical => "unsupported_critical",
            Reason::MissingKeyId => "missing_kid",
            Reason::UnknownKey => "unknown_kid",
            Reason::KeyMismatch => "key_mismatch",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::MissingClaim => "missing_claim",
            Reason::BadClaim => "bad_claim",
        }
    }

    /// The text sent to clients as `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Reason::NoHeader | Reason::OtherScheme => {
                "this endpoint needs an access token: send `Authorization: Bearer <token>`"
            }
            Reason::TokenInQuery => {
                "tokens in the query string are not accepted: send `Authorization: Bearer <token>`"
            }
            Reason::RepeatedHeader => "send exactly one `Authorization` header",
            Reason::MalformedHeader => {
                "the `Authorization` header must be `Bearer`, a space and the token"
            }
            Reason::Malformed => "the access token is not a well-formed JWT",
            Reason::TooLarge => "the access token is too large",
            Reason::AlgorithmNotAllowed => {
                "the access token is signed with an algorithm that is not allowed"
            }
            Reason::WrongType => "the token is not an access token",
            Reason::KeyInHeader => "the access token header must not carry or point to keys",
            Reason::UnsupportedCritical => {
                "the access token uses unsupported critical header parameters"
            }
            Reason::MissingKeyId => "the access token header has no key id",
            Reason::UnknownKey => {
                "the access token is signed with a key the issuer does not publish"
            }
            Reason::KeyMismatch => "the access token's algorithm does not match its signing key",
            Reason::BadSignature => "the access token signature is invalid",
            Reason::Expired => "the access token expired",
            Reason::NotYetValid => "the access token is not valid yet",
            Reason::IssuedInFuture => "the access token is issued in the future",
            Reason::WrongIssuer => "the access token was issued by another issuer",
            Reason::WrongAudience => "the access token is not meant for this API",
            Reason::MissingClaim => "the access token lacks a required claim",
            Reason::BadClaim => "the access token has a malformed claim",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl Error {
    /// The RFC 6750 `error` code, when the outcome has one.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MissingToken(_) => "unauthorized",
            Error::InvalidRequest(_) => "invalid_request",
            Error::InvalidToken(_) => "invalid_token",
            Error::InsufficientScope { .. } => "insufficient_scope",
            Error::KeysUnavailable { .. } => "temporarily_unavailable",
            Error::NotConfigured => "server_error",
        }
    }

    /// A stable code for the log line and metrics: the reason where there is one.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Error::MissingToken(r) | Error::InvalidRequest(r) | Error::InvalidToken(r) => r.code(),
            Error::InsufficientScope { .. } => "insufficient_scope",
            Error::KeysUnavailable { .. } => "keys_unavailable",
            Error::NotConfigured => "not_configured",
        }
    }

    fn description(&self) -> &'static str {
        match self {
            Error::MissingToken(r) | Error::InvalidRequest(r) | Error::InvalidToken(r) => {
                r.description()
            }
            Error::InsufficientScope { .. } => "the access token lacks a scope this endpoint needs",
            Error::KeysUnavailable { .. } => {
                "the issuer's signing keys could not be loaded yet; retry later"
            }
            Error::NotConfigured => "authentication is not configured",
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), if this outcome carries one.
    pub fn challenge(&self) -> Option<String> {
        let mut challenge = format!("Bearer realm=\"{REALM}\"");
        match self {
            Error::MissingToken(_) => {}
            Error::InvalidRequest(_) | Error::InvalidToken(_) => {
                push_param(&mut challenge, "error", self.code());
                push_param(&mut challenge, "error_description", self.description());
            }
            Error::InsufficientScope { required } => {
                push_param(&mut challenge, "error", self.code());
                push_param(&mut challenge, "error_description", self.description());
                push_param(&mut challenge, "scope", &required.join(" "));
            }
            Error::KeysUnavailable { .. } | Error::NotConfigured => return None,
        }
        Some(challenge)
    }
}

/// Appends `, name="value"` with RFC 7230 quoted-string escaping. Our values never hold
/// quotes or backslashes, but scope names come from configuration and paths from requests.
pub(crate) fn push_param(challenge: &mut String, name: &str, value: &str) {
    challenge.push_str(", ");
    challenge.push_str(name);
    challenge.push_str("=\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            challenge.push('\\');
        }
        challenge.push(c);
    }
    challenge.push('"');
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::MissingToken(_) | Error::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Error::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Error::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(value) = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        if let Error::KeysUnavailable { retry_after } = self {
            response.insert_header((header::RETRY_AFTER, retry_after.as_secs().max(1)));
        }
        response.json(Body {
            error: self.code(),
            error_description: self.description(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_token_gets_a_bare_challenge_without_error_code() {
        let error = Error::MissingToken(Reason::NoHeader);
        assert_eq!(
            error.challenge().as_deref(),
            Some("Bearer realm=\"api-guard\"")
        );
        assert_eq!(error.status_code(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn insufficient_scope_names_every_required_scope_in_the_challenge() {
        let error = Error::InsufficientScope {
            required: vec!["orders:read".into(), "orders:write".into()],
        };
        let challenge = error.challenge().unwrap_or_default();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("scope=\"orders:read orders:write\""),
            "{challenge}"
        );
        assert_eq!(error.status_code(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn challenge_parameters_escape_quotes_and_backslashes() {
        let mut challenge = String::new();
        push_param(&mut challenge, "scope", r#"a"b\c"#);
        assert_eq!(challenge, r#", scope="a\"b\\c""#);
    }

    #[test]
    fn keys_unavailable_answers_503_with_retry_after_and_no_challenge() {
        let error = Error::KeysUnavailable {
            retry_after: Duration::from_secs(7),
        };
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"7"[..])
        );
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
