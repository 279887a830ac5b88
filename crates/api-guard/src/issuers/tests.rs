use serde_json::{Value, json};

use super::*;
use crate::Guard;
use crate::jwks::KeySet;
use crate::testing::TestIssuer;

const A: &str = "https://a.example/oauth2/default";
const B: &str = "https://b.example/oauth2/aus0second";

/// `header.claims.signature` with `claims` as given and a signature nobody checks.
fn unsigned(claims: &str) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256"}"#),
        b64(claims.as_bytes()),
        b64(b"sig")
    )
}

fn routed(token: &str) -> Result<String, &'static str> {
    with_unverified_iss(token, |iss| Ok(iss.to_owned())).map_err(|e| e.reason_code())
}

#[test]
fn the_unverified_iss_is_read_alone_and_anything_but_one_string_is_refused() {
    for (claims, expected) in [
        (
            r#"{"iss":"https://a.example/x"}"#,
            Ok("https://a.example/x"),
        ),
        (
            r#"{"sub":[1,{"a":2}],"iss":"https:\/\/a.example\/x"}"#,
            Ok("https://a.example/x"),
        ),
        (r#" {"x":{"iss":"nested, not read"},"iss":"a"}"#, Ok("a")),
        (r#"{"sub":"a"}"#, Err("missing_claim")),
        (r#"{"iss":null}"#, Err("bad_claim")),
        (r#"{"iss":42}"#, Err("bad_claim")),
        (r#"{"iss":["https://a.example/x"]}"#, Err("bad_claim")),
        (r#"{"iss":{"iss":"https://a.example/x"}}"#, Err("bad_claim")),
        (r#"{"iss":"a","iss":"b"}"#, Err("malformed")),
        (r#"[{"iss":"a"}]"#, Err("malformed")),
        (r#"{"iss":"a""#, Err("malformed")),
        (r#"{"iss":"\ud800"}"#, Err("malformed")),
    ] {
        let expected = expected.map(str::to_owned);
        assert_eq!(routed(&unsigned(claims)), expected, "{claims}");
    }
}

#[test]
fn a_token_that_is_not_three_segments_or_too_large_is_refused_before_its_payload_is_read() {
    let good = unsigned(r#"{"iss":"a"}"#);
    let (header, rest) = good.split_once('.').unwrap();
    for (token, reason) in [
        (format!("{header}.{rest}.x"), "malformed"),
        (header.to_owned(), "malformed"),
        (format!("{header}.!!!.x"), "malformed"),
        (format!("{header}..x"), "malformed"),
    ] {
        assert_eq!(routed(&token), Err(reason), "{token}");
    }
    // A huge `iss` makes a huge token: refused by size, before anything is decoded.
    let huge = unsigned(&format!(r#"{{"iss":"{}"}}"#, "a".repeat(MAX_TOKEN_BYTES)));
    assert_eq!(routed(&huge), Err("too_large"));
}

/// A guard trusting `a` and `b`, each issuer's store holding `keys` of its own.
fn guard(a: &TestIssuer, b_keys: Value) -> Guard {
    let settings = AuthSettings::new(A).with_additional_issuers([B]);
    let a_store = JwksStore::fixed(
        A,
        KeySet::from_json(a.jwks().to_string().as_bytes()).unwrap(),
    );
    let b_store = JwksStore::fixed(B, KeySet::from_json(b_keys.to_string().as_bytes()).unwrap());
    Guard::with_stores(settings, vec![a_store, b_store])
}

#[test]
fn the_same_kid_in_two_issuers_verifies_only_the_tokens_of_the_issuer_whose_key_signed() {
    let (a, b) = (TestIssuer::for_issuer(A), TestIssuer::for_issuer(B));
    let kid = a.signing_kid();
    // `b` publishes its own key under `a`'s kid.
    let mut b_jwk = b.jwk(&b.signing_kid()).unwrap();
    b_jwk["kid"] = json!(kid);
    let guard = guard(&a, json!({ "keys": [b_jwk] }));
    let header = json!({"alg": "RS256", "kid": kid});
    let b_signed = |iss: &str| b.sign(&header, &b.token().issuer(iss).claims());

    assert!(guard.verify(&a.token().mint()).is_ok(), "a's own token");
    assert!(
        guard.verify(&b_signed(B)).is_ok(),
        "b's own token, same kid"
    );
    for round in 0..2 {
        let refused = guard.verify(&b_signed(A)).err().map(|e| e.reason_code());
        assert_eq!(
            refused,
            Some("bad_signature"),
            "claims a, signed by b ({round})"
        );
        let refused = guard
            .verify(&a.sign(&header, &a.token().issuer(B).claims()))
            .err()
            .map(|e| e.reason_code());
        assert_eq!(
            refused,
            Some("bad_signature"),
            "claims b, signed by a ({round})"
        );
    }
    let stats = guard.cache_stats();
    assert_eq!(
        stats.entries, 2,
        "only the two good tokens are cached: {stats:?}"
    );
}

#[test]
fn a_token_of_an_issuer_not_listed_is_refused_as_the_wrong_issuer_before_any_key_lookup() {
    let a = TestIssuer::for_issuer(A);
    let guard = guard(&a, a.jwks());
    for iss in [
        "https://a.example/oauth2/default/",
        "https://A.example/oauth2/default",
        "https://c.example/oauth2/default",
        "",
    ] {
        // An unknown kid: the lookup would miss, and a miss would ask for a fetch.
        let token = a.token().issuer(iss).unknown_key().mint();
        let refused = guard.verify(&token).err().map(|e| e.reason_code());
        assert_eq!(refused, Some("wrong_issuer"), "{iss:?}");
    }
    assert_eq!(guard.cache_stats().misses, 0, "no cache was even looked at");
}

#[test]
fn with_one_issuer_a_token_is_not_read_before_the_cache_and_validator() {
    let a = TestIssuer::for_issuer(A);
    let guard = a.guard();
    // Routing does not read it: the validator refuses it (after its own steps) as before.
    let token = a.token().issuer("https://c.example/").mint();
    let refused = guard.verify(&token).err().map(|e| e.reason_code());
    assert_eq!(refused, Some("wrong_issuer"));
    assert_eq!(guard.cache_stats().misses, 1, "it went through the cache");
    // Strict routing, before a fetch, reads it.
    let store = JwksStore::fixed(
        A,
        KeySet::from_json(a.jwks().to_string().as_bytes()).unwrap(),
    );
    let issuers = Issuers::with_stores(&a.settings(), vec![store]);
    assert!(
        issuers.route(&token).is_ok(),
        "one issuer: nothing to choose"
    );
    assert!(issuers.route_strictly(&token).is_err());
    assert!(issuers.route_strictly(&a.token().mint()).is_ok());
}

#[test]
fn the_token_cache_bytes_are_shared_out_between_the_issuers() {
    let a = TestIssuer::for_issuer(A);
    let guard = guard(&a, a.jwks());
    let stats = guard.cache_stats();
    assert_eq!(stats.capacity_bytes, 4 << 20, "{stats:?}");
    let statuses = guard.key_stores();
    let issuers: Vec<&str> = statuses.iter().map(|s| s.issuer.as_str()).collect();
    assert_eq!(issuers, [A, B]);
}
