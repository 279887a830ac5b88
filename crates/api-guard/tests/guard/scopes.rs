//! Scopes declared once: `RequireScopes` on a scope of routes, `require_scopes` in a handler,
//! and the settings' scopes for every route.

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, test, web};
use api_guard::testing::TestIssuer;
use api_guard::{AuthError, AuthenticatedClaims, RequireScopes};

use crate::get;

async fn plain() -> HttpResponse {
    HttpResponse::Ok().body("plain")
}

async fn with_claims(claims: AuthenticatedClaims) -> HttpResponse {
    HttpResponse::Ok().body(claims.sub().unwrap_or_default().to_owned())
}

async fn checks_itself(claims: AuthenticatedClaims) -> Result<HttpResponse, AuthError> {
    claims.require_scopes(&["orders:read"])?;
    Ok(HttpResponse::Ok().body("read"))
}

macro_rules! app {
    ($guard:expr) => {
        test::init_service(
            App::new()
                .configure(api_guard::configure($guard))
                .route("/orders", web::get().to(checks_itself))
                .service(
                    web::scope("/admin")
                        .wrap(RequireScopes::new(["admin", "orders:write"]))
                        .route("/plain", web::get().to(plain))
                        .route("/me", web::get().to(with_claims)),
                )
                .service(
                    web::scope("/any")
                        .wrap(from_fn(api_guard::require_token))
                        .route("/plain", web::get().to(plain)),
                ),
        )
        .await
    };
}

#[actix_web::test]
async fn a_wrapped_scope_needs_every_scope_and_names_them_in_its_403() {
    let issuer = TestIssuer::new();
    let app = app!(issuer.guard());
    let both = issuer
        .token()
        .subject("root")
        .scopes(["admin", "orders:write"])
        .mint();
    assert_eq!(get(&app, "/admin/plain", Some(&both)).await.0, 200);
    let (status, _, body) = get(&app, "/admin/me", Some(&both)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "root"),
        "the handler gets the claims"
    );

    let one = issuer.token().scopes(["admin"]).mint();
    let (status, challenge, _) = get(&app, "/admin/plain", Some(&one)).await;
    assert_eq!(status, 403);
    assert!(
        challenge.ends_with(r#", scope="admin orders:write""#),
        "{challenge}"
    );
    assert_eq!(get(&app, "/admin/plain", None).await.0, 401);
    let expired = issuer
        .token()
        .scopes(["admin", "orders:write"])
        .expired()
        .mint();
    assert_eq!(get(&app, "/admin/plain", Some(&expired)).await.0, 401);
}

#[actix_web::test]
async fn require_token_takes_any_valid_token_and_a_handler_can_check_its_own_scope() {
    let issuer = TestIssuer::new();
    let app = app!(issuer.guard());
    let token = issuer.token().mint();
    assert_eq!(get(&app, "/any/plain", Some(&token)).await.0, 200);
    assert_eq!(get(&app, "/any/plain", None).await.0, 401);
    let (status, challenge, _) = get(&app, "/orders", Some(&token)).await;
    assert_eq!(status, 403);
    assert!(challenge.ends_with(r#"scope="orders:read""#), "{challenge}");
    let reader = issuer.token().scopes(["orders:read"]).mint();
    assert_eq!(get(&app, "/orders", Some(&reader)).await.0, 200);
}

#[actix_web::test]
async fn the_settings_required_scopes_apply_to_every_protected_route() {
    let issuer = TestIssuer::new();
    let app = app!(issuer.guard_with(issuer.settings().with_required_scopes(["api"])));
    let without = issuer.token().scopes(["orders:read"]).mint();
    let (status, challenge, _) = get(&app, "/orders", Some(&without)).await;
    assert_eq!(status, 403);
    assert!(challenge.ends_with(r#"scope="api""#), "{challenge}");
    let with = issuer.token().scopes(["orders:read", "api"]).mint();
    assert_eq!(get(&app, "/orders", Some(&with)).await.0, 200);
}
