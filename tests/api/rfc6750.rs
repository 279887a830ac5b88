//! RFC 6750: the bearer token comes from the `Authorization` header only, and every outcome
//! has its exact status, challenge and body.

use api_guard::Reason;

use crate::helpers::{client, read, spawn_app};

#[actix_web::test]
async fn no_token_gets_401_with_a_bare_challenge_and_no_error_code() {
    let app = spawn_app().await;
    let reply = app.get("/api/whoami", &[]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(app.challenge("/api/whoami", "").as_str())
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["error"], "unauthorized");
    assert_eq!(
        reply.body["error_description"],
        Reason::NoHeader.description()
    );
}

#[actix_web::test]
async fn another_scheme_counts_as_no_credentials() {
    let app = spawn_app().await;
    // (`DPoP` is a scheme of its own since RFC 9449: tests/api/dpop.rs; with AUTH_DPOP=off
    // it counts as another scheme, as the library's tests show.)
    for value in ["Basic YXBpOnNlY3JldA==", "Token abc"] {
        let reply = app.get("/api/whoami", &[("Authorization", value)]).await;
        assert_eq!(reply.status, 401, "{value}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(app.challenge("/api/whoami", "").as_str()),
            "{value}"
        );
    }
}

#[actix_web::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let token = app.token();
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let reply = app
            .get(
                "/api/whoami",
                &[("Authorization", &format!("{scheme} {token}"))],
            )
            .await;
        assert_eq!(reply.status, 200, "{scheme}");
    }
}

#[actix_web::test]
async fn a_malformed_bearer_header_is_a_400_invalid_request() {
    let app = spawn_app().await;
    for value in [
        "Bearer",
        "Bearer    ",
        "Bearer a b",
        "Bearer ab,cd",
        "Bearer =abc",
    ] {
        let reply = app.get("/api/whoami", &[("Authorization", value)]).await;
        reply.assert_auth_error(400, "invalid_request", value);
        assert_eq!(
            reply.body["error_description"],
            Reason::MalformedHeader.description()
        );
    }
}

#[actix_web::test]
async fn two_authorization_headers_are_a_400_invalid_request() {
    let app = spawn_app().await;
    let token = app.token();
    let bearer = format!("Bearer {token}");
    let reply = app
        .get(
            "/api/whoami",
            &[("Authorization", &bearer), ("Authorization", &bearer)],
        )
        .await;
    reply.assert_auth_error(400, "invalid_request", "two headers");
    assert_eq!(
        reply.body["error_description"],
        Reason::RepeatedHeader.description()
    );
}

#[actix_web::test]
async fn a_token_in_the_query_string_is_not_accepted() {
    let app = spawn_app().await;
    let reply = app
        .get(&format!("/api/whoami?access_token={}", app.token()), &[])
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(app.challenge("/api/whoami", "").as_str())
    );
    assert_eq!(
        reply.body["error_description"],
        Reason::TokenInQuery.description()
    );
}

#[actix_web::test]
async fn a_token_in_a_form_body_is_not_accepted() {
    let app = spawn_app().await;
    let response = client()
        .get(format!("{}/api/whoami", app.address))
        .content_type("application/x-www-form-urlencoded")
        .send_body(format!("access_token={}", app.token()))
        .await
        .unwrap();
    let reply = read(response).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(app.challenge("/api/whoami", "").as_str())
    );
}

#[actix_web::test]
async fn an_invalid_token_gets_401_invalid_token_with_the_reason_in_challenge_and_body() {
    let app = spawn_app().await;
    let reply = app.whoami("eyJhbGciOiJSUzI1NiJ9.e30.c2ln").await;
    assert_eq!(reply.status, 401);
    let description = Reason::BadSignature.description();
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            app.challenge(
                "/api/whoami",
                &format!(r#", error="invalid_token", error_description="{description}""#)
            )
            .as_str()
        )
    );
    assert_eq!(
        reply.body,
        serde_json::json!({"error": "invalid_token", "error_description": description})
    );
}
