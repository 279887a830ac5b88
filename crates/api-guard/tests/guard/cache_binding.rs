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

mod property {
    //! Over random sequences of tokens and guards: each guard's verdict is the one its own
    //! settings give, whatever another guard (or the same one) cached before.

    use api_guard::testing::TestIssuer;
    use proptest::prelude::*;

    const AUDIENCES: [&str; 3] = ["api://orders", "api://billing", "api://other"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn a_cached_token_is_never_served_to_settings_that_did_not_verify_it(
            calls in prop::collection::vec((0..4usize, 0..3usize, any::<bool>()), 1..40)
        ) {
            let issuer = TestIssuer::new();
            // Four guards: two audiences, each lenient and strict about `typ`.
            let settings = [
                (0usize, false),
                (1, false),
                (0, true),
                (1, true),
            ];
            let guards: Vec<_> = settings
                .iter()
                .map(|&(aud, strict)| {
                    issuer.guard_with(
                        issuer
                            .settings()
                            .with_audiences([AUDIENCES[aud]])
                            .with_require_at_jwt(strict),
                    )
                })
                .collect();
            let tokens: Vec<Vec<String>> = AUDIENCES
                .iter()
                .map(|aud| {
                    vec![
                        issuer.token().audience(*aud).mint(),
                        issuer.token().audience(*aud).header("typ", "at+jwt").mint(),
                    ]
                })
                .collect();
            for (guard, aud, typed) in calls {
                let (own_aud, strict) = settings[guard];
                let token = &tokens[aud][usize::from(typed)];
                let expected = aud == own_aud && (typed || !strict);
                let verdict = guards[guard].verify(token);
                prop_assert_eq!(
                    verdict.is_ok(),
                    expected,
                    "guard {} (aud {}, strict {}) on a token for {} (typed {}): {:?}",
                    guard, AUDIENCES[own_aud], strict, AUDIENCES[aud], typed,
                    verdict.err().map(|e| e.reason_code())
                );
            }
        }
    }
}
