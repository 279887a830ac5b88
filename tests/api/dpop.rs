//! DPoP (RFC 9449) against the real service, with proofs made here: this file's own proof
//! builder signs with aws-lc-rs (ES256, Ed25519, HMAC) and shares no code with the server's
//! checks. Every rule of RFC 9449 §4.3 broken one at a time, proofs reused across methods,
//! URLs and tokens, `htu` spellings on both sides of RFC 3986 equivalence, and the
//! development issuer's bound tokens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use api_guard::Reason;
use api_guard_server::telemetry::TrustedProxies;
use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, client, read, spawn_app, spawn_app_with};

/// A client's key pair.
enum Key {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Key {
    fn p256() -> Self {
        Key::P256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    fn ed25519() -> Self {
        Key::Ed25519(Ed25519KeyPair::generate().unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Key::P256(_) => "ES256",
            Key::Ed25519(_) => "EdDSA",
        }
    }

    /// The public JWK.
    fn jwk(&self) -> Value {
        match self {
            Key::P256(key) => {
                let point = key.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256",
                       "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
            }
            Key::Ed25519(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(key.public_key().as_ref())})
            }
        }
    }

    /// RFC 7638 §3: the required members in lexicographic order, no whitespace.
    fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = match self {
            Key::P256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
                jwk["x"], jwk["y"]
            ),
            Key::Ed25519(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, jwk["x"]),
        };
        B64.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Key::P256(key) => key
                .sign(&SystemRandom::new(), input)
                .unwrap()
                .as_ref()
                .to_vec(),
            Key::Ed25519(key) => key.sign(input).as_ref().to_vec(),
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ath(token: &str) -> String {
    B64.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// A fresh `jti` for each proof of the run.
fn jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", now(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A proof's header and claims, changed freely, then signed.
struct Proof {
    header: Value,
    claims: Value,
    signature: Signature,
}

enum Signature {
    /// With the key whose JWK is in the header (or another one, for forgeries).
    Key,
    /// HMAC-SHA256 with this secret.
    Hmac(Vec<u8>),
    /// No signature (`alg: none`).
    Empty,
}

impl Proof {
    /// A valid proof by `key` for `method url` with `token`.
    fn new(key: &Key, method: &str, url: &str, token: &str) -> Self {
        Proof {
            header: json!({"typ": "dpop+jwt", "alg": key.alg(), "jwk": key.jwk()}),
            claims: json!({"jti": jti(), "htm": method, "htu": url, "iat": now(), "ath": ath(token)}),
            signature: Signature::Key,
        }
    }

    fn header(mut self, name: &str, value: Value) -> Self {
        set(&mut self.header, name, value);
        self
    }

    fn claim(mut self, name: &str, value: Value) -> Self {
        set(&mut self.claims, name, value);
        self
    }

    fn signature(mut self, signature: Signature) -> Self {
        self.signature = signature;
        self
    }

    fn sign(&self, key: &Key) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(self.header.to_string()),
            B64.encode(self.claims.to_string())
        );
        let signature = match &self.signature {
            Signature::Key => key.sign(input.as_bytes()),
            Signature::Hmac(secret) => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
            }
            Signature::Empty => Vec::new(),
        };
        format!("{input}.{}", B64.encode(signature))
    }
}

/// Sets `name` to `value`, or removes it for `Value::Null`.
fn set(object: &mut Value, name: &str, value: Value) {
    let map = object.as_object_mut().unwrap();
    if value.is_null() {
        map.remove(name);
    } else {
        map.insert(name.to_owned(), value);
    }
}

/// `method path` at the service with `Authorization: {scheme} {token}` and these `DPoP`
/// headers.
async fn call(app: &TestApp, method: &str, path: &str, auth: &str, proofs: &[&str]) -> Reply {
    let url = format!("{}{path}", app.address);
    let mut request = match method {
        "POST" => client().post(url),
        _ => client().get(url),
    };
    request = request.insert_header(("Authorization", auth));
    for proof in proofs {
        request = request.append_header(("DPoP", *proof));
    }
    let response = if method == "POST" {
        request.send_json(&json!({"x": 1})).await
    } else {
        request.send().await
    };
    read(response.expect("the service answers")).await
}

async fn whoami(app: &TestApp, token: &str, proofs: &[&str]) -> Reply {
    call(app, "GET", "/api/whoami", &format!("DPoP {token}"), proofs).await
}

