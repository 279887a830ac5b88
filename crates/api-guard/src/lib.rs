//! api-guard protects actix-web handlers with OAuth 2.0 access tokens (JWTs) from Okta or any
//! standards-following OAuth 2.0 / OpenID Connect authorization server.
//!
//! A handler is protected by taking [`AuthenticatedClaims`]; one that does not is anonymous.
//! One [`Guard`] per process holds the [`AuthSettings`], the issuer's key store (fetched and
//! refreshed in the background; one per issuer when
//! [several](AuthSettings::with_additional_issuers) are trusted) and a cache of verified tokens;
//! register it once with [`configure`]:
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, HttpServer, get};
//! use api_guard::{AuthSettings, AuthenticatedClaims, Guard};
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
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let settings = AuthSettings::new("https://dev-123456.okta.com/oauth2/default")
//!         .with_audiences(["api://default"]);
//!     let guard = Guard::start(settings)?; // once, outside the factory: shared by all workers
//!     HttpServer::new(move || {
//!         App::new().configure(api_guard::configure(guard.clone())).service(orders).service(status)
//!     })
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! - Your own claims: take `AuthenticatedClaims<MyClaims>` (see [`AuthenticatedClaims`]).
//! - Scopes for a whole scope of routes: wrap it in [`RequireScopes`], or [`require_token`]
//!   for any valid token.
//! - Opaque or revocable tokens: [`AuthSettings::with_introspection`] (RFC 7662, see
//!   [`Introspection`]).
//! - Why a token is refused: [`Guard::explain`] reports every check with the values compared.
//! - Tests without a network or an issuer: the `test-util` feature's `testing::TestIssuer`
//!   mints tokens and hands out a guard that trusts them.
//!
//! # Security
//!
//! Validation follows RFC 8725, RFC 9068 and RFC 6750: only the asymmetric algorithms the
//! settings allow, keys only from the issuer's own key set (never from the token), `iss`,
//! `aud`, `exp`, `nbf` and `iat` always checked with a small leeway, tokens only from the
//! `Authorization` header. Rejections carry curated descriptions that never echo the token.

mod algorithm;
mod bearer;
mod cache;
mod claims;
mod dpop;
mod error;
mod extractor;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod introspection;
mod issuers;
mod jwks;
mod middleware;
mod outside;
mod settings;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod trace;
mod url_rules;
mod validator;

pub use algorithm::{Algorithm, AlgorithmError};
pub use cache::CacheStats;
pub use claims::AuthenticatedClaims;
pub use dpop::{
    MemoryReplayStore, ProofId, ProofTarget, Remembered, ReplayFuture, ReplayStore,
    ReplayStoreError, TokenRequestProof, check_dpop_binding, check_token_request_proof,
    dpop_algorithms,
};
pub use error::{Challenge, Error as AuthError, Reason};
pub use guard::{Guard, GuardError, configure};
pub use introspection::{
    Introspection, IntrospectionMode, IntrospectionOutcome, IntrospectionStats,
};
pub use jwks::{FetchOutcome, KeyStoreStatus};
pub use middleware::{RequireScopes, RequireScopesService, require_dpop, require_token};
pub use settings::{AuthSettings, DpopMode, SettingsError};
pub use trace::{Check, CheckReport, Explanation};
pub use url_rules::is_https_or_loopback;
