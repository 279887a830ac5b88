//! Discovery against metadata servers that are not the development issuer: the
//! `openid-configuration` fallback, and redirects, which the fetch client never follows.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::helpers::{serve, spawn_app_with};

fn issuer_url(base: &str) -> String {
    format!("{base}/oauth2/default")
}

#[actix_web::test]
async fn discovery_falls_back_to_openid_configuration() {
    let app = spawn_app_with(|_| {}).await;
    let jwks_uri = format!("{}/v1/keys", app.issuer.issuer());
    // Only the OpenID document exists here; it names this server as issuer and the dev
    // issuer's key set.
    let base = serve(move |cfg| {
        let jwks_uri = jwks_uri.clone();
        cfg.route(
            "/oauth2/default/.well-known/openid-configuration",
            web::get().to(move |req: actix_web::HttpRequest| {
                let issuer = format!("http://{}/oauth2/default", req.connection_info().host());
                let body = json!({"issuer": issuer, "jwks_uri": jwks_uri});
                async move { HttpResponse::Ok().json(body) }
            }),
        );
    })
    .await;
    let fetches = app.issuer.jwks_fetches();
    let other =
        spawn_app_with(|config| config.auth = config.auth.clone().with_issuer(issuer_url(&base)))
            .await;
    assert_eq!(other.get("/health/ready", &[]).await.status, 200);
    assert_eq!(
        app.issuer.jwks_fetches(),
        fetches + 1,
        "keys came from the named jwks_uri"
    );
}

#[actix_web::test]
async fn redirects_from_the_metadata_url_are_not_followed() {
    let app = spawn_app_with(|_| {}).await;
    let target = format!(
        "{}/.well-known/oauth-authorization-server",
        app.issuer.issuer()
    );
    let base = serve(move |cfg| {
        let target = target.clone();
        cfg.default_service(web::to(move || {
            let target = target.clone();
            async move {
                HttpResponse::Found()
                    .insert_header(("Location", target))
                    .finish()
            }
        }));
    })
    .await;
    let metadata_fetches = app.issuer.metadata_fetches();
    let other =
        spawn_app_with(|config| config.auth = config.auth.clone().with_issuer(issuer_url(&base)))
            .await;
    assert_eq!(other.get("/health/ready", &[]).await.status, 503);
    assert_eq!(
        app.issuer.metadata_fetches(),
        metadata_fetches,
        "the redirect was not followed"
    );
}
