//! Scopes declared once: for a whole scope of routes with `RequireScopes`, or in the
//! handler with one call to `require_scopes`.
//!
//! ```text
//! AUTH_ISSUER=https://dev-123456.okta.com/oauth2/default cargo run --example per_route_scopes
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};
use api_guard::{AuthError, AuthSettings, AuthenticatedClaims, Guard, RequireScopes};

/// Reached only with `orders:write`: the scope's middleware checked it.
async fn create_order(claims: AuthenticatedClaims) -> HttpResponse {
    HttpResponse::Created().json(serde_json::json!({"created_by": claims.client_id()}))
}

/// Checks its own scope with one call.
async fn list_orders(claims: AuthenticatedClaims) -> Result<HttpResponse, AuthError> {
    claims.require_scopes(&["orders:read"])?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"orders": []})))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("AUTH_ISSUER")
        .map_err(|_| "set AUTH_ISSUER, e.g. https://dev-123456.okta.com/oauth2/default")?;
    let guard = Guard::start(AuthSettings::new(issuer))?;
    HttpServer::new(move || {
        App::new()
            .configure(api_guard::configure(guard.clone()))
            .route("/orders", web::get().to(list_orders))
            .service(
                web::scope("/admin/orders")
                    .wrap(RequireScopes::new(["orders:write"]))
                    .route("", web::post().to(create_order)),
            )
    })
    .bind("127.0.0.1:8080")?
    .run()
    .await?;
    Ok(())
}
