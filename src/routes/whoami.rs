//! `GET /api/whoami`: protected, because the handler takes `AuthenticatedClaims`.

use actix_web::http::header::{CACHE_CONTROL, ContentType};
use actix_web::{HttpResponse, get};
use api_guard::AuthenticatedClaims;
use serde::Serialize;

/// The answer but for `claims`, which is appended already serialised: the claims of a token
/// answered from the cache were written once, not on every request.
#[derive(Serialize)]
struct Caller<'c> {
    sub: Option<&'c str>,
    client_id: Option<&'c str>,
    scopes: &'c [String],
}

/// Answers with the caller's verified claims: `sub`, `client_id`, `scopes` and `claims`.
#[get("/api/whoami")]
pub async fn whoami(claims: AuthenticatedClaims) -> HttpResponse {
    let caller = Caller {
        sub: claims.sub(),
        client_id: claims.client_id(),
        scopes: claims.scopes(),
    };
    let claims_json = claims.claims_json();
    let mut body = Vec::with_capacity(claims_json.len() + 256);
    if let Err(error) = serde_json::to_writer(&mut body, &caller) {
        // Strings and lists into a Vec: not expected to fail, but never send half a body.
        log::error!("whoami: could not serialise the caller: {error}");
        return HttpResponse::InternalServerError().finish();
    }
    body.pop(); // the closing brace, to append the claims
    body.extend_from_slice(b",\"claims\":");
    body.extend_from_slice(claims_json.as_bytes());
    body.push(b'}');
    // The claims are the caller's own; no shared cache should keep them.
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .content_type(ContentType::json())
        .body(body)
}
