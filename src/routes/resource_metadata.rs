//! `GET /.well-known/oauth-protected-resource[/{path}]`: the protected-resource metadata
//! (RFC 9728 §2, §3). Open to anyone.
//!
//! `resource` is the public URL followed by the path after the well-known segment, so the
//! document a Bearer challenge names has the URL the client called as its `resource`
//! (§3.3); without a path it is the public URL itself.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::Published;
use crate::auth::WELL_KNOWN_PATH;
use crate::public_url::PublicUrl;

/// The metadata of the resource the request's path names.
pub async fn metadata(req: HttpRequest, published: web::Data<Published>) -> HttpResponse {
    let tail = req.path().strip_prefix(WELL_KNOWN_PATH).unwrap_or_default();
    let resource = format!("{}{tail}", PublicUrl::of(&req));
    PublicUrl::cacheable_response(&req).json(json!({
        "resource": resource,
        "authorization_servers": [published.issuer],
        "scopes_supported": published.scope_names(),
        "bearer_methods_supported": ["header"],
        "resource_name": "api-guard",
    }))
}

/// Registers the document at the well-known path and below it.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(WELL_KNOWN_PATH, web::get().to(metadata)).route(
        &format!("{WELL_KNOWN_PATH}/{{resource:.+}}"),
        web::get().to(metadata),
    );
}
