//! `AuthenticatedClaims` and `AuthenticatedClaims<T>` in handlers.

use actix_web::{App, HttpResponse, test, web};
use api_guard::AuthenticatedClaims;
use api_guard::testing::TestIssuer;
use serde::Deserialize;

use crate::get;

#[derive(Debug, Deserialize)]
struct Tenant {
    tenant_id: String,
    #[serde(default)]
    seats: Option<u32>,
}

async fn untyped(claims: AuthenticatedClaims) -> HttpResponse {
    HttpResponse::Ok().body(format!("{:?} {:?}", claims.sub(), claims.scopes()))
}

async fn typed(claims: AuthenticatedClaims<Tenant>) -> HttpResponse {
    let tenant = claims.custom();
    HttpResponse::Ok().body(format!(
        "{} {:?} {:?}",
        tenant.tenant_id,
        tenant.seats,
        claims.sub()
    ))
}

async fn open() -> HttpResponse {
    HttpResponse::Ok().body("open")
}

macro_rules! app {
    ($issuer:expr) => {
        test::init_service(
            App::new()
                .configure(api_guard::configure($issuer.guard()))
                .route("/untyped", web::get().to(untyped))
                .route("/typed", web::get().to(typed))
                .route("/open", web::get().to(open)),
        )
        .await
    };
}

#[actix_web::test]
async fn the_untyped_extractor_gives_the_standard_fields() {
    let issuer = TestIssuer::new();
    let app = app!(issuer);
    let token = issuer.token().subject("alice").scopes(["a", "b"]).mint();
    let (status, _, body) = get(&app, "/untyped", Some(&token)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"Some("alice") ["a", "b"]"#)
    );
}

#[actix_web::test]
async fn typed_claims_are_deserialised_into_the_handlers_type_next_to_the_standard_fields() {
    let issuer = TestIssuer::new();
    let app = app!(issuer);
    let token = issuer
        .token()
        .subject("alice")
        .claim("tenant_id", "acme")
        .claim("seats", 12)
        .mint();
    let (status, _, body) = get(&app, "/typed", Some(&token)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"acme Some(12) Some("alice")"#)
    );
}

#[actix_web::test]
async fn a_token_whose_claims_do_not_fit_the_type_gets_401_bad_claim() {
    let issuer = TestIssuer::new();
    let app = app!(issuer);
    for token in [
        issuer.token().mint(),
        issuer.token().claim("tenant_id", 7).mint(),
        issuer
            .token()
            .claim("tenant_id", "acme")
            .claim("seats", "many")
            .mint(),
    ] {
        let (status, challenge, body) = get(&app, "/typed", Some(&token)).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(
            body.contains("the access token has a malformed claim"),
            "{body}"
        );
        assert!(!body.contains(&token), "the token is never echoed");
    }
}

#[actix_web::test]
async fn anonymous_routes_need_no_token_and_protected_ones_do() {
    let issuer = TestIssuer::new();
    let app = app!(issuer);
    assert_eq!(get(&app, "/open", None).await.0, 200);
    let (status, challenge, _) = get(&app, "/untyped", None).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, r#"Bearer realm="api-guard""#)
    );
}
