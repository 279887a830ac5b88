//! The verified-token cache, seen from outside: a repeated token is answered from the cache,
//! but never past its `exp`, never without the scope checks, and not at all when it is off.
//! Rotation is in `key_rotation`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api_guard::Reason;
use serde_json::json;

use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_with};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A normal token that expires `secs` from now.
fn token_expiring_in(app: &TestApp, secs: u64) -> String {
    let mut claims = app.issuer.standard_claims(&["AccessAll"]);
    claims["exp"] = json!(now_secs() + secs);
    app.issuer.mint_with(app.issuer.standard_header(), claims)
}

#[actix_web::test]
async fn a_repeated_token_is_answered_from_the_cache() {
    let app = spawn_app().await;
    let token = app.token();
    let first = app.whoami(&token).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let after_first = app.app.guard().cache_stats();
    assert_eq!((after_first.hits, after_first.entries), (0, 1));
    let second = app.whoami(&token).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body, first.body, "the same claims");
    let after_second = app.app.guard().cache_stats();
    assert_eq!(after_second.hits, 1, "{after_second:?}");
    assert_eq!(after_second.misses, after_first.misses);
    assert!(after_second.bytes > token.len() as u64, "{after_second:?}");
}

#[actix_web::test]
async fn a_cached_token_is_refused_as_expired_once_its_exp_has_passed() {
    let app = spawn_app_with(|config| {
        config.auth = config.auth.clone().with_leeway(std::time::Duration::ZERO)
    })
    .await;
    let token = token_expiring_in(&app, 2);
    assert_eq!(app.whoami(&token).await.status, 200);
    assert_eq!(app.whoami(&token).await.status, 200);
    assert_eq!(
        app.app.guard().cache_stats().hits,
        1,
        "served from the cache"
    );
    // Polls (bounded) rather than sleeping: the entry must stop being served by itself.
    let expired = eventually(Duration::from_secs(10), || async {
        app.whoami(&token).await.status == 401
    })
    .await;
    assert!(expired, "a cached token must not outlive its exp");
    let reply = app.whoami(&token).await;
    reply.assert_auth_error(401, "invalid_token", "expired cached token");
    assert_eq!(
        reply.body["error_description"],
        Reason::Expired.description()
    );
}

#[actix_web::test]
async fn required_scopes_are_checked_on_every_request_even_from_the_cache() {
    let app =
        spawn_app_with(|config| config.auth = config.auth.clone().with_required_scopes(["admin"]))
            .await;
    let token = app.issuer.mint(&["AccessAll"]);
    for attempt in ["first", "second"] {
        let reply = app.whoami(&token).await;
        reply.assert_auth_error(403, "insufficient_scope", attempt);
    }
    assert_eq!(app.app.guard().cache_stats().hits, 1);
}

#[actix_web::test]
async fn an_invalid_token_is_never_cached() {
    let app = spawn_app().await;
    let token = app.token();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let other_first = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{signed}.{other_first}{}", &signature[1..]);
    for _ in 0..2 {
        app.whoami(&forged)
            .await
            .assert_auth_error(401, "invalid_token", "bad signature");
    }
    let stats = app.app.guard().cache_stats();
    assert_eq!((stats.hits, stats.entries), (0, 0), "{stats:?}");
}

#[actix_web::test]
async fn with_a_cache_of_zero_bytes_every_request_is_fully_validated() {
    let app =
        spawn_app_with(|config| config.auth = config.auth.clone().with_token_cache_bytes(0)).await;
    let token = app.token();
    for _ in 0..2 {
        assert_eq!(app.whoami(&token).await.status, 200);
    }
    let stats = app.app.guard().cache_stats();
    assert_eq!(
        (stats.hits, stats.entries, stats.capacity_bytes),
        (0, 0, 0),
        "{stats:?}"
    );
}
