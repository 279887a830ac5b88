//! The step the proxy and forward-auth share: normalise the path, ask the policy, and for a
//! protected rule check the token and its scopes with the library's guard, exactly as its
//! `RequireScopes` middleware does.

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

/// Decides on `method` and the raw `path` (no query) of `req`. The token is read from `req`'s
/// own headers. Returns the normalised path with the decision: the upstream gets exactly the
/// path the policy matched.
pub(super) async fn authorize(
    policy: &Policy,
    req: &HttpRequest,
    method: &Method,
    raw_path: &str,
) -> Result<(String, Allowed), actix_web::Error> {
    let normalized = path::normalize(raw_path).map_err(Error::BadPath)?;
    let scopes = match policy.decide(method, &normalized) {
        Access::Anonymous => return Ok((normalized, Allowed::Anonymous)),
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
    let identity = Identity::of(&claims)?;
    Ok((normalized, Allowed::Authenticated(identity)))
}
