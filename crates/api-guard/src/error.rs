//! The one error type of authentication and its one mapping to HTTP (RFC 6750 §3).
//!
//! Every rejection has a [`Reason`], and one table ([`Reason::row`]) takes each reason to its
//! outcome (status and RFC 6750 code), its stable code for logs and metrics, and the curated
//! description clients see. [`Error`]'s `Display` is for operators and goes to logs; clients
//! get the curated description only, which never echoes the token, a secret or a library's
//! internals. The `WWW-Authenticate` header is a typed [`Challenge`], so middleware that adds
//! a parameter (RFC 9728's `resource_metadata`) never re-parses header text.
//!
//! ```
//! use actix_web::ResponseError;
//! use api_guard::{AuthError, Reason};
//!
//! let error = AuthError::from(Reason::Expired);
//! assert_eq!(error.status_code(), 401);
//! assert_eq!(
//!     error.challenge().map(|c| c.to_string()).as_deref(),
//!     Some(r#"Bearer realm="api-guard", error="invalid_token", error_description="the access token expired""#)
//! );
//! ```

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue, InvalidHeaderValue, TryIntoHeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The realm named in every `WWW-Authenticate: Bearer` challenge.
const REALM: &str = "api-guard";

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
    /// The token needs introspection (RFC 7662) and the introspection endpoint could not
    /// give a usable answer (unreachable, too slow, an error status or not an RFC 7662
    /// answer): 503 with `Retry-After`, never a refusal and never an accept.
    #[error("the introspection endpoint gave no usable answer")]
    IntrospectionUnavailable {
        /// When the caller may try again.
        retry_after: Duration,
    },
    /// `AuthenticatedClaims` was used in an app that never called `api_guard::configure`.
    #[error(
        "authentication is not configured: register it with `App::new().configure(api_guard::configure(guard))`"
    )]
    NotConfigured,
}

/// Which RFC 6750 outcome a [`Reason`] leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    MissingToken,
    InvalidRequest,
    InvalidToken,
}

/// One row of the reason table.
struct Row {
    outcome: Outcome,
    code: &'static str,
    description: &'static str,
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
    /// `alg` missing, `none`, symmetric, or not allowed by the settings.
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
    /// A registered claim, or a custom claim the handler asked for, has the wrong JSON type.
    #[error("claim has the wrong type")]
    BadClaim,
    /// The introspection endpoint answered `active: false` (RFC 7662 §2.2): revoked,
    /// expired or unknown to the issuer.
    #[error("token is not active (introspection)")]
    Inactive,
}

impl Reason {
    /// The table: each reason's outcome, code and client text, in one place.
    const fn row(self) -> Row {
        use Outcome::*;
        let (outcome, code, description) = match self {
            Reason::NoHeader => (
                MissingToken,
                "no_header",
                "this endpoint needs an access token: send `Authorization: Bearer <token>`",
            ),
            Reason::OtherScheme => (
                MissingToken,
                "other_scheme",
                "this endpoint needs an access token: send `Authorization: Bearer <token>`",
            ),
            Reason::TokenInQuery => (
                MissingToken,
                "token_in_query",
                "tokens in the query string are not accepted: send `Authorization: Bearer <token>`",
            ),
            Reason::RepeatedHeader => (
                InvalidRequest,
                "repeated_header",
                "send exactly one `Authorization` header",
            ),
            Reason::MalformedHeader => (
                InvalidRequest,
                "malformed_header",
                "the `Authorization` header must be `Bearer`, a space and the token",
            ),
            Reason::Malformed => (
                InvalidToken,
                "malformed",
                "the access token is not a well-formed JWT",
            ),
            Reason::TooLarge => (InvalidToken, "too_large", "the access token is too large"),
            Reason::AlgorithmNotAllowed => (
                InvalidToken,
                "algorithm_not_allowed",
                "the access token is signed with an algorithm that is not allowed",
            ),
            Reason::WrongType => (
                InvalidToken,
                "wrong_type",
                "the token is not an access token",
            ),
            Reason::KeyInHeader => (
                InvalidToken,
                "key_in_header",
                "the access token header must not carry or point to keys",
            ),
            Reason::UnsupportedCritical => (
                InvalidToken,
                "unsupported_critical",
                "the access token uses unsupported critical header parameters",
            ),
            Reason::MissingKeyId => (
                InvalidToken,
                "missing_kid",
                "the access token header has no key id",
            ),
            Reason::UnknownKey => (
                InvalidToken,
                "unknown_kid",
                "the access token is signed with a key the issuer does not publish",
            ),
            Reason::KeyMismatch => (
                InvalidToken,
                "key_mismatch",
                "the access token's algorithm does not match its signing key",
            ),
            Reason::BadSignature => (
                InvalidToken,
                "bad_signature",
                "the access token signature is invalid",
            ),
            Reason::Expired => (InvalidToken, "expired", "the access token expired"),
            Reason::NotYetValid => (
                InvalidToken,
                "not_yet_valid",
                "the access token is not valid yet",
            ),
            Reason::IssuedInFuture => (
                InvalidToken,
                "issued_in_future",
                "the access token is issued in the future",
            ),
            Reason::WrongIssuer => (
                InvalidToken,
                "wrong_issuer",
                "the access token was issued by another issuer",
            ),
            Reason::WrongAudience => (
                InvalidToken,
                "wrong_audience",
                "the access token is not meant for this API",
            ),
            Reason::MissingClaim => (
                InvalidToken,
                "missing_claim",
                "the access token lacks a required claim",
            ),
            Reason::BadClaim => (
                InvalidToken,
                "bad_claim",
                "the access token has a malformed claim",
            ),
            Reason::Inactive => (
                InvalidToken,
                "inactive",
                "the access token is not active: it was revoked, expired or is unknown to the issuer",
            ),
        };
        Row {
            outcome,
            code,
            description,
        }
    }

