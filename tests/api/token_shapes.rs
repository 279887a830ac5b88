//! Tokens from other issuers differ: every documented shape is
//! accepted, and read the same way.

use api_guard::Algorithm;
use api_guard_server::dev_issuer::DevIssuer;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_for};

fn standard_shape(app: &TestApp) -> Value {
    let okta = app.issuer.standard_claims(&[]);
    json!({
        "iss": okta["iss"],
        "aud": ["api://other", "api://default"],
        "exp": okta["exp"],
        "iat": okta["iat"],
        "client_id": "service-7",
        "scope": "orders:read orders:write",
    })
}

#[actix_web::test]
async fn an_rfc_9068_token_with_scope_string_client_id_and_aud_array_is_accepted() {
    let app = spawn_app().await;
    let mut header = app.issuer.standard_header();
    header["typ"] = json!("at+jwt");
    let reply = app
        .whoami(&app.issuer.mint_with(header, standard_shape(&app)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["client_id"], "service-7");
    assert_eq!(reply.body["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(
        reply.body["sub"],
        Value::Null,
        "sub, nbf and jti may be missing"
    );
}

#[actix_web::test]
async fn typ_may_be_absent_jwt_or_at_jwt_in_any_case() {
    let app = spawn_app().await;
    for typ in [
        None,
        Some("JWT"),
        Some("at+jwt"),
        Some("application/at+JWT"),
    ] {
        let mut header = app.issuer.standard_header();
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        let token = app
            .issuer
            .mint_with(header, app.issuer.standard_claims(&["AccessAll"]));
        assert_eq!(app.whoami(&token).await.status, 200, "typ {typ:?}");
    }
}

#[actix_web::test]
async fn every_allowed_key_type_verifies_its_own_tokens() {
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let kids: Vec<String> = Algorithm::ALL
        .iter()
        .map(|alg| issuer.add_key(*alg))
        .collect();
    let app = spawn_app_for(issuer, server, |_| {}).await;
    for (alg, kid) in Algorithm::ALL.iter().zip(&kids) {
        assert!(app.issuer.use_key(kid));
        let reply = app.whoami(&app.token()).await;
        assert_eq!(reply.status, 200, "{alg:?}: {}", reply.body);
    }
}

#[actix_web::test]
async fn a_jwk_without_alg_and_use_is_accepted_for_its_key_type() {
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let mut jwk = issuer.jwk(&issuer.signing_kid()).unwrap();
    let object = jwk.as_object_mut().unwrap();
    object.remove("alg");
    object.remove("use");
    issuer.set_jwk_override(Some(json!({ "keys": [jwk] })));
    let app = spawn_app_for(issuer, server, |_| {}).await;
    assert_eq!(app.whoami(&app.token()).await.status, 200);
    // Without the JWK's `alg` the key still verifies only what it signed: RS384 over an RS256
    // signature is a bad signature, not a pass.
    let mut header = app.issuer.standard_header();
    header["alg"] = json!("RS384");
    let forged = app
        .issuer
        .mint_with(header, app.issuer.standard_claims(&["AccessAll"]));
    let reply = app.whoami(&forged).await;
    reply.assert_auth_error(401, "invalid_token", "RS384 header, RS256 signature");
    assert_eq!(
        reply.body["error_description"],
        api_guard::Reason::BadSignature.description()
    );
}

#[actix_web::test]
async fn a_token_without_kid_is_accepted_when_the_issuer_publishes_one_key() {
    let app = spawn_app().await;
    let token = app.issuer.mint_with(
        json!({"alg": "RS256"}),
        app.issuer.standard_claims(&["AccessAll"]),
    );
    assert_eq!(app.whoami(&token).await.status, 200);
}

#[actix_web::test]
async fn several_configured_audiences_each_accept_their_tokens() {
    let app = spawn_app_with_audiences().await;
    for aud in ["api://default", "api://orders"] {
        let mut claims = app.issuer.standard_claims(&["AccessAll"]);
        claims["aud"] = json!(aud);
        let token = app.issuer.mint_with(app.issuer.standard_header(), claims);
        assert_eq!(app.whoami(&token).await.status, 200, "aud {aud}");
    }
}

async fn spawn_app_with_audiences() -> TestApp {
    crate::helpers::spawn_app_with(|config| {
        config.auth = config
            .auth
            .clone()
            .with_audiences(["api://default", "api://orders"]);
    })
    .await
}
