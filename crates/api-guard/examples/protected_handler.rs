//! A protected handler and an anonymous one: the five-minute adoption.
//!
//! ```text
//! AUTH_ISSUER=https://dev-123456.okta.com/oauth2/default cargo run --example protected_handler
//! curl -i http://127.0.0.1:8080/status                                   # 200 for anyone
//! curl -i http://127.0.0.1:8080/orders -H "Authorization: Bearer $TOKEN"  # 200 with a token
//! ```

use actix_web::{App, HttpResponse, HttpServer, get};
use api_guard::{AuthSettings, AuthenticatedClaims, Guard};

/// Protected: it takes the verified claims.
#[get("/orders")]
async fn orders(claims: AuthenticatedClaims) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "orders": [],
        "client_id": claims.client_id(),
        "scopes": claims.scopes(),
    }))
}

/// Anonymous: no `AuthenticatedClaims`.
#[get("/status")]
async fn status() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("AUTH_ISSUER")
        .map_err(|_| "set AUTH_ISSUER, e.g. https://dev-123456.okta.com/oauth2/default")?;
    // Once per process, outside the factory: every worker shares the guard.
    let guard = Guard::start(AuthSettings::new(issuer).with_audiences(["api://default"]))?;
    HttpServer::new(move || {
        App::new()
            .configure(api_guard::configure(guard.clone()))
            .service(orders)
            .service(status)
    })
    .bind("127.0.0.1:8080")?
    .run()
    .await?;
    Ok(())
}