    /// A stable, lowercase code for logs and metrics.
    pub const fn code(self) -> &'static str {
        self.row().code
    }

    /// The text sent to clients as `error_description`.
    pub const fn description(self) -> &'static str {
        self.row().description
    }
}

impl From<Reason> for Error {
    /// The outcome the table gives `reason`.
    fn from(reason: Reason) -> Error {
        match reason.row().outcome {
            Outcome::MissingToken => Error::MissingToken(reason),
            Outcome::InvalidRequest => Error::InvalidRequest(reason),
            Outcome::InvalidToken => Error::InvalidToken(reason),
        }
    }
}

impl Error {
    /// The RFC 6750 `error` code (or, for the outcomes RFC 6750 does not cover, the code of
    /// the JSON body).
    pub fn code(&self) -> &'static str {
        match self {
            Error::MissingToken(_) => "unauthorized",
            Error::InvalidRequest(_) => "invalid_request",
            Error::InvalidToken(_) => "invalid_token",
            Error::InsufficientScope { .. } => "insufficient_scope",
            Error::KeysUnavailable { .. } | Error::IntrospectionUnavailable { .. } => {
                "temporarily_unavailable"
            }
            Error::NotConfigured => "server_error",
        }
    }

    /// A stable code for the log line and metrics: the reason where there is one.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Error::MissingToken(r) | Error::InvalidRequest(r) | Error::InvalidToken(r) => r.code(),
            Error::InsufficientScope { .. } => "insufficient_scope",
            Error::KeysUnavailable { .. } => "keys_unavailable",
            Error::IntrospectionUnavailable { .. } => "introspection_unavailable",
            Error::NotConfigured => "not_configured",
        }
    }

    /// The text sent to clients as `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            Error::MissingToken(r) | Error::InvalidRequest(r) | Error::InvalidToken(r) => {
                r.description()
            }
            Error::InsufficientScope { .. } => "the access token lacks a scope this endpoint needs",
            Error::KeysUnavailable { .. } => {
                "the issuer's signing keys could not be loaded yet; retry later"
            }
            Error::IntrospectionUnavailable { .. } => {
                "the token could not be checked with the issuer right now; retry later"
            }
            Error::NotConfigured => "authentication is not configured",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), if this outcome carries one: none for
    /// the server-side outcomes.
    pub fn challenge(&self) -> Option<Challenge> {
        let (error, scope) = match self {
            Error::MissingToken(_) => return Some(Challenge::default()),
            Error::InvalidRequest(_) | Error::InvalidToken(_) => (self.code(), None),
            Error::InsufficientScope { required } => (self.code(), Some(required.join(" "))),
            Error::KeysUnavailable { .. }
            | Error::IntrospectionUnavailable { .. }
            | Error::NotConfigured => return None,
        };
        Some(Challenge {
            error: Some((error, self.description())),
            scope,
            resource_metadata: None,
        })
    }
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3), rendered with every value quoted
/// and escaped (RFC 9110 §5.6.4). [`Error`]'s responses carry it in their extensions too, so
/// middleware can add [`resource_metadata`](Challenge::with_resource_metadata) and write the
/// header again without parsing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// `error` and `error_description`.
    error: Option<(&'static str, &'static str)>,
    /// `scope`: what the resource needs.
    scope: Option<String>,
    /// RFC 9728 §5.1: where the protected-resource metadata is.
    resource_metadata: Option<String>,
}

