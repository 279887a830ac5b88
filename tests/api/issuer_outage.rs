//! The issuer down at start, failing after start, or serving junk: the service keeps serving
//! what it can, says 503 (not 401) when it cannot judge a token, and heals by itself.

use std::time::Duration;

use api_guard::Algorithm;
use api_guard_server::dev_issuer::DevIssuer;
use serde_json::json;

use crate::helpers::{eventually, spawn_app, spawn_app_for};

#[actix_web::test]
async fn with_the_issuer_down_at_start_protected_routes_answer_503_and_recover_by_themselves() {
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    issuer.set_failing(true);
    let app = spawn_app_for(issuer, server, |_| {}).await;

    assert_eq!(app.get("/health/live", &[]).await.status, 200);
    assert_eq!(app.get("/health/ready", &[]).await.status, 503);
    assert_eq!(app.get("/api/hello", &[]).await.status, 200);
    let reply = app.whoami(&app.token()).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["error"], "temporarily_unavailable");
    assert!(
        reply
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok())
    );
    assert!(
        reply.header("www-authenticate").is_none(),
        "not the caller's fault: no challenge"
    );

    app.issuer.set_failing(false);
    let ready = eventually(Duration::from_secs(10), || async {
        app.get("/health/ready", &[]).await.status == 200
    })
    .await;
    assert!(ready, "the service became ready once the issuer came back");
    assert_eq!(app.whoami(&app.token()).await.status, 200);
}

#[actix_web::test]
async fn with_nothing_listening_at_the_issuer_the_service_still_starts_and_serves_anonymous_routes()
{
    let (app, _reserved) = crate::helpers::spawn_app_with_a_refusing_issuer().await;
    assert_eq!(app.get("/health/ready", &[]).await.status, 503);
    assert_eq!(app.get("/api/hello", &[]).await.status, 200);
    assert_eq!(app.whoami("a.b.c").await.status, 503);
}

#[actix_web::test]
async fn when_the_issuer_fails_after_start_the_last_good_keys_stay_in_use() {
    let app = spawn_app().await;
    let token = app.token();
    app.issuer.set_failing(true);
    // A new kid makes the store refetch; the fetch fails.
    let fetches = app.issuer.jwks_fetches();
    let kid = app.issuer.add_key(Algorithm::ES256);
    assert!(app.issuer.use_key(&kid));
    let new_key_reply = app.whoami(&app.token()).await;
    new_key_reply.assert_auth_error(401, "invalid_token", "key not loadable while failing");
    // Retries after the failure may add fetches of their own; the request's one happened.
    assert!(app.issuer.jwks_fetches() > fetches, "the refetch was tried");
    assert_eq!(
        app.whoami(&token).await.status,
        200,
        "the old key still verifies"
    );
    assert_eq!(app.get("/health/ready", &[]).await.status, 200);
}

#[actix_web::test]
async fn a_key_set_that_is_junk_keeps_the_last_good_keys() {
    let app = spawn_app().await;
    let token = app.token();
    app.issuer
        .set_jwk_override(Some(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})));
    let mut header = app.issuer.standard_header();
    header["kid"] = json!("unknown");
    let unknown = app
        .issuer
        .mint_with(header, app.issuer.standard_claims(&["AccessAll"]));
    let fetches = app.issuer.jwks_fetches();
    assert_eq!(app.whoami(&unknown).await.status, 401);
    assert!(
        app.issuer.jwks_fetches() > fetches,
        "the junk set was fetched"
    );
    assert_eq!(
        app.whoami(&token).await.status,
        200,
        "a set with no usable key replaced nothing"
    );
}

#[actix_web::test]
async fn a_key_set_larger_than_the_size_limit_is_not_loaded() {
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let good = issuer.jwk(&issuer.signing_kid()).unwrap();
    let padding = "p".repeat(256 * 1024 /* the key store's document limit */);
    issuer.set_jwk_override(Some(json!({"keys": [good], "padding": padding})));
    let app = spawn_app_for(issuer, server, |_| {}).await;
    assert!(
        app.issuer.jwks_fetches() > 0,
        "the oversized set was fetched"
    );
    assert_eq!(app.get("/health/ready", &[]).await.status, 503);
}

#[actix_web::test]
async fn metadata_naming_another_issuer_is_refused() {
    // The issuer serves metadata for `{url}/`, one character off the configured `{url}`.
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |settings| settings.issuer.push('/'))
        .await
        .unwrap();
    let configured = issuer.issuer().trim_end_matches('/').to_owned();
    let app = spawn_app_for(issuer, server, |config| {
        config.auth = config.auth.clone().with_issuer(configured);
    })
    .await;
    assert!(app.issuer.metadata_fetches() > 0, "discovery was tried");
    assert_eq!(
        app.issuer.jwks_fetches(),
        0,
        "no keys from a mismatched issuer"
    );
    assert_eq!(app.get("/health/ready", &[]).await.status, 503);
}

#[actix_web::test]
async fn a_configured_jwks_uri_skips_discovery() {
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let jwks_uri = format!("{}/v1/keys", issuer.issuer());
    let app = spawn_app_for(issuer, server, |config| {
        config.auth = config.auth.clone().with_jwks_uri(jwks_uri)
    })
    .await;
    assert_eq!(app.whoami(&app.token()).await.status, 200);
    assert_eq!(app.issuer.metadata_fetches(), 0);
    assert_eq!(app.issuer.jwks_fetches(), 1);
}

#[actix_web::test]
async fn an_unusable_key_is_skipped_without_spoiling_the_rest_of_the_set() {
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let good = issuer.jwk(&issuer.signing_kid()).unwrap();
    issuer.set_jwk_override(Some(json!({"keys": [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": good["n"], "e": "AQAB"},
        "not even an object",
        good,
    ]})));
    let app = spawn_app_for(issuer, server, |_| {}).await;
    assert_eq!(app.get("/health/ready", &[]).await.body["keys"], 1);
    assert_eq!(app.whoami(&app.token()).await.status, 200);
}
