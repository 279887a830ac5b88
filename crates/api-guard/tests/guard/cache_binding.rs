//! A verified-token cache belongs to its guard: a token one guard accepted (and cached) is
//! never served to a guard with other settings.

use std::time::Duration;

use api_guard::testing::TestIssuer;
use api_guard::{Algorithm, AuthSettings};

#[test]
fn two_guards_with_different_audiences_never_accept_each_others_tokens_cached_or_not() {
    let issuer = TestIssuer::new();
    let orders = issuer.guard_with(issuer.settings().with_audiences(["api://orders"]));
    let billing = issuer.guard_with(issuer.settings().with_audiences(["api://billing"]));
    let for_orders = issuer.token().audience("api://orders").mint();
    let for_billing = issuer.token().audience("api://billing").mint();
    for round in 0..3 {
        assert!(orders.verify(&for_orders).is_ok(), "round {round}");
        assert!(billing.verify(&for_billing).is_ok(), "round {round}");
        let refused = |guard: &api_guard::Guard, token: &str| {
            guard.verify(token).err().map(|e| e.reason_code())
        };
        assert_eq!(
            refused(&billing, &for_orders),
            Some("wrong_audience"),
            "round {round}"
        );
        assert_eq!(
            refused(&orders, &for_billing),
            Some("wrong_audience"),
            "round {round}"
        );
    }
    assert_eq!(
        orders.cache_stats().hits,
        2,
        "the orders guard served its own token from cache"
    );
    assert_eq!(billing.cache_stats().hits, 2);
    assert_eq!(
        orders.cache_stats().entries,
        1,
        "it never cached the other token"
    );
}

#[test]
fn guards_differing_in_algorithms_or_leeway_keep_their_own_verdicts() {
    let issuer = TestIssuer::new();
    let rsa = issuer.guard();
    let ec_only = issuer.guard_with(issuer.settings().with_algorithms([Algorithm::ES256]));
    let token = issuer.token().mint();
    assert!(rsa.verify(&token).is_ok());
    assert!(rsa.verify(&token).is_ok(), "now from the cache");
    assert_eq!(
        ec_only.verify(&token).err().map(|e| e.reason_code()),
        Some("algorithm_not_allowed")
    );

    let strict = issuer.guard_with(issuer.settings().with_leeway(Duration::ZERO));
    let lenient = issuer.guard_with(issuer.settings().with_leeway(Duration::from_secs(300)));
    let just_expired = issuer.token().claim("exp", unix_now() - 30).mint();
    assert!(lenient.verify(&just_expired).is_ok());
    assert!(lenient.verify(&just_expired).is_ok());
    assert_eq!(
        strict.verify(&just_expired).err().map(|e| e.reason_code()),
        Some("expired")
    );
}

#[test]
fn a_guard_for_another_issuer_refuses_the_test_issuers_tokens() {
    let issuer = TestIssuer::new();
    let ours = issuer.guard();
    let theirs = issuer.guard_with(AuthSettings::new("https://other.api-guard.invalid"));
    let token = issuer.token().mint();
    assert!(ours.verify(&token).is_ok());
    assert_eq!(
        theirs.verify(&token).err().map(|e| e.reason_code()),
        Some("wrong_issuer")
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