impl Challenge {
    /// The same challenge naming the protected-resource metadata at `url` (RFC 9728 §5.1).
    pub fn with_resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bearer realm=\"{REALM}\"")?;
        let mut param = |name: &str, value: &str| -> fmt::Result {
            write!(f, ", {name}=\"")?;
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")
        };
        if let Some((error, description)) = self.error {
            param("error", error)?;
            param("error_description", description)?;
        }
        if let Some(scope) = &self.scope {
            param("scope", scope)?;
        }
        if let Some(url) = &self.resource_metadata {
            param("resource_metadata", url)?;
        }
        Ok(())
    }
}

impl TryIntoHeaderValue for Challenge {
    type Error = InvalidHeaderValue;

    fn try_into_value(self) -> Result<HeaderValue, Self::Error> {
        HeaderValue::from_str(&self.to_string())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::MissingToken(_) | Error::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Error::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Error::KeysUnavailable { .. } | Error::IntrospectionUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = self.challenge() {
            // Values are ours or checked scope names: always a valid header value.
            if let Ok(value) = challenge.clone().try_into_value() {
                response.insert_header((header::WWW_AUTHENTICATE, value));
            }
            response.extensions_mut().insert(challenge);
        }
        if let Error::KeysUnavailable { retry_after }
        | Error::IntrospectionUnavailable { retry_after } = self
        {
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

    fn header(error: &Error) -> Option<String> {
        error.challenge().map(|c| c.to_string())
    }

    #[test]
    fn a_missing_token_gets_a_bare_challenge_without_error_code() {
        let error = Error::from(Reason::NoHeader);
        assert_eq!(
            header(&error).as_deref(),
            Some("Bearer realm=\"api-guard\"")
        );
        assert_eq!(error.status_code(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn the_table_gives_each_reason_its_outcome() {
        assert_eq!(
            Error::from(Reason::TokenInQuery),
            Error::MissingToken(Reason::TokenInQuery)
        );
        assert_eq!(
            Error::from(Reason::RepeatedHeader),
            Error::InvalidRequest(Reason::RepeatedHeader)
        );
        assert_eq!(
            Error::from(Reason::BadClaim),
            Error::InvalidToken(Reason::BadClaim)
        );
    }

    #[test]
    fn insufficient_scope_names_every_required_scope_in_the_challenge() {
        let error = Error::InsufficientScope {
            required: vec!["orders:read".into(), "orders:write".into()],
        };
        assert_eq!(
            header(&error).as_deref(),
            Some(
                "Bearer realm=\"api-guard\", error=\"insufficient_scope\", error_description=\"the access token lacks a scope this endpoint needs\", scope=\"orders:read orders:write\""
            )
        );
        assert_eq!(error.status_code(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn challenge_parameters_escape_quotes_and_backslashes_and_resource_metadata_comes_last() {
        let challenge = Challenge {
            scope: Some(r#"a"b\c"#.into()),
            ..Challenge::default()
        }
        .with_resource_metadata("https://x/.well-known/oauth-protected-resource/p\"q");
        assert_eq!(
            challenge.to_string(),
            r#"Bearer realm="api-guard", scope="a\"b\\c", resource_metadata="https://x/.well-known/oauth-protected-resource/p\"q""#
        );
    }

    #[test]
    fn the_response_carries_the_typed_challenge_it_wrote() {
        let response = Error::from(Reason::Expired).error_response();
        let written = response.headers().get(header::WWW_AUTHENTICATE).cloned();
        let typed = response.extensions().get::<Challenge>().cloned();
        assert_eq!(
            written.as_ref().and_then(|v| v.to_str().ok()),
            typed.map(|c| c.to_string()).as_deref()
        );
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
