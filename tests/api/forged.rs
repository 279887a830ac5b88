//! Forged and malformed tokens (RFC 8725 §2, §3): every one is refused with the exact RFC 6750
//! outcome and the reason it deserves, and none of them is a 500.

use api_guard::Algorithm;
use api_guard::Reason;
use api_guard_server::dev_issuer::{DevIssuer, DevIssuerSettings};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_for, spawn_app_with};

/// What a forged token must get.
pub(crate) enum Expect {
    /// 401 `invalid_token` with this reason's description.
    Invalid(Reason),
    /// 400 `invalid_request` with this reason's description.
    BadRequest(Reason),
}

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) token: String,
    pub(crate) expect: Expect,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// A compact JWS with an HMAC signature made with `secret`, as an attacker who takes the
/// issuer's public key for a shared secret would make it.
fn hmac_signed(
    alg: &str,
    kid: &str,
    claims: &Value,
    secret: &[u8],
    hash: hmac::Algorithm,
) -> String {
    let input = format!(
        "{}.{}",
        b64_json(&json!({"alg": alg, "kid": kid})),
        b64_json(claims)
    );
    let tag = hmac::sign(&hmac::Key::new(hash, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64_json(header), b64_json(claims))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A second issuer with keys of its own that the service does not trust.
fn stranger() -> DevIssuer {
    DevIssuer::new(DevIssuerSettings::new("http://127.0.0.1:9/oauth2/default")).unwrap()
}

/// The forged-token table; `explain.rs` runs it through `api-guard explain` too.
pub(crate) fn cases(app: &TestApp) -> Vec<Case> {
    use Expect::{BadRequest, Invalid};
    let issuer = &app.issuer;
    let kid = issuer.signing_kid();
    let header = issuer.standard_header();
    let claims = issuer.standard_claims(&["AccessAll"]);
    let with_header = |changes: Value| {
        let mut h = header.clone();
        for (name, value) in changes.as_object().unwrap() {
            h[name] = value.clone();
        }
        issuer.mint_with(h, claims.clone())
    };
    let with_claims = |changes: Value| {
        let mut c = claims.clone();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                c.as_object_mut().unwrap().remove(name);
            } else {
                c[name] = value.clone();
            }
        }
        issuer.mint_with(header.clone(), c)
    };
    let public_der = issuer.public_key_der(&kid).unwrap();
    let jwk = issuer.jwk(&kid).unwrap();
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let jwk_json = serde_json::to_vec(&jwk).unwrap();
    let stranger = stranger();
    let stranger_kid = stranger.signing_kid();
    let valid = app.token();
    let (valid_input, valid_signature) = valid.rsplit_once('.').unwrap();
    let mut tampered_claims = claims.clone();
    tampered_claims["scp"] = json!(["AccessAll", "admin"]);
    let tampered = format!(
        "{}.{}.{valid_signature}",
        valid_input.split('.').next().unwrap(),
        b64_json(&tampered_claims)
    );
    let t = now();

    vec![
        // Algorithm confusion (RFC 8725 §2.1, §3.1).
        Case {
            name: "alg none without signature",
            token: unsigned(&json!({"alg": "none"}), &claims, ""),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "alg none with a signature",
            token: unsigned(&json!({"alg": "none", "kid": kid}), &claims, "c2ln"),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        Case {
            name: "alg None (case variant)",
            token: with_header(json!({"alg": "None"})),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        Case {
            name: "alg rs256 (lower case)",
            token: with_header(json!({"alg": "rs256"})),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        Case {
            name: "HS256 keyed with the issuer's public key DER",
            token: hmac_signed("HS256", &kid, &claims, &public_der, hmac::HMAC_SHA256),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        Case {
            name: "HS256 keyed with the JWK's modulus",
            token: hmac_signed("HS256", &kid, &claims, &modulus, hmac::HMAC_SHA256),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        Case {
            name: "HS384 keyed with the JWK JSON",
            token: hmac_signed("HS384", &kid, &claims, &jwk_json, hmac::HMAC_SHA384),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        Case {
            name: "HS512 keyed with the public key DER",
            token: hmac_signed("HS512", &kid, &claims, &public_der, hmac::HMAC_SHA512),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        Case {
            name: "ES256 header on an RSA key",
            token: with_header(json!({"alg": "ES256"})),
            expect: Invalid(Reason::KeyMismatch),
        },
        Case {
            name: "EdDSA header on an RSA key",
            token: with_header(json!({"alg": "EdDSA"})),
            expect: Invalid(Reason::KeyMismatch),
        },
        Case {
            name: "RS384 header on a key whose JWK says RS256",
            token: with_header(json!({"alg": "RS384"})),
            expect: Invalid(Reason::KeyMismatch),
        },
        Case {
            name: "PS256 header on a key whose JWK says RS256",
            token: with_header(json!({"alg": "PS256"})),
            expect: Invalid(Reason::KeyMismatch),
        },
        Case {
            name: "alg missing",
            token: issuer.mint_with(json!({"kid": kid}), claims.clone()),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        Case {
            name: "alg as a number",
            token: with_header(json!({"alg": 256})),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "unsupported alg ES512",
            token: with_header(json!({"alg": "ES512"})),
            expect: Invalid(Reason::AlgorithmNotAllowed),
        },
        // Keys from the token itself (RFC 8725 §3.10): never used, always refused.
        Case {
            name: "embedded jwk of the attacker's key",
            token: stranger.mint_with(
                json!({"alg": "RS256", "kid": stranger_kid, "jwk": stranger.jwk(&stranger_kid)}),
                claims.clone(),
            ),
            expect: Invalid(Reason::KeyInHeader),
        },
        Case {
            name: "jku pointing elsewhere",
            token: with_header(json!({"jku": "http://127.0.0.1:9/keys"})),
            expect: Invalid(Reason::KeyInHeader),
        },
        Case {
            name: "x5u pointing elsewhere",
            token: with_header(json!({"x5u": "http://127.0.0.1:9/cert.pem"})),
            expect: Invalid(Reason::KeyInHeader),
        },
        Case {
            name: "x5c certificate chain",
            token: with_header(json!({"x5c": ["MIIBIjANBgkq"]})),
            expect: Invalid(Reason::KeyInHeader),
        },
        Case {
            name: "jwk present as null",
            token: with_header(json!({"jwk": null})),
            expect: Invalid(Reason::KeyInHeader),
        },
        Case {
            name: "crit present as null",
            token: with_header(json!({"crit": null})),
            expect: Invalid(Reason::UnsupportedCritical),
        },
        // kid abuse.
        Case {
            name: "kid the issuer never published",
            token: with_header(json!({"kid": "no-such-key"})),
            expect: Invalid(Reason::UnknownKey),
        },
        Case {
            name: "kid with path traversal",
            token: with_header(json!({"kid": "../../../../etc/passwd"})),
            expect: Invalid(Reason::UnknownKey),
        },
        Case {
            name: "kid with SQL injection",
            token: with_header(json!({"kid": "' OR '1'='1"})),
            expect: Invalid(Reason::UnknownKey),
        },
        Case {
            name: "empty kid",
            token: with_header(json!({"kid": ""})),
            expect: Invalid(Reason::UnknownKey),
        },
        Case {
            name: "kid as a number",
            token: with_header(json!({"kid": 1})),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "kid of 9000 characters",
            token: with_header(json!({"kid": "k".repeat(9000)})),
            expect: Invalid(Reason::TooLarge),
        },
        Case {
            name: "our kid, signed by another issuer's key",
            token: stranger.mint_with(header.clone(), claims.clone()),
            expect: Invalid(Reason::BadSignature),
        },
        // Header parameters that change the meaning (RFC 7515 §4.1.11, RFC 8725 §3.11).
        Case {
            name: "crit names an extension",
            token: with_header(json!({"crit": ["exp"], "exp": 1})),
            expect: Invalid(Reason::UnsupportedCritical),
        },
        Case {
            name: "crit b64=false (unencoded payload)",
            token: with_header(json!({"crit": ["b64"], "b64": false})),
            expect: Invalid(Reason::UnsupportedCritical),
        },
        Case {
            name: "typ dpop+jwt",
            token: with_header(json!({"typ": "dpop+jwt"})),
            expect: Invalid(Reason::WrongType),
        },
        Case {
            name: "typ secevent+jwt",
            token: with_header(json!({"typ": "secevent+jwt"})),
            expect: Invalid(Reason::WrongType),
        },
        Case {
            name: "duplicate alg in the header",
            token: format!(
                "{}.{}.c2ln",
                b64(br#"{"alg":"RS256","alg":"none"}"#),
                b64_json(&claims)
            ),
            expect: Invalid(Reason::Malformed),
        },
        // Signature tampering.
        Case {
            name: "claims changed after signing",
            token: tampered,
            expect: Invalid(Reason::BadSignature),
        },
        Case {
            name: "signature stripped",
            token: format!("{valid_input}."),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "signature truncated",
            token: valid[..valid.len() - 8].to_owned(),
            expect: Invalid(Reason::BadSignature),
        },
        Case {
            name: "signature of another token",
            token: format!(
                "{valid_input}.{}",
                stranger.mint(&["AccessAll"]).rsplit_once('.').unwrap().1
            ),
            expect: Invalid(Reason::BadSignature),
        },
        // Claims (RFC 7519 §4.1, RFC 9068 §4).
        Case {
            name: "expired beyond the leeway",
            token: with_claims(json!({"exp": t - 120, "iat": t - 3720})),
            expect: Invalid(Reason::Expired),
        },
        Case {
            name: "nbf beyond the leeway",
            token: with_claims(json!({"nbf": t + 300})),
            expect: Invalid(Reason::NotYetValid),
        },
        Case {
            name: "iat in the future",
            token: with_claims(json!({"iat": t + 300})),
            expect: Invalid(Reason::IssuedInFuture),
        },
        Case {
            name: "exp missing",
            token: with_claims(json!({"exp": null})),
            expect: Invalid(Reason::MissingClaim),
        },
        Case {
            name: "exp as a string",
            token: with_claims(json!({"exp": (t + 600).to_string()})),
            expect: Invalid(Reason::BadClaim),
        },
        Case {
            name: "exp negative",
            token: with_claims(json!({"exp": -1})),
            expect: Invalid(Reason::BadClaim),
        },
        Case {
            name: "another issuer",
            token: with_claims(json!({"iss": "https://evil.example/oauth2/default"})),
            expect: Invalid(Reason::WrongIssuer),
        },
        Case {
            name: "our issuer with a trailing slash",
            token: with_claims(json!({"iss": format!("{}/", issuer.issuer())})),
            expect: Invalid(Reason::WrongIssuer),
        },
        Case {
            name: "issuer as an array holding ours",
            token: with_claims(json!({"iss": [issuer.issuer()]})),
            expect: Invalid(Reason::BadClaim),
        },
        Case {
            name: "iss missing",
            token: with_claims(json!({"iss": null})),
            expect: Invalid(Reason::MissingClaim),
        },
        Case {
            name: "another audience",
            token: with_claims(json!({"aud": "api://other"})),
            expect: Invalid(Reason::WrongAudience),
        },
        Case {
            name: "audience array without ours",
            token: with_claims(json!({"aud": ["api://a", "api://b"]})),
            expect: Invalid(Reason::WrongAudience),
        },
        Case {
            name: "audience array with a number",
            token: with_claims(json!({"aud": ["api://default", 7]})),
            expect: Invalid(Reason::BadClaim),
        },
        Case {
            name: "aud missing",
            token: with_claims(json!({"aud": null})),
            expect: Invalid(Reason::MissingClaim),
        },
        Case {
            name: "claims are an array",
            token: issuer.mint_with(header.clone(), json!([1, 2])),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "an ID token (nonce, at_hash) of the same issuer",
            token: with_claims(
                json!({"nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}),
            ),
            expect: Invalid(Reason::WrongType),
        },
        Case {
            name: "exactly at exp plus the leeway",
            token: with_claims(json!({"exp": t - 60, "iat": t - 3660})),
            expect: Invalid(Reason::Expired),
        },
        // Encoding.
        Case {
            name: "two segments",
            token: "eyJhbGciOiJSUzI1NiJ9.e30".into(),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "four segments",
            token: format!("{valid}.e30"),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "header is standard base64, not base64url",
            token: format!("+/+/.{}", &valid[valid.find('.').unwrap() + 1..]),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "header is not JSON",
            token: format!(
                "{}.{}",
                b64(b"not json"),
                &valid[valid.find('.').unwrap() + 1..]
            ),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "header is a JSON array",
            token: unsigned(&json!(["alg", "RS256"]), &claims, "c2ln"),
            expect: Invalid(Reason::Malformed),
        },
        Case {
            name: "padding inside the token",
            token: format!(
                "{}=.{}",
                valid_input.split('.').next().unwrap(),
                &valid[valid.find('.').unwrap() + 1..]
            ),
            expect: BadRequest(Reason::MalformedHeader),
        },
        Case {
            name: "9 KiB token",
            token: with_claims(json!({"padding": "p".repeat(9 * 1024)})),
            expect: Invalid(Reason::TooLarge),
        },
    ]
}

#[actix_web::test]
async fn forged_and_malformed_tokens_are_refused_with_the_reason_they_deserve() {
    let app = spawn_app().await;
    let cases = cases(&app);
    assert!(
        cases.len() >= 30,
        "the suite promises at least 30 attacks, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let reply = app.whoami(&case.token).await;
        let (status, error, reason) = match case.expect {
            Expect::Invalid(reason) => (401, "invalid_token", reason),
            Expect::BadRequest(reason) => (400, "invalid_request", reason),
        };
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        if reply.status != status
            || reply.body["error"] != error
            || reply.body["error_description"] != reason.description()
            || !challenge.contains(&format!("error=\"{error}\""))
        {
            failures.push(format!(
                "{}: expected {status} {error} ({reason:?}), got {} {} / {challenge}",
                case.name, reply.status, reply.body
            ));
        }
        assert!(
            !reply.body.to_string().contains(&case.token),
            "{}: the token is echoed",
            case.name
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[actix_web::test]
async fn a_token_expired_within_the_leeway_is_still_accepted() {
    let app = spawn_app().await;
    let mut claims = app.issuer.standard_claims(&["AccessAll"]);
    claims["exp"] = json!(now() - 30);
    let reply = app
        .whoami(&app.issuer.mint_with(app.issuer.standard_header(), claims))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn an_algorithm_outside_the_allow_list_is_refused_even_with_a_valid_signature() {
    let app = spawn_app_with(|config| {
        config.auth = config.auth.clone().with_algorithms([Algorithm::RS256])
    })
    .await;
    let kid = app.issuer.add_key(Algorithm::ES256);
    assert!(app.issuer.use_key(&kid));
    let reply = app.whoami(&app.token()).await;
    reply.assert_auth_error(401, "invalid_token", "ES256 when only RS256 is allowed");
    assert_eq!(
        reply.body["error_description"],
        Reason::AlgorithmNotAllowed.description()
    );
}

#[actix_web::test]
async fn a_token_without_kid_is_refused_when_the_issuer_publishes_several_keys() {
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    issuer.add_key(Algorithm::RS256);
    let app = spawn_app_for(issuer, server, |_| {}).await;
    let claims = app.issuer.standard_claims(&["AccessAll"]);
    let reply = app
        .whoami(&app.issuer.mint_with(json!({"alg": "RS256"}), claims))
        .await;
    reply.assert_auth_error(401, "invalid_token", "no kid, two RSA keys");
    assert_eq!(
        reply.body["error_description"],
        Reason::MissingKeyId.description()
    );
}

#[actix_web::test]
async fn an_oversized_authorization_header_is_refused_without_a_server_error() {
    let app = spawn_app().await;
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    let response = crate::helpers::client()
        .get(format!("{}/api/whoami", app.address))
        .insert_header(("Authorization", huge))
        .send()
        .await;
    // actix refuses heads this large before routing (431); a closed connection is fine too.
    if let Ok(response) = response {
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "status {status}");
    }
    assert_eq!(
        app.get("/api/hello", &[]).await.status,
        200,
        "the service still serves"
    );
}
