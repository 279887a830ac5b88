//! The test kit's tokens, checked with another implementation (jsonwebtoken) and raw aws-lc.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};

use super::*;

/// Verifies `token` as another resource server would: the published JWK, one algorithm,
/// `iss` and `aud`.
fn verify(
    issuer: &TestIssuer,
    kid: &str,
    alg: Algorithm,
    token: &str,
) -> jsonwebtoken::errors::Result<Value> {
    let jwk: Jwk = serde_json::from_value(issuer.jwk(kid).unwrap()).unwrap();
    let alg: jsonwebtoken::Algorithm = alg.name().parse().unwrap();
    let mut validation = Validation::new(alg);
    validation.set_audience(&[TEST_AUDIENCE]);
    validation.set_issuer(&[issuer.issuer()]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
        .map(|data| data.claims)
}

fn segment(token: &str, index: usize) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(token.split('.').nth(index).unwrap())
        .unwrap()
}

#[test]
fn the_test_issuer_is_clone_send_and_sync() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<TestIssuer>();
}

#[test]
fn tokens_of_every_algorithm_verify_against_their_published_jwk() {
    let issuer = TestIssuer::new();
    for alg in Algorithm::ALL {
        let kid = issuer.add_key(alg);
        assert!(issuer.use_key(&kid), "{alg}");
        let token = issuer.token().scopes(["AccessAll"]).mint();
        let claims = verify(&issuer, &kid, alg, &token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims["scp"], json!(["AccessAll"]), "{alg}");
        let header: Value = serde_json::from_slice(&segment(&token, 0)).unwrap();
        assert_eq!(header, json!({ "kid": kid, "alg": alg.name() }), "{alg}");
    }
}

#[test]
fn minted_claims_are_okta_shaped_and_the_builder_sets_each_one() {
    let issuer = TestIssuer::new();
    let token = issuer
        .token()
        .subject("alice")
        .client_id("app")
        .scopes(["a", "b"])
        .expires_in(Duration::from_secs(60))
        .claim("tenant", json!({"id": 7}))
        .mint();
    let claims = verify(&issuer, &issuer.signing_kid(), Algorithm::RS256, &token).unwrap();
    assert_eq!(claims["ver"], 1);
    assert!(claims["jti"].as_str().unwrap().starts_with("AT."));
    assert_eq!(
        (&claims["cid"], &claims["sub"]),
        (&json!("app"), &json!("alice"))
    );
    assert_eq!(claims["scp"], json!(["a", "b"]));
    assert_eq!(claims["tenant"], json!({"id": 7}));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
}

#[test]
fn sign_uses_the_key_named_by_kid_whatever_the_header_alg_says() {
    let issuer = TestIssuer::new();
    let kid = issuer.add_key(Algorithm::ES256);
    let header = json!({ "kid": kid, "alg": "HS256", "typ": "JWT" });
    let token = issuer.sign(&header, &issuer.token().claims());
    assert_eq!(
        serde_json::from_slice::<Value>(&segment(&token, 0)).unwrap(),
        header
    );
    let jwk = issuer.jwk(&kid).unwrap();
    let point = [
        vec![4],
        segment(jwk["x"].as_str().unwrap(), 0),
        segment(jwk["y"].as_str().unwrap(), 0),
    ]
    .concat();
    let signing_input = token.rsplit_once('.').unwrap().0;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(signing_input.as_bytes(), &segment(&token, 2))
        .unwrap();
}

#[test]
fn sign_uses_the_signing_key_when_kid_names_no_key() {
    let issuer = TestIssuer::new();
    let header = json!({ "kid": "nope", "alg": "RS256" });
    let token = issuer.sign(&header, &issuer.token().claims());
    let jwk: Jwk = serde_json::from_value(issuer.jwk(&issuer.signing_kid()).unwrap()).unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[TEST_AUDIENCE]);
    validation.validate_exp = true;
    jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
        .unwrap();
}

#[test]
fn removed_keys_leave_the_jwks_but_a_removed_signing_key_still_signs() {
    let issuer = TestIssuer::new();
    let kid = issuer.signing_kid();
    assert!(issuer.remove_key(&kid));
    assert!(!issuer.remove_key(&kid));
    assert_eq!(
        (issuer.jwk(&kid), issuer.public_key_der(&kid)),
        (None, None)
    );
    assert_eq!(issuer.jwks(), json!({"keys": []}));
    assert!(!issuer.use_key(&kid));
    assert_eq!(issuer.signing_kid(), kid);
    assert_eq!(segment(&issuer.token().mint(), 2).len(), 256);
}

#[test]
fn public_key_der_is_subject_public_key_info_for_rsa() {
    let issuer = TestIssuer::new();
    let der = issuer.public_key_der(&issuer.signing_kid()).unwrap();
    let parsed = aws_lc_rs::rsa::PublicKey::from_der(&der).unwrap();
    let jwk = issuer.jwk(&issuer.signing_kid()).unwrap();
    assert_eq!(
        segment(jwk["n"].as_str().unwrap(), 0),
        parsed.modulus().big_endian_without_leading_zero()
    );
    // SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier rsaEncryption, BIT STRING }.
    assert!(
        der.windows(9)
            .any(|w| w == [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01])
    );
}

#[test]
fn deliberately_bad_tokens_are_refused_by_a_guard_for_their_reason() {
    let issuer = TestIssuer::new();
    let guard = issuer.guard();
    let reason = |token: String| guard.verify(&token).err().map(|e| e.reason_code());
    assert_eq!(reason(issuer.token().mint()), None);
    assert_eq!(reason(issuer.token().expired().mint()), Some("expired"));
    assert_eq!(
        reason(issuer.token().wrong_audience().mint()),
        Some("wrong_audience")
    );
    assert_eq!(
        reason(issuer.token().unknown_key().mint()),
        Some("unknown_kid")
    );
    assert_eq!(
        reason(issuer.token().issuer("https://other.invalid").mint()),
        Some("wrong_issuer")
    );
}

#[test]
fn guards_follow_the_issuers_key_changes() {
    let issuer = TestIssuer::new();
    let guard = issuer.guard();
    let old = issuer.signing_kid();
    let new = issuer.add_key(Algorithm::ES256);
    assert!(issuer.use_key(&new));
    assert!(
        guard.verify(&issuer.token().mint()).is_ok(),
        "a new key is trusted"
    );
    assert!(issuer.remove_key(&old));
    assert!(issuer.use_key(&new));
    let old_signed = issuer.sign(
        &json!({"kid": old, "alg": "RS256"}),
        &issuer.token().claims(),
    );
    assert_eq!(
        guard.verify(&old_signed).err().map(|e| e.reason_code()),
        Some("unknown_kid"),
        "a removed key is not"
    );
}
