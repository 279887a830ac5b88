//! The step the proxy and forward-auth share: normalise the path, ask the policy, and for a
//! protected rule check the token and its scopes with the library's guard, exactly as its
//! `RequireScopes` middleware does. The upstream gets exactly the path the policy matched.

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest};
use api_guard::{AuthError, AuthenticatedClaims};

use super::error::Error;
use super::identity::Identity;
use super::path;
use super::policy::{Access, Policy};

/// What the request may do, once allowed.
pub(super) enum Allowed {
    /// An anonymous rule: no token was read.
    Anonymous,
    /// A valid token with the scopes the rule asks for: who it is.
    Authenticated(Identity),
}

/// The path the policy matches and the upstream receives, or 400.
pub(super) fn normalized(raw_path: &str) -> Result<String, Error> {
    path::normalize(raw_path).map_err(Error::BadPath)
}

/// Decides on `method` and the `normalized` path for `req`, whose own headers carry the
/// token.
pub(super) async fn authorize(
    policy: &Policy,
    req: &HttpRequest,
    method: &Method,
    normalized: &str,
) -> Result<Allowed, actix_web::Error> {
    let scopes = match policy.decide(method, normalized) {
        Access::Anonymous => return Ok(Allowed::Anonymous),
        Access::Deny => return Err(Error::Denied.into()),
        Access::Authenticated { scopes } => scopes,
    };
    // The extractor, not `Guard::verify`: it reads the credentials as the library does
    // everywhere (one header, the scheme, no query-string token) and refetches the key set
    // once for an unknown `kid`.
    let claims = AuthenticatedClaims::<()>::from_request(req, &mut Payload::None).await?;
    if !scopes.iter().all(|scope| claims.has_scope(scope)) {
        return Err(AuthError::InsufficientScope {
            required: scopes.to_vec(),
        }
        .into());
    }
    Ok(Allowed::Authenticated(Identity::of(&claims)?))
}
