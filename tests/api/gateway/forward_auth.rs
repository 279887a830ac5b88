//! Forward-auth: `/auth/verify` answers for the request a trusted front proxy describes.

use api_guard_server::telemetry::TrustedProxies;

use super::upstream::{echo_upstream, spawn_gateway};
use crate::helpers::{
    client, read, resource_metadata_url, spawn_app_with, spawn_app_with_a_refusing_issuer,
};

#[actix_web::test]
async fn a_valid_token_gets_200_with_the_identity_headers() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.issuer.mint(&["orders:read"]);
    for method in ["GET", "POST", "DELETE"] {
        let reply = read(
            client()
                .request(
                    method.parse().unwrap(),
                    format!("{}/auth/verify", app.address),
                )
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("X-Auth-Subject", "admin"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200, "{method}: {}", reply.body);
        let client_id = app.issuer.settings().client_id.as_str();
        assert_eq!(reply.header("x-auth-subject"), Some(client_id), "{method}");
        assert_eq!(reply.header("x-auth-client-id"), Some(client_id));
        assert_eq!(reply.header("x-auth-scopes"), Some("orders:read"));
        assert_eq!(reply.header("x-auth-issuer"), Some(app.issuer.issuer()));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
}

#[actix_web::test]
async fn a_missing_or_bad_token_gets_the_services_401_with_its_challenge() {
    let app = spawn_app_with(|_| {}).await;
    let missing = app.get("/auth/verify", &[]).await;
    missing.assert_auth_error(401, "unauthorized", "no token");
    assert!(missing.header("x-auth-subject").is_none());
    let expired = super::upstream::expired_token(&app);
    let reply = app
        .get(
            "/auth/verify",
            &[("Authorization", &format!("Bearer {expired}"))],
        )
        .await;
    reply.assert_auth_error(401, "invalid_token", "expired");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            app.challenge(
                "/auth/verify",
                ", error=\"invalid_token\", error_description=\"the access token expired\""
            )
            .as_str()
        )
    );
}

#[actix_web::test]
async fn the_original_request_is_believed_only_from_trusted_proxies() {
    // The original URI decides: one that cannot be normalised is refused with 400, which
    // shows it was read; from an untrusted peer it is ignored and the token decides.
    let headers_of = |token: &str| {
        [
            ("Authorization".to_owned(), format!("Bearer {token}")),
            ("X-Original-URI".to_owned(), "no-leading-slash".to_owned()),
            ("X-Original-Method".to_owned(), "GET".to_owned()),
        ]
    };
    let untrusted = spawn_app_with(|_| {}).await;
    let headers = headers_of(&untrusted.token());
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(untrusted.get("/auth/verify", &pairs).await.status, 200);

    let trusted = spawn_app_with(|config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let headers = headers_of(&trusted.token());
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reply = trusted.get("/auth/verify", &pairs).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["error"], "invalid_request");
    let token = trusted.token();
    let bad_method = trusted
        .get(
            "/auth/verify",
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("X-Original-Method", "G E T"),
                ("X-Original-URI", "/orders"),
            ],
        )
        .await;
    assert_eq!(bad_method.status, 400, "{}", bad_method.body);
    let good = trusted
        .get(
            "/auth/verify",
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("X-Original-Method", "POST"),
                ("X-Original-URI", "/orders?page=2"),
            ],
        )
        .await;
    assert_eq!(good.status, 200, "{}", good.body);
    // The challenge names the metadata of the resource the client asked for.
    let mut refused = trusted
        .get(
            "/auth/verify",
            &[
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/orders/7?page=2"),
            ],
        )
        .await;
    refused.resource_metadata = Some(resource_metadata_url(&trusted.address, "/orders/7"));
    refused.assert_auth_error(401, "unauthorized", "the described request, no token");
    // Caddy and Traefik pass a client's X-Original-* on beside their own X-Forwarded-*: a
    // request described both ways, or by half, is refused, never decided on the client's.
    for (context, headers) in [
        (
            "both pairs",
            &[
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/orders/7"),
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/public"),
            ][..],
        ),
        ("half a pair", &[("X-Forwarded-Uri", "/orders/7")]),
    ] {
        let mut headers = headers.to_vec();
        let bearer = format!("Bearer {token}");
        headers.push(("Authorization", &bearer));
        let reply = trusted.get("/auth/verify", &headers).await;
        assert_eq!(reply.status, 400, "{context}: {}", reply.body);
        assert_eq!(reply.body["error"], "invalid_request", "{context}");
    }
}

#[actix_web::test]
async fn keys_unavailable_gives_503() {
    let (app, _reserved) = spawn_app_with_a_refusing_issuer().await;
    let token = app.token();
    let reply = app
        .get(
            "/auth/verify",
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["error"], "temporarily_unavailable");
    assert!(reply.header("retry-after").is_some());
}

#[actix_web::test]
async fn forward_auth_is_answered_by_api_guard_in_gateway_mode_too() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let token = app.token();
    let reply = app
        .get(
            "/auth/verify",
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.header("x-auth-subject").is_some());
    assert_eq!(upstream.hits(), 0);
}
