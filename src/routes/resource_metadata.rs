//! `GET /.well-known/oauth-protected-resource[/{path}]`: the protected-resource metadata
//! (RFC 9728 §2, §3), open to anyone; and the middleware that names it in every Bearer
//! challenge (§5.1).
//!
//! `resource` is the public URL followed by the path after the well-known segment, so the
//! document a Bearer challenge names has the URL the client called as its `resource`
//! (§3.3); without a path it is the public URL itself.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{TryIntoHeaderValue, WWW_AUTHENTICATE};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use api_guard::{Challenge, DpopMode, Guard};
use serde_json::json;

use super::Published;
use crate::public_url::PublicUrl;

/// The well-known path of the protected-resource metadata (RFC 9728 §3).
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// The path of the resource a request is about when it is not the request's own, in the
/// request's extensions: forward-auth (`/auth/verify`) decides on the request a front proxy
/// describes, and its challenge names that resource's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath(pub String);

/// The metadata of the resource the request's path names.
pub async fn metadata(req: HttpRequest, published: web::Data<Published>) -> HttpResponse {
    let tail = req.path().strip_prefix(WELL_KNOWN_PATH).unwrap_or_default();
    let resource = format!("{}{tail}", PublicUrl::of(&req));
    let mut document = json!({
        "resource": resource,
        "authorization_servers": published.authorization_servers,
        "scopes_supported": published.scope_names(),
        "bearer_methods_supported": ["header"],
        "resource_name": "api-guard",
    });
    // RFC 9449 §5.1 (the names RFC 9728 §2 registers).
    let dpop = req
        .app_data::<Guard>()
        .map(|guard| guard.settings().dpop_mode());
    if let Some(mode) = dpop.filter(|mode| *mode != DpopMode::Off) {
        document["dpop_signing_alg_values_supported"] =
            json!(api_guard::dpop_algorithms().collect::<Vec<_>>());
        if mode == DpopMode::Required {
            document["dpop_bound_access_tokens_required"] = json!(true);
        }
    }
    PublicUrl::cacheable_response(&req).json(document)
}

/// Registers the document at the well-known path and below it.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(WELL_KNOWN_PATH, web::get().to(metadata)).route(
        &format!("{WELL_KNOWN_PATH}/{{resource:.+}}"),
        web::get().to(metadata),
    );
}

/// Middleware: adds `resource_metadata="..."` to the challenge of every Bearer answer (the
/// library's responses carry their [`Challenge`] typed, so no header is parsed). A challenge
/// from `/api/whoami` names `{public url}/.well-known/oauth-protected-resource/api/whoami`
/// (§3.1: the well-known segment goes between the host and the path), whose `resource` is
/// the URL the client used, as §3.3 requires. Other responses pass untouched.
pub async fn advertise<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let Some(challenge) = response.response().extensions().get::<Challenge>().cloned() else {
        return Ok(response);
    };
    let request = response.request();
    let described = request.extensions().get::<ResourcePath>().cloned();
    let path = described
        .as_ref()
        .map_or(request.path(), |resource| resource.0.as_str());
    let path = Some(path).filter(|path| *path != "/").unwrap_or_default();
    let url = format!("{}{WELL_KNOWN_PATH}{path}", PublicUrl::of(request));
    if let Ok(value) = challenge.with_resource_metadata(url).try_into_value() {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    Ok(response)
}
