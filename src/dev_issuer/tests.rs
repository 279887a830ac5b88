use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE,
};
use actix_web::test::{self, TestRequest};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::*;

const ISSUER: &str = "http://127.0.0.1:8080/oauth2/default";
const FORM: &str = "application/x-www-form-urlencoded";

fn issuer() -> DevIssuer {
    DevIssuer::new(DevIssuerSettings::new(ISSUER)).unwrap()
}

/// Verifies `token` as a resource server would: the published JWK, one algorithm, iss and aud.
fn verify(
    issuer: &DevIssuer,
    kid: &str,
    alg: Algorithm,
    token: &str,
) -> jsonwebtoken::errors::Result<Value> {
    let jwk: Jwk = serde_json::from_value(issuer.jwk(kid).unwrap()).unwrap();
    let mut validation = Validation::new(alg);
    validation.set_audience(&["api://default"]);
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
        .map(|data| data.claims)
}

fn segment(token: &str, index: usize) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(token.split('.').nth(index).unwrap())
        .unwrap()
}

async fn call(issuer: &DevIssuer, request: TestRequest) -> ServiceResponse {
    let app = test::init_service(App::new().configure(|cfg| issuer.configure(cfg))).await;
    test::call_service(&app, request.to_request()).await
}

fn token_request(secret: &str, body: &str) -> TestRequest {
    let credentials = STANDARD.encode(format!("api-guard-dev:{secret}"));
    TestRequest::post()
        .uri("/oauth2/default/v1/token")
        .insert_header((AUTHORIZATION, format!("Basic {credentials}")))
        .insert_header((CONTENT_TYPE, FORM))
        .set_payload(body.to_owned())
}

/// Asserts an RFC 6749 §5.2 error and returns its description.
async fn assert_oauth_error(response: ServiceResponse, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers().get(CACHE_CONTROL).unwrap(), "no-store");
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["error"], code, "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

#[test]
fn dev_issuer_is_clone_send_and_sync() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<DevIssuer>();
}

#[test]
fn new_rejects_an_issuer_that_is_not_a_url() {
    assert!(matches!(
        DevIssuer::new(DevIssuerSettings::new("not a url")),
        Err(DevIssuerError::InvalidIssuer { .. })
    ));
}

#[test]
fn endpoints_derive_from_the_issuer() {
    let issuer = issuer();
    assert_eq!(issuer.token_endpoint(), format!("{ISSUER}/v1/token"));
    assert_eq!(issuer.path_prefix(), "/oauth2/default");
}

#[test]
fn minted_claims_are_okta_shaped() {
    let issuer = issuer();
    let claims = verify(
        &issuer,
        &issuer.signing_kid(),
        Algorithm::RS256,
        &issuer.mint(&["a", "b"]),
    )
    .unwrap();
    assert_eq!(claims["ver"], 1);
    assert!(claims["jti"].as_str().unwrap().starts_with("AT."));
    assert_eq!(
        (&claims["cid"], &claims["sub"]),
        (&json!("api-guard-dev"), &json!("api-guard-dev"))
    );
    assert_eq!(claims["scp"], json!(["a", "b"]));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
}

