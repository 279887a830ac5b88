//! DPoP as an embedder sees it: the modes, the per-route requirement and the challenges.
//! Proofs are signed here with aws-lc-rs; the service's black-box suite has the full
//! attack table.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpResponse, web};
use api_guard::testing::TestIssuer;
use api_guard::{AuthenticatedClaims, DpopMode};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

const PUBLIC: &str = "https://api.example.com";

/// A client's P-256 key: its JWK, thumbprint, and proofs for one request each.
struct Client {
    key: EcdsaKeyPair,
    jwk: serde_json::Value,
    thumbprint: String,
}

impl Client {
    fn new() -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = key.public_key().as_ref();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = B64.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
        Client {
            key,
            jwk,
            thumbprint,
        }
    }

    fn proof(&self, method: &str, url: &str, token: &str, jti: &str) -> String {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let ath = B64.encode(digest::digest(&digest::SHA256, token.as_bytes()));
        let claims = json!({"jti": jti, "htm": method, "htu": url, "iat": iat, "ath": ath});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", B64.encode(signature.as_ref()))
    }
}

async fn ok() -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn claims(claims: AuthenticatedClaims) -> HttpResponse {
    HttpResponse::Ok().body(claims.dpop_thumbprint().unwrap_or("unbound").to_owned())
}

/// `GET path` with these headers: status, `WWW-Authenticate`, body.
async fn call<S>(app: &S, path: &str, headers: &[(&str, String)]) -> (u16, String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut request = TestRequest::get().uri(path);
    for (name, value) in headers {
        request = request.append_header((*name, value.clone()));
    }
    let response = test::call_service(app, request.to_request()).await;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
    (status, challenge, body)
}

macro_rules! app {
    ($guard:expr) => {
        test::init_service(
            App::new()
                .configure(api_guard::configure($guard))
                .route("/me", web::get().to(claims))
                .service(
                    web::scope("/bound")
                        .wrap(from_fn(api_guard::require_dpop))
                        .route("/only", web::get().to(ok)),
                ),
        )
        .await
    };
}

fn dpop(token: &str, proof: String) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("DPoP {token}")), ("DPoP", proof)]
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

#[actix_web::test]
async fn a_bound_token_with_a_fresh_proof_is_accepted_once_and_its_claims_name_the_key() {
    let issuer = TestIssuer::new();
    let app = app!(issuer.guard_with(issuer.settings().with_public_url(PUBLIC)));
    let client = Client::new();
    let token = issuer
        .token()
        .claim("cnf", json!({"jkt": client.thumbprint}))
        .mint();
    let proof = client.proof("GET", &format!("{PUBLIC}/me"), &token, "one");
    let (status, _, body) = call(&app, "/me", &dpop(&token, proof.clone())).await;
    assert_eq!((status, body.as_str()), (200, client.thumbprint.as_str()));
    let (status, challenge, _) = call(&app, "/me", &dpop(&token, proof)).await;
    assert_eq!(status, 401, "a replayed proof");
    assert!(
        challenge.starts_with(r#"DPoP algs="RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA", error="invalid_dpop_proof", error_description="the DPoP proof was used before"#),
        "{challenge}"
    );
}

#[actix_web::test]
async fn a_bound_token_sent_as_bearer_is_refused_with_a_dpop_challenge() {
    let issuer = TestIssuer::new();
    let app = app!(issuer.guard());
    let token = issuer.token().claim("cnf", json!({"jkt": "abc"})).mint();
    let (status, challenge, _) = call(&app, "/me", &bearer(&token)).await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with(r#"DPoP algs=""#) && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

#[actix_web::test]
async fn required_mode_refuses_bearer_and_names_dpop_when_no_token_is_sent() {
    let issuer = TestIssuer::new();
    let app = app!(issuer.guard_with(issuer.settings().with_dpop(DpopMode::Required)));
    let token = issuer.token().mint();
    let (status, challenge, body) = call(&app, "/me", &bearer(&token)).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("DPoP algs="), "{challenge}");
    assert!(body.contains("Authorization: DPoP"), "{body}");
    let (status, challenge, _) = call(&app, "/me", &[]).await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("DPoP algs=") && !challenge.contains("error="),
        "{challenge}"
    );
}

#[actix_web::test]
async fn off_mode_treats_the_dpop_scheme_as_no_credentials() {
    let issuer = TestIssuer::new();
    let app = app!(issuer.guard_with(issuer.settings().with_dpop(DpopMode::Off)));
    let client = Client::new();
    let token = issuer
        .token()
        .claim("cnf", json!({"jkt": client.thumbprint}))
        .mint();
    let proof = client.proof("GET", "http://localhost/me", &token, "x");
    let (status, challenge, _) = call(&app, "/me", &dpop(&token, proof)).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, r#"Bearer realm="api-guard""#)
    );
}

#[actix_web::test]
async fn require_dpop_refuses_an_unbound_bearer_token_on_its_routes_only() {
    let issuer = TestIssuer::new();
    let app = app!(issuer.guard_with(issuer.settings().with_public_url(PUBLIC)));
    let token = issuer.token().mint();
    let (status, _, body) = call(&app, "/me", &bearer(&token)).await;
    assert_eq!((status, body.as_str()), (200, "unbound"));
    let (status, challenge, _) = call(&app, "/bound/only", &bearer(&token)).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("DPoP algs="), "{challenge}");
    let client = Client::new();
    let bound = issuer
        .token()
        .claim("cnf", json!({"jkt": client.thumbprint}))
        .mint();
    let proof = client.proof("GET", &format!("{PUBLIC}/bound/only"), &bound, "y");
    assert_eq!(call(&app, "/bound/only", &dpop(&bound, proof)).await.0, 200);
}
