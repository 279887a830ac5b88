//! The link from a Bearer challenge to the protected-resource metadata (RFC 9728 §5.1): a
//! middleware adds `resource_metadata="..."` to every `WWW-Authenticate: Bearer` answer.
//!
//! A challenge from `/api/whoami` names `{public url}/.well-known/oauth-protected-resource/api/whoami`
//! (RFC 9728 §3.1: the well-known segment goes between the host and the path), whose
//! `resource` is `{public url}/api/whoami`, the URL the client used, as §3.3 requires.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use actix_web::middleware::Next;

use super::error::push_param;
use crate::public_url::PublicUrl;

/// The well-known path of the protected-resource metadata (RFC 9728 §3).
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// Middleware: `App::new().wrap(from_fn(api_guard::auth::advertise_resource_metadata))`.
/// Responses without a Bearer challenge pass untouched; only a 401, 403 or 400 pays for
/// building the URL. The public URL comes from the app's [`PublicUrl`], if registered.
pub async fn advertise_resource_metadata<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let Some(challenge) = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_bearer(value))
    else {
        return Ok(response);
    };
    let request = response.request();
    let path = Some(request.path())
        .filter(|path| *path != "/")
        .unwrap_or_default();
    let url = format!("{}{WELL_KNOWN_PATH}{path}", PublicUrl::of(request));
    let mut value = String::with_capacity(challenge.len() + url.len() + 24);
    value.push_str(challenge);
    push_param(&mut value, "resource_metadata", &url);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    Ok(response)
}

/// RFC 9110 §11.1: the auth scheme is case-insensitive.
fn is_bearer(challenge: &str) -> bool {
    challenge
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
}