#[actix_web::test]
async fn token_endpoint_issues_a_verifiable_okta_shaped_token() {
    let issuer = issuer();
    let response = call(
        &issuer,
        token_request("api-guard-dev-secret", "grant_type=client_credentials"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get(CACHE_CONTROL).unwrap(), "no-store");
    assert_eq!(response.headers().get(PRAGMA).unwrap(), "no-cache");
    let body: Value = test::read_body_json(response).await;
    assert_eq!(
        (&body["token_type"], &body["expires_in"], &body["scope"]),
        (&json!("Bearer"), &json!(3600), &json!("AccessAll"))
    );
    let token = body["access_token"].as_str().unwrap();
    let claims = verify(&issuer, &issuer.signing_kid(), Algorithm::RS256, token).unwrap();
    assert_eq!(
        (&claims["cid"], &claims["scp"]),
        (&json!("api-guard-dev"), &json!(["AccessAll"]))
    );
    let header: Value = serde_json::from_slice(&segment(token, 0)).unwrap();
    assert!(header.get("typ").is_none(), "{header}");
}

#[actix_web::test]
async fn token_endpoint_accepts_credentials_in_the_body() {
    let issuer = issuer();
    let request = TestRequest::post().uri("/oauth2/default/v1/token").insert_header((CONTENT_TYPE, FORM)).set_payload(
        "grant_type=client_credentials&client_id=api-guard-dev&client_secret=api-guard-dev-secret&scope=AccessAll",
    );
    assert_eq!(call(&issuer, request).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn token_endpoint_rejects_a_wrong_secret_with_invalid_client_and_a_basic_challenge() {
    let issuer = issuer();
    let response = call(
        &issuer,
        token_request("wrong", "grant_type=client_credentials"),
    )
    .await;
    let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
    let description =
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(challenge.unwrap(), r#"Basic realm="api-guard-dev-issuer""#);
    assert!(!description.contains("wrong"), "{description}");
}

#[actix_web::test]
async fn token_endpoint_rejects_missing_credentials_with_invalid_client() {
    let issuer = issuer();
    let request = TestRequest::post()
        .uri("/oauth2/default/v1/token")
        .insert_header((CONTENT_TYPE, FORM))
        .set_payload("grant_type=client_credentials");
    assert_oauth_error(
        call(&issuer, request).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

#[actix_web::test]
async fn token_endpoint_rejects_an_unknown_scope_with_invalid_scope_naming_it() {
    let issuer = issuer();
    let request = token_request(
        "api-guard-dev-secret",
        "grant_type=client_credentials&scope=AccessAll+admin",
    );
    let description = assert_oauth_error(
        call(&issuer, request).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    assert!(description.contains("`admin`"), "{description}");
}

#[actix_web::test]
async fn token_endpoint_rejects_the_password_grant_with_unsupported_grant_type() {
    let issuer = issuer();
    let request = token_request(
        "api-guard-dev-secret",
        "grant_type=password&username=a&password=b",
    );
    assert_oauth_error(
        call(&issuer, request).await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
}

#[actix_web::test]
async fn token_endpoint_rejects_a_missing_grant_type_with_invalid_request() {
    let issuer = issuer();
    let request = token_request("api-guard-dev-secret", "scope=AccessAll");
    let response = call(&issuer, request).await;
    let description =
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(description.contains("`grant_type`"), "{description}");
}

#[actix_web::test]
async fn token_endpoint_rejects_a_json_body_with_invalid_request() {
    let issuer = issuer();
    let request = token_request(
        "api-guard-dev-secret",
        r#"{"grant_type":"client_credentials"}"#,
    )
    .insert_header((CONTENT_TYPE, "application/json"));
    let response = call(&issuer, request).await;
    let description =
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(description.contains("content type"), "{description}");
}

#[actix_web::test]
async fn token_endpoint_rejects_an_oversized_body_with_a_json_invalid_request() {
    let issuer = issuer();
    let body = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(64 * 1024)
    );
    let response = call(&issuer, token_request("api-guard-dev-secret", &body)).await;
    assert_eq!(
        response.headers().get(CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let description =
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(description.contains("too large"), "{description}");
}

#[actix_web::test]
async fn token_endpoint_rejects_basic_and_body_secrets_together_with_invalid_request() {
    let issuer = issuer();
    let body = "grant_type=client_credentials&client_secret=api-guard-dev-secret";
    let response = call(&issuer, token_request("api-guard-dev-secret", body)).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[actix_web::test]
async fn keys_serve_the_published_jwks_with_cache_control_max_age() {
    let issuer = issuer();
    let es_kid = issuer.add_key(api_guard::Algorithm::ES256);
    let response = call(&issuer, TestRequest::get().uri("/oauth2/default/v1/keys")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(CACHE_CONTROL).unwrap(),
        "max-age=300"
    );
    assert_eq!(
        response.headers().get(CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let body: Value = test::read_body_json(response).await;
    assert_eq!(
        body,
        json!({ "keys": [issuer.jwk(&issuer.signing_kid()).unwrap(), issuer.jwk(&es_kid).unwrap()] })
    );
}

#[actix_web::test]
async fn keys_serve_the_override_exactly() {
    let issuer = issuer();
    let broken = json!({ "keys": [{ "kty": "RSA", "kid": "k", "n": "!!" }] });
    issuer.set_jwk_override(Some(broken.clone()));
    let response = call(&issuer, TestRequest::get().uri("/oauth2/default/v1/keys")).await;
    assert_eq!(test::read_body_json::<Value, _>(response).await, broken);
}

#[actix_web::test]
async fn both_metadata_documents_name_the_issuer_jwks_uri_and_token_endpoint() {
    let issuer = issuer();
    for path in ["oauth-authorization-server", "openid-configuration"] {
        let request = TestRequest::get().uri(&format!("/oauth2/default/.well-known/{path}"));
        let response = call(&issuer, request).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = test::read_body_json(response).await;
        assert_eq!(body["issuer"], ISSUER, "{path}");
        assert_eq!(body["jwks_uri"], format!("{ISSUER}/v1/keys"), "{path}");
        assert_eq!(
            body["token_endpoint"],
            format!("{ISSUER}/v1/token"),
            "{path}"
        );
        assert_eq!(
            body["grant_types_supported"],
            json!(["client_credentials"]),
            "{path}"
        );
        assert_eq!(
            body["id_token_signing_alg_values_supported"],
            json!(["RS256"]),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn set_failing_makes_keys_and_metadata_answer_503_but_not_the_token_endpoint() {
    let issuer = issuer();
    issuer.set_failing(true);
    for uri in [
        "v1/keys",
        ".well-known/oauth-authorization-server",
        ".well-known/openid-configuration",
    ] {
        let response = call(
            &issuer,
            TestRequest::get().uri(&format!("/oauth2/default/{uri}")),
        )
        .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
    }
    let token = call(
        &issuer,
        token_request("api-guard-dev-secret", "grant_type=client_credentials"),
    )
    .await;
    assert_eq!(token.status(), StatusCode::OK);
    issuer.set_failing(false);
    let keys = call(&issuer, TestRequest::get().uri("/oauth2/default/v1/keys")).await;
    assert_eq!(keys.status(), StatusCode::OK);
}

#[actix_web::test]
async fn fetch_counters_count_every_answer_of_their_own_instance() {
    let (counted, other) = (issuer(), issuer());
    call(&counted, TestRequest::get().uri("/oauth2/default/v1/keys")).await;
    counted.set_failing(true);
    call(&counted, TestRequest::get().uri("/oauth2/default/v1/keys")).await;
    call(
        &counted,
        TestRequest::get().uri("/oauth2/default/.well-known/openid-configuration"),
    )
    .await;
    assert_eq!((counted.jwks_fetches(), counted.metadata_fetches()), (2, 1));
    assert_eq!((other.jwks_fetches(), other.metadata_fetches()), (0, 0));
}

#[actix_web::test]
async fn spawn_serves_the_issuer_on_the_bound_address() {
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |settings| {
        settings.audience = "api://spawned".into()
    })
    .await
    .unwrap();
    assert!(
        issuer.issuer().starts_with("http://127.0.0.1:")
            && issuer.issuer().ends_with("/oauth2/default")
    );
    assert_eq!(issuer.settings().audience, "api://spawned");
    let url = format!("{}/.well-known/openid-configuration", issuer.issuer());
    let mut response = awc::Client::default().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issuer"], issuer.issuer());
    assert_eq!(issuer.metadata_fetches(), 1);
    server.stop(true).await;
}
