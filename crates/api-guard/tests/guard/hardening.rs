//! Findings of the security review that live in the library: identity claims of the wrong
//! JSON type, and strict RFC 9068 typing.

use api_guard::testing::TestIssuer;
use serde_json::{Value, json};

fn refusal(guard: &api_guard::Guard, token: &str) -> Option<&'static str> {
    guard.verify(token).err().map(|e| e.reason_code())
}

#[test]
fn a_present_but_non_string_identity_claim_is_a_malformed_claim() {
    let issuer = TestIssuer::new();
    let guard = issuer.guard();
    // The review's token: a null client_id must not fall back to cid.
    let token = issuer
        .token()
        .claim("client_id", Value::Null)
        .claim("cid", "victim")
        .mint();
    assert_eq!(
        guard
            .verify(&token)
            .map(|c| c.client_id().map(str::to_owned))
            .map_err(|e| e.reason_code()),
        Err("bad_claim")
    );
    for (name, value) in [
        ("client_id", json!(7)),
        ("client_id", json!(["a"])),
        ("cid", Value::Null),
        ("cid", json!(false)),
        ("sub", Value::Null),
        ("sub", json!({"id": "x"})),
        ("scope", Value::Null),
        ("scope", json!(["orders:read"])),
    ] {
        let token = issuer.token().claim(name, value.clone()).mint();
        assert_eq!(
            refusal(&guard, &token),
            Some("bad_claim"),
            "{name}: {value}"
        );
    }
    // Strings still work, and absence is still absence.
    let token = issuer.token().claim("client_id", "mine").mint();
    assert_eq!(guard.verify(&token).unwrap().client_id(), Some("mine"));
}

#[test]
fn strict_at_jwt_typing_accepts_only_at_jwt_and_the_default_stays_lenient() {
    let issuer = TestIssuer::new();
    let strict = issuer.guard_with(issuer.settings().with_require_at_jwt(true));
    let lenient = issuer.guard();
    assert!(!issuer.settings().require_at_jwt(), "off by default");
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let token = issuer.token().header("typ", typ).mint();
        assert!(strict.verify(&token).is_ok(), "{typ}");
        assert!(lenient.verify(&token).is_ok(), "{typ}");
    }
    let untyped = issuer.token().mint();
    assert_eq!(refusal(&strict, &untyped), Some("wrong_type"), "no typ");
    assert!(
        lenient.verify(&untyped).is_ok(),
        "Okta's tokens have no typ"
    );
    for typ in ["JWT", "jwt", "JOSE", "dpop+jwt"] {
        let token = issuer.token().header("typ", typ).mint();
        assert_eq!(refusal(&strict, &token), Some("wrong_type"), "{typ}");
    }
}