/// Asserts a 401 with a DPoP challenge carrying `error`, and the same code in the body.
#[track_caller]
fn assert_dpop_refusal(reply: &Reply, error: &str, context: &str) {
    assert_eq!(reply.status, 401, "{context}: body {}", reply.body);
    assert_eq!(reply.body["error"], error, "{context}: body {}", reply.body);
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(
            r#"DPoP algs="RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA", error=""#
        ) && challenge.contains(&format!(r#"error="{error}""#))
            && challenge.contains("resource_metadata="),
        "{context}: challenge {challenge:?}"
    );
}

#[actix_web::test]
async fn a_dpop_bound_token_with_a_valid_proof_is_accepted_for_p256_and_ed25519_keys() {
    let app = spawn_app().await;
    let url = format!("{}/api/whoami", app.address);
    for key in [Key::p256(), Key::ed25519()] {
        let token = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
        let proof = Proof::new(&key, "GET", &url, &token).sign(&key);
        let reply = whoami(&app, &token, &[&proof]).await;
        assert_eq!(reply.status, 200, "{}: {}", key.alg(), reply.body);
    }
}

#[actix_web::test]
async fn every_rule_of_rfc_9449_broken_alone_is_refused() {
    let app = spawn_app().await;
    let url = format!("{}/api/whoami", app.address);
    let key = Key::p256();
    let other = Key::p256();
    let token = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let other_token = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let valid = || Proof::new(&key, "GET", &url, &token);
    let mut private_jwk = key.jwk();
    private_jwk["d"] = json!(B64.encode([7u8; 32]));
    let cases: Vec<(&str, String, Reason)> = vec![
        (
            "typ missing",
            valid().header("typ", Value::Null).sign(&key),
            Reason::DpopWrongType,
        ),
        (
            "typ JWT",
            valid().header("typ", json!("JWT")).sign(&key),
            Reason::DpopWrongType,
        ),
        (
            "typ at+jwt",
            valid().header("typ", json!("at+jwt")).sign(&key),
            Reason::DpopWrongType,
        ),
        (
            "alg none, unsigned",
            valid()
                .header("alg", json!("none"))
                .signature(Signature::Empty)
                .sign(&key),
            Reason::DpopAlgorithmNotAllowed,
        ),
        (
            "alg HS256, HMAC with the public key's x as the secret",
            valid()
                .header("alg", json!("HS256"))
                .signature(Signature::Hmac(
                    B64.decode(key.jwk()["x"].as_str().unwrap()).unwrap(),
                ))
                .sign(&key),
            Reason::DpopAlgorithmNotAllowed,
        ),
        (
            "alg RS256 with an EC key",
            valid().header("alg", json!("RS256")).sign(&key),
            Reason::DpopBadKey,
        ),
        (
            "alg missing",
            valid().header("alg", Value::Null).sign(&key),
            Reason::DpopAlgorithmNotAllowed,
        ),
        (
            "jwk missing",
            valid().header("jwk", Value::Null).sign(&key),
            Reason::DpopBadKey,
        ),
        (
            "jwk with the private member d",
            valid().header("jwk", private_jwk).sign(&key),
            Reason::DpopPrivateKey,
        ),
        (
            "jwk symmetric",
            valid()
                .header("jwk", json!({"kty": "oct", "k": "c2VjcmV0"}))
                .sign(&key),
            Reason::DpopPrivateKey,
        ),
        (
            "jwk of another key than the signer",
            valid().header("jwk", other.jwk()).sign(&key),
            Reason::DpopBadSignature,
        ),
        (
            "crit header",
            valid().header("crit", json!(["exp"])).sign(&key),
            Reason::DpopUnsupportedCritical,
        ),
        (
            "signature tampered",
            {
                let proof = valid().sign(&key);
                let (input, signature) = proof.rsplit_once('.').unwrap();
                let mut bytes = B64.decode(signature).unwrap();
                bytes[5] ^= 1;
                format!("{input}.{}", B64.encode(bytes))
            },
            Reason::DpopBadSignature,
        ),
        (
            "signed by another key, its own jwk",
            valid().header("jwk", other.jwk()).sign(&other),
            Reason::DpopKeyMismatch,
        ),
        (
            "htm POST for a GET",
            valid().claim("htm", json!("POST")).sign(&key),
            Reason::DpopWrongMethod,
        ),
        (
            "htm lower case",
            valid().claim("htm", json!("get")).sign(&key),
            Reason::DpopWrongMethod,
        ),
        (
            "htm missing",
            valid().claim("htm", Value::Null).sign(&key),
            Reason::DpopMalformed,
        ),
        (
            "htu another path",
            valid()
                .claim("htu", json!(format!("{}/api/hello", app.address)))
                .sign(&key),
            Reason::DpopWrongUrl,
        ),
        (
            "htu another host",
            valid()
                .claim("htu", json!("http://evil.example/api/whoami"))
                .sign(&key),
            Reason::DpopWrongUrl,
        ),
        (
            "htu missing",
            valid().claim("htu", Value::Null).sign(&key),
            Reason::DpopMalformed,
        ),
        (
            "iat older than the window",
            valid().claim("iat", json!(now() - 181 - 5)).sign(&key),
            Reason::DpopStale,
        ),
        (
            "iat in the future past the leeway",
            valid().claim("iat", json!(now() + 120)).sign(&key),
            Reason::DpopIssuedInFuture,
        ),
        (
            "iat a string",
            valid().claim("iat", json!(now().to_string())).sign(&key),
            Reason::DpopMalformed,
        ),
        (
            "iat missing",
            valid().claim("iat", Value::Null).sign(&key),
            Reason::DpopMalformed,
        ),
        (
            "jti missing",
            valid().claim("jti", Value::Null).sign(&key),
            Reason::DpopMalformed,
        ),
        (
            "ath missing",
            valid().claim("ath", Value::Null).sign(&key),
            Reason::DpopMalformed,
        ),
        (
            "ath of another token",
            valid().claim("ath", json!(ath(&other_token))).sign(&key),
            Reason::DpopWrongTokenHash,
        ),
        (
            "a valid proof of a key the token is not bound to",
            Proof::new(&other, "GET", &url, &token).sign(&other),
            Reason::DpopKeyMismatch,
        ),
        ("not a JWT", "abc".to_owned(), Reason::DpopMalformed),
        (
            "two segments",
            valid().sign(&key).rsplit_once('.').unwrap().0.to_owned(),
            Reason::DpopMalformed,
        ),
        (
            "over 8 KiB",
            valid().claim("pad", json!("x".repeat(9 * 1024))).sign(&key),
            Reason::DpopTooLarge,
        ),
    ];
    for (case, proof, reason) in &cases {
        let reply = whoami(&app, &token, &[proof]).await;
        assert_dpop_refusal(&reply, "invalid_dpop_proof", case);
        assert_eq!(
            reply.body["error_description"],
            reason.description(),
            "{case}: refused for another reason"
        );
    }
    // The table is not refusing everything: the same token with a valid proof passes.
    let reply = whoami(&app, &token, &[&valid().sign(&key)]).await;
    assert_eq!(reply.status, 200, "control: {}", reply.body);
    // A proof within the leeway of the future is accepted.
    let soon = valid().claim("iat", json!(now() + 30)).sign(&key);
    assert_eq!(
        whoami(&app, &token, &[&soon]).await.status,
        200,
        "iat 30 s ahead"
    );
}

#[actix_web::test]
async fn the_header_count_the_scheme_and_the_binding_are_enforced() {
    let app = spawn_app().await;
    let url = format!("{}/api/whoami", app.address);
    let key = Key::p256();
    let token = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let proof = || Proof::new(&key, "GET", &url, &token).sign(&key);
    let two = whoami(&app, &token, &[&proof(), &proof()]).await;
    assert_dpop_refusal(&two, "invalid_dpop_proof", "two DPoP headers");
    let none = whoami(&app, &token, &[]).await;
    assert_dpop_refusal(&none, "invalid_dpop_proof", "no DPoP header");
    let as_bearer = call(&app, "GET", "/api/whoami", &format!("Bearer {token}"), &[]).await;
    assert_dpop_refusal(&as_bearer, "invalid_token", "a bound token sent as Bearer");
    let unbound = app.token();
    let proof = Proof::new(&key, "GET", &url, &unbound).sign(&key);
    let reply = whoami(&app, &unbound, &[&proof]).await;
    assert_dpop_refusal(&reply, "invalid_token", "an unbound token sent as DPoP");
    // An unbound token as Bearer still works in the default mode (`allowed`).
    assert_eq!(app.whoami(&unbound).await.status, 200);
}

#[actix_web::test]
async fn a_proof_is_good_for_one_request_its_method_url_and_token_only() {
    let app = spawn_app().await;
    let url = format!("{}/api/whoami", app.address);
    let key = Key::p256();
    let token = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let second = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let proof = Proof::new(&key, "GET", &url, &token).sign(&key);
    assert_eq!(whoami(&app, &token, &[&proof]).await.status, 200);
    let again = whoami(&app, &token, &[&proof]).await;
    assert_dpop_refusal(&again, "invalid_dpop_proof", "the same proof twice");
    assert_eq!(
        again.body["error_description"],
        "the DPoP proof was used before: make a fresh proof for each request"
    );

    let unused = Proof::new(&key, "GET", &url, &token).sign(&key);
    let other_method = call(
        &app,
        "POST",
        "/api/echo",
        &format!("DPoP {token}"),
        &[&unused],
    )
    .await;
    assert_dpop_refusal(
        &other_method,
        "invalid_dpop_proof",
        "a GET proof on POST /api/echo",
    );
    let other_token = whoami(&app, &second, &[&unused]).await;
    assert_dpop_refusal(
        &other_token,
        "invalid_dpop_proof",
        "a proof for another token",
    );
    let post_proof = Proof::new(&key, "POST", &url, &token).sign(&key);
    let other_url = call(
        &app,
        "POST",
        "/api/echo",
        &format!("DPoP {token}"),
        &[&post_proof],
    )
    .await;
    assert_dpop_refusal(&other_url, "invalid_dpop_proof", "a proof for another URL");
    // The unused proof was refused elsewhere, not spent: it still works where it belongs.
    assert_eq!(whoami(&app, &token, &[&unused]).await.status, 200);
}

#[actix_web::test]
async fn htu_spellings_equal_per_rfc_3986_are_accepted_and_others_refused() {
    let public = "https://api.example.com";
    let app = spawn_app_with(|config| {
        config.public_url = Some(public.to_owned());
        config.auth = config.auth.clone().with_public_url(public);
    })
    .await;
    let key = Key::p256();
    let token = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let equal = [
        "https://api.example.com/api/whoami",
        "HTTPS://API.Example.COM/api/whoami",
        "https://api.example.com:443/api/whoami",
        "https://api.example.com/%61pi/whoami",
        "https://api.example.com/api/whoami?query=ignored",
        "https://api.example.com/api/whoami#fragment",
    ];
    for htu in equal {
        let proof = Proof::new(&key, "GET", htu, &token).sign(&key);
        assert_eq!(whoami(&app, &token, &[&proof]).await.status, 200, "{htu}");
    }
    let different = [
        "https://api.example.com/api/whoami/",
        "https://api.example.com/API/whoami",
        "http://api.example.com/api/whoami",
        "https://api.example.com:8443/api/whoami",
        "https://api.example.com/api%2Fwhoami",
        "https://user@api.example.com/api/whoami",
        // The address the service is bound to is not its public URL.
        &format!("{}/api/whoami", app.address),
    ];
    for htu in different {
        let proof = Proof::new(&key, "GET", htu, &token).sign(&key);
        assert_dpop_refusal(
            &whoami(&app, &token, &[&proof]).await,
            "invalid_dpop_proof",
            htu,
        );
    }
}

/// `GET /auth/verify` with a DPoP token and proof, describing `method uri` as nginx does.
async fn forward_auth(app: &TestApp, token: &str, proof: &str, method: &str, uri: &str) -> Reply {
    let response = client()
        .get(format!("{}/auth/verify", app.address))
        .insert_header(("Authorization", format!("DPoP {token}")))
        .insert_header(("DPoP", proof))
        .insert_header(("X-Original-Method", method))
        .insert_header(("X-Original-URI", uri))
        .send()
        .await;
    read(response.expect("the service answers")).await
}

#[actix_web::test]
async fn through_forward_auth_a_proof_names_the_request_a_trusted_front_proxy_describes() {
    let public = "https://api.example.com";
    let spawn = |trusted: bool| {
        spawn_app_with(move |config| {
            config.public_url = Some(public.to_owned());
            config.auth = config.auth.clone().with_public_url(public);
            if trusted {
                config.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
            }
        })
    };
    let app = spawn(true).await;
    let key = Key::p256();
    let token = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let client_request = format!("{public}/orders/7");
    let proof = Proof::new(&key, "POST", &client_request, &token).sign(&key);
    let reply = forward_auth(&app, &token, &proof, "POST", "/orders/7?page=2").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("x-auth-subject")
            .is_some_and(|s| !s.is_empty())
    );
    // A proof for the subrequest itself, or for another method, names another request.
    let subrequest = format!("{public}/auth/verify");
    // The path as the policy normalises it (and the upstream receives it): `/x//../orders/7`
    // is `/orders/7`, though RFC 3986 alone makes it `/x/orders/7`.
    let proof = Proof::new(&key, "POST", &client_request, &token).sign(&key);
    let reply = forward_auth(&app, &token, &proof, "POST", "/x//../orders/7").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rfc_3986_only = format!("{public}/x/orders/7");
    let proof = Proof::new(&key, "POST", &rfc_3986_only, &token).sign(&key);
    assert_dpop_refusal(
        &forward_auth(&app, &token, &proof, "POST", "/x//../orders/7").await,
        "invalid_dpop_proof",
        "the path as RFC 3986 alone normalises it",
    );
    for (htm, htu, context) in [
        (
            "GET",
            subrequest.as_str(),
            "the subrequest's own method and URL",
        ),
        ("DELETE", client_request.as_str(), "another method"),
        ("POST", &format!("{public}/orders/8"), "another path"),
    ] {
        let proof = Proof::new(&key, htm, htu, &token).sign(&key);
        assert_dpop_refusal(
            &forward_auth(&app, &token, &proof, "POST", "/orders/7").await,
            "invalid_dpop_proof",
            context,
        );
    }

    // From a peer that is not trusted, the description is ignored: the proof must name the
    // request that reached api-guard.
    let untrusted = spawn(false).await;
    let token = untrusted
        .issuer
        .mint_bound(&["AccessAll"], &key.thumbprint());
    let for_client = Proof::new(&key, "POST", &client_request, &token).sign(&key);
    assert_dpop_refusal(
        &forward_auth(&untrusted, &token, &for_client, "POST", "/orders/7").await,
        "invalid_dpop_proof",
        "untrusted description",
    );
    let for_itself = Proof::new(&key, "GET", &subrequest, &token).sign(&key);
    let reply = forward_auth(&untrusted, &token, &for_itself, "POST", "/orders/7").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn required_mode_refuses_bearer_tokens_and_the_metadata_says_so() {
    let app = spawn_app_with(|config| {
        config.auth = config.auth.clone().with_dpop(api_guard::DpopMode::Required);
    })
    .await;
    let reply = app.whoami(&app.token()).await;
    assert_dpop_refusal(&reply, "invalid_token", "a Bearer token in required mode");
    let anonymous = app.get("/api/whoami", &[]).await;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap_or_default()
            .starts_with("DPoP algs="),
        "{:?}",
        anonymous.headers
    );
    let metadata = app.get("/.well-known/oauth-protected-resource", &[]).await;
    assert_eq!(
        metadata.body["dpop_bound_access_tokens_required"],
        json!(true)
    );
    assert_eq!(
        metadata.body["dpop_signing_alg_values_supported"],
        json!([
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"
        ])
    );
    let allowed = spawn_app().await;
    let metadata = allowed
        .get("/.well-known/oauth-protected-resource", &[])
        .await;
    assert_eq!(metadata.body.get("dpop_bound_access_tokens_required"), None);
    assert!(metadata.body["dpop_signing_alg_values_supported"].is_array());
}

