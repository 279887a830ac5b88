//! Testing your own handlers with the test kit (feature `test-util`): no network, no
//! issuer, no Okta org. `cargo test --example test_kit --features test-util` runs the tests
//! below; `cargo run --example test_kit --features test-util` prints a token and the result.

use actix_web::{App, HttpResponse, web};
use api_guard::{AuthError, AuthenticatedClaims};

/// The handler under test: needs `orders:read`.
async fn orders(claims: AuthenticatedClaims) -> Result<HttpResponse, AuthError> {
    claims.require_scopes(&["orders:read"])?;
    Ok(HttpResponse::Ok().body(format!("orders of {}", claims.sub().unwrap_or("?"))))
}

/// The app as the service builds it, given a guard.
fn app(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders", web::get().to(orders));
}

#[actix_web::main]
async fn main() {
    use actix_web::test;
    let issuer = api_guard::testing::TestIssuer::new();
    let app = test::init_service(
        App::new()
            .configure(api_guard::configure(issuer.guard()))
            .configure(app),
    )
    .await;
    let token = issuer
        .token()
        .subject("alice")
        .scopes(["orders:read"])
        .mint();
    let request = test::TestRequest::get()
        .uri("/orders")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .to_request();
    let response = test::call_service(&app, request).await;
    println!("GET /orders with a test token: {}", response.status());
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test};
    use api_guard::testing::TestIssuer;

    async fn get(issuer: &TestIssuer, token: Option<String>) -> (u16, String) {
        let app = test::init_service(
            App::new()
                .configure(api_guard::configure(issuer.guard()))
                .configure(super::app),
        )
        .await;
        let mut request = test::TestRequest::get().uri("/orders");
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let response = test::call_service(&app, request.to_request()).await;
        let status = response.status().as_u16();
        let body = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
        (status, body)
    }

    #[actix_web::test]
    async fn a_token_with_the_scope_reaches_the_handler() {
        let issuer = TestIssuer::new();
        let token = issuer
            .token()
            .subject("alice")
            .scopes(["orders:read"])
            .mint();
        assert_eq!(
            get(&issuer, Some(token)).await,
            (200, "orders of alice".into())
        );
    }

    #[actix_web::test]
    async fn a_token_without_the_scope_gets_403() {
        let issuer = TestIssuer::new();
        let token = issuer.token().scopes(["profile"]).mint();
        assert_eq!(get(&issuer, Some(token)).await.0, 403);
    }

    #[actix_web::test]
    async fn no_token_expired_wrong_audience_and_unknown_key_get_401() {
        let issuer = TestIssuer::new();
        assert_eq!(get(&issuer, None).await.0, 401);
        for bad in [
            issuer.token().scopes(["orders:read"]).expired().mint(),
            issuer
                .token()
                .scopes(["orders:read"])
                .wrong_audience()
                .mint(),
            issuer.token().scopes(["orders:read"]).unknown_key().mint(),
        ] {
            assert_eq!(get(&issuer, Some(bad)).await.0, 401);
        }
    }
}
