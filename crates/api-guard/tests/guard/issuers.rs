//! One guard trusting two issuers: each token is checked with its own issuer's keys alone.

use actix_web::{App, HttpResponse, test, web};
use api_guard::testing::TestIssuer;
use api_guard::{Algorithm, AuthSettings, AuthenticatedClaims};

use crate::get;

const A: &str = "https://a.api-guard.invalid/oauth2/default";
const B: &str = "https://b.api-guard.invalid/oauth2/aus0second";

async fn whoami(claims: AuthenticatedClaims) -> HttpResponse {
    let iss = claims.get("iss").and_then(|iss| iss.as_str());
    HttpResponse::Ok().body(iss.unwrap_or_default().to_owned())
}

fn settings() -> AuthSettings {
    AuthSettings::new(A).with_additional_issuers([B])
}

#[actix_web::test]
async fn tokens_of_both_issuers_pass_and_a_token_claiming_one_signed_by_the_other_does_not() {
    let (a, b) = (TestIssuer::for_issuer(A), TestIssuer::for_issuer(B));
    let guard = TestIssuer::guard_for_all(settings(), &[&a, &b]);
    let app = test::init_service(
        App::new()
            .configure(api_guard::configure(guard.clone()))
            .route("/whoami", web::get().to(whoami)),
    )
    .await;
    for (issuer, url) in [(&a, A), (&b, B)] {
        let (status, _, body) = get(&app, "/whoami", Some(&issuer.token().mint())).await;
        assert_eq!((status, body.as_str()), (200, url));
    }
    // Claims `a`, signed by `b` with `b`'s kid: `a`'s store does not have it, and `b`'s is
    // never asked (the refetch of `a`'s finds nothing new).
    let forged = b.token().issuer(A).mint();
    let (status, challenge, _) = get(&app, "/whoami", Some(&forged)).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(
        guard.verify(&forged).err().map(|e| e.reason_code()),
        Some("unknown_kid")
    );
    // And the other way round.
    let forged = a.token().issuer(B).mint();
    assert_eq!(
        guard.verify(&forged).err().map(|e| e.reason_code()),
        Some("unknown_kid")
    );
}

#[actix_web::test]
async fn a_token_of_an_unlisted_issuer_is_refused_as_the_wrong_issuer() {
    let (a, b) = (TestIssuer::for_issuer(A), TestIssuer::for_issuer(B));
    let guard = TestIssuer::guard_for_all(settings(), &[&a, &b]);
    let app = test::init_service(
        App::new()
            .configure(api_guard::configure(guard))
            .route("/whoami", web::get().to(whoami)),
    )
    .await;
    for iss in [format!("{A}/"), "https://c.api-guard.invalid/".to_owned()] {
        let token = a.token().issuer(iss.as_str()).unknown_key().mint();
        let (status, challenge, body) = get(&app, "/whoami", Some(&token)).await;
        assert_eq!(status, 401, "{iss}: {body}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(body.contains("issuer"), "{iss}: {body}");
    }
}

#[actix_web::test]
async fn each_issuers_key_rotation_reaches_its_own_store_only() {
    let (a, b) = (TestIssuer::for_issuer(A), TestIssuer::for_issuer(B));
    let guard = TestIssuer::guard_for_all(settings(), &[&a, &b]);
    let kid = b.add_key(Algorithm::ES256);
    assert!(b.use_key(&kid));
    assert!(guard.verify(&b.token().mint()).is_ok(), "b's new key");
    let stores = guard.key_stores();
    let keys: Vec<(&str, usize)> = stores.iter().map(|s| (s.issuer.as_str(), s.keys)).collect();
    assert_eq!(keys, [(A, 1), (B, 2)]);
    assert_eq!(
        guard.key_store().issuer,
        A,
        "key_store() is the first issuer's"
    );
    assert!(guard.is_ready());
}
