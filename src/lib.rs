//! api-guard protects actix-web APIs with OAuth 2.0 access tokens from Okta or any
//! standards-following OAuth 2.0 / OpenID Connect authorization server.
//!
//! A handler is protected by taking [`AuthenticatedClaims`]; one that does not is
//! anonymous. One [`Guard`] per process holds the validation settings and the shared key
//! store; register it once with [`configure`]:
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, HttpServer, get};
//! use api_guard::{AuthenticatedClaims, Config, Guard};
//!
//! #[get("/orders")]
//! async fn orders(claims: AuthenticatedClaims) -> Result<HttpResponse, api_guard::AuthError> {
//!     claims.require_scopes(&["orders:read"])?;
//!     Ok(HttpResponse::Ok().json(claims.client_id()))
//! }
//!
//! #[get("/status")]
//! async fn status() -> HttpResponse {
//!     HttpResponse::Ok().finish() // no AuthenticatedClaims: anonymous
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let config = Config::for_issuer("https://dev-123456.okta.com/oauth2/default")
//!         .map_err(std::io::Error::other)?;
//!     let guard = Guard::start(&config)?; // once, outside the factory: shared by all workers
//!     HttpServer::new(move || {
//!         App::new().configure(api_guard::configure(guard.clone())).service(orders).service(status)
//!     })
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await
//! }
//! ```
//!
//! To require a token on every route of a scope instead, wrap it in
//! [`require_token`]. The service binary built on this crate is described in README.md.

pub mod auth;
pub mod config;
#[cfg(feature = "dev-issuer")]
pub mod dev_issuer;
pub mod public_url;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

pub use auth::{
    AuthenticatedClaims, CacheStats, Error as AuthError, Guard, Reason, TokenCache, Validator,
    configure, require_token,
};
pub use config::{Cli, Config, ConfigError};
pub use startup::{Application, StartupError};
