//! Key rotation and the on-demand refetch: a new `kid` causes one
//! refetch, at most one per cooldown however many ask, and a removed key stops working.

use std::time::Duration;

use api_guard::Algorithm;
use api_guard::Reason;
use futures_util::future::join_all;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_token_from_a_newly_added_key_is_accepted_after_one_refetch() {
    let app = spawn_app().await;
    let fetches = app.issuer.jwks_fetches();
    let kid = app.issuer.add_key(Algorithm::RS256);
    assert!(app.issuer.use_key(&kid));
    let reply = app.whoami(&app.token()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        app.issuer.jwks_fetches(),
        fetches + 1,
        "exactly one refetch"
    );
    assert_eq!(app.whoami(&app.token()).await.status, 200);
    assert_eq!(
        app.issuer.jwks_fetches(),
        fetches + 1,
        "the new key is now cached"
    );
}

#[actix_web::test]
async fn a_removed_key_is_refused_once_the_store_has_refreshed() {
    let app = spawn_app().await;
    let old_kid = app.issuer.signing_kid();
    let old_token = app.token();
    assert_eq!(app.whoami(&old_token).await.status, 200);
    assert_eq!(app.whoami(&old_token).await.status, 200);
    assert_eq!(
        app.app.guard().cache_stats().hits,
        1,
        "the old token is served from the token cache"
    );
    let new_kid = app.issuer.add_key(Algorithm::RS256);
    assert!(app.issuer.use_key(&new_kid));
    assert!(app.issuer.remove_key(&old_kid));
    // The new key's token makes the store refetch; the set it gets no longer has the old key.
    let new_token = app.token();
    assert_eq!(app.whoami(&new_token).await.status, 200);
    // The next lookup sees the new key set and drops the old key's token unasked.
    assert_eq!(app.whoami(&new_token).await.status, 200);
    assert_eq!(
        app.app.guard().cache_stats().entries,
        1,
        "the removed key's token left the cache; only the new key's token is held"
    );
    let reply = app.whoami(&old_token).await;
    reply.assert_auth_error(401, "invalid_token", "token of a removed key");
    assert_eq!(
        reply.body["error_description"],
        Reason::UnknownKey.description()
    );
}

#[actix_web::test]
async fn a_cached_token_of_a_key_kept_by_a_refresh_is_still_served_from_the_cache() {
    let app = spawn_app().await;
    let old_token = app.token();
    assert_eq!(app.whoami(&old_token).await.status, 200);
    let fetches = app.issuer.jwks_fetches();
    let new_kid = app.issuer.add_key(Algorithm::ES256);
    assert!(app.issuer.use_key(&new_kid));
    assert_eq!(app.whoami(&app.token()).await.status, 200);
    assert_eq!(
        app.issuer.jwks_fetches(),
        fetches + 1,
        "the store refreshed"
    );
    let hits = app.app.guard().cache_stats().hits;
    assert_eq!(app.whoami(&old_token).await.status, 200);
    assert_eq!(
        app.app.guard().cache_stats().hits,
        hits + 1,
        "the unchanged key is the same key: its tokens stay cached"
    );
}

#[actix_web::test]
async fn an_unknown_kid_flood_causes_at_most_one_fetch_per_cooldown() {
    let app = spawn_app().await;
    let fetches = app.issuer.jwks_fetches();
    let mut header = app.issuer.standard_header();
    let claims = app.issuer.standard_claims(&["AccessAll"]);
    let tokens: Vec<String> = (0..40)
        .map(|n| {
            header["kid"] = serde_json::json!(format!("made-up-{n}"));
            app.issuer.mint_with(header.clone(), claims.clone())
        })
        .collect();
    // Half at once (they join one fetch in flight), half after (inside the cooldown).
    let replies = join_all(tokens[..20].iter().map(|t| app.whoami(t))).await;
    for token in &tokens[20..] {
        assert_eq!(app.whoami(token).await.status, 401);
    }
    assert!(replies.iter().all(|r| r.status == 401));
    assert_eq!(
        app.issuer.jwks_fetches(),
        fetches + 1,
        "one fetch for 40 unknown kids"
    );
}

#[actix_web::test]
async fn after_the_cooldown_an_unknown_kid_may_cause_another_fetch() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.auth = config.auth.clone().with_jwks_cooldown(Duration::ZERO)
    })
    .await;
    let fetches = app.issuer.jwks_fetches();
    let mut header = app.issuer.standard_header();
    header["kid"] = serde_json::json!("made-up");
    let token = app
        .issuer
        .mint_with(header, app.issuer.standard_claims(&["AccessAll"]));
    assert_eq!(app.whoami(&token).await.status, 401);
    assert_eq!(app.whoami(&token).await.status, 401);
    assert_eq!(
        app.issuer.jwks_fetches(),
        fetches + 2,
        "with no cooldown, each asks once"
    );
}
