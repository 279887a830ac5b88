//! Your own claims, typed: `AuthenticatedClaims<T>` deserialises the verified claims into
//! `T` next to the standard fields. A token whose claims do not fit `T` gets 401.
//!
//! ```text
//! AUTH_ISSUER=https://dev-123456.okta.com/oauth2/default cargo run --example typed_claims
//! ```

use actix_web::{App, HttpResponse, HttpServer, get};
use api_guard::{AuthSettings, AuthenticatedClaims, Guard};
use serde::Deserialize;

/// Claims your authorization server adds (in Okta: Security > API > your server > Claims).
#[derive(Debug, Deserialize)]
struct Tenant {
    /// A custom claim every token of this API must carry.
    tenant_id: String,
    /// An optional one.
    #[serde(default)]
    plan: Option<String>,
}

#[get("/invoices")]
async fn invoices(claims: AuthenticatedClaims<Tenant>) -> HttpResponse {
    let tenant = claims.custom();
    HttpResponse::Ok().json(serde_json::json!({
        "tenant": tenant.tenant_id,
        "plan": tenant.plan,
        "client_id": claims.client_id(),
    }))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("AUTH_ISSUER")
        .map_err(|_| "set AUTH_ISSUER, e.g. https://dev-123456.okta.com/oauth2/default")?;
    let guard = Guard::start(AuthSettings::new(issuer))?;
    HttpServer::new(move || {
        App::new()
            .configure(api_guard::configure(guard.clone()))
            .service(invoices)
    })
    .bind("127.0.0.1:8080")?
    .run()
    .await?;
    Ok(())
}