/// `POST` to the development issuer's token endpoint with client credentials and these
/// `DPoP` headers.
async fn token_request(app: &TestApp, proofs: &[&str]) -> Reply {
    let mut request = client()
        .post(app.issuer.token_endpoint())
        .basic_auth("api-guard-dev", "api-guard-dev-secret");
    for proof in proofs {
        request = request.append_header(("DPoP", *proof));
    }
    let response = request
        .send_form(&[("grant_type", "client_credentials")])
        .await;
    read(response.expect("the issuer answers")).await
}

#[actix_web::test]
async fn the_development_issuer_binds_a_token_requested_with_a_proof() {
    let app = spawn_app().await;
    let key = Key::p256();
    let endpoint = app.issuer.token_endpoint();
    let token_proof = |url: &str| {
        let mut proof = Proof::new(&key, "POST", url, "");
        set(&mut proof.claims, "ath", Value::Null);
        proof.sign(&key)
    };
    let reply = token_request(&app, &[&token_proof(&endpoint)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "DPoP");
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    let claims: Value =
        serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["cnf"]["jkt"], json!(key.thumbprint()));
    let proof = Proof::new(&key, "GET", &format!("{}/api/whoami", app.address), &token).sign(&key);
    assert_eq!(whoami(&app, &token, &[&proof]).await.status, 200);

    // Without a proof: a Bearer token, as before.
    let plain = token_request(&app, &[]).await;
    assert_eq!(plain.body["token_type"], "Bearer");
    // A proof for another URL, or a used one: 400 invalid_dpop_proof (RFC 9449 §5).
    let wrong = token_request(&app, &[&token_proof(&format!("{}/x", app.address))]).await;
    assert_eq!(
        (wrong.status, wrong.body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    let used = token_proof(&endpoint);
    assert_eq!(token_request(&app, &[&used]).await.status, 200);
    let replayed = token_request(&app, &[&used]).await;
    assert_eq!(
        (replayed.status, replayed.body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
}

#[actix_web::test]
async fn with_nonces_a_proof_without_the_current_nonce_learns_it_and_every_replica_agrees() {
    const SECRET: &str = "a shared secret of at least 32 bytes, for the test";
    let (issuer, issuer_server) =
        api_guard_server::dev_issuer::DevIssuer::spawn("127.0.0.1:0", |_| {})
            .await
            .unwrap();
    let public = "https://api.example.com";
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let replica =
            crate::helpers::spawn_app_for(issuer.clone(), issuer_server.clone(), |config| {
                config.public_url = Some(public.to_owned());
                config.auth = config
                    .auth
                    .clone()
                    .with_public_url(public)
                    .with_dpop_nonce_secret(SECRET);
            })
            .await;
        replicas.push(replica);
    }
    let key = Key::p256();
    let token = issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let url = format!("{public}/api/whoami");
    let without = Proof::new(&key, "GET", &url, &token).sign(&key);
    let reply = whoami(&replicas[0], &token, &[&without]).await;
    assert_dpop_refusal(&reply, "use_dpop_nonce", "a proof without a nonce");
    let nonce = reply
        .header("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_owned();
    let wrong = Proof::new(&key, "GET", &url, &token)
        .claim("nonce", json!("not-the-nonce"))
        .sign(&key);
    let reply = whoami(&replicas[0], &token, &[&wrong]).await;
    assert_dpop_refusal(&reply, "use_dpop_nonce", "a proof with a made-up nonce");
    // The nonce one replica gave is good at the other: no shared state but the secret.
    let with = Proof::new(&key, "GET", &url, &token)
        .claim("nonce", json!(nonce))
        .sign(&key);
    let reply = whoami(&replicas[1], &token, &[&with]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn the_token_is_checked_before_the_proof_and_a_new_key_defers_the_proof_until_it_is_fetched()
{
    let app = spawn_app().await;
    let url = format!("{}/api/whoami", app.address);
    let key = Key::p256();
    // A forged token with a perfect proof: refused for the token, before the proof's
    // signature (a client-chosen key, up to RSA-8192) is worth checking.
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    let proof = Proof::new(&key, "GET", &url, forged).sign(&key);
    let reply = whoami(&app, forged, &[&proof]).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    // A token signed with a key the service has not fetched yet: the proof is checked after
    // the refetch, and passes.
    let kid = app.issuer.add_key(api_guard::Algorithm::RS256);
    assert!(app.issuer.use_key(&kid));
    let token = app.issuer.mint_bound(&["AccessAll"], &key.thumbprint());
    let bad = Proof::new(&key, "GET", &url, &token)
        .claim("htm", json!("PUT"))
        .sign(&key);
    assert_dpop_refusal(
        &whoami(&app, &token, &[&bad]).await,
        "invalid_dpop_proof",
        "a bad proof with a token of a key fetched for it",
    );
    let proof = Proof::new(&key, "GET", &url, &token).sign(&key);
    let reply = whoami(&app, &token, &[&proof]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}
